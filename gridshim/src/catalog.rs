//! The release catalog: the newest version of each app per channel. Read from a file (re-read
//! whenever it changes on disk) or from the config, and changeable at run time through the
//! admin API, so "update available" can be tested.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::prelude::*;
use crate::state::Sim;

/// Routes of the catalog.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/catalog", get(get_catalog))
        .route("/admin/catalog", put(set_catalog))
        .route("/admin/catalog/publish", post(publish))
}

async fn get_catalog(State(sim): State<Arc<Sim>>) -> Json<Catalog> {
    Json(sim.catalog.current())
}

async fn set_catalog(State(sim): State<Arc<Sim>>, Json(c): Json<Catalog>) -> Json<()> {
    sim.catalog.set(c);
    Json(())
}

#[derive(Deserialize)]
struct Publish {
    channel: Channel,
    app: String,
    version: String,
}

async fn publish(State(sim): State<Arc<Sim>>, Json(p): Json<Publish>) -> ApiResult<Json<()>> {
    if p.version.is_empty() {
        return Err(ApiError::invalid(ErrorCode::Invalid, "version is empty"));
    }
    tracing::info!(channel = %p.channel, app = %p.app, version = %p.version, "release published");
    sim.catalog.publish(p.channel, &p.app, &p.version);
    Ok(Json(()))
}
