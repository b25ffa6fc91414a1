//! The shared engines as the simulator holds them: one slot per engine, its address, whether
//! its token store answers and how to close its listener. The `engines` module opens them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::prelude::*;

/// One engine.
#[derive(Debug)]
pub struct Slot {
    /// `embedder` or `voice`.
    pub name: &'static str,
    /// The path testers call.
    pub call_path: &'static str,
    /// Its address on the admin machine.
    pub ip: String,
    /// Its port (0 until bound, when configured as 0).
    pub port: Mutex<u16>,
    /// Whether its token store answers.
    pub available: AtomicBool,
    /// Closes its listener; `None` while closed.
    pub stop: Mutex<Option<tokio::sync::watch::Sender<bool>>>,
}

/// The engines.
#[derive(Debug)]
pub struct Engines {
    /// The engines.
    pub slots: Vec<Slot>,
}

impl Engines {
    /// From config.
    pub fn new(cfg: &Config) -> Engines {
        let ip = cfg
            .engines
            .ip
            .clone()
            .unwrap_or_else(|| cfg.private_network.admin_ip());
        let slot = |name: &'static str, call_path, port| Slot {
            name,
            call_path,
            ip: ip.clone(),
            port: Mutex::new(port),
            available: AtomicBool::new(
                !cfg.engines
                    .token_store_unavailable
                    .iter()
                    .any(|e| e == name),
            ),
            stop: Mutex::new(None),
        };
        Engines {
            slots: vec![
                slot("embedder", "/v1/embeddings", cfg.engines.embedder_port),
                slot("voice", "/v1/transcriptions", cfg.engines.voice_port),
            ],
        }
    }

    /// One engine, or 404.
    pub fn slot(&self, name: &str) -> ApiResult<&Slot> {
        self.slots
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ApiError::not_found(ErrorCode::NotFound, format!("no engine {name:?}")))
    }

    /// Closes every listener.
    pub fn stop_all(&self) {
        for s in &self.slots {
            if let Some(tx) = s.stop.lock().expect("engine lock").take() {
                let _ = tx.send(true);
            }
        }
    }

    /// What each engine is; `tokens(engine)` counts its registered tokens.
    pub fn info(&self, tokens: impl Fn(&str) -> usize) -> Vec<EngineInfo> {
        self.slots
            .iter()
            .map(|s| EngineInfo {
                name: s.name.into(),
                url: format!("http://{}:{}", s.ip, s.port.lock().expect("engine lock")),
                call_path: s.call_path.into(),
                listening: s.stop.lock().expect("engine lock").is_some(),
                token_store_available: s.available.load(Ordering::SeqCst),
                tokens: tokens(s.name),
            })
            .collect()
    }
}
