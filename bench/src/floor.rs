//! The API server's own floor, beside scenario 2: on the same control plane, a minimal client
//! and no controller at all. It creates the same number of Testers as scenario 2 (the same
//! spec as the bench's) in a namespace of its own that no controller watches (each controller
//! the bench starts has `WATCH_NAMESPACE` set to its scenario's namespace), with the same number
//! of requests in flight as the bench's creates, and makes for each only the status writes the
//! controller cannot avoid ([`STATUS_WRITES_PER_TESTER`]), as fast as the server answers. Each
//! of the `in_flight` workers takes one tester at a time through its create and status writes,
//! so the server always has that many requests in hand. Timed from the first create to the last
//! status write done; the namespace is deleted afterwards.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use controller::{
    resources::{Placement, Tester, TesterStatus},
    tester::conditions,
};
use e2e::fixtures;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::core::v1::Namespace,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

/// Status writes per tester: a server-side apply of the status with the placement, then one
/// with every step condition `True` and `Ready`. These two the controller cannot avoid: the
/// placement must be recorded before any grid call (so two testers never take the same last
/// place, and a restarted controller finds it), and `Ready` is what the tester waits for.
/// Everything else it writes (intermediate conditions, Events, Secrets) is its own choice.
pub const STATUS_WRITES_PER_TESTER: usize = 2;

/// The field manager of the floor's status writes.
const MANAGER: &str = "bench-floor";

/// Nodes the placements are spread over (scenario 2's HostPool has 50).
const NODES: usize = 50;

/// How long the namespace's deletion is waited for at most.
const DELETE_TIMEOUT: Duration = Duration::from_secs(120);

/// What the floor took.
pub struct Floor {
    /// From the first create to the last status write done.
    pub took: Duration,
    /// How long deleting its namespace took (`None`: still there after [`DELETE_TIMEOUT`]).
    pub deleted_after: Option<Duration>,
}

/// Runs the floor for `n` testers with `in_flight` requests at a time, then deletes its
/// namespace and waits until it is gone (so its clean-up does not fall into what is measured
/// next), at most [`DELETE_TIMEOUT`].
pub async fn api_floor(n: usize, in_flight: usize) -> anyhow::Result<Floor> {
    let client = e2e::cluster().client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = format!("bench-floor-{}", std::process::id());
    let doc: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    namespaces
        .create(&PostParams::default(), &doc)
        .await
        .with_context(|| format!("create namespace {ns}"))?;
    let api: Api<Tester> = Api::namespaced(client, &ns);
    let start = Instant::now();
    let done = futures::stream::iter(0..n)
        .map(|i| one_tester(&api, i))
        .buffer_unordered(in_flight)
        .try_collect::<Vec<()>>()
        .await;
    let took = start.elapsed();
    let deleted_after = delete(&namespaces, &ns).await;
    done?;
    Ok(Floor {
        took,
        deleted_after,
    })
}

/// Creates tester number `i` (as the bench does) and makes its status writes.
async fn one_tester(api: &Api<Tester>, i: usize) -> anyhow::Result<()> {
    let name = format!("t{i:05}");
    let doc = fixtures::tester(&name, &format!("bench.user_{i}"), "pool").build();
    let t: Tester = serde_json::from_str(&doc)?;
    api.create(&PostParams::default(), &t)
        .await
        .with_context(|| format!("floor: create tester {name}"))?;
    let params = PatchParams::apply(MANAGER).force();
    for k in 0..STATUS_WRITES_PER_TESTER {
        let patch = json!({
            "apiVersion": "sandbox.hero.dev/v1alpha1",
            "kind": "Tester",
            "metadata": {"name": name},
            "status": status(i, k + 1 == STATUS_WRITES_PER_TESTER),
        });
        api.patch_status(&name, &params, &Patch::Apply(&patch))
            .await
            .with_context(|| format!("floor: status write {} of tester {name}", k + 1))?;
    }
    Ok(())
}

/// The status of tester `i`: placed (`Scheduled` True), or `ready` (every required condition
/// and `Ready` True). Both carry the placement: an apply owns only what it sends.
fn status(i: usize, ready: bool) -> TesterStatus {
    let node_id = (i % NODES) as u32 + 1;
    let now = Time(Timestamp::now());
    let condition = |type_: &str, reason: &str| Condition {
        type_: type_.into(),
        status: "True".into(),
        reason: reason.into(),
        message: format!("{type_} (bench floor)"),
        last_transition_time: now.clone(),
        observed_generation: Some(1),
    };
    let conditions = if ready {
        conditions::REQUIRED
            .iter()
            .chain([&conditions::READY])
            .map(|c| condition(c, "Done"))
            .collect()
    } else {
        vec![condition(conditions::SCHEDULED, "Placed")]
    };
    TesterStatus {
        observed_generation: Some(1),
        phase: Some(if ready { "Ready" } else { "Provisioning" }.into()),
        conditions,
        placement: Some(Placement {
            node_id,
            cpu: 1,
            memory_bytes: 1 << 30,
            disk_bytes: 2 << 30,
        }),
        host: Some(format!("node-{node_id}")),
        ..TesterStatus::default()
    }
}

/// Deletes the namespace and polls until it is gone; how long that took.
async fn delete(namespaces: &Api<Namespace>, ns: &str) -> Option<Duration> {
    let start = Instant::now();
    if let Err(e) = namespaces.delete(ns, &DeleteParams::background()).await {
        eprintln!("floor: cannot delete namespace {ns}: {e}");
        return None;
    }
    while start.elapsed() < DELETE_TIMEOUT {
        if let Ok(None) = namespaces.get_opt(ns).await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("floor: namespace {ns} still there after {DELETE_TIMEOUT:?}; going on");
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use controller::resources::condition_status;

    #[test]
    fn the_last_write_is_ready_and_every_write_keeps_the_placement() {
        let placed = status(7, false);
        assert_eq!(condition_status(&placed.conditions, "Scheduled"), "True");
        assert_eq!(condition_status(&placed.conditions, "Ready"), "Unknown");
        let ready = status(7, true);
        assert_eq!(condition_status(&ready.conditions, "Ready"), "True");
        for c in conditions::REQUIRED {
            assert_eq!(condition_status(&ready.conditions, c), "True", "{c}");
        }
        assert_eq!(placed.placement, ready.placement);
        assert_eq!(ready.placement.as_ref().map(|p| p.node_id), Some(8));
    }
}
