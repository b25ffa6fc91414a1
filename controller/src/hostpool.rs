//! The HostPool reconciler: per node online state, real free disk and memory, testers placed and
//! how many more fit, from the grid proxy and the scheduler's ledger. Reads only, and one status
//! write when something changed.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;
use tracing::warn;

use crate::{
    context::Context,
    error::{Error, KubeContext, Result},
    resources::{ConditionExt, HostPool, HostPoolStatus, NodeCapacity},
    scheduler::Need,
    tester::pool_nodes,
};

/// How often a pool's nodes are listed again.
const REFRESH: Duration = Duration::from_secs(30);

/// Reconciles one HostPool.
pub async fn reconcile(pool: Arc<HostPool>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics
        .reconciles
        .with_label_values(&["hostpool"])
        .inc();
    let ns = pool
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = pool.name_any();
    let key = format!("{ns}/{name}");
    let listing = pool_nodes(&ctx, &key, &pool, REFRESH / 2).await;
    let old = pool.status.clone().unwrap_or_default();
    let mut status = HostPoolStatus {
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    let now = Time(Timestamp::now());
    let per = &pool.spec.per_tester;
    let need = Need::from_gib(per.cpu, per.memory_gib, per.disk_gib);
    match listing {
        Ok(listing) => {
            let rooms = ctx
                .ledger
                .lock()
                .await
                .rooms(&listing.nodes, listing.listed_at);
            status.nodes = rooms
                .iter()
                .map(|r| NodeCapacity {
                    node_id: r.node.node_id,
                    online: r.node.online,
                    gateway_domain: r.node.domain.clone(),
                    free_disk_bytes: r.disk,
                    free_memory_bytes: r.memory,
                    testers: r.testers,
                    fit: r.fit(need),
                })
                .collect();
            status.node_count = status.nodes.len() as u32;
            status.online_count = status.nodes.iter().filter(|n| n.online).count() as u32;
            status.fit = status.nodes.iter().map(|n| n.fit).sum();
            status.testers = status.nodes.iter().map(|n| n.testers).sum();
            let (phase, ok, reason, msg) = if status.online_count == 0 {
                (
                    "Offline",
                    false,
                    "NoNodeOnline",
                    "no node of the pool is online".to_string(),
                )
            } else if status.fit == 0 {
                (
                    "Full",
                    false,
                    "Full",
                    "no node has room for another tester".to_string(),
                )
            } else {
                (
                    "Available",
                    true,
                    "Available",
                    format!("{} more tester(s) fit", status.fit),
                )
            };
            status.phase = Some(phase.into());
            status
                .conditions
                .set_condition(condition(ok, reason, &msg, &pool), now);
            ctx.metrics
                .hostpool_fit
                .with_label_values(&[&ns, &name])
                .set(i64::from(status.fit));
        }
        Err(e) => {
            warn!(hostpool = %key, error = %e, "listing the pool's nodes failed");
            status = HostPoolStatus {
                conditions: old.conditions.clone(),
                ..old.clone()
            };
            status.phase = Some("Unknown".into());
            status.conditions.set_condition(
                condition(false, "GridUnavailable", &e.to_string(), &pool),
                now,
            );
        }
    }
    status.observed_generation = pool.metadata.generation;
    if status != old {
        ctx.kube_turn().await;
        let api: Api<HostPool> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"apiVersion": "sandbox.hero.dev/v1alpha1", "kind": "HostPool", "status": status});
        api.patch_status(
            &name,
            &PatchParams::apply(crate::tester::MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .kube("writing the HostPool status")?;
        ctx.count_write("patch", "hostpools/status");
    }
    Ok(Action::requeue(REFRESH))
}

fn condition(
    ok: bool,
    reason: &str,
    message: &str,
    pool: &HostPool,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        type_: "Available".into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: pool.metadata.generation,
        last_transition_time: Time(Timestamp::now()),
    }
}

/// Requeue policy on errors.
pub fn error_policy(_pool: Arc<HostPool>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .errors
        .with_label_values(&["hostpool", "reconcile", error.label()])
        .inc();
    Action::requeue(Duration::from_secs(10))
}
