//! Condition `AppsHealthy`: each installed app answers its health check on the machine, checked
//! on its own interval (`APP_HEALTH_INTERVAL`). Not required for `Ready`: the machine and
//! sign-in still work when an app is down, but the operator sees it (`kubectl get testers`,
//! `status.apps`, the `sandbox_apps_unhealthy` metric).

use std::time::Instant;

use gridapi::agent::AppHealthEntry;
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use super::{
    Flow, Pass,
    conditions::{APPS_HEALTHY, INSTALLED},
    grid::agent,
};
use crate::{error::Result, resources::AppStatus};

/// Owns `AppsHealthy`.
pub async fn apps_health(pass: &mut Pass<'_>) -> Result<Flow> {
    if !pass.is_true(INSTALLED) {
        return Ok(Flow::Continue);
    }
    let due = pass
        .ctx
        .app_checks
        .lock()
        .ok()
        .and_then(|m| m.get(&pass.uid).copied())
        .is_none_or(|last| last.elapsed() >= pass.ctx.config.app_health_interval);
    if !due && pass.condition(APPS_HEALTHY).is_some() {
        return Ok(Flow::Continue);
    }
    let target = agent(pass)?;
    let health = pass
        .ctx
        .grid("agent_app_health", pass.ctx.grid.agents.app_health(&target))
        .await?;
    if let Ok(mut m) = pass.ctx.app_checks.lock() {
        m.insert(pass.uid.clone(), Instant::now());
    }
    pass.status.apps = entries(&pass.status.apps, &health.apps, Time(Timestamp::now()));
    let sick: Vec<String> = pass
        .status
        .apps
        .iter()
        .filter(|a| !a.healthy)
        .map(|a| format!("{} ({})", a.app, a.message))
        .collect();
    if sick.is_empty() {
        let msg = format!("all {} app(s) answer", pass.status.apps.len());
        pass.set(APPS_HEALTHY, true, "AllHealthy", &msg);
    } else {
        let msg = format!("not answering: {}", sick.join(", "));
        pass.set(APPS_HEALTHY, false, "AppsUnhealthy", &msg);
    }
    Ok(Flow::Continue)
}

/// The status entries for the agent's report: `since` stays while an app's state is unchanged.
fn entries(before: &[AppStatus], report: &[AppHealthEntry], now: Time) -> Vec<AppStatus> {
    let mut out: Vec<AppStatus> = report
        .iter()
        .map(|e| {
            let since = before
                .iter()
                .find(|b| b.app == e.app && b.healthy == e.healthy)
                .map_or_else(|| now.clone(), |b| b.since.clone());
            AppStatus {
                app: e.app.clone(),
                healthy: e.healthy,
                since,
                message: if e.healthy {
                    String::new()
                } else {
                    e.detail.chars().take(1024).collect()
                },
            }
        })
        .collect();
    out.sort_by(|a, b| a.app.cmp(&b.app));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(app: &str, healthy: bool) -> AppHealthEntry {
        AppHealthEntry {
            app: app.into(),
            healthy,
            version: None,
            detail: if healthy {
                String::new()
            } else {
                "connection refused".into()
            },
        }
    }

    #[test]
    fn since_moves_only_when_an_apps_state_changes() {
        let t0 = Time(Timestamp::UNIX_EPOCH);
        let t1 = Time(Timestamp::from_second(100).unwrap());
        let first = entries(
            &[],
            &[report("cockpit", true), report("code", true)],
            t0.clone(),
        );
        assert!(first.iter().all(|a| a.since == t0 && a.message.is_empty()));
        let second = entries(
            &first,
            &[report("cockpit", true), report("code", false)],
            t1.clone(),
        );
        assert_eq!(second[0].since, t0, "cockpit unchanged");
        assert_eq!(second[1].since, t1, "code went down now");
        assert_eq!(second[1].message, "connection refused");
    }
}
