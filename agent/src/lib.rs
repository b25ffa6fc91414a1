//! The agent inside a tester's VM: the product's side of the machine.
//!
//! ```text
//!   controller ──signed requests──▶ api()  (private address, :7070)
//!                                      │ settings, keys, install
//!                                      ▼
//!   gateway / private network ──▶ web()  (:8080) = gate ▶ apps
//! ```
//!
//! * [`Agent::api`]: `PUT /v1/gate|engines|ssh-keys|ai-keys`, `GET /v1/config`,
//!   `POST|GET /v1/install`, `GET /v1/health`; each request must be signed by the controller's
//!   key for this machine ([`trust`]); `GET /health` and `GET /metrics` are open (no secret).
//! * [`Agent::web`]: the apps behind the project's sign-in gate, the same router for every
//!   listener (public and private). Until a gate is configured only `/health` answers: a
//!   machine never serves its apps ungated, and the API refuses to remove the gate.
//! * Effects go through [`machine::Machine`]: a real VM ([`machine::HostMachine`]) or
//!   gridshim's simulated one (files under a directory of its own).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod install;
pub mod machine;
pub mod metrics;
pub mod settings;
pub mod trust;
pub mod web;

use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use gridapi::agent::{AgentConfigView, InstallStatus, signing::ControllerPublicKey};

use crate::machine::{Machine, read_file, write_file};
use crate::settings::Settings;

/// Where the gate's session key is kept (sessions survive an agent restart).
pub const SESSION_KEY_FILE: &str = "/var/lib/hero-agent/session.key";

/// Who the agent obeys and who it is.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The controller's public key (from the VM's env).
    pub controller_key: ControllerPublicKey,
    /// This machine's id (from the VM's env).
    pub machine_id: String,
    /// The client downloads go through.
    pub http: reqwest::Client,
}

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Its state on the machine cannot be read or written.
    #[error("cannot {action} on the machine: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The failure.
        source: std::io::Error,
    },
}

/// One machine's agent: its settings, its install, its gate.
pub struct Agent {
    machine: Arc<dyn Machine>,
    verifier: trust::Verifier,
    metrics: metrics::Metrics,
    state: Mutex<State>,
    web: RwLock<Router>,
    session_key: gate::SessionKey,
    http: reqwest::Client,
}

#[derive(Debug, Default)]
struct State {
    settings: Settings,
    install: InstallStatus,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("machine", &self.verifier.machine())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// The agent of `machine`, with what it kept from an earlier run (an install that was
    /// running then is marked failed: its work is gone).
    pub fn open(machine: Arc<dyn Machine>, opts: AgentOptions) -> Result<Arc<Agent>, AgentError> {
        let io = |action| move |source| AgentError::Io { action, source };
        let settings = Settings::load(&*machine).map_err(io("read the settings"))?;
        let install = install::load(&*machine).map_err(io("read the install status"))?;
        let session_key = match read_file(&*machine, SESSION_KEY_FILE)
            .map_err(io("read the session key"))?
            .and_then(|b| gate::SessionKey::from_text(&String::from_utf8_lossy(&b)).ok())
        {
            Some(k) => k,
            None => {
                let k = gate::SessionKey::random();
                write_file(
                    &*machine,
                    SESSION_KEY_FILE,
                    k.to_hex().as_bytes(),
                    0o600,
                    None,
                )
                .map_err(io("write the session key"))?;
                k
            }
        };
        let agent = Arc::new(Agent {
            machine,
            verifier: trust::Verifier::new(opts.controller_key, opts.machine_id),
            metrics: metrics::Metrics::new(),
            state: Mutex::new(State { settings, install }),
            web: RwLock::new(Router::new()),
            session_key,
            http: opts.http,
        });
        install::interrupted(&agent);
        web::rebuild(&agent);
        Ok(agent)
    }

    /// What the agent holds, without any secret.
    pub fn view(&self) -> AgentConfigView {
        self.state.lock().expect("agent state").settings.view()
    }

    /// The install's progress and the installed versions.
    pub fn install_status(&self) -> InstallStatus {
        self.state.lock().expect("agent state").install.clone()
    }

    /// Whether the gate is configured (the apps are reachable through it).
    pub fn gate_configured(&self) -> bool {
        self.state
            .lock()
            .expect("agent state")
            .settings
            .gate
            .is_some()
    }

    /// The agent's counters.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The machine it runs on.
    pub fn machine(&self) -> &Arc<dyn Machine> {
        &self.machine
    }

    fn refuse(
        &self,
        refused: trust::Refused,
        method: &str,
        path: &str,
    ) -> axum::response::Response {
        use axum::response::IntoResponse as _;
        self.metrics
            .refused
            .with_label_values(&[refused.why.reason()])
            .inc();
        tracing::warn!(
            machine = self.verifier.machine(),
            method,
            path,
            reason = refused.why.reason(),
            "refused an agent request"
        );
        refused.into_response()
    }
}
