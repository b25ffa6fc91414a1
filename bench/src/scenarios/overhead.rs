//! Scenario 1, controller overhead: testers created one by one (10 per second) on the instant
//! grid; time from the create call's return to the watch showing `Ready`, and the part of the
//! controller's step time spent outside grid calls. Also the controller's RSS at 0 and at N.

use std::time::Duration;

use anyhow::Context as _;
use e2e::forge::Forge;

use crate::{
    Ctx,
    measure::{self, percentile},
    report::Report,
    stack::{Profile, Stack, nodes},
};

const S: &str = "1 overhead";

/// Runs the scenario.
pub async fn run(ctx: &Ctx, oidc: &'static Forge, r: &mut Report) -> anyhow::Result<()> {
    let n = ctx.settings.count(100, 10);
    let mut env = ctx.settings.controller_env.clone();
    env.push(("RESYNC".into(), "60s".into()));
    let s = Stack::start(
        "bench-overhead",
        &nodes(10, 1000, 256),
        Profile::Instant,
        // 2 GiB: zos's 500 MiB root minimum and a data disk (the HostPool's CEL rule).
        (2, 1),
        oidc,
        &env,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.num(
        "5 memory",
        "controller RSS, 0 testers",
        measure::rss_mib(s.controller_pid()).unwrap_or(f64::NAN),
        "MiB",
    );
    r.num(S, "testers", n as f64, "created at 10/s");
    s.make_accounts(0, n, crate::stack::ACCOUNTS_IN_FLIGHT)
        .await?;
    for i in 0..n {
        s.create_one(i).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = s.tracker.wait_ready(n, Duration::from_secs(600)).await;
    anyhow::ensure!(
        all,
        "only {} of {n} testers Ready after 10 min",
        s.tracker.ready_now()
    );
    let seen = s.tracker.snapshot();
    let lat: Vec<f64> = seen
        .values()
        .filter_map(|x| Some((*x.became_true.get("Ready")? - x.created?).as_secs_f64() * 1000.0))
        .collect();
    for p in [50.0, 95.0, 99.0] {
        r.num(S, &format!("create→Ready p{p}"), percentile(&lat, p), "ms");
    }
    r.num(S, "create→Ready max", percentile(&lat, 100.0), "ms");
    let m = measure::controller(&s.controller).await;
    let steps = m.sum("sandbox_step_duration_seconds_sum", &[]);
    let grid = m.sum("sandbox_grid_request_duration_seconds_sum", &[]);
    r.num(
        S,
        "step time per tester",
        steps / n as f64 * 1000.0,
        "ms (sum of sandbox_step_duration_seconds)",
    );
    r.num(
        S,
        "grid time per tester",
        grid / n as f64 * 1000.0,
        "ms (sum of sandbox_grid_request_duration_seconds)",
    );
    r.num(
        S,
        "outside grid calls per tester",
        (steps - grid) / n as f64 * 1000.0,
        "ms (step − grid)",
    );
    crate::measure::where_time_goes(&m, n, S, r);
    let ttr = m.sum("sandbox_time_to_ready_seconds_sum", &[])
        / m.sum("sandbox_time_to_ready_seconds_count", &[]);
    r.num(
        S,
        "controller's time_to_ready mean",
        ttr,
        "s (from creationTimestamp, 1 s resolution)",
    );
    r.num(
        S,
        "reconciles per tester",
        m.sum("sandbox_reconcile_total", &[("controller", "tester")]) / n as f64,
        "",
    );
    r.num(
        S,
        "API writes per tester",
        m.sum("sandbox_api_writes_total", &[]) / n as f64,
        "(sandbox_api_writes_total)",
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.num(
        "5 memory",
        &format!("controller RSS, {n} Ready"),
        measure::rss_mib(s.controller_pid()).context("controller gone")?,
        "MiB",
    );
    Ok(())
}
