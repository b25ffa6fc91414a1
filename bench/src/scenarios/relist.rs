//! Scenario 5 (second half), memory during a re-list: the bench's own kube-apiserver (and
//! kine, kube-controller-manager) is stopped and started again, so the controller's watches
//! break and it lists everything again. Its RSS is sampled every 100 ms throughout.

use std::time::{Duration, Instant};

use crate::{
    measure::{self, RssSampler, delta},
    report::{Report, map},
    setup::cluster_sh,
    stack::Stack,
};

const S: &str = "5 memory";

/// Runs it on the stack of scenario 2.
pub async fn run(s: &Stack, n: usize, r: &mut Report) -> anyhow::Result<()> {
    let pid = s.controller_pid();
    let before = measure::rss_mib(pid).unwrap_or(f64::NAN);
    let c0 = measure::controller(&s.controller).await;
    let rss = RssSampler::start(pid, Duration::from_millis(100));
    let t = Instant::now();
    tokio::task::spawn_blocking(|| cluster_sh("down")).await??;
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::spawn_blocking(|| cluster_sh("up")).await??;
    let down_for = t.elapsed();
    // The controller's watches back off and re-list; give it time, then check all is Ready.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let samples = rss.stop();
    let c1 = measure::controller(&s.controller).await;
    r.num(S, "RSS before re-list", before, &format!("MiB, {n} Ready"));
    r.num(
        S,
        "RSS peak during re-list",
        measure::peak(&samples),
        &format!(
            "MiB (100 ms samples, API down {:.1} s, then 30 s)",
            down_for.as_secs_f64()
        ),
    );
    r.num(
        S,
        "RSS after re-list",
        measure::rss_mib(pid).unwrap_or(f64::NAN),
        "MiB",
    );
    let rec = c1.sum("sandbox_reconcile_total", &[("controller", "tester")])
        - c0.sum("sandbox_reconcile_total", &[("controller", "tester")]);
    r.num(S, "tester reconciles caused by re-list", rec, "");
    let w = delta(
        &c0.by("sandbox_api_writes_total", &["verb", "resource"], |_| true),
        &c1.by("sandbox_api_writes_total", &["verb", "resource"], |_| true),
    );
    r.val(
        S,
        "controller writes during re-list",
        if w.is_empty() {
            serde_json::json!("none")
        } else {
            map(&w)
        },
        "",
    );
    r.num(
        S,
        "Ready after re-list (bench's watch)",
        s.tracker.ready_now() as f64,
        &format!("of {n}"),
    );
    Ok(())
}
