//! The agent's API, every `/v1` route behind [`trust::require_signature`]. Bodies are read by
//! hand so that a malformed settings document is refused and counted like any other bad
//! request.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router, middleware};
use gridapi::agent::{
    AiKeys, AppHealth, AppHealthEntry, EngineCredentials, GateSettings, InstallRequest, SshKeys,
};
use gridapi::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;

use crate::trust::{self, Refusal, Refused};
use crate::{Agent, settings, web};

/// An answer of the API that is not a refusal of the caller: the machine failed.
pub struct Failed(pub StatusCode, pub ErrorCode, pub String);

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody::new(self.1, self.2))).into_response()
    }
}

impl Agent {
    /// The API router (see the crate doc).
    pub fn api(self: &Arc<Self>) -> Router {
        let signed = Router::new()
            .route("/v1/gate", put(set_gate))
            .route("/v1/engines", put(set_engines))
            .route("/v1/ssh-keys", put(set_ssh_keys))
            .route("/v1/ai-keys", put(set_ai_keys))
            .route("/v1/config", get(config))
            .route("/v1/install", get(install_status).post(start_install))
            .route("/v1/health", get(health))
            .route_layer(middleware::from_fn_with_state(
                self.clone(),
                trust::require_signature,
            ));
        Router::new()
            .merge(signed)
            .route("/health", get(|| async { "ok" }))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    /// Parses a settings document; a bad one is refused (and counted by the caller's
    /// [`Agent::refuse`]).
    fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refused> {
        serde_json::from_slice(body).map_err(|e| {
            Refused::new(
                Refusal::Malformed,
                format!("the settings document cannot be read: {e}"),
            )
        })
    }

    /// Changes the settings (after `apply` put them on the machine) and keeps them.
    fn update(
        &self,
        route: &'static str,
        apply: impl FnOnce(&mut settings::Settings) -> std::io::Result<()>,
    ) -> Result<(), Failed> {
        let mut state = self.state.lock().expect("agent state");
        let mut next = state.settings.clone();
        apply(&mut next)
            .and_then(|()| next.save(&*self.machine))
            .map_err(|e| {
                tracing::error!(route, error = %e, "cannot apply settings on the machine");
                Failed(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    format!("cannot apply the settings on the machine: {e}"),
                )
            })?;
        state.settings = next;
        self.metrics.obeyed.with_label_values(&[route]).inc();
        Ok(())
    }
}

async fn set_gate(State(agent): State<Arc<Agent>>, body: Bytes) -> Response {
    let gate: Option<GateSettings> = match Agent::parse(&body) {
        Ok(g) => g,
        Err(r) => return agent.refuse(r, "PUT", "/v1/gate"),
    };
    let gate = match gate {
        Some(g) if !g.issuer.trim().is_empty() && !g.client_id.trim().is_empty() => g,
        _ => {
            return agent.refuse(
                Refused::new(
                    Refusal::Downgrade,
                    "a machine's gate can be changed but never removed: send an issuer and a client id",
                ),
                "PUT",
                "/v1/gate",
            );
        }
    };
    if let Err(e) = web::build_gate(&gate, &agent.session_key) {
        return agent.refuse(
            Refused::new(
                Refusal::Malformed,
                format!("the gate settings are invalid: {e}"),
            ),
            "PUT",
            "/v1/gate",
        );
    }
    if let Err(f) = agent.update("gate", |s| {
        s.gate = Some(gate);
        Ok(())
    }) {
        return f.into_response();
    }
    web::rebuild(&agent);
    tracing::info!(machine = agent.verifier.machine(), "gate configured");
    Json(()).into_response()
}

async fn set_engines(State(agent): State<Arc<Agent>>, body: Bytes) -> Response {
    let req: EngineCredentials = match Agent::parse(&body) {
        Ok(r) => r,
        Err(r) => return agent.refuse(r, "PUT", "/v1/engines"),
    };
    let machine = agent.machine.clone();
    result(agent.update("engines", |s| {
        settings::write_engines(&*machine, &req.engines)?;
        s.engines = req.engines;
        Ok(())
    }))
}

async fn set_ssh_keys(State(agent): State<Arc<Agent>>, body: Bytes) -> Response {
    let req: SshKeys = match Agent::parse(&body) {
        Ok(r) => r,
        Err(r) => return agent.refuse(r, "PUT", "/v1/ssh-keys"),
    };
    let machine = agent.machine.clone();
    result(agent.update("ssh-keys", |s| {
        settings::write_ssh_keys(&*machine, &req.keys)?;
        s.ssh_keys = req.keys;
        Ok(())
    }))
}

async fn set_ai_keys(State(agent): State<Arc<Agent>>, body: Bytes) -> Response {
    let req: AiKeys = match Agent::parse(&body) {
        Ok(r) => r,
        Err(r) => return agent.refuse(r, "PUT", "/v1/ai-keys"),
    };
    let machine = agent.machine.clone();
    result(agent.update("ai-keys", |s| {
        settings::write_ai_keys(&*machine, &req.keys)?;
        s.ai_keys = req.keys;
        Ok(())
    }))
}

fn result(r: Result<(), Failed>) -> Response {
    match r {
        Ok(()) => Json(()).into_response(),
        Err(f) => f.into_response(),
    }
}

async fn config(State(agent): State<Arc<Agent>>) -> Response {
    Json(agent.view()).into_response()
}

async fn install_status(State(agent): State<Arc<Agent>>) -> Response {
    Json(agent.install_status()).into_response()
}

async fn start_install(State(agent): State<Arc<Agent>>, body: Bytes) -> Response {
    let req: InstallRequest = match Agent::parse(&body) {
        Ok(r) => r,
        Err(r) => return agent.refuse(r, "POST", "/v1/install"),
    };
    match crate::install::start(&agent, req) {
        Ok(status) => {
            agent.metrics.obeyed.with_label_values(&["install"]).inc();
            Json(status).into_response()
        }
        Err(f) => f.into_response(),
    }
}

async fn health(State(agent): State<Arc<Agent>>) -> Response {
    let install = agent.install_status();
    let mut apps = install.apps.clone();
    for a in install.components.keys() {
        if !apps.contains(a) {
            apps.push(a.clone());
        }
    }
    let mut entries = Vec::new();
    for app in apps {
        let version = install.components.get(&app).cloned();
        let failed = install
            .steps
            .iter()
            .any(|s| s.app == app && s.state == gridapi::agent::InstallState::Failed);
        let (healthy, detail) = if version.is_none() {
            (false, "not installed".to_string())
        } else if failed {
            (false, "service failed to start".to_string())
        } else {
            match agent.machine.service_health(&app).await {
                Ok(()) => (true, String::new()),
                Err(why) => (false, why),
            }
        };
        entries.push(AppHealthEntry {
            app,
            healthy,
            version,
            detail,
        });
    }
    Json(AppHealth { apps: entries }).into_response()
}

async fn metrics(State(agent): State<Arc<Agent>>) -> String {
    agent.metrics.render()
}
