//! Waiting for what the controller does, by watching the real API server (kube-runtime's
//! `await_condition`: a watch on the one object, no polling).

use std::{fmt::Debug, hash::Hash, time::Duration};

use controller::resources::{Tester, condition_status, find_condition};
use futures::{StreamExt, TryStreamExt};
use gridshim::{admin::Admin, wire::Inspection};
use kube::{
    Api, Resource,
    runtime::{reflector, wait::await_condition, watcher},
};
use serde::{Serialize, de::DeserializeOwned};

/// The status, reason and message of the Tester's condition `type_` (empty when it has none).
pub fn condition_of(t: &Tester, type_: &str) -> (String, String, String) {
    t.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, type_))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// The node the Tester is placed on, if any.
pub fn node_of(t: &Tester) -> Option<u32> {
    t.status.as_ref()?.placement.as_ref().map(|p| p.node_id)
}

/// Polls gridshim's inspection until `check` holds, or fails after `timeout` with the last one
/// (gridshim has no watch).
pub async fn grid_until(
    admin: &Admin,
    timeout: Duration,
    what: &str,
    check: impl Fn(&Inspection) -> bool,
) -> anyhow::Result<Inspection> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let i = admin.inspect().await?;
        if check(&i) {
            return Ok(i);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("not {what} after {timeout:?}: {i:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Watches the object `name` until `check` holds, or fails after `timeout` with its last
/// state.
pub async fn object_until<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&K) -> bool,
) -> anyhow::Result<K>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + 'static,
{
    let watched = await_condition(api.clone(), name, |o: Option<&K>| o.is_some_and(&check));
    match tokio::time::timeout(timeout, watched).await {
        Ok(Ok(Some(o))) => return Ok(o),
        Ok(Ok(None)) => anyhow::bail!("{name}: gone while waiting to be {what}"),
        Ok(Err(e)) => anyhow::bail!("{name}: watching it failed: {e}"),
        Err(_) => {}
    }
    let last = api
        .get_opt(name)
        .await?
        .map(|o| serde_yaml::to_string(&o).unwrap_or_default());
    anyhow::bail!(
        "{name}: not {what} after {timeout:?}; last state:\n{}",
        last.unwrap_or_else(|| "<none>".into())
    )
}

/// Watches every object of `api` until `check` holds for the whole set; returns the set.
pub async fn all_until<K>(
    api: &Api<K>,
    timeout: Duration,
    what: &str,
    check: impl Fn(&[K]) -> bool,
) -> anyhow::Result<Vec<K>>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let mut events = reflector(writer, watcher(api.clone(), watcher::Config::default())).boxed();
    use watcher::Event as E;
    let snapshot = || -> Vec<K> { reader.state().iter().map(|o| (**o).clone()).collect() };
    let watched = async {
        while let Some(event) = events.try_next().await? {
            // During a (re)list the store still shows the previous state: judge it after.
            let settled = matches!(event, E::InitDone | E::Apply(_) | E::Delete(_));
            if settled && check(&snapshot()) {
                return Ok::<_, anyhow::Error>(snapshot());
            }
        }
        anyhow::bail!("the watch ended")
    };
    match tokio::time::timeout(timeout, watched).await {
        Ok(out) => out,
        Err(_) => anyhow::bail!(
            "not {what} after {timeout:?}; {} object(s) then",
            snapshot().len()
        ),
    }
}

/// Watches the Tester until `check` holds, or fails after `timeout` with its last state.
pub async fn tester_until(
    api: &Api<Tester>,
    name: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&Tester) -> bool,
) -> anyhow::Result<Tester> {
    object_until(api, name, timeout, what, check).await
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
    let watched = await_condition(api.clone(), name, |t: Option<&Tester>| t.is_none());
    match tokio::time::timeout(timeout, watched).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => anyhow::bail!("tester {name}: watching it failed: {e}"),
        Err(_) => {
            let t = api.get_opt(name).await?;
            anyhow::bail!(
                "tester {name} still there after {timeout:?}: {:?}",
                t.and_then(|t| t.status)
            )
        }
    }
}
