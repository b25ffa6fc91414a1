//! Scenario 2, throughput: N testers created at once (64 requests in flight) on the instant
//! grid over a HostPool of 50 nodes; seconds until all are Ready, testers per second, the API
//! requests kube-apiserver served by verb, and any 429s. The stack is kept for 4 and 5.
//!
//! Beside it, first, the API server's own floor on the same control plane ([`floor`]): the same
//! N testers and only the status writes the controller cannot avoid, by a minimal client with no
//! controller, so "all Ready after" can be read as a multiple of what the server itself allows.

use std::time::{Duration, Instant};

use e2e::forge::Forge;
use serde_json::json;

use crate::{
    Ctx,
    floor::{self, STATUS_WRITES_PER_TESTER},
    measure::{self, RssSampler, delta},
    report::{Report, map},
    stack::{Profile, Stack, nodes},
};

const S: &str = "2 throughput";

/// Create requests in flight, the bench's and the floor's.
const IN_FLIGHT: usize = 64;

/// Runs the scenario; returns the stack with every tester Ready and the count.
pub async fn run(
    ctx: &Ctx,
    oidc: &'static Forge,
    r: &mut Report,
) -> anyhow::Result<(Stack, usize)> {
    let n = ctx.settings.count(1000, 20);
    // Before this scenario's controller starts, so nothing else is going on.
    let floor = floor::api_floor(n, IN_FLIGHT).await;
    if let Ok(f) = &floor {
        eprintln!(
            "API floor: {:.1} s; its namespace gone after {:?}",
            f.took.as_secs_f64(),
            f.deleted_after
        );
    }
    let forge_floor = crate::forge_floor::forge_floor(oidc, n, IN_FLIGHT).await;
    if let Ok(f) = &forge_floor {
        eprintln!("Forge floor: {:.1} s", f.as_secs_f64());
    }
    let mut env = ctx.settings.controller_env.clone();
    // Scenario 4 runs on this stack: resync reads must fall inside its quiet window.
    env.push(("RESYNC".into(), "60s".into()));
    let s = Stack::start(
        "bench-throughput",
        &nodes(50, 1000, 256),
        Profile::Instant,
        // 2 GiB: zos's 500 MiB root minimum and a data disk (the HostPool's CEL rule).
        (2, 1),
        oidc,
        &env,
    )
    .await?;
    r.num(S, "testers", n as f64, "created at once");
    r.num(S, "nodes", 50.0, "");
    s.make_accounts(0, n, crate::stack::ACCOUNTS_IN_FLIGHT)
        .await?;
    let api0 = measure::apiserver();
    let c0 = measure::controller(&s.controller).await;
    let cpu0 = measure::cpu_by_command();
    let rss = RssSampler::start(s.controller_pid(), Duration::from_millis(100));
    let start = Instant::now();
    s.create_testers(0, n, IN_FLIGHT).await?;
    let applied = start.elapsed();
    let all = s.tracker.wait_ready(n, Duration::from_secs(1200)).await;
    let took = start.elapsed();
    let samples = rss.stop();
    anyhow::ensure!(
        all,
        "only {} of {n} testers Ready after 20 min",
        s.tracker.ready_now()
    );
    let cpu = delta(&cpu0, &measure::cpu_by_command());
    let busy: f64 = cpu.values().sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    r.val(
        S,
        "CPU seconds used, by process",
        map(&cpu.into_iter().filter(|(_, v)| *v >= 0.5).collect()),
        &format!(
            "from the first create to all Ready: {busy:.0} CPU seconds of the {:.0} the machine's {} cores had",
            took.as_secs_f64() * cores as f64,
            cores
        ),
    );
    let api1 = measure::apiserver();
    let c1 = measure::controller(&s.controller).await;
    crate::measure::where_time_goes(&c1, n, S, r);
    r.num(S, "all created after", applied.as_secs_f64(), "s");
    r.num(S, "all Ready after", took.as_secs_f64(), "s");
    r.num(S, "throughput", n as f64 / took.as_secs_f64(), "testers/s");
    match floor {
        Ok(f) => {
            let secs = f.took.as_secs_f64();
            r.num(
                S,
                "API floor (minimal client, no controller)",
                secs,
                &format!(
                    "s: {n} creates + {STATUS_WRITES_PER_TESTER} status applies each, \
                     {IN_FLIGHT} in flight, in a namespace no controller watches"
                ),
            );
            r.num(S, "API floor throughput", n as f64 / secs, "testers/s");
            r.num(
                S,
                "ours ÷ API floor",
                took.as_secs_f64() / secs,
                "(all Ready after ÷ API floor)",
            );
        }
        Err(e) => r.val(S, "API floor", json!(format!("ERROR: {e:#}")), ""),
    }
    match forge_floor {
        Ok(f) => {
            r.num(
                S,
                "Forge floor (minimal client, no controller)",
                f.as_secs_f64(),
                &format!("s: {n} sign-in applications made, {IN_FLIGHT} in flight"),
            );
            r.num(
                S,
                "ours ÷ Forge floor",
                took.as_secs_f64() / f.as_secs_f64(),
                "(all Ready after ÷ Forge floor)",
            );
        }
        Err(e) => r.val(S, "Forge floor", json!(format!("ERROR: {e:#}")), ""),
    }
    let by_verb = delta(
        &measure::requests_by_verb(&api0),
        &measure::requests_by_verb(&api1),
    );
    r.val(S, "apiserver requests by verb", map(&by_verb), "");
    r.num(
        S,
        "apiserver requests per tester",
        by_verb.values().sum::<f64>() / n as f64,
        "",
    );
    r.num(
        S,
        "429 answers",
        measure::throttled(&api1) - measure::throttled(&api0),
        "",
    );
    let writes = delta(
        &c0.by("sandbox_api_writes_total", &["verb", "resource"], |_| true),
        &c1.by("sandbox_api_writes_total", &["verb", "resource"], |_| true),
    );
    r.val(
        S,
        "controller writes",
        map(&writes),
        "(sandbox_api_writes_total)",
    );
    let rec = c1.sum("sandbox_reconcile_total", &[("controller", "tester")])
        - c0.sum("sandbox_reconcile_total", &[("controller", "tester")]);
    r.num(S, "reconciles per tester", rec / n as f64, "");
    let errors = delta(
        &c0.by("sandbox_reconcile_errors_total", &["step", "error"], |_| {
            true
        }),
        &c1.by("sandbox_reconcile_errors_total", &["step", "error"], |_| {
            true
        }),
    );
    r.val(
        S,
        "reconcile errors",
        if errors.is_empty() {
            json!("none")
        } else {
            map(&errors)
        },
        "",
    );
    r.num(
        "5 memory",
        "controller RSS peak while onboarding",
        measure::peak(&samples),
        "MiB",
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.num(
        "5 memory",
        &format!("controller RSS, {n} Ready"),
        measure::rss_mib(s.controller_pid()).unwrap_or(f64::NAN),
        "MiB",
    );
    Ok((s, n))
}
