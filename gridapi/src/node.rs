//! The nodes' face: zos's deployment commands over the message bus, addressed by the node's
//! twin (`zos.deployment.deploy`, `zos.deployment.get`, `zos.deployment.changes`).

use serde::{Deserialize, Serialize};

use crate::{
    GridFuture,
    zos::{Deployment, WorkloadChange},
};

/// Command that sends a new deployment to a node.
pub const CMD_DEPLOY: &str = "zos.deployment.deploy";
/// Command that reads a deployment with its workloads' results.
pub const CMD_GET: &str = "zos.deployment.get";
/// Command that reads a deployment's history of workload states.
pub const CMD_CHANGES: &str = "zos.deployment.changes";

/// The payload of `zos.deployment.get` and `zos.deployment.changes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractRef {
    /// The node contract of the deployment.
    pub contract_id: u64,
}

/// A node's deployment commands. `node_twin` is the node's own twin id (the proxy lists it);
/// the message bus addresses nodes by twin, not by node id.
pub trait NodeBus: Send + Sync {
    /// `zos.deployment.deploy`: the node validates the deployment against its contract's hash
    /// and starts it; results follow in [`NodeBus::get`].
    fn deploy<'a>(&'a self, node_twin: u32, deployment: &'a Deployment) -> GridFuture<'a, ()>;
    /// `zos.deployment.get`: the deployment with each workload's result.
    fn get(&self, node_twin: u32, contract_id: u64) -> GridFuture<'_, Deployment>;
    /// `zos.deployment.changes`: every state each workload went through.
    fn changes(&self, node_twin: u32, contract_id: u64) -> GridFuture<'_, Vec<WorkloadChange>>;
    /// Whether node calls can be made now (the bus is connected, as the operator's twin):
    /// checked before a contract is created, so nothing is paid for on chain that could not be
    /// deployed. Always ready by default.
    fn ready(&self) -> GridFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}
