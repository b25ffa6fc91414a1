//! The machine's web side: the apps behind the project's sign-in gate. One router serves every
//! listener (the gateway's backend and the private network), rebuilt when the gate's settings
//! change. Without a gate only `/health` answers: the apps are never served ungated.

use std::sync::{Arc, Weak};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use gridapi::agent::GateSettings;
use tower::ServiceExt as _;

use crate::Agent;

/// A gate for `settings`.
pub fn build_gate(settings: &GateSettings, key: &gate::SessionKey) -> Result<gate::Gate, String> {
    let public_url = settings
        .public_url
        .parse()
        .map_err(|e| format!("the public URL is not a URL: {e}"))?;
    let mut config = gate::GateConfig::new(
        settings.issuer.clone(),
        settings.client_id.clone(),
        settings.client_secret.clone(),
        public_url,
    );
    config.allowed_accounts = settings.allowed_accounts.clone();
    config.session_key = key.clone();
    gate::Gate::new(config).map_err(|e| e.to_string())
}

/// Rebuilds the web side from the current gate settings.
pub fn rebuild(agent: &Arc<Agent>) {
    let settings = agent
        .state
        .lock()
        .expect("agent state")
        .settings
        .gate
        .clone();
    let router = match settings.map(|s| build_gate(&s, &agent.session_key)) {
        Some(Ok(gate)) => gate.wrap(apps(Arc::downgrade(agent))),
        Some(Err(e)) => {
            tracing::error!(error = %e, "the kept gate settings are invalid; the apps stay closed");
            closed("the gate settings are invalid")
        }
        None => closed("no gate settings yet"),
    };
    *agent.web.write().expect("web lock") = router;
}

impl Agent {
    /// The web side, for every listener of the machine (see the module doc).
    pub fn web(self: &Arc<Self>) -> Router {
        let agent = Arc::downgrade(self);
        Router::new().fallback(move |req: Request| {
            let agent = agent.clone();
            async move {
                let Some(agent) = agent.upgrade() else {
                    return (StatusCode::SERVICE_UNAVAILABLE, "the agent stopped").into_response();
                };
                let router = agent.web.read().expect("web lock").clone();
                match router.oneshot(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                }
            }
        })
    }
}

/// `/health` and a 503 for everything else.
fn closed(detail: &'static str) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .fallback(move || async move {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("gate not configured ({detail})\n"),
            )
        })
}

/// The apps: an index, a page per installed app, `/health`.
fn apps(agent: Weak<Agent>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/", get(index))
        .route("/apps/{app}", get(app_page))
        .with_state(agent)
}

fn components(agent: &Weak<Agent>) -> Vec<(String, String)> {
    agent
        .upgrade()
        .map(|a| a.install_status().components.into_iter().collect())
        .unwrap_or_default()
}

async fn index(State(agent): State<Weak<Agent>>) -> Html<String> {
    let items: String = components(&agent)
        .iter()
        .map(|(app, v)| format!("<li><a href=\"/apps/{app}\">{app}</a> {v}</li>"))
        .collect();
    Html(format!(
        "<!doctype html><title>cockpit</title><h1>Your apps</h1><ul>{items}</ul>"
    ))
}

async fn app_page(State(agent): State<Weak<Agent>>, Path(app): Path<String>) -> Response {
    match components(&agent).into_iter().find(|(a, _)| *a == app) {
        Some((a, v)) => Html(format!(
            "<!doctype html><title>{a}</title><h1>{a}</h1><p>version {v}</p>"
        ))
        .into_response(),
        None => (StatusCode::NOT_FOUND, format!("{app} is not installed\n")).into_response(),
    }
}
