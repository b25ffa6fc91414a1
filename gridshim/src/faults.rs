//! Fault injection: the failures of GRID.md's last section, produced on demand.
//!
//! A fault has a kind, a mode (once, counted, probabilistic, always) and a scope (node, name,
//! call). Each place in the simulator where a real failure can happen asks [`Faults::fire`] with
//! what it is doing; a matching fault fires (and is used up according to its mode).
//!
//! The admin API that injects them is the `control` module.

use std::sync::Mutex;

use rand::Rng;

use crate::wire::*;

/// What a place in the simulator is doing, to match against fault scopes.
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    kind: &'a str,
    call: &'a str,
    node: Option<u32>,
    name: Option<&'a str>,
}

impl<'a> Hit<'a> {
    /// Fault kind (snake_case, as on the wire) asked for during `call`.
    pub fn new(kind: &'a str, call: &'a str) -> Self {
        Hit {
            kind,
            call,
            node: None,
            name: None,
        }
    }
    /// The node concerned.
    pub fn node(mut self, node: Option<u32>) -> Self {
        self.node = node;
        self
    }
    /// The name concerned.
    pub fn name(mut self, name: Option<&'a str>) -> Self {
        self.name = name;
        self
    }
}

/// The wire name of a fault kind.
pub fn kind_name(k: &FaultKind) -> &'static str {
    match k {
        FaultKind::GatewayFailedButCreated => "gateway_failed_but_created",
        FaultKind::DeployTimeoutButCreated => "deploy_timeout_but_created",
        FaultKind::ResultWithoutAddress => "result_without_address",
        FaultKind::CapacityRefusal => "capacity_refusal",
        FaultKind::NodeUnreachable => "node_unreachable",
        FaultKind::ChainTimeoutAfterLanded => "chain_timeout_after_landed",
        FaultKind::Cancel502 => "cancel502",
        FaultKind::StaleConnection => "stale_connection",
        FaultKind::SlowReachability { .. } => "slow_reachability",
        FaultKind::ServiceStartRace => "service_start_race",
        FaultKind::AppUnhealthy => "app_unhealthy",
    }
}

/// The injected faults.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<(u64, Vec<Fault>)>,
}

impl Faults {
    /// Adds a fault.
    pub fn inject(&self, spec: FaultSpec) -> Fault {
        let mut g = self.inner.lock().expect("faults lock");
        g.0 += 1;
        let f = Fault {
            id: g.0,
            spec,
            fired: 0,
        };
        tracing::info!(id = f.id, kind = kind_name(&f.spec.kind), scope = ?f.spec.scope, mode = ?f.spec.mode, "fault injected");
        g.1.push(f.clone());
        f
    }

    /// Current faults.
    pub fn list(&self) -> Vec<Fault> {
        self.inner.lock().expect("faults lock").1.clone()
    }

    /// Removes one; false when unknown.
    pub fn remove(&self, id: u64) -> bool {
        let mut g = self.inner.lock().expect("faults lock");
        let before = g.1.len();
        g.1.retain(|f| f.id != id);
        g.1.len() != before
    }

    /// Removes all.
    pub fn clear(&self) {
        self.inner.lock().expect("faults lock").1.clear();
    }

    /// Fires the first fault matching `hit`, using it up per its mode.
    pub fn fire(&self, hit: Hit<'_>) -> Option<FaultKind> {
        let mut g = self.inner.lock().expect("faults lock");
        let mut fired = None;
        let mut remove = None;
        for (i, f) in g.1.iter_mut().enumerate() {
            if kind_name(&f.spec.kind) != hit.kind {
                continue;
            }
            let s = &f.spec.scope;
            if s.call.as_deref().is_some_and(|c| c != hit.call)
                || s.node_id.is_some_and(|n| Some(n) != hit.node)
                || s.name.as_deref().is_some_and(|n| Some(n) != hit.name)
            {
                continue;
            }
            let go = match &mut f.spec.mode {
                FaultMode::Once => {
                    remove = Some(i);
                    true
                }
                FaultMode::Count { count } => {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        remove = Some(i);
                    }
                    true
                }
                FaultMode::Probability { p } => rand::rng().random_bool(p.clamp(0.0, 1.0)),
                FaultMode::Always => true,
            };
            if go {
                f.fired += 1;
                tracing::info!(id = f.id, kind = hit.kind, call = hit.call, node = ?hit.node, name = ?hit.name, "fault fired");
                fired = Some(f.spec.kind.clone());
                break;
            }
        }
        if let Some(i) = remove
            && fired.is_some()
        {
            g.1.remove(i);
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: FaultKind, mode: FaultMode, scope: FaultScope) -> FaultSpec {
        FaultSpec { kind, mode, scope }
    }

    #[test]
    fn once_fires_once_and_scope_filters() {
        let f = Faults::default();
        f.inject(spec(
            FaultKind::Cancel502,
            FaultMode::Once,
            FaultScope {
                node_id: Some(3),
                ..Default::default()
            },
        ));
        assert!(
            f.fire(Hit::new("cancel502", "cancel_contract").node(Some(4)))
                .is_none()
        );
        assert!(
            f.fire(Hit::new("cancel502", "cancel_contract").node(Some(3)))
                .is_some()
        );
        assert!(
            f.fire(Hit::new("cancel502", "cancel_contract").node(Some(3)))
                .is_none()
        );
    }

    #[test]
    fn counted_and_probability() {
        let f = Faults::default();
        f.inject(spec(
            FaultKind::NodeUnreachable,
            FaultMode::Count { count: 2 },
            FaultScope::default(),
        ));
        assert!(f.fire(Hit::new("node_unreachable", "deploy")).is_some());
        assert!(f.fire(Hit::new("node_unreachable", "deploy")).is_some());
        assert!(f.fire(Hit::new("node_unreachable", "deploy")).is_none());
        f.inject(spec(
            FaultKind::AppUnhealthy,
            FaultMode::Probability { p: 0.0 },
            FaultScope::default(),
        ));
        assert!(f.fire(Hit::new("app_unhealthy", "health")).is_none());
        assert_eq!(f.list().len(), 1, "probabilistic faults stay until removed");
    }
}
