//! The release catalog as the simulator holds it: from a file (re-read whenever it changes on
//! disk) or from the config, changeable at run time.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::config::{Config, ConfigError};
use crate::prelude::*;

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
