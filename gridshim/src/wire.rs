//! gridshim's own wire types, which the real grid has no counterpart of: where a private
//! address is reachable on this machine, the instance's ports, the request counter, faults and
//! the inspection of everything live. Only tests and the simulator use them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use gridapi::{
    chain::{self, ContractData, NameContract, NameOwner, NodeContract},
    proxy::{self, NodeStatus},
};

/// Where a private (mycelium) address is reachable on this machine (gridshim's data plane).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateRoute {
    /// The mycelium address asked for.
    pub mycelium_ip: String,
    /// The loopback IPv4 that stands for it, e.g. `127.77.0.5`.
    pub loopback_ip: String,
    /// Port of the VM agent.
    pub agent_port: u16,
    /// Port of the VM's web side.
    pub web_port: u16,
}

impl PrivateRoute {
    /// Base URL of the VM agent.
    pub fn agent_url(&self) -> String {
        format!("http://{}:{}", self.loopback_ip, self.agent_port)
    }
    /// Base URL of the VM's web side.
    pub fn web_url(&self) -> String {
        format!("http://{}:{}", self.loopback_ip, self.web_port)
    }
}

/// What a gridshim instance looks like from outside (`GET /info`): lets a controller form
/// public URLs (`http://NAME.<domain>:<gateway_port>/`) without knowing gridshim's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridInfo {
    /// Port every gateway name answers on (the real grid uses 80/443).
    pub gateway_port: u16,
    /// Port of every VM agent.
    pub agent_port: u16,
    /// Port of every VM's web side.
    pub web_port: u16,
    /// Timing profile name (`instant` or `realistic`).
    pub profile: String,
    /// Time scale of the realistic profile.
    pub time_scale: f64,
}

/// How many requests gridshim's grid faces served (`GET /admin/requests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    /// Requests to the proxy, chain, node, data-plane, engine-registry and catalog faces.
    pub served: u64,
}

/// A failure of the real grid that gridshim can produce on demand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// The gateway workload reports `error` although the name is set up and routes.
    GatewayFailedButCreated,
    /// The deploy call times out ("context deadline exceeded") although the node queued it.
    DeployTimeoutButCreated,
    /// The result comes back without the address (no `ip`/`mycelium_ip`, or no `fqdn`).
    ResultWithoutAddress,
    /// The node refuses the deployment for capacity although the proxy shows it free.
    CapacityRefusal,
    /// The node stays `up` in the proxy but message-bus calls to it time out.
    NodeUnreachable,
    /// A chain call times out ("extrinsic timeout waiting for block") after it landed.
    ChainTimeoutAfterLanded,
    /// Cancel is rejected with HTTP 502 (relay unreachable); nothing is cancelled.
    Cancel502,
    /// The session goes stale: every call on it fails until the client reconnects.
    StaleConnection,
    /// The VM's private address answers only after this extra delay (profile-scaled ms).
    SlowReachability {
        /// Extra delay in milliseconds of real time before time scaling.
        delay_ms: u64,
    },
    /// A service start loses its start-up race during install (the step fails).
    ServiceStartRace,
    /// The app answers unhealthy on the VM.
    AppUnhealthy,
}

/// How often a fault fires.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum FaultMode {
    /// Once, then removed.
    Once,
    /// This many times, then removed.
    Count {
        /// Remaining firings.
        count: u32,
    },
    /// Each matching call with this probability, until removed.
    Probability {
        /// 0.0–1.0.
        p: f64,
    },
    /// Every matching call until removed.
    Always,
}

/// Where a fault applies; empty fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultScope {
    /// Only calls concerning this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u32>,
    /// Only calls concerning this name (gateway name, name contract, zmachine workload name, or
    /// app name for install/health faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only this call (see the README's list, e.g. `create_name_contract`, `deploy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
}

/// A fault to inject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// What fails.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How often (default once).
    #[serde(default = "default_mode")]
    pub mode: FaultMode,
    /// Where.
    #[serde(default)]
    pub scope: FaultScope,
}

fn default_mode() -> FaultMode {
    FaultMode::Once
}

/// An injected fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Id to remove it by.
    pub id: u64,
    /// The spec (with the remaining count).
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// How many times it fired.
    pub fired: u64,
}

/// A leftover name registration to create (as if an earlier attempt had left it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftoverName {
    /// The name.
    pub name: String,
    /// Owner twin (ours or another).
    pub twin_id: u32,
}

/// Change a node's condition (admin).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCondition {
    /// `down` stops the node: its VMs stop answering, node calls time out, and the proxy shows
    /// it `down` only after its grace time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NodeStatus>,
    /// Proxy health flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
}

impl NodeCondition {
    /// The node stopped: `down` and unhealthy.
    pub fn down() -> Self {
        Self {
            status: Some(NodeStatus::Down),
            healthy: Some(false),
        }
    }

    /// The node back: `up` and healthy.
    pub fn up() -> Self {
        Self {
            status: Some(NodeStatus::Up),
            healthy: Some(true),
        }
    }
}

/// Everything live on the grid, for tests to prove nothing leaked. No secret appears.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inspection {
    /// Live contracts.
    pub contracts: Vec<ContractRec>,
    /// Live names.
    pub names: Vec<NameOwner>,
    /// Live VMs.
    pub vms: Vec<VmView>,
    /// Live gateways.
    pub gateways: Vec<GatewayView>,
    /// Registered engine tokens (hash prefix only).
    pub tokens: Vec<TokenView>,
}

/// The header a simulated VM's agent sends with every request it makes (its key,
/// `contract/workload`), so gridshim can tell whose install downloads it serves. The real grid
/// tells VMs apart by their address; on one machine they all come from loopback.
pub const VM_HEADER: &str = "x-gridshim-vm";

/// What a recorded wait was for: one of the named durations of the timing profile, on a VM's
/// or a gateway name's way to ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitFor {
    /// The chain block of the node contract (the VM's, or the gateway deployment's).
    NodeContractBlock,
    /// The chain block of the name contract.
    NameContractBlock,
    /// The zmount (disk).
    Zmount,
    /// The network-light.
    Network,
    /// The first pull of the VM's image on its node (absent when the node had it).
    ImagePull,
    /// The VM's boot.
    VmBoot,
    /// The VM's private-network route appearing.
    Reachability,
    /// The download of one app during install.
    InstallDownload,
    /// The configuration and start of one app during install (one per start attempt).
    InstallConfigure,
    /// The gateway name's set-up on its node.
    Gateway,
}

/// One wait gridshim drew for a VM or a gateway name (realistic profile only: nothing is drawn,
/// so nothing is recorded, on `instant`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrawnWait {
    /// What it was for.
    pub wait: WaitFor,
    /// The app, for the install waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Real-grid seconds: what the profile drew, before dividing by `--time-scale`.
    pub secs: f64,
}

/// A VM in the inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmView {
    /// Contract of its deployment.
    pub contract_id: u64,
    /// Node.
    pub node_id: u32,
    /// zmachine workload name.
    pub name: String,
    /// Mycelium address.
    pub mycelium_ip: String,
    /// Loopback address standing for it.
    pub loopback_ip: String,
    /// Whether its listeners are open.
    pub listening: bool,
    /// Gate configured.
    pub gate_configured: bool,
    /// Installed components.
    pub components: BTreeMap<String, String>,
    /// The machine id its agent answers to (from its env; not secret).
    #[serde(default)]
    pub machine_id: Option<String>,
    /// The waits drawn on its way to ready, in order: its node contract's block, zmount,
    /// network, image pull (first on the node only), boot, reachability, then each install's
    /// download and configure waits per app. Empty on `instant`.
    #[serde(default)]
    pub waits: Vec<DrawnWait>,
}

/// A gateway in the inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayView {
    /// Full name.
    pub fqdn: String,
    /// The gateway name.
    #[serde(default)]
    pub name: String,
    /// Contract of its deployment.
    pub contract_id: u64,
    /// Node.
    pub node_id: u32,
    /// Backend URL.
    pub backend: String,
    /// The waits drawn on the name's way to routing: its name contract's block, the gateway
    /// deployment's node contract block, the gateway set-up. Empty on `instant`.
    #[serde(default)]
    pub waits: Vec<DrawnWait>,
}

/// A registered token in the inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// Engine.
    pub engine: String,
    /// Tester identity.
    pub tester: String,
    /// First 12 hex chars of the token's SHA-256.
    pub token_sha256_prefix: String,
}

/// State of a contract as gridshim records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecordState {
    /// Live and paid for.
    Created,
    /// Out of funds.
    GracePeriod,
    /// Cancelled.
    Deleted,
}

/// What a recorded contract is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContractKind {
    /// A deployment on a node.
    Node {
        /// The node.
        node_id: u32,
        /// The deployment's challenge hash.
        deployment_hash: String,
        /// The deployment data (at most 512 bytes).
        metadata: String,
    },
    /// A global gateway name.
    Name {
        /// The name.
        name: String,
    },
}

/// A contract as gridshim records it (in its database and in `/inspect`). The faces answer
/// the chain's ([`chain::Contract`]) and the proxy's ([`proxy::Contract`]) shapes of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractRec {
    /// Contract id.
    pub contract_id: u64,
    /// Owner twin.
    pub twin_id: u32,
    /// State.
    pub state: RecordState,
    /// Unix seconds of creation.
    pub created_at: u64,
    /// Node or name contract.
    #[serde(flatten)]
    pub kind: ContractKind,
}

impl ContractRec {
    /// As the chain's storage holds it.
    pub fn chain(&self) -> chain::Contract {
        chain::Contract {
            version: 4,
            state: match self.state {
                RecordState::Created => chain::ContractState::Created,
                RecordState::GracePeriod => chain::ContractState::GracePeriod(0),
                RecordState::Deleted => chain::ContractState::Deleted(chain::Cause::CanceledByUser),
            },
            contract_id: self.contract_id,
            twin_id: self.twin_id,
            contract_type: match &self.kind {
                ContractKind::Node {
                    node_id,
                    deployment_hash,
                    metadata,
                } => ContractData::NodeContract(NodeContract {
                    node_id: *node_id,
                    deployment_hash: deployment_hash.clone(),
                    deployment_data: metadata.clone(),
                    public_ips: 0,
                }),
                ContractKind::Name { name } => {
                    ContractData::NameContract(NameContract { name: name.clone() })
                }
            },
            solution_provider_id: None,
        }
    }

    /// As the proxy lists it; `farm` is the node's farm (id, name) for node contracts.
    pub fn proxy(&self, farm: (u32, &str)) -> proxy::Contract {
        proxy::Contract {
            contract_id: self.contract_id,
            twin_id: self.twin_id,
            state: match self.state {
                RecordState::Created => proxy::ContractState::Created,
                RecordState::GracePeriod => proxy::ContractState::GracePeriod,
                RecordState::Deleted => proxy::ContractState::Deleted,
            },
            created_at: self.created_at,
            details: match &self.kind {
                ContractKind::Node {
                    node_id,
                    deployment_hash,
                    metadata,
                } => proxy::ContractDetails::Node(proxy::NodeContractDetails {
                    node_id: *node_id,
                    deployment_data: metadata.clone(),
                    deployment_hash: deployment_hash.clone(),
                    number_of_public_ips: 0,
                    farm_name: farm.1.to_string(),
                    farm_id: farm.0,
                }),
                ContractKind::Name { name } => {
                    proxy::ContractDetails::Name(proxy::NameContractDetails { name: name.clone() })
                }
            },
        }
    }
}
