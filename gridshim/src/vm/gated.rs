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
//! Building a gate is cheap (no I/O, no task; the provider is discovered on the first sign-in),
//! so 1,000 VMs in one process cost little until their testers sign in.
//!
//! Until the controller configures a gate (or when its settings are invalid) the VM serves
//! `/health` (200) and answers everything else 503 "gate not configured": nothing of `app` is
//! reachable, which is the safe failure: never serve the apps ungated. Note that the gate answers
//! `/health` itself once configured, so the app's own `/health` is never reached from outside.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::sync::LazyLock;

use gridapi::agent::GateSettings;

/// One session key for every gate in this gridshim process. Each gate binds its cookies to its
/// own client id and public URL, so a cookie from one VM's gate does not open at another's.
/// Sharing the key keeps sessions alive when a VM's router is rebuilt after a settings change;
/// a gridshim restart ends them (testers sign in again, silently while the provider still
/// knows them). The real `gate` binary keeps its key in a file instead.
static SESSION_KEY: LazyLock<gate::SessionKey> = LazyLock::new(gate::SessionKey::random);

/// Wraps a VM's web side with the sign-in gate (see the module doc).
pub fn gated(app: Router, gate: Option<GateSettings>) -> Router {
    let Some(settings) = gate else {
        return not_configured(app, "no gate settings yet");
    };
    let public_url = match settings.public_url.parse() {
        Ok(url) => url,
        Err(e) => {
            tracing::error!(public_url = %settings.public_url, error = %e, "invalid gate public URL");
            return not_configured(app, "the gate's public URL is invalid");
        }
    };
    let mut config = gate::GateConfig::new(
        settings.issuer,
        settings.client_id,
        settings.client_secret,
        public_url,
    );
    config.allowed_accounts = settings.allowed_accounts;
    config.session_key = SESSION_KEY.clone();
    match gate::Gate::new(config) {
        Ok(gate) => gate.wrap(app),
        Err(e) => {
            tracing::error!(error = %e, "invalid gate settings");
            not_configured(app, "the gate settings are invalid")
        }
    }
}

/// `/health` and a 503 for everything else; `app` is dropped, never served.
fn not_configured(app: Router, detail: &'static str) -> Router {
    drop(app);
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .fallback(move || async move {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("gate not configured ({detail})\n"),
            )
        })
}
