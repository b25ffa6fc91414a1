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
    let mut ledger = ctx.ledger.lock().await;
    let mut count = 0;
    for t in api::<Tester>(ctx).list(&Default::default()).await?.items {
        let (Some(uid), Some(status)) = (t.metadata.uid.as_deref(), t.status.as_ref()) else {
            continue;
        };
        let machine_up = status
            .conditions
            .iter()
            .any(|c| c.type_ == conditions::MACHINE_READY && c.status == "True");
        count += hold(ctx, &mut ledger, uid, status.placement.as_ref(), machine_up);
    }
    // Warm machines hold their places too (one claimed a moment ago may be counted twice
    // until it is deleted: the safe side).
    for m in api::<WarmMachine>(ctx)
        .list(&Default::default())
        .await?
        .items
    {
        let (Some(uid), Some(status)) = (m.metadata.uid.as_deref(), m.status.as_ref()) else {
            continue;
        };
        let deployed = status.contract_id.is_some() && status.private_address.is_some();
        count += hold(ctx, &mut ledger, uid, status.placement.as_ref(), deployed);
    }
    Ok(count)
}

/// The objects of kind `K` the controller watches (its namespace, or all).
fn api<K>(ctx: &Context) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match &ctx.config.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    }
}

/// Holds `placement` for `uid` in the ledger (counted by the grid after the proxy's lag when
/// its machine is deployed); 1 when there was a placement, else 0.
fn hold(
    ctx: &Context,
    ledger: &mut crate::scheduler::Ledger,
    uid: &str,
    placement: Option<&crate::resources::Placement>,
    deployed: bool,
) -> usize {
    let Some(p) = placement else { return 0 };
    let need = crate::scheduler::Need {
        cpu: p.cpu,
        memory: p.memory_bytes,
        disk: p.disk_bytes,
    };
    ledger.hold(
        uid,
        Holding {
            node_id: p.node_id,
            need,
            counted_after: None,
        },
    );
    if deployed {
        ledger.deployed(uid, ctx.config.proxy_lag);
    }
    1
}
