//! Harness for the sign-in gate's end-to-end tests: a scripted browser, the Forge (a real
//! Gitea) as provider, a small provider in Rust for provider quirks and refusals, and a gate in
//! front of an app that reports what it was told.
//!
//! Each `e2e/tests/gate_*.rs` includes this module with `#[path]`; none of it needs the control
//! plane.

// Every test binary includes the whole harness but uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod browser;
pub mod forge;
pub mod keys;
pub mod quirk;

pub use app::{AppSaw, RunningGate, start_forge_gate, start_gate};
pub use browser::{Browser, Page};
pub use quirk::{QuirkProvider, Quirks};

use std::path::PathBuf;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e sits inside the workspace")
        .to_path_buf()
}

/// What the app behind the gate was told, from a page that must be the app's `200` answer.
pub fn app_saw(page: &Page) -> AppSaw {
    assert_eq!(page.status, 200, "{}: {}", page.url, page.body);
    serde_json::from_str(&page.body)
        .unwrap_or_else(|e| panic!("not the app's answer ({e}): {}", page.body))
}

/// The host of `url`.
pub fn host(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_string()
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}
