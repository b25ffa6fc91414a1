//! The HostPool reconciler: per node online state, real free disk and memory, testers placed and
//! how many more fit, from the grid proxy and the scheduler's ledger. Reads only, and one status
//! write when something changed.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

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
    resources::{ConditionExt, HostPool, HostPoolStatus, NodeCapacity, PAUSED_ANNOTATION},
    scheduler::Need,
    tester::{Breaker, pool_nodes},
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
    let old = pool.status.clone().unwrap_or_default();
    if pool.annotations().contains_key(PAUSED_ANNOTATION) {
        // No grid call and no write but the Paused condition.
        let mut status = old.clone();
        status.conditions.set_condition(
            named_condition(
                "Paused",
                true,
                "PausedByAnnotation",
                &format!("paused by the annotation {PAUSED_ANNOTATION}: its nodes are not listed and its testers are not touched until it is removed"),
                &pool,
            ),
            Time(Timestamp::now()),
        );
        write_status(&ctx, &ns, &name, &old, &status).await?;
        return Ok(Action::await_change());
    }
    let listing = pool_nodes(&ctx, &key, &pool, REFRESH / 2).await;
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
            status.gateway_nodes = listing.gateways.clone();
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
                .set_condition(condition(ok, reason, &msg, &pool), now.clone());
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
                now.clone(),
            );
        }
    }
    if status
        .conditions
        .iter()
        .any(|c| c.type_ == "Paused" && c.status == "True")
    {
        status.conditions.set_condition(
            named_condition("Paused", false, "Resumed", "the pause was lifted", &pool),
            now.clone(),
        );
    }
    remediation_status(&ctx, &pool, &mut status, now);
    // The warm pool is kept even when the listing failed: its machines keep their places.
    status.warm = match crate::warm::pool::keep(&ctx, &pool).await {
        Ok(warm) => warm,
        Err(e) => {
            warn!(hostpool = %key, error = %e, "keeping the warm pool failed");
            old.warm.clone()
        }
    };
    status.observed_generation = pool.metadata.generation;
    if status != old {
        let last = ctx
            .pool_writes
            .lock()
            .map_err(|_| Error::Poisoned("pool writes"))?
            .get(&key)
            .copied();
        if let Some(wait) = wait_left(last, Instant::now(), STATUS_SPACING) {
            // Onboarding many testers changes the counts many times a second: written at
            // most every STATUS_SPACING, the newest counts then.
            return Ok(Action::requeue(wait));
        }
        write_status(&ctx, &ns, &name, &old, &status).await?;
        ctx.pool_writes
            .lock()
            .map_err(|_| Error::Poisoned("pool writes"))?
            .insert(key, Instant::now());
    }
    Ok(Action::requeue(REFRESH))
}

/// The least time between two status writes of one HostPool (its counts are at most this
/// late on a dashboard).
const STATUS_SPACING: Duration = Duration::from_secs(2);

/// How long to wait before the next status write, when the last was less than `spacing` ago.
fn wait_left(last: Option<Instant>, now: Instant, spacing: Duration) -> Option<Duration> {
    let since = now.saturating_duration_since(last?);
    (since < spacing).then(|| spacing - since)
}

/// The breaker of remediation: how many of the pool's testers are unhealthy, and whether
/// machines may be moved (`Remediation` condition).
fn remediation_status(ctx: &Context, pool: &HostPool, status: &mut HostPoolStatus, now: Time) {
    let Some(stores) = ctx.stores.get() else {
        return;
    };
    let testers: Vec<_> = stores
        .testers
        .state()
        .into_iter()
        .filter(|t| t.namespace() == pool.namespace() && t.spec.host_pool == pool.name_any())
        .collect();
    let breaker = Breaker::of(
        testers.iter().map(|t| t.as_ref()),
        pool.spec.remediation.max_unhealthy,
    );
    status.unhealthy = breaker.unhealthy;
    let (ok, reason, msg) = match (pool.spec.remediation.after(), breaker.open()) {
        (None, _) => (
            false,
            "Disabled",
            "remediation is off (unhealthyAfter: 0s)".to_string(),
        ),
        (Some(_), true) => (false, "TooManyUnhealthy", breaker.to_string()),
        (Some(after), false) => (
            true,
            "Armed",
            format!(
                "a machine unreachable for more than {} is moved to another node; {breaker}",
                humantime::format_duration(after)
            ),
        ),
    };
    status
        .conditions
        .set_condition(named_condition("Remediation", ok, reason, &msg, pool), now);
}

async fn write_status(
    ctx: &Context,
    ns: &str,
    name: &str,
    old: &HostPoolStatus,
    status: &HostPoolStatus,
) -> Result<()> {
    if status == old {
        return Ok(());
    }
    ctx.kube_turn().await;
    let api: Api<HostPool> = Api::namespaced(ctx.client.clone(), ns);
    let patch =
        json!({"apiVersion": "sandbox.hero.dev/v1alpha1", "kind": "HostPool", "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(crate::tester::MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .kube("writing the HostPool status")?;
    Ok(())
}

fn condition(
    ok: bool,
    reason: &str,
    message: &str,
    pool: &HostPool,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    named_condition("Available", ok, reason, message, pool)
}

fn named_condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    pool: &HostPool,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        type_: type_.into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pools_status_is_written_at_most_every_spacing() {
        let now = Instant::now();
        let spacing = Duration::from_secs(2);
        assert_eq!(wait_left(None, now, spacing), None, "never written");
        assert_eq!(
            wait_left(Some(now), now + Duration::from_millis(500), spacing),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            wait_left(Some(now), now + Duration::from_secs(2), spacing),
            None
        );
    }
}
