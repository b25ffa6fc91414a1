//! Waiting for what the controller does, by watching the real API server.

use std::time::{Duration, Instant};

use controller::resources::{Tester, condition_status};
use kube::Api;

/// Polls `get` until `check` holds for the Tester, or fails after `timeout` with the last state.
pub async fn tester_until(
    api: &Api<Tester>,
    name: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&Tester) -> bool,
) -> anyhow::Result<Tester> {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < timeout {
        if let Some(t) = api.get_opt(name).await? {
            if check(&t) {
                return Ok(t);
            }
            last = Some(t);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = last
        .and_then(|t| t.status)
        .map(|s| serde_yaml::to_string(&s).unwrap_or_default());
    anyhow::bail!(
        "tester {name}: not {what} after {timeout:?}; last status:\n{}",
        status.unwrap_or_else(|| "<none>".into())
    )
}

/// Waits until the Tester's condition `type_` has `status`.
pub async fn condition(
    api: &Api<Tester>,
    name: &str,
    type_: &str,
    status: &str,
    timeout: Duration,
) -> anyhow::Result<Tester> {
    tester_until(api, name, timeout, &format!("{type_}={status}"), |t| {
        t.status
            .as_ref()
            .is_some_and(|s| condition_status(&s.conditions, type_) == status)
    })
    .await
}

/// Waits until the Tester is Ready.
pub async fn ready(api: &Api<Tester>, name: &str, timeout: Duration) -> anyhow::Result<Tester> {
    condition(api, name, "Ready", "True", timeout).await
}

/// Waits until the Tester is gone (its finalizer released).
pub async fn gone(api: &Api<Tester>, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if api.get_opt(name).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t = api.get_opt(name).await?;
    anyhow::bail!(
        "tester {name} still there after {timeout:?}: {:?}",
        t.and_then(|t| t.status)
    )
}
