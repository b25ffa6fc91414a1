//! Every face over HTTP.
//!
//! * [`proxy::HttpProxy`]: the grid proxy's real REST API (`GET /nodes`, `/nodes/{id}`,
//!   `/gateways`, `/contracts`, `/farms`, the `count` header); works against the real proxy.
//! * [`chain::HttpChain`] and [`node::HttpNodeBus`]: the chain's calls and storage reads, and
//!   the nodes' `zos.deployment.*` commands, over an HTTP transport whose bodies are the real
//!   types, with a session standing for the real client's long-lived connection ([`session`]).
//!   gridshim serves it; the real transports (substrate, RMB) implement the same traits.
//! * [`agent::HttpAgents`]: the machine agent at `http://[<private address>]:<port>`, directly or
//!   through an HTTP proxy into the private network.
//! * [`catalog::HttpCatalog`]: the release index.
//!
//! [`connect`] builds a whole [`crate::Grid`] from one [`Endpoints`].

use std::{sync::Arc, time::Duration};

use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ErrorBody, ErrorCode, Grid, GridError};

pub mod agent;
pub mod catalog;
pub mod chain;
pub mod node;
pub mod proxy;
pub mod session;

/// Where each face is, and who we are.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The grid proxy's base URL.
    pub proxy: String,
    /// Base URL of the chain and node transport.
    pub bus: String,
    /// The release catalog's URL.
    pub catalog: String,
    /// The twin calls are made as.
    pub twin_id: u32,
    /// The twin's secret (stands for its mnemonic).
    pub secret: SecretString,
    /// The port every machine agent listens on.
    pub agent_port: u16,
    /// An HTTP proxy into the private network, when the controller is not on it itself.
    pub private_proxy: Option<String>,
    /// The key every agent request is signed with.
    pub agent_key: crate::agent::signing::ControllerKey,
}

/// The HTTP client every face shares: long enough for any simulated wait (the node face's 60 s).
/// Few idle connections are kept, and not long: each keeps the read buffer its largest answer
/// grew (a contract listing), and with many passes in flight reqwest's defaults (every idle
/// connection, 90 s) kept one per pass that ever ran at once.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(8)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("a reqwest client without TLS settings always builds")
}

/// Every face over HTTP. Fails only when `private_proxy` is not a URL.
pub fn connect(e: &Endpoints) -> Result<Grid, GridError> {
    let http = client();
    let session = Arc::new(session::Session::new(
        &e.bus,
        e.twin_id,
        e.secret.clone(),
        http.clone(),
    ));
    Ok(Grid {
        proxy: Arc::new(proxy::HttpProxy::with_client(&e.proxy, http.clone())),
        chain: Arc::new(chain::HttpChain::new(session.clone())),
        nodes: Arc::new(node::HttpNodeBus::new(session)),
        agents: Arc::new(agent::HttpAgents::new(
            e.agent_port,
            e.private_proxy.as_deref(),
            e.agent_key.clone(),
        )?),
        catalog: Arc::new(catalog::HttpCatalog::with_client(&e.catalog, http)),
    })
}

/// Turns a transport failure into a retry-later error.
pub fn transport(e: reqwest::Error, what: &str) -> GridError {
    let code = if e.is_timeout() {
        ErrorCode::Timeout
    } else {
        ErrorCode::NodeUnreachable
    };
    GridError::RetryLater {
        code,
        message: format!("{what}: {e}"),
    }
}

/// Reads an answer: JSON `T` on success, an [`ErrorBody`] otherwise.
pub async fn read<T: DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> Result<T, GridError> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| transport(e, what))?;
    if status.is_success() {
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        return serde_json::from_slice(bytes).map_err(|e| GridError::Fatal {
            code: ErrorCode::Internal,
            message: format!("{what}: cannot decode answer: {e}"),
        });
    }
    if let Ok(body) = serde_json::from_slice::<ErrorBody>(&bytes) {
        return Err(GridError::from_body(body));
    }
    // Not one of ours: a proxy in between or a bare HTTP error. 5xx are transient.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let message = format!("{what}: HTTP {status}: {text}");
    Err(match status.as_u16() {
        502..=504 => GridError::RetryLater {
            code: ErrorCode::BadGateway,
            message,
        },
        404 => GridError::NotFound {
            code: ErrorCode::NotFound,
            message,
        },
        401 => GridError::Fatal {
            code: ErrorCode::Unauthenticated,
            message,
        },
        403 => GridError::Fatal {
            code: ErrorCode::Unauthorized,
            message,
        },
        s if s >= 500 => GridError::RetryLater {
            code: ErrorCode::Busy,
            message,
        },
        _ => GridError::Fatal {
            code: ErrorCode::Invalid,
            message,
        },
    })
}

/// Percent-encodes a path segment (names and IPv6 addresses only need a few characters).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Serialises a wire type.
pub fn json<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("wire types always serialise")
}
