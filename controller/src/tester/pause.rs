//! Condition `Paused`: the operator's stop sign. The annotation `sandbox.hero.dev/paused` on a
//! Tester, or on its HostPool, stops every grid call and every write for the tester (deletion
//! included) except this condition; removing it resumes where the tester stood.

use std::{sync::Arc, time::Duration};

use kube::{ResourceExt, runtime::controller::Action};

use super::{Pass, conditions::PAUSED};
use crate::{
    context::Context,
    error::Result,
    resources::{HostPool, PAUSED_ANNOTATION, Tester},
};

/// How often a tester paused through its HostPool looks again (the pool's annotation does not
/// wake its testers).
const POOL_PAUSE_RECHECK: Duration = Duration::from_secs(30);

/// Why the tester is paused, if it is: (reason, message).
pub fn paused_by(tester: &Tester, pool: Option<&HostPool>) -> Option<(&'static str, String)> {
    if tester.annotations().contains_key(PAUSED_ANNOTATION) {
        return Some((
            "PausedByAnnotation",
            format!(
                "paused by the annotation {PAUSED_ANNOTATION}: nothing is changed on the grid or in the cluster until it is removed"
            ),
        ));
    }
    pool.filter(|p| p.annotations().contains_key(PAUSED_ANNOTATION))
        .map(|p| {
            (
                "HostPoolPaused",
                format!(
                    "HostPool {} is paused (annotation {PAUSED_ANNOTATION}): nothing is changed for its testers until it is removed",
                    p.name_any()
                ),
            )
        })
}

/// Records that the tester is paused (one status write, only when that is news) and waits.
pub async fn hold(
    tester: Arc<Tester>,
    ctx: Arc<Context>,
    reason: &str,
    message: &str,
) -> Result<Action> {
    let mut pass = Pass::new(&tester, &ctx)?;
    pass.set(PAUSED, true, reason, message);
    pass.conclude().await?;
    Ok(if reason == "HostPoolPaused" {
        Action::requeue(POOL_PAUSE_RECHECK)
    } else {
        Action::await_change()
    })
}

/// Marks a paused tester as resumed.
pub fn resume(pass: &mut Pass<'_>) {
    if pass.is_true(PAUSED) {
        pass.set(
            PAUSED,
            false,
            "Resumed",
            "the pause was lifted; reconciling again",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tester;

    fn annotated<K: kube::Resource>(mut k: K) -> K {
        k.meta_mut()
            .annotations
            .get_or_insert_with(Default::default)
            .insert(PAUSED_ANNOTATION.into(), "true".into());
        k
    }

    fn pool() -> HostPool {
        let mut p = HostPool::new(
            "pool",
            serde_json::from_value(serde_json::json!({"nodes": [1]})).unwrap(),
        );
        p.metadata.namespace = Some("team".into());
        p
    }

    #[test]
    fn the_testers_own_annotation_or_its_pools_pauses_it() {
        let t = tester("a", "a");
        assert_eq!(paused_by(&t, Some(&pool())), None);
        assert_eq!(paused_by(&t, None), None);
        let (reason, _) = paused_by(&annotated(t.clone()), Some(&pool())).unwrap();
        assert_eq!(reason, "PausedByAnnotation");
        let (reason, message) = paused_by(&t, Some(&annotated(pool()))).unwrap();
        assert_eq!(reason, "HostPoolPaused");
        assert!(message.contains("HostPool pool"), "{message}");
    }
}
