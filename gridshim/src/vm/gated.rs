//! The one place where a VM's web side is wrapped by the sign-in gate.
//!
//! ```text
//! pub fn gated(app: axum::Router, gate: Option<GateSettings>) -> axum::Router
//! ```
//!
//! * `app` is the VM's web side: `/` (index of the installed apps), `/apps/{app}` (one small
//!   page per app) and `/health`.
//! * `gate` is what the controller set through the agent (`PUT /v1/gate`): issuer, client id,
//!   client secret, allowed accounts and the VM's public URL through the gateway
//!   (`http://NAME.<domain>:<gateway port>`), for the OIDC callback. It is persisted in SQLite
//!   with the VM, so it survives a gridshim restart; `None` until the controller configures it.
//! * The returned router is what both the VM's private listener and the gateway reach: the whole
//!   address sits behind it (an ungated internal listener was a real hole).
//!
//! The router is rebuilt (this function called again) every time the gate settings change.
//!
//! Until the `gate` crate lands and replaces this body, no gate works: the VM serves `/health`
//! (200) and answers everything else 503 "gate not configured", whatever `gate` holds. Nothing
//! of `app` is reachable, which is the safe failure: never serve the apps ungated.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use crate::api::GateSettings;

/// Wraps a VM's web side with the sign-in gate (see the module doc).
pub fn gated(app: Router, gate: Option<GateSettings>) -> Router {
    // Nothing to wrap with yet: drop the app rather than serve it open.
    drop(app);
    let configured = gate.is_some();
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .fallback(move || async move {
            let detail = if configured {
                "gate settings received, but no gate implementation is installed"
            } else {
                "no gate settings yet"
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("gate not configured ({detail})\n"),
            )
        })
}
