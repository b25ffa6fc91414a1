//! The RMB relay: the real grid carries node commands as protobuf envelopes over a websocket
//! to a relay, signed by the sender and end-to-end encrypted to the destination twin. gridshim
//! is that relay and the nodes behind it, with the grid client's own envelope, signatures,
//! encryption and JWT (`tfgrid::rmb`).
//!
//! A peer connects to `ws://<api>/relay?<jwt>` (the whole query is the token; unknown twin,
//! expired or bad signature: HTTP 401 with the reason). Every binary frame is an envelope; a
//! request to a node's twin runs as that node would (`node::run`) and the node's signed,
//! encrypted answer comes back on the same connection; see [`session`].

mod answer;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{RawQuery, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tfgrid::rmb::jwt::{self, Claims};

pub use answer::{node_answer, pong, relay_error};

use crate::state::{Sim, now_secs};

/// Route of the relay.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/relay", get(connect))
}

/// The claims of a token the relay admits, or why not (one line): the twin must be known
/// (a config twin with a mnemonic), the token unexpired and signed by the twin's key.
pub fn admit(sim: &Sim, token: &str, now: u64) -> Result<Claims, String> {
    let claims = jwt::claims(token, now).map_err(|e| format!("invalid jwt: {e}"))?;
    let twin = sim
        .rmb
        .get(claims.sub)
        .filter(|t| t.node.is_none())
        .ok_or_else(|| format!("twin not found {}", claims.sub))?;
    jwt::verify(token, &twin.identity.account()).map_err(|e| format!("invalid jwt: {e}"))?;
    Ok(claims)
}

async fn connect(
    State(sim): State<Arc<Sim>>,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(token) = query.filter(|q| !q.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "missing jwt").into_response();
    };
    let claims = match admit(&sim, &token, now_secs()) {
        Ok(c) => c,
        Err(why) => {
            tracing::info!(reason = %why, "relay connection refused");
            return (StatusCode::UNAUTHORIZED, why).into_response();
        }
    };
    match ws {
        Ok(ws) => ws.on_upgrade(move |socket| session::serve(sim, claims, socket)),
        Err(e) => e.into_response(),
    }
}
