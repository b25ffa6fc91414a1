//! The release catalog: the newest version of each app per channel. Read from a file (re-read
//! whenever it changes on disk) or from the config, and changeable at run time through the
//! admin API, so "update available" can be tested.
//!
//! The release index the VM agents install from is served beside it: `GET /releases/index.json`
//! (every current release with the SHA-256 of its artifact) and
//! `GET /releases/{channel}/{app}/{version}` (the artifact, after the profile's download time,
//! recorded on the VM that asked).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::prelude::*;
use crate::state::Sim;
use crate::wire::{VM_HEADER, WaitFor};

/// Routes of the catalog.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/catalog", get(get_catalog))
        .route("/admin/catalog", put(set_catalog))
        .route("/admin/catalog/publish", post(publish))
        .route("/releases/index.json", get(release_index))
        .route("/releases/{channel}/{app}/{version}", get(artifact))
}

/// The artifact of a release: a few KiB that depend only on what it is.
pub fn artifact_bytes(channel: Channel, app: &str, version: &str) -> Vec<u8> {
    format!("{app} {version} ({channel}): the simulated build of this release\n")
        .repeat(64)
        .into_bytes()
}

async fn release_index(State(sim): State<Arc<Sim>>) -> Json<ReleaseIndex> {
    let catalog = sim.catalog.current();
    let channels = catalog
        .channels
        .iter()
        .map(|(channel, apps)| {
            let releases = apps
                .iter()
                .map(|(app, version)| {
                    let bytes = artifact_bytes(*channel, app, version);
                    let release = Release {
                        version: version.clone(),
                        // Relative to the index.
                        url: format!("{channel}/{app}/{version}"),
                        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
                    };
                    (app.clone(), release)
                })
                .collect();
            (*channel, releases)
        })
        .collect();
    Json(ReleaseIndex { channels })
}

/// An artifact, after the profile's download time (recorded on the VM that asked, when its
/// agent says which it is: see [`VM_HEADER`]).
async fn artifact(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((channel, app, version)): Path<(Channel, String, String)>,
) -> Response {
    let download = sim.timing.draw(crate::timing::Wait::InstallDownload);
    if let Some(vm) = headers.get(VM_HEADER).and_then(|v| v.to_str().ok()) {
        sim.note_vm_wait(vm, WaitFor::InstallDownload, Some(&app), download);
    }
    sim.timing.sleep(download.sleep).await;
    artifact_bytes(channel, &app, &version).into_response()
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
