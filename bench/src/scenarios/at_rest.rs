//! Scenario 4, cost at rest: with every tester of scenario 2 Ready and nothing changing, the
//! API writes per minute (kube-apiserver's count of non-read verbs, and the controller's own
//! `sandbox_api_writes_total`) and the reconciles per object per minute. Goal: zero writes.

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
    let start = Instant::now();
    tokio::time::sleep(ctx.settings.quiet).await;
    let minutes = start.elapsed().as_secs_f64() / 60.0;
    let api1 = measure::apiserver();
    let c1 = measure::controller(&s.controller).await;
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
    Ok(())
}
