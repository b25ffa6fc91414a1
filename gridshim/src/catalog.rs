//! The release catalog: the newest version of each app per channel. Read from a file (re-read
//! whenever it changes on disk) or from the config, and changeable at run time through the
//! admin API, so "update available" can be tested.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::config::{Config, ConfigError};
use crate::error::{ApiError, ApiResult};
use crate::prelude::*;
use crate::state::Sim;

/// The catalog as the simulator holds it.
#[derive(Debug)]
pub struct CatalogState {
    file: Option<PathBuf>,
    inner: Mutex<(Catalog, Option<SystemTime>)>,
}

fn read_file(path: &PathBuf) -> Result<(Catalog, Option<SystemTime>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let c: Catalog = serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.clone(),
        source,
    })?;
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok((c, mtime))
}

impl CatalogState {
    /// From the config's file or inline channels.
    pub fn new(cfg: &Config) -> Result<CatalogState, ConfigError> {
        let file = cfg.catalog.file.as_ref().map(|f| cfg.resolve(f));
        let inner = match &file {
            Some(f) => read_file(f)?,
            None => (cfg.catalog.inline(), None),
        };
        Ok(CatalogState {
            file,
            inner: Mutex::new(inner),
        })
    }

    /// The current catalog (re-reading the file when it changed).
    pub fn current(&self) -> Catalog {
        let mut g = self.inner.lock().expect("catalog lock");
        if let Some(f) = &self.file {
            let mtime = std::fs::metadata(f).and_then(|m| m.modified()).ok();
            if mtime.is_some() && mtime != g.1 {
                match read_file(f) {
                    Ok(n) => {
                        tracing::info!(file = %f.display(), "release catalog re-read");
                        *g = n;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "release catalog unreadable, keeping the last one")
                    }
                }
            }
        }
        g.0.clone()
    }

    /// Replaces the catalog.
    pub fn set(&self, c: Catalog) {
        let mut g = self.inner.lock().expect("catalog lock");
        // Keep the file's mtime so the admin's change holds until the file changes again.
        g.0 = c;
    }

    /// Publishes one version.
    pub fn publish(&self, channel: Channel, app: &str, version: &str) {
        let mut g = self.inner.lock().expect("catalog lock");
        g.0.channels
            .entry(channel)
            .or_default()
            .insert(app.to_string(), version.to_string());
    }
}

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
