//! Scenario 3, realistic onboarding: one tester on gridshim's `realistic` profile at
//! `--time-scale 60` (a simulated minute per real second). The watch timestamps each step's
//! condition turning `True`; times are multiplied by 60 back to simulated (real-grid) time and
//! put next to the seed system's ~9 minutes.

use std::time::Duration;

use e2e::forge::Forge;

use crate::{
    Ctx, measure,
    report::Report,
    stack::{Profile, STEPS, Stack, nodes},
};

const S: &str = "3 realistic";
const SCALE: u32 = 60;

/// Runs the scenario.
pub async fn run(ctx: &Ctx, oidc: &'static Forge, r: &mut Report) -> anyhow::Result<()> {
    let mut env = ctx.settings.controller_env.clone();
    // The realistic proxy lags 60 s; scaled, 1 s.
    env.push(("PROXY_LAG".into(), "1s".into()));
    env.push(("RESYNC".into(), "60s".into()));
    let s = Stack::start(
        "bench-realistic",
        &nodes(2, 1000, 256),
        Profile::Realistic { time_scale: SCALE },
        (50, 4),
        oidc,
        &env,
    )
    .await?;
    s.create_one(0).await?;
    let ok = s.tracker.wait_ready(1, Duration::from_secs(600)).await;
    anyhow::ensure!(ok, "the realistic tester is not Ready after 10 min (real)");
    let seen = s.tracker.snapshot().remove("t00000").unwrap_or_default();
    let created = seen.created.unwrap_or_else(std::time::Instant::now);
    let k = f64::from(SCALE);
    let total = seen.became_true["Ready"] - created;
    r.num(
        S,
        "end to end (simulated)",
        total.as_secs_f64() * k / 60.0,
        &format!(
            "min (real {:.1} s × {SCALE}); seed system ~9 min",
            total.as_secs_f64()
        ),
    );
    let mut prev = created;
    for step in STEPS {
        if let Some(t) = seen.became_true.get(step) {
            let d = t.saturating_duration_since(prev);
            r.num(
                S,
                &format!("step {step} (simulated)"),
                d.as_secs_f64() * k,
                "s",
            );
            prev = prev.max(*t);
        }
    }
    let m = measure::controller(&s.controller).await;
    let inside = m.sum("sandbox_step_duration_seconds_sum", &[]) * k;
    r.num(
        S,
        "inside step code (simulated)",
        inside,
        "s (the rest is waiting between requeues)",
    );
    r.num(
        S,
        "reconciles",
        m.sum("sandbox_reconcile_total", &[("controller", "tester")]),
        "",
    );
    Ok(())
}
