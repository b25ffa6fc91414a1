//! Clean-up after a cancel on the chain: a node contract's workloads leave their node after
//! the node's clean-up delay, and a cancelled name takes its gateways with it.

use std::sync::Arc;

use crate::prelude::*;
use crate::state::{GatewayRec, Sim, now_secs};
use crate::timing::Wait;

use super::change;

/// Removes a cancelled node contract's workloads, after the node's clean-up delay.
pub async fn after_node_contract_cancelled(sim: &Arc<Sim>, cid: u64) {
    if sim.timing.is_instant() {
        cleanup_deployment(sim, cid);
    } else {
        let sim = sim.clone();
        tokio::spawn(async move {
            sim.timing.wait(Wait::CancelCleanup).await;
            cleanup_deployment(&sim, cid);
        });
    }
}

fn cleanup_deployment(sim: &Arc<Sim>, cid: u64) {
    let stopped: Vec<String> = {
        let mut w = sim.world.lock().expect("world lock");
        let Some(rec) = w.deployments.remove(&cid) else {
            return;
        };
        let _ = sim.store.delete("deployment", &cid.to_string());
        let keys: Vec<String> = w
            .vms
            .values()
            .filter(|v| v.contract_id == cid)
            .map(|v| v.key.clone())
            .collect();
        for k in &keys {
            if let Some(v) = w.vms.remove(k) {
                w.vm_by_mycelium.remove(&v.mycelium_ip);
            }
            let _ = sim.store.delete("vm", k);
        }
        let gws: Vec<String> = w
            .gateways
            .values()
            .filter(|g| g.contract_id == cid)
            .map(|g| g.fqdn.clone())
            .collect();
        for g in gws {
            w.gateways.remove(&g);
            let _ = sim.store.delete("gateway", &g);
        }
        sim.report_used(&mut w, rec.node_id);
        keys
    };
    for k in stopped {
        sim.vms.destroy(&k);
    }
    tracing::info!(
        contract = cid,
        "node removed the workloads of a cancelled contract"
    );
}

/// Drops gateway routes whose name contract is gone, after the node's re-sync delay.
pub async fn after_name_cancelled(sim: &Arc<Sim>, name: String) {
    if sim.timing.is_instant() {
        drop_name(sim, &name);
    } else {
        let sim = sim.clone();
        tokio::spawn(async move {
            sim.timing.wait(Wait::NameDrop).await;
            drop_name(&sim, &name);
        });
    }
}

fn drop_name(sim: &Sim, name: &str) {
    let mut w = sim.world.lock().expect("world lock");
    let owner = w
        .names
        .get(name)
        .and_then(|id| w.contracts.get(id))
        .map(|c| c.twin_id);
    let gone: Vec<GatewayRec> = w
        .gateways
        .values()
        .filter(|g| g.name == name)
        .filter(|g| {
            // A name registered again by the same twin keeps its route.
            let twin = w
                .deployments
                .get(&g.contract_id)
                .map(|d| d.deployment.twin_id);
            owner.is_none() || owner != twin
        })
        .cloned()
        .collect();
    for g in gone {
        w.gateways.remove(&g.fqdn);
        let _ = sim.store.delete("gateway", &g.fqdn);
        if let Some(rec) = w.deployments.get_mut(&g.contract_id) {
            if let Some(wl) = rec
                .deployment
                .workloads
                .iter_mut()
                .find(|x| x.name == g.workload)
            {
                wl.result.state = WorkloadState::Deleted;
                wl.result.message = "name contract is gone".into();
                wl.result.created = now_secs();
                let ch = change(wl);
                rec.changes.push(ch);
            }
            let _ = sim.save_deployment(rec);
        }
        tracing::info!(fqdn = %g.fqdn, "gateway dropped: name contract gone");
    }
}
