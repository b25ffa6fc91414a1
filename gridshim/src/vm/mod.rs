//! Simulated VMs, each running the product's own agent ([`agent::Agent`]) in-process: the
//! agent's API and its web side (the apps behind the sign-in gate) listen on the VM's own
//! loopback address (standing for its mycelium address). Its files are on the VM's disk, a
//! directory of its own ([`machine::SimMachine`]); they are tokio tasks, so 1,000 VMs fit in
//! one process.
//!
//! Listeners open only once the VM is reachable (after the reachability delay), close when the
//! node goes down or the contract is cleaned up, and reopen when gridshim restarts (the agent
//! finds its settings and install on its disk).

pub mod machine;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use agent::{Agent, AgentOptions};
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use gridapi::agent::signing::ControllerPublicKey;
use tower::ServiceExt;

use crate::error::StartError;
use crate::state::{Sim, vms::VmHandle, vms::VmRoot};
use crate::wire::VM_HEADER;
use gridapi::zos::WorkloadState;

/// Where the VMs' disks are: next to the database (`gridshim.db` → `gridshim.vms/`, emptied
/// with `--reset`), or a temporary directory when the database is in memory.
pub fn root(db: Option<&Path>, reset: bool) -> Result<VmRoot, StartError> {
    let io = |e: std::io::Error| StartError::Other(format!("cannot prepare the VMs' disks: {e}"));
    match db {
        Some(db) => {
            let dir = db.with_extension("vms");
            if reset && dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io)?;
            }
            std::fs::create_dir_all(&dir).map_err(io)?;
            Ok(VmRoot::Kept(dir))
        }
        None => Ok(VmRoot::Temporary(
            tempfile::Builder::new()
                .prefix("gridshim-vms-")
                .tempdir()
                .map_err(io)?,
        )),
    }
}

/// The VM's agent, opened from its disk the first time; `Err` says why the VM runs none.
fn open_agent(
    sim: &Arc<Sim>,
    key: &str,
    env: (Option<String>, Option<String>),
) -> Result<Arc<Agent>, String> {
    if let Some(a) = sim.vms.agent(key) {
        return Ok(a);
    }
    let (Some(controller_key), Some(machine_id)) = env else {
        return Err(format!(
            "the VM's env lacks {} or {}: its agent does not start",
            gridapi::agent::signing::CONTROLLER_KEY_ENV,
            gridapi::agent::signing::MACHINE_ID_ENV
        ));
    };
    let controller_key =
        ControllerPublicKey::from_base64(&controller_key).map_err(|e| e.to_string())?;
    let machine = Arc::new(machine::SimMachine::new(
        key,
        sim.vms.root_of(key),
        Arc::downgrade(sim),
    ));
    let agent = Agent::open(
        machine,
        AgentOptions {
            controller_key,
            machine_id,
            http: agent_http(sim, key),
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(sim
        .vms
        .agents
        .lock()
        .expect("agent lock")
        .entry(key.to_string())
        .or_insert(agent)
        .clone())
}

/// The HTTP client of a VM's agent. On `realistic` it names the VM in every request
/// ([`VM_HEADER`]), so the catalog can record the download waits it draws on that VM; on
/// `instant` nothing is recorded and every agent shares gridshim's client.
fn agent_http(sim: &Sim, key: &str) -> reqwest::Client {
    if sim.timing.is_instant() {
        return sim.http.clone();
    }
    let Ok(value) = reqwest::header::HeaderValue::from_str(key) else {
        return sim.http.clone();
    };
    let headers = reqwest::header::HeaderMap::from_iter([(
        reqwest::header::HeaderName::from_static(VM_HEADER),
        value,
    )]);
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(std::time::Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .unwrap_or_else(|_| sim.http.clone())
}

/// Opens a VM's listeners (no-op when open, when the VM is gone or its node is down).
pub async fn start(sim: &Arc<Sim>, key: &str) {
    if sim.vms.is_listening(key) {
        return;
    }
    let (ip, node_id, env) = {
        let w = sim.world.lock().expect("world lock");
        let Some(v) = w.vms.get(key) else { return };
        let up = w.nodes.get(&v.node_id).map(|n| n.status) == Some(gridapi::proxy::NodeStatus::Up);
        if !up {
            return;
        }
        (
            v.loopback_ip.clone(),
            v.node_id,
            (v.controller_key.clone(), v.machine_id.clone()),
        )
    };
    let agent = open_agent(sim, key, env);
    if let Err(why) = &agent {
        tracing::error!(vm = key, "{why}");
    }
    let pn = &sim.cfg.private_network;
    let agent_l = match tokio::net::TcpListener::bind((ip.as_str(), pn.agent_port)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(vm = key, %ip, error = %e, "cannot open the VM agent listener");
            return;
        }
    };
    let web_l = match tokio::net::TcpListener::bind((ip.as_str(), pn.web_port)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(vm = key, %ip, error = %e, "cannot open the VM web listener");
            return;
        }
    };
    let alive = Arc::new(AtomicBool::new(true));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    {
        let mut running = sim.vms.running.lock().expect("vm lock");
        if running.contains_key(key) {
            return; // lost a race with another start: its listeners win
        }
        running.insert(
            key.to_string(),
            VmHandle {
                node_id,
                alive: alive.clone(),
                stop: stop_tx,
            },
        );
    }
    let (api, web) = match agent {
        Ok(agent) => (agent.api(), agent.web()),
        Err(why) => (no_agent(why.clone()), no_agent(why)),
    };
    for (l, app) in [(agent_l, api), (web_l, web)] {
        let app = while_alive(app, alive.clone());
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let _ = axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
        });
    }
    tracing::info!(vm = key, %ip, "vm reachable on the private network");
}

/// A VM without an agent answers 503 with the reason, as a real one would not answer at all.
fn no_agent(why: String) -> Router {
    Router::new().fallback(move || {
        let why = why.clone();
        async move { (StatusCode::SERVICE_UNAVAILABLE, why) }
    })
}

/// Answers 503 once the VM stopped, for requests already on an open connection.
fn while_alive(app: Router, alive: Arc<AtomicBool>) -> Router {
    Router::new().fallback(move |req: Request| {
        let app = app.clone();
        let alive = alive.clone();
        async move {
            if !alive.load(Ordering::SeqCst) {
                return (StatusCode::SERVICE_UNAVAILABLE, "vm is not running").into_response();
            }
            match app.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        }
    })
}

/// Opens the listeners of every VM of a node whose zmachine is ok.
pub async fn start_node(sim: &Arc<Sim>, node_id: u32) {
    let keys: Vec<String> = {
        let w = sim.world.lock().expect("world lock");
        w.vms
            .values()
            .filter(|v| v.node_id == node_id)
            .filter(|v| {
                w.deployments
                    .get(&v.contract_id)
                    .and_then(|d| d.deployment.workload(&v.workload))
                    .is_some_and(|wl| wl.result.state == WorkloadState::Ok)
            })
            .map(|v| v.key.clone())
            .collect()
    };
    for k in keys {
        start(sim, &k).await;
    }
}
