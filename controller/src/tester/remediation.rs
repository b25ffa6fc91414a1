//! Moving a machine off an unhealthy node, as Cluster API's MachineHealthCheck does for
//! machines: a tester whose machine has not answered (or whose node is down) for longer than its
//! HostPool's `remediation.unhealthyAfter` gets a new machine on another node of the pool,
//! keeping its account, name (the route moves), tokens and access, as the rebuild annotation
//! does. A breaker stops it while too many of the pool's testers are unhealthy at once (a
//! grid-wide outage must not cause a stampede of rebuilds). The old contracts are retired:
//! cancelled until the grid accepts, and on delete.

use std::{fmt, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kube::{ResourceExt, runtime::events::EventType};
use tracing::info;

use super::{
    Pass,
    conditions::{MACHINE_READY, REQUIRED},
    grid::cancel_contract,
};
use crate::{
    error::Result,
    resources::{MachineStatus, Tester, find_condition},
};

/// `MachineReady` reasons that mean the machine stopped answering or its node went away.
pub const UNHEALTHY_REASONS: [&str; 3] = ["Unreachable", "UnreachableTooLong", "GridRetrying"];

/// How long the node a machine was moved off is kept out of placements.
const AVOID_DEAD_NODE: Duration = Duration::from_secs(3600);

/// Since when the tester's machine has been unhealthy, if it is: placed, and `MachineReady`
/// False for a reason that means it does not answer.
pub fn unhealthy_since(t: &Tester) -> Option<Timestamp> {
    let s = t.status.as_ref()?;
    s.placement.as_ref()?;
    let c = find_condition(&s.conditions, MACHINE_READY)?;
    (c.status == "False" && UNHEALTHY_REASONS.contains(&c.reason.as_str()))
        .then_some(c.last_transition_time.0)
}

/// How many of a pool's testers are unhealthy, and whether that is too many to move any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    /// Testers whose machine is unhealthy.
    pub unhealthy: u32,
    /// Testers placed in the pool.
    pub placed: u32,
    /// The most unhealthy testers, in percent, that still allows moving machines.
    pub max_percent: u32,
}

impl Breaker {
    /// Counts the placed testers among `testers` (a pool's).
    pub fn of<'a>(testers: impl Iterator<Item = &'a Tester>, max_percent: u32) -> Self {
        let (mut unhealthy, mut placed) = (0, 0);
        for t in testers {
            if t.status.as_ref().is_some_and(|s| s.placement.is_some()) {
                placed += 1;
                unhealthy += u32::from(unhealthy_since(t).is_some());
            }
        }
        Self {
            unhealthy,
            placed,
            max_percent,
        }
    }

    /// Whether too many are unhealthy to move any machine.
    pub fn open(&self) -> bool {
        u64::from(self.unhealthy) * 100 > u64::from(self.max_percent) * u64::from(self.placed)
    }
}

impl fmt::Display for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = if self.placed == 0 {
            0
        } else {
            u64::from(self.unhealthy) * 100 / u64::from(self.placed)
        };
        write!(
            f,
            "{} of {} testers ({pct}%) unhealthy; machines are moved only while at most {}% are",
            self.unhealthy, self.placed, self.max_percent
        )
    }
}

/// Moves the machine when it has been unhealthy for too long and the pool's breaker allows;
/// cancels the contracts of machines moved before.
pub async fn remediate_if_unhealthy(pass: &mut Pass<'_>) -> Result<()> {
    cancel_retired(pass).await;
    let Some(since) = unhealthy_since(pass.tester) else {
        return Ok(());
    };
    let Some(pool) = pass.ctx.pool_of(pass.tester) else {
        return Ok(());
    };
    let Some(after) = pool.spec.remediation.after() else {
        return Ok(());
    };
    let unhealthy_for = Timestamp::now().duration_since(since).as_secs_f64();
    if unhealthy_for < after.as_secs_f64() {
        return Ok(());
    }
    let Some(stores) = pass.ctx.stores.get() else {
        return Ok(());
    };
    let testers = stores.testers.state();
    let breaker = Breaker::of(
        testers
            .iter()
            .map(|t| t.as_ref())
            .filter(|t| t.namespace() == pass.tester.namespace())
            .filter(|t| t.spec.host_pool == pass.tester.spec.host_pool),
        pool.spec.remediation.max_unhealthy,
    );
    if breaker.open() {
        info!(tester = %pass.name, %breaker, "not moving the machine: too many unhealthy");
        return Ok(());
    }
    let Some(old_node) = pass.status.placement.as_ref().map(|p| p.node_id) else {
        return Ok(());
    };
    retire_machine(pass);
    {
        let mut ledger = pass.ctx.ledger.lock().await;
        ledger.release(&pass.uid);
        ledger.refused(old_node, AVOID_DEAD_NODE);
    }
    let minutes = unhealthy_for / 60.0;
    let msg = format!(
        "the machine on node {old_node} did not answer for {minutes:.1} min (more than {}); building a new one on another node",
        humantime::format_duration(after)
    );
    // Every step is done again for the new machine.
    for c in REQUIRED {
        pass.set(c, false, "Remediating", &msg);
    }
    pass.event(EventType::Warning, "Remediated", &msg);
    pass.ctx
        .metrics
        .remediations
        .with_label_values(&[&pass.ns, &pass.tester.spec.host_pool])
        .inc();
    pass.persist().await?;
    cancel_retired(pass).await;
    Ok(())
}

/// Forgets the machine in the status (its contracts go to `retiredContracts`) and its
/// placement; the next steps build a new one (new keys: a new private address).
fn retire_machine(pass: &mut Pass<'_>) {
    let m = pass
        .status
        .machine
        .get_or_insert_with(MachineStatus::default);
    let old: Vec<u64> = [m.gateway_contract_id.take(), m.contract_id.take()]
        .into_iter()
        .flatten()
        .collect();
    for id in old {
        if !m.retired_contracts.contains(&id) {
            m.retired_contracts.push(id);
        }
    }
    m.private_address = None;
    m.machine_id = None;
    m.remediations += 1;
    pass.status.placement = None;
    pass.status.host = None;
    pass.status.installed = None;
}

/// Cancels retired contracts; those the grid does not accept yet stay for the next pass.
async fn cancel_retired(pass: &mut Pass<'_>) {
    let retired = pass
        .status
        .machine
        .as_ref()
        .map(|m| m.retired_contracts.clone())
        .unwrap_or_default();
    let mut left = Vec::new();
    for id in retired {
        if let Err(e) = cancel_contract(pass, id).await {
            info!(tester = %pass.name, contract = id, error = %e, "retired contract not cancelled yet");
            left.push(id);
        }
    }
    if let Some(m) = pass.status.machine.as_mut() {
        m.retired_contracts = left;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{resources::Placement, testing::tester};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn with_machine(name: &str, reason: &str) -> Tester {
        let mut t = tester(name, name);
        t.status = Some(crate::resources::TesterStatus {
            placement: Some(Placement {
                node_id: 1,
                cpu: 1,
                memory_bytes: 1,
                disk_bytes: 1,
            }),
            conditions: vec![Condition {
                type_: MACHINE_READY.into(),
                status: if reason == "Reachable" {
                    "True"
                } else {
                    "False"
                }
                .into(),
                reason: reason.into(),
                message: String::new(),
                observed_generation: Some(1),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
            }],
            ..Default::default()
        });
        t
    }

    #[test]
    fn only_a_machine_that_stopped_answering_is_unhealthy() {
        assert!(unhealthy_since(&with_machine("a", "Unreachable")).is_some());
        assert!(unhealthy_since(&with_machine("a", "GridRetrying")).is_some());
        assert!(unhealthy_since(&with_machine("a", "Reachable")).is_none());
        assert!(unhealthy_since(&with_machine("a", "Deploying")).is_none());
        assert!(unhealthy_since(&tester("unplaced", "x")).is_none());
    }

    #[test]
    fn the_breaker_opens_above_the_share_of_unhealthy_testers() {
        let pool = |sick: usize, well: usize| {
            (0..sick)
                .map(|i| with_machine(&format!("s{i}"), "Unreachable"))
                .chain((0..well).map(|i| with_machine(&format!("w{i}"), "Reachable")))
                .collect::<Vec<_>>()
        };
        let one_of_three = pool(1, 2);
        let b = Breaker::of(one_of_three.iter(), 40);
        assert_eq!((b.unhealthy, b.placed, b.open()), (1, 3, false));
        let three_of_five = pool(3, 2);
        let b = Breaker::of(three_of_five.iter(), 40);
        assert!(b.open(), "{b}");
        assert!(
            b.to_string().starts_with("3 of 5 testers (60%) unhealthy"),
            "{b}"
        );
        let two_of_five = pool(2, 3);
        assert!(
            !Breaker::of(two_of_five.iter(), 40).open(),
            "40% is still allowed"
        );
        // Unplaced testers do not count.
        let mut with_new = pool(1, 2);
        with_new.push(tester("new", "new"));
        assert_eq!(Breaker::of(with_new.iter(), 40).placed, 3);
    }
}
