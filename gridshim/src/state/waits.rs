//! What the simulator drew on each VM's and gateway name's way to ready (realistic profile
//! only), so a benchmark can compute the grid's own floor: the chain blocks, the node's
//! workload times, the route's delay and the install's downloads and configures, in real-grid
//! seconds (before dividing by the time scale).
//!
//! A contract's block and its workloads' waits are drawn before its VM or gateway exists: they
//! are held by contract (and a name contract's block by name) in memory, and copied into the
//! VM's or the gateway's record (persisted, shown by `/inspect`) when the node makes it. What
//! comes after (reachability, install) goes straight to the VM's record. On `instant` nothing is
//! drawn, so nothing is held or recorded.

use super::*;
use crate::timing::Draw;

/// The record of one draw (`None` when nothing was drawn), rounded to the millisecond.
pub fn drawn(wait: WaitFor, app: Option<&str>, draw: Draw) -> Option<DrawnWait> {
    draw.real_secs.map(|secs| DrawnWait {
        wait,
        app: app.map(str::to_string),
        secs: (secs * 1000.0).round() / 1000.0,
    })
}

/// Waits drawn before the thing they are for exists.
#[derive(Debug, Default)]
pub struct PendingWaits {
    /// By node contract: its block, then its workloads' waits.
    by_contract: HashMap<u64, Vec<DrawnWait>>,
    /// By name: its name contract's block.
    by_name: HashMap<String, Vec<DrawnWait>>,
}

impl PendingWaits {
    /// Holds a wait drawn for node contract `cid`.
    pub fn contract(&mut self, cid: u64, wait: WaitFor, draw: Draw) {
        if let Some(d) = drawn(wait, None, draw) {
            self.by_contract.entry(cid).or_default().push(d);
        }
    }

    /// Holds a wait drawn for the name `name`.
    pub fn name(&mut self, name: &str, wait: WaitFor, draw: Draw) {
        if let Some(d) = drawn(wait, None, draw) {
            self.by_name.entry(name.to_string()).or_default().push(d);
        }
    }

    /// The waits of a new VM of contract `cid`: its contract's, but any gateway's.
    pub fn for_vm(&self, cid: u64) -> Vec<DrawnWait> {
        self.by_contract
            .get(&cid)
            .into_iter()
            .flatten()
            .filter(|d| d.wait != WaitFor::Gateway)
            .cloned()
            .collect()
    }

    /// The waits of a new gateway for `name` in contract `cid`: the name contract's block, the
    /// deployment's block and the gateway's set-up (not a VM's workloads of the same contract).
    pub fn for_gateway(&self, name: &str, cid: u64) -> Vec<DrawnWait> {
        let of_contract = self
            .by_contract
            .get(&cid)
            .into_iter()
            .flatten()
            .filter(|d| matches!(d.wait, WaitFor::NodeContractBlock | WaitFor::Gateway));
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .chain(of_contract)
            .cloned()
            .collect()
    }

    /// Drops what was held for a cancelled node contract.
    pub fn forget_contract(&mut self, cid: u64) {
        self.by_contract.remove(&cid);
    }

    /// Drops what was held for a cancelled name.
    pub fn forget_name(&mut self, name: &str) {
        self.by_name.remove(name);
    }
}

impl Sim {
    /// Records a wait drawn for the live VM `key` (its reachability, its install) and persists
    /// it; nothing when nothing was drawn or the VM is gone.
    pub fn note_vm_wait(&self, key: &str, wait: WaitFor, app: Option<&str>, draw: Draw) {
        let Some(d) = drawn(wait, app, draw) else {
            return;
        };
        let mut w = self.world.lock().expect("world lock");
        if let Some(v) = w.vms.get_mut(key) {
            v.waits.push(d);
            if let Err(e) = self.save_vm(v) {
                tracing::warn!(vm = key, error = %e, "cannot persist the VM's waits");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::{Profile, Timing, Wait};

    fn kinds(v: &[DrawnWait]) -> Vec<WaitFor> {
        v.iter().map(|d| d.wait).collect()
    }

    #[test]
    fn instant_records_nothing() {
        let t = Timing::new(Profile::Instant, 1.0);
        let mut p = PendingWaits::default();
        p.contract(1, WaitFor::NodeContractBlock, t.draw(Wait::Block));
        p.contract(1, WaitFor::VmBoot, t.draw(Wait::VmBoot));
        p.name("alice", WaitFor::NameContractBlock, t.draw(Wait::Block));
        assert!(p.for_vm(1).is_empty());
        assert!(p.for_gateway("alice", 1).is_empty());
        assert_eq!(
            drawn(WaitFor::Reachability, None, t.draw(Wait::Reachability)),
            None
        );
    }

    #[test]
    fn realistic_records_real_grid_seconds_and_sorts_them_out() {
        let t = Timing::new(Profile::Realistic, 60.0);
        let mut p = PendingWaits::default();
        let block = t.draw(Wait::Block);
        p.contract(1, WaitFor::NodeContractBlock, block);
        p.contract(1, WaitFor::Zmount, t.draw(Wait::Zmount));
        let boot = t.draw(Wait::VmBoot);
        p.contract(1, WaitFor::VmBoot, boot);
        p.contract(1, WaitFor::Gateway, t.draw(Wait::Gateway));
        p.contract(2, WaitFor::NodeContractBlock, t.draw(Wait::Block));
        p.contract(2, WaitFor::Gateway, t.draw(Wait::Gateway));
        p.name("alice", WaitFor::NameContractBlock, t.draw(Wait::Block));

        let vm = p.for_vm(1);
        assert_eq!(
            kinds(&vm),
            [WaitFor::NodeContractBlock, WaitFor::Zmount, WaitFor::VmBoot]
        );
        // Real-grid seconds, not the scaled sleep: a block is 6 s (0.1 s asleep at 60×).
        assert_eq!(vm[0].secs, 6.0);
        assert_eq!(block.sleep, std::time::Duration::from_millis(100));
        assert!((30.0..=60.0).contains(&vm[2].secs), "{}", vm[2].secs);
        assert!((vm[2].secs - boot.real_secs.unwrap()).abs() < 0.001);

        let gw = p.for_gateway("alice", 2);
        assert_eq!(
            kinds(&gw),
            [
                WaitFor::NameContractBlock,
                WaitFor::NodeContractBlock,
                WaitFor::Gateway
            ]
        );
        assert!((10.0..=60.0).contains(&gw[2].secs));

        let configure = drawn(
            WaitFor::InstallConfigure,
            Some("cockpit"),
            t.draw(Wait::InstallConfigure),
        )
        .unwrap();
        assert_eq!(configure.app.as_deref(), Some("cockpit"));
        assert!((200.0..=320.0).contains(&configure.secs));

        p.forget_contract(1);
        p.forget_name("alice");
        assert!(p.for_vm(1).is_empty());
        assert_eq!(
            kinds(&p.for_gateway("alice", 2)),
            [WaitFor::NodeContractBlock, WaitFor::Gateway]
        );
    }
}
