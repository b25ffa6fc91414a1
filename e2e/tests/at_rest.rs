//! At rest a Ready tester costs no grid call and no API write: between full verifications
//! (`VERIFY_INTERVAL`) a pass only proves the gate from outside (plain HTTP to its public
//! address) and checks the apps when due; a change of the Tester starts a full pass at once.

use std::time::Duration;

use e2e::{
    fixtures::{host_pool, tester},
    stack::{Stack, TestNode},
    wait,
};

const TIMEOUT: Duration = Duration::from_secs(120);

/// The sum of every series of a metric family in the controller's /metrics.
async fn total(s: &Stack, family: &str) -> f64 {
    s.controller
        .as_ref()
        .expect("the controller runs")
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const RECONCILES: &str = "sandbox_reconcile_total";
const GRID_CALLS: &str = "sandbox_grid_request_duration_seconds_count";
const WRITES: &str = "sandbox_api_writes_total";

/// Waits until the controller has run `n` more Tester passes (metrics have no watch: polls).
async fn passes(s: &Stack, n: f64) {
    let start = total(s, RECONCILES).await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while total(s, RECONCILES).await < start + n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {n} passes in {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ready_tester_at_rest_costs_no_grid_call_and_no_write_until_it_changes() {
    let s = Stack::start(
        "rest",
        &[TestNode::new(1, 1000, 64)],
        "",
        &[("RESYNC", "1s"), ("APP_HEALTH_INTERVAL", "1h")],
    )
    .await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    s.apply(&tester("q", "quinn", "pool").build());
    wait::ready(&s.api, "q", TIMEOUT).await.unwrap();
    // The HostPool's status counts the tester: its last write of the onboarding (spaced 2 s
    // apart while counts change) is done.
    let pools: kube::Api<controller::resources::HostPool> =
        kube::Api::namespaced(e2e::cluster::cluster().client().await, &s.ns.name);
    wait::object_until(&pools, "pool", TIMEOUT, "counting the tester", |p| {
        p.status.as_ref().is_some_and(|st| st.testers == 1)
    })
    .await
    .unwrap();
    // The pass that saw Ready recorded the full verification.
    passes(&s, 2.0).await;

    let (grid, writes) = (total(&s, GRID_CALLS).await, total(&s, WRITES).await);
    passes(&s, 5.0).await;
    assert_eq!(total(&s, GRID_CALLS).await, grid, "grid calls at rest");
    assert_eq!(total(&s, WRITES).await, writes, "API writes at rest");

    // Any change of the Tester: verified in full at once (the grid is asked again).
    assert!(
        s.ns.kubectl(&["annotate", "tester", "q", "example.org/touched=1"])
            .status
            .success()
    );
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while total(&s, GRID_CALLS).await <= grid {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a changed Tester was not verified in full"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait::ready(&s.api, "q", TIMEOUT).await.unwrap();
}
