//! Inspection: everything live on the grid (contracts, names, VMs, gateways, registered
//! tokens), so a test can prove nothing leaked, and the waits each VM and gateway name drew on
//! its way to ready (realistic profile), so a benchmark can compute the grid's own floor. Token
//! values never appear, only a hash prefix.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::prelude::*;
use crate::state::Sim;
use crate::wire::*;

/// Routes of the inspection.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/inspect", get(inspect))
        .route("/admin/requests", get(requests))
}

/// How many requests the grid's faces served (see `Sim::requests`).
async fn requests(State(sim): State<Arc<Sim>>) -> Json<RequestCount> {
    Json(RequestCount {
        served: sim.requests.load(std::sync::atomic::Ordering::SeqCst),
    })
}

/// A snapshot of everything live.
pub fn snapshot(sim: &Sim) -> Inspection {
    let w = sim.world.lock().expect("world lock");
    Inspection {
        contracts: w.contracts.values().cloned().collect(),
        names: w
            .names
            .iter()
            .map(|(n, id)| NameOwner {
                name: n.clone(),
                contract_id: *id,
                twin_id: w.contracts.get(id).map(|c| c.twin_id).unwrap_or_default(),
            })
            .collect(),
        vms: w
            .vms
            .values()
            .map(|v| VmView {
                contract_id: v.contract_id,
                node_id: v.node_id,
                name: v.workload.clone(),
                mycelium_ip: v.mycelium_ip.clone(),
                loopback_ip: v.loopback_ip.clone(),
                listening: sim.vms.is_listening(&v.key),
                gate_configured: sim.vms.agent(&v.key).is_some_and(|a| a.gate_configured()),
                components: sim
                    .vms
                    .agent(&v.key)
                    .map(|a| a.install_status().components)
                    .unwrap_or_default(),
                machine_id: v.machine_id.clone(),
                waits: v.waits.clone(),
            })
            .collect(),
        gateways: w
            .gateways
            .values()
            .map(|g| GatewayView {
                fqdn: g.fqdn.clone(),
                name: g.name.clone(),
                contract_id: g.contract_id,
                node_id: g.node_id,
                backend: g.backend.clone(),
                waits: g.waits.clone(),
            })
            .collect(),
        tokens: w
            .tokens
            .iter()
            .map(|((engine, tester), sha)| TokenView {
                engine: engine.clone(),
                tester: tester.clone(),
                token_sha256_prefix: sha.chars().take(12).collect(),
            })
            .collect(),
    }
}

async fn inspect(State(sim): State<Arc<Sim>>) -> Json<Inspection> {
    Json(snapshot(&sim))
}
