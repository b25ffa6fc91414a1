//! Placement of testers on the nodes of a HostPool, by real free disk and memory.
//!
//! The grid proxy's used figures lag new deployments, so two placements made from the same
//! listing could both take a node's last place. The [`Ledger`] prevents that: it holds every
//! placement the controller has made (rebuilt from Tester statuses at start-up) and subtracts
//! each from a listing until that listing was taken after the grid counted the placement.
//! [`place`] is pure; the caller holds the ledger's lock from choosing to recording the
//! placement in the Tester's status, so no two testers are ever placed from the same view.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use gridapi::proxy::{Node, NodeStatus};

use crate::resources::PlacementPolicy;

const GIB: u64 = 1 << 30;

/// What one tester's machine needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// vCPUs (not a placement constraint on the grid, which overcommits CPU).
    pub cpu: u32,
    /// Memory, bytes.
    pub memory: u64,
    /// Disk, bytes.
    pub disk: u64,
}

impl Need {
    /// From GiB figures.
    pub fn from_gib(cpu: u32, memory_gib: u32, disk_gib: u32) -> Self {
        Self {
            cpu,
            memory: u64::from(memory_gib) * GIB,
            disk: u64::from(disk_gib) * GIB,
        }
    }
}

/// A node as the proxy listed it, with its real free capacity.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    /// Grid node id.
    pub node_id: u32,
    /// Up and healthy in the proxy.
    pub online: bool,
    /// The node's gateway domain.
    pub domain: Option<String>,
    /// Free memory in bytes per the proxy: total − used − reserve.
    pub free_memory: u64,
    /// Free SSD in bytes per the proxy: total − used − reserve.
    pub free_disk: u64,
}

impl NodeView {
    /// Free capacity as the proxy lists it: total − used. The proxy's `used` already includes
    /// the node's reserves (memory max(10 %, 2 GiB), SSD 20 GiB), so they are not subtracted
    /// twice.
    pub fn from_node(node: &Node) -> Self {
        let free = node.free();
        Self {
            node_id: node.info.node_id,
            online: node.info.status == NodeStatus::Up && node.info.healthy,
            domain: node.info.public_config.domain().map(str::to_string),
            free_memory: free.mru,
            free_disk: free.sru,
        }
    }
}

/// A placement the controller made, as the ledger holds it.
#[derive(Clone, Debug)]
pub struct Holding {
    /// Node it is on.
    pub node_id: u32,
    /// What it holds.
    pub need: Need,
    /// When the grid's listing counts it: unknown until the machine is deployed, then the
    /// deployment time plus the proxy's lag.
    pub counted_after: Option<Instant>,
}

/// Every placement of the controller, keyed by Tester UID.
#[derive(Default, Debug)]
pub struct Ledger {
    holdings: HashMap<String, Holding>,
    /// Nodes that refused a deployment for capacity although the proxy showed room, until when.
    refused: HashMap<u32, Instant>,
}

/// Why a tester could not be placed; the strings are the `Scheduled` condition's reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unschedulable {
    /// No online node has the disk.
    InsufficientDisk,
    /// No online node has the memory.
    InsufficientMemory,
    /// Every node of the pool is offline (or the pool has no node).
    NoNodeOnline,
}

impl Unschedulable {
    /// The condition reason.
    pub fn reason(self) -> &'static str {
        match self {
            Unschedulable::InsufficientDisk => "InsufficientDisk",
            Unschedulable::InsufficientMemory => "InsufficientMemory",
            Unschedulable::NoNodeOnline => "NoNodeOnline",
        }
    }
}

/// Room left on a node once the ledger's uncounted holdings are taken off.
#[derive(Clone, Debug, PartialEq)]
pub struct Room {
    /// The node.
    pub node: NodeView,
    /// Free memory, bytes.
    pub memory: u64,
    /// Free disk, bytes.
    pub disk: u64,
    /// Testers of the ledger on this node.
    pub testers: u32,
}

impl Room {
    /// How many more of `need` fit.
    pub fn fit(&self, need: Need) -> u32 {
        if !self.node.online || need.memory == 0 || need.disk == 0 {
            return 0;
        }
        (self.memory / need.memory)
            .min(self.disk / need.disk)
            .try_into()
            .unwrap_or(u32::MAX)
    }
}

impl Ledger {
    /// Records (or replaces) a tester's holding.
    pub fn hold(&mut self, uid: &str, holding: Holding) {
        self.holdings.insert(uid.to_string(), holding);
    }

    /// Forgets a tester's holding (deleted, or rescheduled).
    pub fn release(&mut self, uid: &str) {
        self.holdings.remove(uid);
    }

    /// The tester's holding, if any.
    pub fn holding(&self, uid: &str) -> Option<&Holding> {
        self.holdings.get(uid)
    }

    /// Marks a holding as deployed: the proxy counts it after `lag`.
    pub fn deployed(&mut self, uid: &str, lag: Duration) {
        if let Some(h) = self.holdings.get_mut(uid)
            && h.counted_after.is_none()
        {
            h.counted_after = Some(Instant::now() + lag);
        }
    }

    /// Keeps testers off a node that refused for capacity, for `cool_down`.
    pub fn refused(&mut self, node_id: u32, cool_down: Duration) {
        self.refused.insert(node_id, Instant::now() + cool_down);
    }

    /// The room on each node of a listing taken at `listed_at`.
    pub fn rooms(&self, nodes: &[NodeView], listed_at: Instant) -> Vec<Room> {
        let mut per_node: BTreeMap<u32, (u64, u64, u32)> = BTreeMap::new();
        for h in self.holdings.values() {
            let e = per_node.entry(h.node_id).or_default();
            e.2 += 1;
            let counted = h.counted_after.is_some_and(|t| t <= listed_at);
            if !counted {
                e.0 += h.need.memory;
                e.1 += h.need.disk;
            }
        }
        let now = Instant::now();
        nodes
            .iter()
            .map(|n| {
                let (mem, disk, testers) = per_node.get(&n.node_id).copied().unwrap_or_default();
                let mut node = n.clone();
                if self
                    .refused
                    .get(&n.node_id)
                    .is_some_and(|until| *until > now)
                {
                    node.online = false;
                }
                Room {
                    memory: n.free_memory.saturating_sub(mem),
                    disk: n.free_disk.saturating_sub(disk),
                    testers,
                    node,
                }
            })
            .collect()
    }
}

/// Chooses a node for `need` among `rooms`: `spread` takes the node with the most free disk
/// (then memory), `binpack` the one with the least that still fits. Ties go to the lower id.
pub fn place(rooms: &[Room], need: Need, policy: PlacementPolicy) -> Result<u32, Unschedulable> {
    let online: Vec<&Room> = rooms.iter().filter(|r| r.node.online).collect();
    if online.is_empty() {
        return Err(Unschedulable::NoNodeOnline);
    }
    let with_disk: Vec<&Room> = online
        .iter()
        .copied()
        .filter(|r| r.disk >= need.disk)
        .collect();
    if with_disk.is_empty() {
        return Err(Unschedulable::InsufficientDisk);
    }
    let fitting: Vec<&Room> = with_disk
        .into_iter()
        .filter(|r| r.memory >= need.memory)
        .collect();
    let chosen = match policy {
        PlacementPolicy::Spread => fitting
            .iter()
            .max_by_key(|r| (r.disk, r.memory, std::cmp::Reverse(r.node.node_id))),
        PlacementPolicy::Binpack => fitting
            .iter()
            .min_by_key(|r| (r.disk, r.memory, r.node.node_id)),
    };
    chosen
        .map(|r| r.node.node_id)
        .ok_or(Unschedulable::InsufficientMemory)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u32, disk_gib: u64, mem_gib: u64) -> NodeView {
        NodeView {
            node_id: id,
            online: true,
            domain: Some("gent01.grid.localhost".into()),
            free_memory: mem_gib * GIB,
            free_disk: disk_gib * GIB,
        }
    }

    fn need() -> Need {
        Need::from_gib(1, 4, 50)
    }

    #[test]
    fn spread_follows_free_disk_and_binpack_fills_first() {
        let nodes = [node(1, 120, 64), node(2, 500, 64)];
        let rooms = Ledger::default().rooms(&nodes, Instant::now());
        assert_eq!(place(&rooms, need(), PlacementPolicy::Spread), Ok(2));
        assert_eq!(place(&rooms, need(), PlacementPolicy::Binpack), Ok(1));
    }

    #[test]
    fn reasons_say_what_is_missing() {
        let rooms = Ledger::default().rooms(&[node(1, 10, 64)], Instant::now());
        assert_eq!(
            place(&rooms, need(), PlacementPolicy::Spread),
            Err(Unschedulable::InsufficientDisk)
        );
        let rooms = Ledger::default().rooms(&[node(1, 100, 2)], Instant::now());
        assert_eq!(
            place(&rooms, need(), PlacementPolicy::Spread),
            Err(Unschedulable::InsufficientMemory)
        );
        let mut off = node(1, 100, 64);
        off.online = false;
        let rooms = Ledger::default().rooms(&[off], Instant::now());
        assert_eq!(
            place(&rooms, need(), PlacementPolicy::Spread),
            Err(Unschedulable::NoNodeOnline)
        );
    }

    #[test]
    fn uncounted_holdings_are_subtracted_until_the_listing_counts_them() {
        let nodes = [node(1, 100, 64)];
        let mut ledger = Ledger::default();
        ledger.hold(
            "a",
            Holding {
                node_id: 1,
                need: need(),
                counted_after: None,
            },
        );
        // The listing does not show `a` yet: only one 50 GiB place is left.
        let rooms = ledger.rooms(&nodes, Instant::now());
        assert_eq!(rooms[0].fit(need()), 1);
        assert_eq!(rooms[0].testers, 1);
        ledger.hold(
            "b",
            Holding {
                node_id: 1,
                need: need(),
                counted_after: None,
            },
        );
        let rooms = ledger.rooms(&nodes, Instant::now());
        assert_eq!(
            place(&rooms, need(), PlacementPolicy::Spread),
            Err(Unschedulable::InsufficientDisk)
        );
        // Once deployed and past the lag, a listing taken later already counts them.
        ledger.deployed("a", Duration::ZERO);
        ledger.deployed("b", Duration::ZERO);
        let rooms = ledger.rooms(&nodes, Instant::now() + Duration::from_millis(1));
        assert_eq!(rooms[0].fit(need()), 2);
    }

    #[test]
    fn a_node_that_refused_is_avoided_for_a_while() {
        let nodes = [node(1, 500, 64), node(2, 100, 64)];
        let mut ledger = Ledger::default();
        ledger.refused(1, Duration::from_secs(60));
        let rooms = ledger.rooms(&nodes, Instant::now());
        assert_eq!(place(&rooms, need(), PlacementPolicy::Spread), Ok(2));
    }

    #[test]
    fn free_capacity_is_total_minus_the_proxys_used_which_holds_the_reserves() {
        let n = Node {
            info: gridapi::proxy::NodeInfo {
                node_id: 7,
                farm_id: 1,
                twin_id: 1,
                status: NodeStatus::Up,
                healthy: true,
                ..Default::default()
            },
            total_resources: gridapi::proxy::Resources {
                cru: 8,
                mru: 64 * GIB,
                sru: 1000 * GIB,
                hru: 0,
            },
            used_resources: gridapi::proxy::Resources {
                cru: 0,
                mru: 4 * GIB,
                sru: 100 * GIB,
                hru: 0,
            },
        };
        // The proxy's used figures already hold the reserves (20 GiB SSD, 10 % of memory):
        // subtracting them again made every node look 20 GiB and 6.4 GiB smaller.
        let v = NodeView::from_node(&n);
        assert_eq!(v.free_disk, 900 * GIB);
        assert_eq!(v.free_memory, 60 * GIB);
    }
}
