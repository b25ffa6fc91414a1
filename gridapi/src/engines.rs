//! A SharedEngine's token store: the wire types of the registry the controller registers each
//! tester's token with (reached at the SharedEngine's `spec.tokenStore.url`, not through the
//! grid).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Header carrying the tester identity on engine calls.
pub const TESTER_HEADER: &str = "x-tester";

/// A shared engine on the admin machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// `embedder` or `voice`.
    pub name: String,
    /// Base URL the VMs use.
    pub url: String,
    /// The call path, e.g. `/v1/embeddings`.
    pub call_path: String,
    /// Whether its listener is open (closed while its token store is unavailable).
    pub listening: bool,
    /// Whether it can reach its token store.
    pub token_store_available: bool,
    /// How many tokens are registered.
    pub tokens: usize,
}

/// What an engine's token store (`GET {tokenStore.url}`) says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenStoreInfo {
    /// The engine kind, e.g. `embedder`.
    pub engine: String,
    /// The path testers call on the engine's URL (a tester's token is proven by one call).
    pub call_path: String,
    /// How many tester tokens the store holds.
    pub tokens: usize,
}

/// Body of `PUT {tokenStore.url}/tokens/{tester}` (and of gridshim's `PUT /engines/{engine}/tokens/{tester}`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRegistration {
    /// The bearer token (stored hashed).
    pub token: String,
}

impl fmt::Debug for TokenRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenRegistration { token: <redacted> }")
    }
}
