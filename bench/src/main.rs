//! `bench`: the controller measured against the real parts — its own local control plane
//! (kine + kube-apiserver), gridshim and the Forge (Gitea) as processes, and the release
//! controller binary. Prints one table and writes the same numbers as JSON. Numbers are
//! printed, never asserted; only correctness (over-commit, duplicate VMs) fails the run.
//!
//! Environment: `BENCH_SCALE` (multiplies tester counts), `BENCH_ONLY` (e.g. `1,6`),
//! `BENCH_QUIET_SECS`, `BENCH_CONCURRENCY`, `BENCH_KUBE_QPS`, `BENCH_GRID_QPS`, `BENCH_OUT`
//! (JSON path, default `bench/results/latest.json`).

mod floor;
mod forge_floor;
mod measure;
mod report;
mod scenarios;
mod setup;
mod stack;

use std::{path::PathBuf, time::Instant};

use serde_json::{Value, json};

use crate::{report::Report, scenarios::*, setup::Settings};

/// What every scenario gets.
pub struct Ctx {
    /// The run's settings.
    pub settings: Settings,
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    setup::prepare_process_env()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let code = rt.block_on(run(Ctx { settings }))?;
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    if std::env::var_os("BENCH_KEEP_CLUSTER").is_none() {
        let _ = setup::cluster_sh("reset");
    }
    std::process::exit(code);
}

fn step(name: &str, started: Instant) {
    eprintln!("[bench {:>6.1} s] {name}", started.elapsed().as_secs_f64());
}

async fn run(ctx: Ctx) -> anyhow::Result<i32> {
    let started = Instant::now();
    let mut r = Report::default();
    step("starting the bench's own control plane", started);
    tokio::task::spawn_blocking(e2e::cluster).await?;
    if let Value::Object(m) = setup::versions() {
        r.meta.extend(m);
    }
    let st = &ctx.settings;
    r.meta.insert("scale".into(), json!(st.scale));
    r.meta.insert(
        "controller_env".into(),
        Value::Object(
            st.controller_env
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        ),
    );
    if st.scale != 1.0 {
        r.meta.insert(
            "note".into(),
            json!(format!(
                "scaled: tester counts × {} (BENCH_SCALE)",
                st.scale
            )),
        );
    }

    let mut failures = Vec::new();
    let oidc = e2e::forge::Forge::shared();
    macro_rules! scenario {
        ($n:expr, $name:expr, $body:expr) => {
            if st.runs($n) {
                step($name, started);
                if let Err(e) = $body.await {
                    eprintln!("scenario {} failed: {e:#}", $name);
                    r.val($name, "ERROR", json!(format!("{e:#}")), "");
                    failures.push($name);
                }
            }
        };
    }
    if st.runs(6) {
        step("6 scheduler: decision time", started);
        scheduler::decision_time(&mut r);
    }
    scenario!(1, "1 overhead", overhead::run(&ctx, oidc, &mut r));
    scenario!(3, "3 realistic", realistic::run(&ctx, oidc, &mut r));
    scenario!(6, "6 scheduler", scheduler::overcommit(&ctx, oidc, &mut r));
    scenario!(7, "7 recovery", recovery::run(&ctx, oidc, &mut r));
    scenario!(
        8,
        "8 warm realistic",
        warm_realistic::run(&ctx, oidc, &mut r)
    );
    scenario!(9, "9 warm instant", warm_instant::run(&ctx, oidc, &mut r));
    if st.runs(2) || st.runs(4) || st.runs(5) {
        step("2 throughput", started);
        match throughput::run(&ctx, oidc, &mut r).await {
            Ok((stack, n)) => {
                scenario!(4, "4 at rest", at_rest::run(&ctx, &stack, n, &mut r));
                scenario!(5, "5 memory", relist::run(&stack, n, &mut r));
            }
            Err(e) => {
                eprintln!("scenario 2 failed: {e:#}");
                r.val("2 throughput", "ERROR", json!(format!("{e:#}")), "");
                failures.push("2 throughput");
            }
        }
    }
    r.meta
        .insert("bench_seconds".into(), json!(started.elapsed().as_secs()));
    println!("{}", r.table());
    let out = std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e::repo_root().join("bench/results/latest.json"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&r.json())?)?;
    eprintln!("JSON written to {}", out.display());
    if !r.violations.is_empty() {
        eprintln!("CORRECTNESS VIOLATIONS:\n  {}", r.violations.join("\n  "));
        return Ok(2);
    }
    if !failures.is_empty() {
        eprintln!("scenarios that did not finish: {}", failures.join(", "));
        return Ok(1);
    }
    Ok(0)
}
