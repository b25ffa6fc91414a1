//! The records of what the grid holds: sessions, deployments, gateways, VMs and nodes.

use super::*;

/// A chain/node session.
#[derive(Debug, Clone)]
pub struct SessionRec {
    /// Twin.
    pub twin_id: u32,
    /// The connection's background task died: every call fails until a new session is opened.
    pub stale: bool,
}

/// A deployment as the node holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentRec {
    /// Node.
    pub node_id: u32,
    /// The deployment with current results.
    pub deployment: Deployment,
    /// Every state change, oldest first.
    pub changes: Vec<WorkloadChange>,
}

/// A gateway route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayRec {
    /// `NAME.<domain>`, lower case.
    pub fqdn: String,
    /// The gateway name.
    pub name: String,
    /// Contract of the deployment holding the workload.
    pub contract_id: u64,
    /// Workload name.
    pub workload: String,
    /// Node.
    pub node_id: u32,
    /// Backend URL as deployed.
    pub backend: String,
    /// The waits drawn on the name's way to routing (see [`GatewayView::waits`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<DrawnWait>,
}

/// A VM (persisted); what its agent holds is on the VM's own disk.
#[derive(Clone, Serialize, Deserialize)]
pub struct VmRec {
    /// `contract_id/workload`.
    pub key: String,
    /// Contract.
    pub contract_id: u64,
    /// Node.
    pub node_id: u32,
    /// zmachine workload name.
    pub workload: String,
    /// Mycelium address.
    pub mycelium_ip: String,
    /// Loopback address standing for it.
    pub loopback_ip: String,
    /// The controller's public key its agent obeys (from the env).
    #[serde(default)]
    pub controller_key: Option<String>,
    /// Its machine id (from the env).
    #[serde(default)]
    pub machine_id: Option<String>,
    /// The waits drawn on its way to ready (see [`VmView::waits`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<DrawnWait>,
}

impl std::fmt::Debug for VmRec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmRec")
            .field("key", &self.key)
            .field("mycelium_ip", &self.mycelium_ip)
            .field("loopback_ip", &self.loopback_ip)
            .finish_non_exhaustive()
    }
}

/// A node's live condition.
#[derive(Debug, Clone)]
pub struct NodeRec {
    /// Static description.
    pub cfg: crate::config::NodeConfig,
    /// Real status (down: nothing answers).
    pub status: NodeStatus,
    /// When it went down (the proxy keeps it `up` for a grace time).
    pub down_since: Option<Instant>,
    /// Health flag shown by the proxy.
    pub healthy: bool,
    /// (when, used) reports, for the proxy's lag.
    pub reports: Vec<(Instant, Resources)>,
    /// Images already pulled on this node (first pulls are slow).
    pub images: std::collections::HashSet<String>,
}

/// Persisted form of a node's condition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct NodeCondRec {
    pub(super) status: NodeStatus,
    pub(super) healthy: bool,
}
