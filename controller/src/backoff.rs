//! Per-object retry delays after a failed reconcile: exponential with jitter, capped, and reset
//! by the object's next successful pass. One failing Tester backs off on its own; the others
//! keep their pace. Errors that retrying cannot fix wait the longest delay at once, so a
//! refusal by the grid is not hammered while the operator fixes its cause.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// The retry delays of every object that is failing now, by key (its UID).
pub struct Backoffs {
    builder: ExponentialBuilder,
    max: Duration,
    failing: Mutex<HashMap<String, ExponentialBackoff>>,
}

impl Backoffs {
    /// Delays start at `min`, double with each failure (with jitter) and stop growing at `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            builder: ExponentialBuilder::new()
                .with_min_delay(min)
                .with_max_delay(max)
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
            max,
            failing: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before retrying `key` after one more failure; `fatal` failures (retrying
    /// cannot help until something changes) wait the longest delay.
    pub fn failed(&self, key: &str, fatal: bool) -> Duration {
        let Ok(mut failing) = self.failing.lock() else {
            return self.max;
        };
        let next = failing
            .entry(key.to_string())
            .or_insert_with(|| self.builder.build())
            .next()
            .unwrap_or(self.max);
        if fatal { self.max } else { next }
    }

    /// Forgets `key`'s failures: its pass succeeded.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut failing) = self.failing.lock() {
            failing.remove(key);
        }
    }

    /// How many objects are failing now.
    pub fn failing(&self) -> usize {
        self.failing.lock().map(|f| f.len()).unwrap_or_default()
    }
}

impl Default for Backoffs {
    /// 1 s, doubling, at most 5 minutes.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_per_object_are_capped_and_reset_by_success() {
        let b = Backoffs::new(Duration::from_secs(1), Duration::from_secs(60));
        let first = b.failed("a", false);
        let mut last = first;
        for _ in 0..12 {
            last = b.failed("a", false);
        }
        // Jitter adds up to one more delay; the doubling is what must show.
        assert!(first <= Duration::from_secs(2), "{first:?}");
        assert!(
            last >= Duration::from_secs(60),
            "grows to the cap: {last:?}"
        );
        assert!(
            last <= Duration::from_secs(120),
            "stays near the cap: {last:?}"
        );
        // Another object is not slowed by a's failures.
        assert!(b.failed("b", false) <= Duration::from_secs(2));
        assert_eq!(b.failing(), 2);
        b.succeeded("a");
        assert!(b.failed("a", false) <= Duration::from_secs(2), "reset");
    }

    #[test]
    fn errors_that_retrying_cannot_fix_wait_the_longest() {
        let b = Backoffs::new(Duration::from_secs(1), Duration::from_secs(300));
        assert_eq!(b.failed("a", true), Duration::from_secs(300));
    }
}
