//! What scenarios 8 and 9 (the warm pool, issue 16) share: a HostPool document with a warm
//! pool, and a watch of that pool's warm counts (`status.warm`) that timestamps every change.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use controller::resources::{HostPool, WarmPoolStatus};
use futures::StreamExt;
use kube::{
    Api,
    runtime::{WatchStreamExt, watcher},
};

pub use e2e::fixtures::warm_pool as pool_doc;

/// Watches one HostPool and records each new `status.warm` with when the watch saw it.
pub struct PoolWatch {
    seen: Arc<Mutex<Vec<(Instant, WarmPoolStatus)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PoolWatch {
    /// Starts watching the HostPool `name` of `api`'s namespace.
    pub fn start(api: Api<HostPool>, name: &str) -> Self {
        let seen: Arc<Mutex<Vec<(Instant, WarmPoolStatus)>>> = Arc::default();
        let s = seen.clone();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, config)
                .default_backoff()
                .applied_objects()
                .boxed();
            loop {
                match stream.next().await {
                    Some(Ok(p)) => {
                        let now = Instant::now();
                        let warm = p.status.and_then(|st| st.warm).unwrap_or_default();
                        let mut v = s.lock().unwrap();
                        if v.last().is_none_or(|(_, last)| *last != warm) {
                            v.push((now, warm));
                        }
                    }
                    Some(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                    None => break,
                }
            }
        });
        Self { seen, task }
    }

    /// `status.warm.ready` as last seen (0 before the first status).
    pub fn ready_now(&self) -> u32 {
        self.seen.lock().unwrap().last().map_or(0, |(_, w)| w.ready)
    }

    /// Waits until `status.warm.ready` is at least `n`, or `timeout`; returns whether it was.
    pub async fn wait_ready(&self, n: u32, timeout: Duration) -> bool {
        self.wait(timeout, || self.ready_now() >= n).await
    }

    /// Waits until `done()` or `timeout`; returns whether it held.
    pub async fn wait(&self, timeout: Duration, done: impl Fn() -> bool) -> bool {
        crate::measure::poll_until(timeout, done).await
    }

    /// The fewest ready machines seen from `since` on (the state at `since` included).
    pub fn fewest_since(&self, since: Instant) -> u32 {
        fewest(&self.seen.lock().unwrap(), since)
    }

    /// When `status.warm.ready` was back at `size` after falling below it, from `since` on
    /// (`None`: it has not fallen, or not come back yet).
    pub fn refilled_after(&self, since: Instant, size: u32) -> Option<Duration> {
        refilled(&self.seen.lock().unwrap(), since, size)
    }
}

/// [`PoolWatch::fewest_since`] of the history `v`.
fn fewest(v: &[(Instant, WarmPoolStatus)], since: Instant) -> u32 {
    let at_since = v
        .iter()
        .rev()
        .find(|(t, _)| *t <= since)
        .map(|(_, w)| w.ready);
    v.iter()
        .filter(|(t, _)| *t > since)
        .map(|(_, w)| w.ready)
        .chain(at_since)
        .min()
        .unwrap_or(0)
}

/// [`PoolWatch::refilled_after`] of the history `v`.
fn refilled(v: &[(Instant, WarmPoolStatus)], since: Instant, size: u32) -> Option<Duration> {
    let mut after = v.iter().filter(|(t, _)| *t > since);
    after.by_ref().find(|(_, w)| w.ready < size)?;
    after
        .find(|(_, w)| w.ready >= size)
        .map(|(t, _)| *t - since)
}

impl Drop for PoolWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refill_counts_from_since_to_back_at_size_after_a_drop() {
        let t0 = Instant::now();
        let at = |ms: u64, ready: u32| {
            (
                t0 + Duration::from_millis(ms),
                WarmPoolStatus {
                    ready,
                    ..WarmPoolStatus::default()
                },
            )
        };
        let v = [
            at(0, 10),
            at(100, 10),
            at(300, 4),
            at(400, 0),
            at(900, 7),
            at(1500, 10),
        ];
        let since = t0 + Duration::from_millis(200);
        assert_eq!(refilled(&v, since, 10), Some(Duration::from_millis(1300)));
        assert_eq!(fewest(&v, since), 0);
        // Not fallen yet (the status has not caught up with the claims): no refill.
        assert_eq!(refilled(&v[..2], since, 10), None);
        assert_eq!(fewest(&v[..2], since), 10);
        // Fallen, not back.
        assert_eq!(refilled(&v[..5], since, 10), None);
    }
}
