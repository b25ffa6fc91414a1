//! At rest, a Ready tester is verified in full only now and then (`VERIFY_INTERVAL`, with
//! jitter so a thousand testers do not come due together): the machine, its name, gate settings,
//! tokens, keys and install change only through this controller, whose own changes start a full
//! pass. The passes in between are light: the gate's outside proof (every pass, as before) and
//! the apps' health (on `APP_HEALTH_INTERVAL`), with no grid call, Secret read or engine call
//! otherwise.
//!
//! A full pass runs instead when anything that could change the outcome did: the spec (its
//! generation), an annotation (rotation, rebuild, pause), deletion, the operator's AI-keys
//! Secret or a SharedEngine the tester uses (their watches forget the testers they wake), a
//! controller restart (nothing is remembered), a light pass that finds the gate failing, or the
//! interval's end.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use rand::Rng;

use super::{Flow, Pass, conditions, gate, remediation};
use crate::{
    context::{Context, Verified},
    error::Result,
    resources::Tester,
};

/// What a full pass's outcome depends on in the Tester object itself.
fn fingerprint(tester: &Tester) -> u64 {
    let mut h = DefaultHasher::new();
    tester.metadata.generation.hash(&mut h);
    tester.metadata.deletion_timestamp.is_some().hash(&mut h);
    tester.annotations().hash(&mut h);
    h.finish()
}

/// Whether `tester` was verified in full recently enough, and has not changed since.
pub fn is_fresh(ctx: &Context, tester: &Tester) -> bool {
    let Some(uid) = tester.uid() else {
        return false;
    };
    let ready = tester.status.as_ref().is_some_and(|s| {
        s.observed_generation == tester.metadata.generation
            && crate::resources::find_condition(&s.conditions, conditions::READY)
                .is_some_and(|c| c.status == "True")
    });
    ready
        && ctx
            .verified
            .lock()
            .ok()
            .and_then(|m| m.get(&uid).copied())
            .is_some_and(|v| v.fingerprint == fingerprint(tester) && v.until > Instant::now())
}

/// Records a full pass that left the tester Ready: light passes until the interval (±20 %)
/// ends.
pub fn record(ctx: &Context, tester: &Tester, interval: Duration) {
    let Some(uid) = tester.uid() else { return };
    let jitter = rand::rng().random_range(0.8..1.2);
    let until = Instant::now() + interval.mul_f64(jitter);
    if let Ok(mut m) = ctx.verified.lock() {
        m.insert(
            uid,
            Verified {
                fingerprint: fingerprint(tester),
                until,
            },
        );
    }
}

/// Makes the next pass of a tester a full one.
pub fn forget(ctx: &Context, uid: &str) {
    if let Ok(mut m) = ctx.verified.lock() {
        m.remove(uid);
    }
}

/// A light pass: the pool's health (remediation), the gate proven from outside, the apps'
/// health when due. `Ok(false)`: the gate failed its proof, run the full steps now.
pub async fn light(pass: &mut Pass<'_>) -> Result<bool> {
    remediation::remediate_if_unhealthy(pass).await?;
    if !pass.is_true(conditions::READY) {
        return Ok(false);
    }
    if !gate::prove_recorded(pass).await {
        return Ok(false);
    }
    match super::apps::apps_health(pass).await? {
        Flow::Continue => Ok(true),
        Flow::Requeue(_) => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tester;

    #[test]
    fn any_change_of_spec_annotations_or_deletion_changes_the_fingerprint() {
        let t = tester("a", "alice");
        let base = fingerprint(&t);
        assert_eq!(fingerprint(&t.clone()), base);
        let mut spec = t.clone();
        spec.metadata.generation = Some(spec.metadata.generation.unwrap_or(1) + 1);
        let mut annotated = t.clone();
        annotated
            .metadata
            .annotations
            .get_or_insert_default()
            .insert("sandbox.hero.dev/rotate-engine-token".into(), "1".into());
        let mut deleting = t.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        for changed in [spec, annotated, deleting] {
            assert_ne!(fingerprint(&changed), base);
        }
    }
}
