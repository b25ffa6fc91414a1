//! Scenario 9, the warm pool on the instant grid (issue 16), one stack: a HostPool of 10 nodes
//! keeping 10 machines warm (built 2 at a time, names `own`). Once its status shows 10 Ready
//! (not counted):
//!
//! - **claim**: 10 testers created one by one (10 per second); create→Ready and `Scheduled`
//!   seen→Ready in real time, how many went warm, and the controller's own
//!   `sandbox_warm_claim_to_ready_seconds`. Target: p50 < 1 s.
//! - **burst**: once the pool is back at 10 Ready, 50 testers (× `BENCH_SCALE`, at least 10)
//!   created at once (64 in flight): how many went warm and how many cold (by the
//!   controller's `sandbox_cold_starts_total` reason), and how long until `status.warm.ready`
//!   was back at 10. Two Testers recording the same VM contract, or the same warm machine, is
//!   a double claim: a correctness violation that fails the run.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use e2e::forge::Forge;
use serde_json::json;

use crate::{
    Ctx,
    measure::{self, delta, percentile},
    report::{Report, map},
    scenarios::warm::{PoolWatch, pool_doc},
    stack::{ACCOUNTS_IN_FLIGHT, Profile, Stack, nodes},
};

const S: &str = "9 warm instant";
/// `warmPool.size`.
const SIZE: u32 = 10;
/// `warmPool.maxBuilding` (the default).
const MAX_BUILDING: u32 = 2;
/// Create requests in flight in the burst.
const IN_FLIGHT: usize = 64;

/// Runs the scenario.
pub async fn run(ctx: &Ctx, oidc: &'static Forge, r: &mut Report) -> anyhow::Result<()> {
    let claimers = SIZE as usize;
    let burst = ctx.settings.count(50, 10);
    let mut env = ctx.settings.controller_env.clone();
    env.push(("RESYNC".into(), "60s".into()));
    let grid_nodes = nodes(10, 1000, 256);
    let ids: Vec<u32> = grid_nodes.iter().map(|n| n.id).collect();
    // 2 GiB: zos's 500 MiB root minimum and a data disk (the HostPool's CEL rule).
    let pool = pool_doc("pool", &ids, (2, 1), (SIZE, MAX_BUILDING), None);
    let started = Instant::now();
    let s = Stack::start_with_pools(
        "bench-warm-instant",
        &grid_nodes,
        Profile::Instant,
        &[pool],
        oidc,
        &env,
    )
    .await?;
    let watch = PoolWatch::start(s.pools.clone(), "pool");
    s.make_accounts(0, claimers + burst, ACCOUNTS_IN_FLIGHT)
        .await?;
    anyhow::ensure!(
        watch.wait_ready(SIZE, Duration::from_secs(300)).await,
        "the pool shows {} of {SIZE} warm machines ready after 5 min",
        watch.ready_now()
    );
    r.num(
        S,
        "pool of 10 filled after (not counted)",
        started.elapsed().as_secs_f64(),
        &format!("s from the stack's start, maxBuilding {MAX_BUILDING}"),
    );

    // Claim: one at a time, 10 per second.
    for i in 0..claimers {
        s.create_one(i).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(
        s.tracker
            .wait_ready(claimers, Duration::from_secs(300))
            .await,
        "only {} of {claimers} claiming testers Ready after 5 min",
        s.tracker.ready_now()
    );
    let seen = s.tracker.snapshot();
    let mut lat = Vec::new();
    let mut after_scheduled = Vec::new();
    let mut warm = 0;
    for x in seen.values() {
        let Some(ready) = x.became_true.get("Ready") else {
            continue;
        };
        if let Some(c) = x.created {
            lat.push(ready.saturating_duration_since(c).as_secs_f64() * 1000.0);
        }
        if let Some(sch) = x.became_true.get("Scheduled") {
            after_scheduled.push(ready.saturating_duration_since(*sch).as_secs_f64() * 1000.0);
        }
        warm += usize::from(warm_start(x).is_some());
    }
    r.num(
        S,
        "claim: testers",
        claimers as f64,
        "created at 10/s after the pool showed 10 ready",
    );
    r.num(
        S,
        "claim: warm starts",
        warm as f64,
        &format!("of {claimers}"),
    );
    let p50 = percentile(&lat, 50.0);
    r.num(
        S,
        "claim: create→Ready p50",
        p50,
        &format!(
            "ms; target < 1,000 ms: {}",
            if p50 < 1000.0 { "met" } else { "missed" }
        ),
    );
    r.num(S, "claim: create→Ready p95", percentile(&lat, 95.0), "ms");
    r.num(S, "claim: create→Ready max", percentile(&lat, 100.0), "ms");
    r.num(
        S,
        "claim: Scheduled seen→Ready p50",
        percentile(&after_scheduled, 50.0),
        "ms",
    );
    let m = measure::controller(&s.controller).await;
    r.num(
        S,
        "claim: controller's claim_to_ready mean",
        m.sum("sandbox_warm_claim_to_ready_seconds_sum", &[])
            / m.sum("sandbox_warm_claim_to_ready_seconds_count", &[]),
        "s (sandbox_warm_claim_to_ready_seconds; claimedAt read back has 1 s resolution)",
    );

    // Burst: all at once on a full pool.
    anyhow::ensure!(
        watch.wait_ready(SIZE, Duration::from_secs(300)).await,
        "the pool is not back at {SIZE} ready 5 min after the claims ({} ready)",
        watch.ready_now()
    );
    let cold0 = cold_starts(&m);
    let start = Instant::now();
    s.create_testers(claimers, burst, IN_FLIGHT).await?;
    let total = claimers + burst;
    let all = s.tracker.wait_ready(total, Duration::from_secs(900)).await;
    let took = start.elapsed();
    let seen = s.tracker.snapshot();
    let burst_names: Vec<String> = (claimers..total).map(|i| format!("t{i:05}")).collect();
    let warm = burst_names
        .iter()
        .filter(|n| seen.get(*n).and_then(warm_start).is_some())
        .count();
    r.num(
        S,
        "burst: testers",
        burst as f64,
        &format!("created at once ({IN_FLIGHT} in flight) on a pool of {SIZE} ready"),
    );
    r.num(
        S,
        "burst: all Ready after",
        took.as_secs_f64(),
        if all { "s" } else { "s (NOT all Ready)" },
    );
    r.num(
        S,
        "burst: warm starts",
        warm as f64,
        "(status.warmStart set; machines built during the burst count too)",
    );
    r.num(S, "burst: cold starts", (burst - warm) as f64, "");
    let m = measure::controller(&s.controller).await;
    let reasons = delta(&cold0, &cold_starts(&m));
    r.val(
        S,
        "burst: cold starts by reason",
        if reasons.is_empty() {
            json!("none")
        } else {
            map(&reasons)
        },
        "(sandbox_cold_starts_total)",
    );
    if warm > 0 {
        watch
            .wait(Duration::from_secs(300), || {
                watch.refilled_after(start, SIZE).is_some()
            })
            .await;
    }
    r.num(
        S,
        "burst: fewest ready in the pool",
        f64::from(watch.fewest_since(start)),
        "(status.warm.ready)",
    );
    match watch.refilled_after(start, SIZE) {
        Some(d) => r.num(
            S,
            "burst: pool back at 10 ready after",
            d.as_secs_f64(),
            "s from the first create",
        ),
        None => r.val(
            S,
            "burst: pool back at 10 ready after",
            json!(format!(
                "not seen within 5 min ({} ready now)",
                watch.ready_now()
            )),
            "",
        ),
    }
    double_claims(r, &seen);
    Ok(())
}

fn warm_start(x: &crate::stack::Seen) -> Option<String> {
    let ws = x.last.as_ref()?.status.as_ref()?.warm_start.as_ref()?;
    Some(ws.machine.clone())
}

fn cold_starts(m: &measure::Scrape) -> BTreeMap<String, f64> {
    m.by("sandbox_cold_starts_total", &["reason"], |_| true)
}

/// Every VM contract and every warm machine recorded by at most one Tester.
fn double_claims(r: &mut Report, seen: &std::collections::HashMap<String, crate::stack::Seen>) {
    let mut contracts: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    let mut machines: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, x) in seen {
        let contract = x
            .last
            .as_ref()
            .and_then(|t| t.status.as_ref()?.machine.as_ref()?.contract_id);
        if let Some(c) = contract {
            contracts.entry(c).or_default().push(name);
        }
        if let Some(m) = warm_start(x) {
            machines.entry(m).or_default().push(name);
        }
    }
    let twice: Vec<String> = contracts
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(c, v)| format!("VM contract {c}: {}", v.join(", ")))
        .chain(
            machines
                .iter()
                .filter(|(_, v)| v.len() > 1)
                .map(|(m, v)| format!("warm machine {m}: {}", v.join(", "))),
        )
        .collect();
    r.num(
        S,
        "VM contracts recorded by testers",
        contracts.len() as f64,
        &format!(
            "distinct, over {} testers; {} recorded twice",
            seen.len(),
            twice.len()
        ),
    );
    if !twice.is_empty() {
        r.violation(S, format!("double claim: {}", twice.join("; ")));
    }
}
