//! Scenario 4, cost at rest: with every tester of scenario 2 Ready and nothing changing, the
//! API writes per minute (kube-apiserver's count of non-read verbs, and the controller's own
//! `sandbox_api_writes_total`) and the reconciles per object per minute. Goal: zero writes.
//!
//! Issue 15's figures, the window's counts scaled to 5 minutes per Ready tester: grid requests
//! (target ≤ 2), and API reads (GET/LIST; watches are not counted) and writes (target: 0 and 0).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    Ctx,
    measure::{self, delta},
    report::{Report, map},
    stack::Stack,
};

const S: &str = "4 at rest";

/// Runs the scenario on the stack of scenario 2.
pub async fn run(ctx: &Ctx, s: &Stack, n: usize, r: &mut Report) -> anyhow::Result<()> {
    // Let what follows Ready (last status writes) settle first.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let api0 = measure::apiserver();
    let c0 = measure::controller(&s.controller).await;
    let g0 = s.grid.admin.requests().await.map(|c| c.served);
    let start = Instant::now();
    tokio::time::sleep(ctx.settings.quiet).await;
    let minutes = start.elapsed().as_secs_f64() / 60.0;
    let api1 = measure::apiserver();
    let c1 = measure::controller(&s.controller).await;
    let g1 = s.grid.admin.requests().await.map(|c| c.served);
    // Per Ready tester per 5 minutes, from a count over the window.
    let per_5_min = |count: f64| count / n as f64 / minutes * 5.0;
    r.num(
        S,
        "window",
        minutes * 60.0,
        &format!("s, {n} Ready, RESYNC=60s"),
    );
    let writes = delta(
        &measure::writes_by_resource(&api0),
        &measure::writes_by_resource(&api1),
    );
    let total: f64 = writes.values().sum();
    r.num(
        S,
        "apiserver writes per minute (all clients)",
        total / minutes,
        "",
    );
    r.val(
        S,
        "apiserver writes by verb/resource/subresource",
        if writes.is_empty() {
            json!("none")
        } else {
            map(&writes)
        },
        "(whole window)",
    );
    let cw = delta(
        &c0.by("sandbox_api_writes_total", &["verb", "resource"], |_| true),
        &c1.by("sandbox_api_writes_total", &["verb", "resource"], |_| true),
    );
    r.num(
        S,
        "controller writes per minute",
        cw.values().sum::<f64>() / minutes,
        "(sandbox_api_writes_total)",
    );
    if !cw.is_empty() {
        r.val(
            S,
            "controller writes by verb/resource",
            map(&cw),
            "(whole window)",
        );
    }
    let reads = delta(
        &measure::requests_by_verb(&api0),
        &measure::requests_by_verb(&api1),
    );
    r.val(
        S,
        "apiserver requests by verb",
        map(&reads),
        "(whole window)",
    );
    let rec = c1.sum("sandbox_reconcile_total", &[("controller", "tester")])
        - c0.sum("sandbox_reconcile_total", &[("controller", "tester")]);
    r.num(
        S,
        "tester reconciles per object per minute",
        rec / n as f64 / minutes,
        "",
    );
    let grid = c1.sum("sandbox_grid_request_duration_seconds_count", &[])
        - c0.sum("sandbox_grid_request_duration_seconds_count", &[]);
    r.num(
        S,
        "grid calls per object per minute",
        grid / n as f64 / minutes,
        "",
    );
    r.num(
        S,
        "grid requests per Ready tester per 5 min",
        per_5_min(grid),
        "(the controller's sandbox_grid_request_duration_seconds count; target ≤ 2)",
    );
    if let (Ok(g0), Ok(g1)) = (g0, g1) {
        r.num(
            S,
            "grid requests gridshim served per Ready tester per 5 min",
            per_5_min(g1.saturating_sub(g0) as f64),
            "(gridshim's /admin/requests: its grid faces, any client)",
        );
    }
    let api_reads = delta(
        &measure::reads_by_resource(&api0),
        &measure::reads_by_resource(&api1),
    );
    r.num(
        S,
        "API reads per Ready tester per 5 min (all clients)",
        per_5_min(api_reads.values().sum()),
        "(apiserver_request_total GET + LIST, WATCH not counted; every client: the controller, \
         the bench's watch, kube-controller-manager; target 0 beyond the watches)",
    );
    r.num(
        S,
        "API writes per Ready tester per 5 min (all clients)",
        per_5_min(total),
        "(apiserver_request_total, every verb but GET/LIST/WATCH, every client; target 0)",
    );
    r.num(
        S,
        "controller API writes per Ready tester per 5 min",
        per_5_min(cw.values().sum()),
        "(sandbox_api_writes_total; the controller counts no reads of its own)",
    );
    r.val(
        S,
        "apiserver reads by verb/resource/subresource",
        if api_reads.is_empty() {
            json!("none")
        } else {
            map(&api_reads)
        },
        "(whole window)",
    );
    Ok(())
}
