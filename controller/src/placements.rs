//! The scheduler's ledger after a start: every place already given out, read back from the
//! objects that record them (Tester and WarmMachine statuses) before any new placement.

use kube::Api;

use crate::{
    context::Context,
    resources::{Tester, WarmMachine},
    scheduler::Holding,
    tester::conditions,
};

/// Rebuilds the scheduler's ledger from the Testers' and WarmMachines' statuses, before any
/// placement is made, so a restarted controller knows every place it has already given out.
/// Returns how many places it holds.
pub async fn rebuild_ledger(ctx: &Context) -> anyhow::Result<usize> {
    let testers: Api<Tester> = match &ctx.config.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let mut ledger = ctx.ledger.lock().await;
    let mut count = 0;
    for t in testers.list(&Default::default()).await?.items {
        let (Some(uid), Some(status)) = (t.metadata.uid.clone(), t.status.as_ref()) else {
            continue;
        };
        let Some(p) = &status.placement else { continue };
        let need = crate::scheduler::Need {
            cpu: p.cpu,
            memory: p.memory_bytes,
            disk: p.disk_bytes,
        };
        ledger.hold(
            &uid,
            Holding {
                node_id: p.node_id,
                need,
                counted_after: None,
            },
        );
        let machine_up = status
            .conditions
            .iter()
            .any(|c| c.type_ == conditions::MACHINE_READY && c.status == "True");
        if machine_up {
            ledger.deployed(&uid, ctx.config.proxy_lag);
        }
        count += 1;
    }
    // Warm machines hold their places too (one claimed a moment ago may be counted twice
    // until it is deleted: the safe side).
    let warm: Api<WarmMachine> = match &ctx.config.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    for m in warm.list(&Default::default()).await?.items {
        let (Some(uid), Some(status)) = (m.metadata.uid.clone(), m.status.as_ref()) else {
            continue;
        };
        let Some(p) = &status.placement else { continue };
        let need = crate::scheduler::Need {
            cpu: p.cpu,
            memory: p.memory_bytes,
            disk: p.disk_bytes,
        };
        ledger.hold(
            &uid,
            Holding {
                node_id: p.node_id,
                need,
                counted_after: None,
            },
        );
        if status.contract_id.is_some() && status.private_address.is_some() {
            ledger.deployed(&uid, ctx.config.proxy_lag);
        }
        count += 1;
    }
    Ok(count)
}
