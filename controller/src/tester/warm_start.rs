//! Part of step `Scheduled`: a new tester takes a machine of its HostPool's warm pool when one
//! matches, so only the person-specific steps are left (name, sign-in client, gate, tokens,
//! account, email); otherwise it starts cold and says why.
//!
//! The claim is written on the WarmMachine first, guarded by its resourceVersion (and by the
//! CRD's rule that a claim is final): two testers never take the same machine, across restarts
//! and replicas. A pass stopped after the claim finds the machine again by its claim.

use std::{collections::BTreeSet, sync::Arc};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::events::EventType,
};
use serde_json::json;

use super::{Pass, conditions::SCHEDULED, machine_keys};
use crate::{
    error::{Error, Result},
    resources::{
        App, HostPool, MachineStatus, WarmClaim, WarmMachine, WarmNames, WarmPool, WarmStart,
    },
    scheduler::{Holding, Need},
    warm::WARM_BUILD,
};

/// Why a tester cannot take a warm machine of its pool (the `cold_starts` metric's reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cold {
    /// Its resources differ from the pool's `perTester`.
    Resources,
    /// Its channel differs from the warm pool's.
    Channel,
    /// Its app set differs from the warm pool's.
    Apps,
    /// It asks for a custom gateway name; the pool's machines come with neutral names.
    GatewayName,
    /// No warm machine is ready.
    NoneReady,
}

impl Cold {
    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Cold::Resources => "Resources",
            Cold::Channel => "Channel",
            Cold::Apps => "Apps",
            Cold::GatewayName => "GatewayName",
            Cold::NoneReady => "NoneReady",
        }
    }

    /// What the `Scheduled` condition says.
    pub fn explain(self, warm: &WarmPool) -> String {
        match self {
            Cold::Resources => "started cold: its resources differ from the pool's perTester, which the warm machines have".into(),
            Cold::Channel => format!(
                "started cold: its channel differs from the warm pool's ({})",
                warm.channel.as_str()
            ),
            Cold::Apps => "started cold: its app set differs from the warm pool's".into(),
            Cold::GatewayName => "started cold: it asks for its own gatewayName and the warm pool's machines come with neutral names".into(),
            Cold::NoneReady => "started cold: no warm machine was ready".into(),
        }
    }
}

/// Whether a tester with `need` on `pool` can take one of its warm machines (pure).
pub fn mismatch(pass: &Pass<'_>, pool: &HostPool, warm: &WarmPool, need: Need) -> Option<Cold> {
    let per = &pool.spec.per_tester;
    if need != Need::from_gib(per.cpu, per.memory_gib, per.disk_gib) {
        return Some(Cold::Resources);
    }
    if pass.tester.spec.channel != warm.channel {
        return Some(Cold::Channel);
    }
    if app_set(&pass.tester.spec.apps) != app_set(&warm.apps) {
        return Some(Cold::Apps);
    }
    if warm.names == WarmNames::Neutral && pass.tester.spec.gateway_name.is_some() {
        return Some(Cold::GatewayName);
    }
    None
}

/// An app list as a set.
pub fn app_set(apps: &[App]) -> BTreeSet<App> {
    apps.iter().copied().collect()
}

/// Whether `machine` is of `pool`'s warm pool as it is now, for a tester with `need`.
fn fits(machine: &WarmMachine, pool: &HostPool, warm: &WarmPool) -> bool {
    machine.spec.host_pool == pool.name_any()
        && machine.spec.resources == pool.spec.per_tester
        && machine.spec.channel == warm.channel
        && machine.spec.neutral_name == (warm.names == WarmNames::Neutral)
        && app_set(&machine.spec.apps) == app_set(&warm.apps)
}

/// Takes a warm machine for this tester, or says why it starts cold (`Ok(Err(..))`). On a
/// claim the placement, the machine and the warm start are in the pass's status, persisted.
pub async fn claim(
    pass: &mut Pass<'_>,
    pool: &HostPool,
    need: Need,
) -> Result<std::result::Result<(), Option<Cold>>> {
    let Some(warm) = pool.spec.warm() else {
        return Ok(Err(None));
    };
    let Some(stores) = pass.ctx.stores.get() else {
        return Ok(Err(None));
    };
    // A claim this tester made before a restart is only known once the WarmMachine cache has
    // listed: deciding "cold" before that would leave the claimed machine to nobody.
    if tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stores.warm.wait_until_ready(),
    )
    .await
    .is_err()
    {
        return Err(Error::Stale);
    }
    let mine: Vec<Arc<WarmMachine>> = stores
        .warm
        .state()
        .into_iter()
        .filter(|m| m.namespace().as_deref() == Some(pass.ns.as_str()))
        .collect();
    // A claim made by a pass that stopped before recording it.
    let taken = mine.iter().find(|m| {
        m.spec
            .claim
            .as_ref()
            .is_some_and(|c| c.tester_uid == pass.uid)
    });
    let machine = match taken {
        Some(m) => m.clone(),
        None => {
            if let Some(why) = mismatch(pass, pool, &warm, need) {
                return Ok(Err(Some(why)));
            }
            let mut ready: Vec<&Arc<WarmMachine>> = mine
                .iter()
                .filter(|m| m.claimable() && fits(m, pool, &warm))
                .collect();
            // Each tester tries the machines in an order of its own, so that testers arriving
            // together do not all race for the same one (each lost race is a refused write).
            ready.sort_by_cached_key(|m| crate::names::derived_hex(&pass.uid, &m.name_any(), 4));
            let mut got = None;
            for m in ready {
                if take(pass, m).await? {
                    got = Some(m.clone());
                    break;
                }
            }
            match got {
                Some(m) => m,
                None => return Ok(Err(Some(Cold::NoneReady))),
            }
        }
    };
    record(pass, &machine, need).await?;
    Ok(Ok(()))
}

/// Writes this tester's claim on `machine`, if nobody changed it since the cache saw it
/// unclaimed: `false` when another tester (or a deletion) came first.
async fn take(pass: &Pass<'_>, machine: &WarmMachine) -> Result<bool> {
    let api: Api<WarmMachine> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    let claim = WarmClaim {
        tester: pass.name.clone(),
        tester_uid: pass.uid.clone(),
    };
    let patch = json!({
        "metadata": {"resourceVersion": machine.resource_version()},
        "spec": {"claim": claim},
    });
    pass.ctx.kube_turn().await;
    match api
        .patch(
            &machine.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        // Changed since (claimed by another tester, being deleted) or already gone.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 || s.code == 422 => Ok(false),
        Err(e) => Err(Error::Kube {
            action: "claiming a warm machine",
            source: e,
        }),
    }
}

/// Makes the claimed machine the tester's: its keys into the tester's Secret, its place in the
/// ledger, its placement and contract into the status (persisted); then the WarmMachine goes.
async fn record(pass: &mut Pass<'_>, machine: &WarmMachine, need: Need) -> Result<()> {
    let name = machine.name_any();
    let status = machine.status.clone().unwrap_or_default();
    let (Some(placement), Some(contract_id), Some(address), Some(machine_id)) = (
        status.placement.clone(),
        status.contract_id,
        status.private_address.clone(),
        status.machine_id.clone(),
    ) else {
        return Err(Error::MissingField("warm machine status"));
    };
    let keys = machine_keys::read(pass.ctx, &pass.ns, &machine.keys_secret_name(), WARM_BUILD)
        .await?
        .ok_or(Error::MissingField("warm machine keys"))?;
    let build = super::machine::wanted_build(pass);
    // Kept, before the status says the machine is this one, under the key the machine step
    // reads them by (a remediated tester's counts its moves).
    let remediations = pass.status.machine.as_ref().map_or(0, |m| m.remediations);
    let key = super::machine::key_of(&build, remediations);
    machine_keys::hand_over(pass, &keys, &key).await?;
    {
        let mut ledger = pass.ctx.ledger.lock().await;
        if let Some(uid) = machine.uid() {
            ledger.release(&uid);
        }
        ledger.hold(
            &pass.uid,
            Holding {
                node_id: placement.node_id,
                need,
                counted_after: None,
            },
        );
        ledger.deployed(&pass.uid, pass.ctx.config.proxy_lag);
    }
    let node = placement.node_id;
    pass.status.placement = Some(placement);
    pass.status.host = Some(format!("node-{node}"));
    pass.status.machine = Some(MachineStatus {
        contract_id: Some(contract_id),
        private_address: Some(address),
        machine_id: Some(machine_id),
        build: Some(build).filter(|b| !b.is_empty()),
        ..pass.status.machine.clone().unwrap_or_default()
    });
    // Its neutral name and gateway too, when it has them (and the tester has no name yet).
    let named_by = match (
        &status.gateway_name,
        status.name_contract_id,
        status.url.clone(),
    ) {
        (Some(gateway_name), Some(name_contract), Some(url))
            if pass.status.gateway_name.is_none() =>
        {
            let m = pass
                .status
                .machine
                .get_or_insert_with(MachineStatus::default);
            m.name_contract_id = Some(name_contract);
            m.gateway_contract_id = status.gateway_contract_id;
            m.gateway_node_id = status.gateway_node_id;
            pass.status.gateway_name = Some(gateway_name.clone());
            pass.status.url = Some(url);
            machine.uid()
        }
        _ => None,
    };
    pass.status.warm_start = Some(WarmStart {
        machine: name.clone(),
        named_by,
        claimed_at: Time(Timestamp::now()),
    });
    super::access::intend(pass).await?;
    let msg = format!(
        "took warm machine {name} on node {node} of HostPool {} (contract {contract_id})",
        pass.tester.spec.host_pool
    );
    pass.set(SCHEDULED, true, "ClaimedWarmMachine", &msg);
    pass.event(EventType::Normal, "ClaimedWarmMachine", &msg);
    pass.persist().await?;
    pass.ctx
        .metrics
        .warm_claims
        .with_label_values(&[&pass.ns, &pass.tester.spec.host_pool])
        .inc();
    tracing::info!(tester = %pass.name, warm_machine = %name, node, contract = contract_id, "claimed a warm machine");
    // Handed over: the WarmMachine goes (its clean-up leaves the contract to the tester). Should
    // this fail, the WarmMachine's own reconcile sees the claim recorded and deletes it.
    let api: Api<WarmMachine> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    pass.ctx.kube_turn().await;
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            tracing::warn!(tester = %pass.name, warm_machine = %name, error = %e, "deleting the claimed warm machine failed; its reconcile will");
        }
    }
    Ok(())
}

/// Whether the tester has a machine of its own that is not `machine` (it started cold, or took
/// another): it will never record `machine`.
pub fn placed_elsewhere(tester: &crate::resources::Tester, machine: &WarmMachine) -> bool {
    let Some(status) = tester.status.as_ref() else {
        return false;
    };
    status.placement.is_some()
        && status
            .warm_start
            .as_ref()
            .is_none_or(|w| w.machine != machine.name_any())
}

/// Whether the tester's status records `machine` and its contract: the hand-over is complete
/// (the WarmMachine's reconcile then deletes it and leaves the contract alone).
pub fn recorded(tester: &crate::resources::Tester, machine: &WarmMachine) -> bool {
    let Some(status) = tester.status.as_ref() else {
        return false;
    };
    status
        .warm_start
        .as_ref()
        .is_some_and(|w| w.machine == machine.name_any())
        && status.machine.as_ref().and_then(|m| m.contract_id)
            == machine.status.as_ref().and_then(|s| s.contract_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        resources::{Channel, HostPoolSpec, ResourceOverrides, WarmNames},
        testing::{FakeGrid, context, tester},
    };

    fn pool(names: WarmNames) -> HostPool {
        let spec: HostPoolSpec = serde_json::from_value(serde_json::json!({
            "nodes": [1],
            "warmPool": {"size": 2, "names": names},
        }))
        .unwrap();
        HostPool::new("pool", spec)
    }

    #[tokio::test]
    async fn only_a_tester_like_the_warm_machines_takes_one_and_the_others_say_why() {
        let ctx = context(FakeGrid::default());
        let own = pool(WarmNames::Own);
        let warm = own.spec.warm().unwrap();
        let per = &own.spec.per_tester;
        let check = |t: &crate::resources::Tester, p: &HostPool| {
            let pass = Pass::new(t, &ctx).unwrap();
            mismatch(
                &pass,
                p,
                &p.spec.warm().unwrap(),
                super::super::schedule::need(t, p),
            )
        };
        let plain = tester("a", "ann");
        assert_eq!(check(&plain, &own), None);
        let mut t = plain.clone();
        t.spec.channel = Channel::Prerelease;
        assert_eq!(check(&t, &own), Some(Cold::Channel));
        assert!(Cold::Channel.explain(&warm).contains("(stable)"));
        let mut t = plain.clone();
        t.spec.apps.pop();
        assert_eq!(check(&t, &own), Some(Cold::Apps));
        let mut t = plain.clone();
        t.spec.resources = Some(ResourceOverrides {
            disk_gib: Some(per.disk_gib + 1),
            ..Default::default()
        });
        assert_eq!(check(&t, &own), Some(Cold::Resources));
        // An override equal to the pool's own figure is no difference.
        t.spec.resources = Some(ResourceOverrides {
            disk_gib: Some(per.disk_gib),
            ..Default::default()
        });
        assert_eq!(check(&t, &own), None);
        // A custom name: fine with own names, cold with neutral ones.
        let mut t = plain.clone();
        t.spec.gateway_name = Some("annsown".into());
        assert_eq!(check(&t, &own), None);
        assert_eq!(
            check(&t, &pool(WarmNames::Neutral)),
            Some(Cold::GatewayName)
        );
    }
}
