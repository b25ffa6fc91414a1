//! Simulated VMs: each zmachine gets two listeners on its own loopback address (standing for
//! its mycelium address): the agent API ([`agent`]) and the web side, wrapped by the
//! sign-in gate ([`gated::gated`]). They are tokio tasks, so 1,000 VMs fit in one process.
//!
//! Listeners open only once the VM is reachable (after the reachability delay), close when the
//! node goes down or the contract is cleaned up, and reopen when gridshim restarts.

pub mod agent;
pub mod gated;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tower::ServiceExt;

use crate::state::{Sim, vms::VmHandle};
use gridapi::zos::WorkloadState;

/// Rebuilds a VM's web side after its gate settings changed.
pub fn refresh_gate(sim: &Arc<Sim>, key: &str) {
    let gate = sim
        .world
        .lock()
        .expect("world lock")
        .vms
        .get(key)
        .and_then(|v| v.gate.clone());
    if let Some(h) = sim.vms.running.lock().expect("vm lock").get(key) {
        *h.web.write().expect("web lock") =
            gated::gated(web_app(sim.clone(), key.to_string()), gate);
    }
}

/// Opens a VM's listeners (no-op when open, when the VM is gone or its node is down).
pub async fn start(sim: &Arc<Sim>, key: &str) {
    if sim.vms.is_listening(key) {
        return;
    }
    let (ip, node_id, gate) = {
        let w = sim.world.lock().expect("world lock");
        let Some(v) = w.vms.get(key) else { return };
        let up = w.nodes.get(&v.node_id).map(|n| n.status) == Some(gridapi::proxy::NodeStatus::Up);
        if !up {
            return;
        }
        (v.loopback_ip.clone(), v.node_id, v.gate.clone())
    };
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
    let web = Arc::new(RwLock::new(gated::gated(
        web_app(sim.clone(), key.to_string()),
        gate,
    )));
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
                web: web.clone(),
            },
        );
    }
    let agent_app = crate::vm::agent::router(sim.clone(), key.to_string(), alive.clone());
    let web_alive = alive.clone();
    let web_app = Router::new().fallback(move |req: Request| {
        let web = web.clone();
        let alive = web_alive.clone();
        async move {
            if !alive.load(Ordering::SeqCst) {
                return (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "vm is not running",
                )
                    .into_response();
            }
            let r = web.read().expect("web lock").clone();
            match r.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        }
    });
    for (l, app) in [(agent_l, agent_app), (web_l, web_app)] {
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

#[derive(Clone)]
struct WebCtx {
    sim: Arc<Sim>,
    key: String,
}

/// The VM's web side before the gate: an index, one small page per installed app, `/health`.
pub fn web_app(sim: Arc<Sim>, key: String) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/", get(index))
        .route("/apps/{app}", get(app_page))
        .with_state(WebCtx { sim, key })
}

fn components(ctx: &WebCtx) -> Vec<(String, String)> {
    let w = ctx.sim.world.lock().expect("world lock");
    w.vms
        .get(&ctx.key)
        .map(|v| {
            v.install
                .components
                .iter()
                .map(|(a, b)| (a.clone(), b.clone()))
                .collect()
        })
        .unwrap_or_default()
}

async fn index(State(ctx): State<WebCtx>) -> Html<String> {
    let items: String = components(&ctx)
        .iter()
        .map(|(app, v)| format!("<li><a href=\"/apps/{app}\">{app}</a> {v}</li>"))
        .collect();
    Html(format!(
        "<!doctype html><title>cockpit</title><h1>Your apps</h1><ul>{items}</ul>"
    ))
}

async fn app_page(State(ctx): State<WebCtx>, Path(app): Path<String>) -> Response {
    match components(&ctx).into_iter().find(|(a, _)| *a == app) {
        Some((a, v)) => Html(format!(
            "<!doctype html><title>{a}</title><h1>{a}</h1><p>version {v}</p>"
        ))
        .into_response(),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            format!("{app} is not installed\n"),
        )
            .into_response(),
    }
}
