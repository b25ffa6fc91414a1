//! Wire types of every face of the grid (proxy, chain, node, data plane, VM agent, engines,
//! release catalog, faults, inspection), shared by the simulator and the client.
//!
//! Field names follow the real grid where the controller would meet them (the proxy's
//! `nodeId`/`total_resources`, zos workload types such as `zmachine-light`), so a client for the
//! real grid can map onto the same types.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One GiB in bytes.
pub const GIB: u64 = 1 << 30;
/// One MiB in bytes.
pub const MIB: u64 = 1 << 20;
/// Longest node-contract metadata the chain accepts, in bytes.
pub const MAX_CONTRACT_METADATA: usize = 512;
/// Header carrying the chain/node session token (the "connection" of the real client).
pub const SESSION_HEADER: &str = "x-grid-session";
/// Header carrying the tester identity on engine calls.
pub const TESTER_HEADER: &str = "x-tester";
/// Environment variable of a zmachine holding the key the VM agent accepts as bearer token.
pub const AGENT_KEY_ENV: &str = "AGENT_KEY";
/// The SSD the node keeps back for itself, in bytes (zos reserves 20 GiB).
pub const SSD_RESERVE: u64 = 20 * GIB;
/// The least memory the node keeps back for itself, in bytes.
pub const MIN_MEMORY_RESERVE: u64 = 2 * GIB;

// ---------------------------------------------------------------------------------------------
// Proxy face
// ---------------------------------------------------------------------------------------------

/// Capacity figures of a node: vCPU count and bytes of memory, SSD and HDD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// vCPU count.
    pub cru: u64,
    /// Memory, bytes.
    pub mru: u64,
    /// SSD, bytes.
    pub sru: u64,
    /// HDD, bytes.
    pub hru: u64,
}

impl Resources {
    /// Component-wise sum.
    pub fn plus(self, o: Resources) -> Resources {
        Resources {
            cru: self.cru + o.cru,
            mru: self.mru + o.mru,
            sru: self.sru + o.sru,
            hru: self.hru + o.hru,
        }
    }
}

/// What a node keeps back for itself: memory max(10 % of total, 2 GiB), SSD 20 GiB, HDD none.
pub fn reserves(total: &Resources) -> Resources {
    Resources {
        cru: 0,
        mru: (total.mru / 10).max(MIN_MEMORY_RESERVE),
        sru: SSD_RESERVE,
        hru: 0,
    }
}

/// Free capacity from a proxy listing: total − used, never below zero. The proxy's `used`
/// already includes the node's reserves (grid-proxy's own SQL adds them), so nothing is
/// subtracted again.
pub fn free_resources(total: &Resources, used: &Resources) -> Resources {
    Resources {
        cru: total.cru.saturating_sub(used.cru),
        mru: total.mru.saturating_sub(used.mru),
        sru: total.sru.saturating_sub(used.sru),
        hru: total.hru.saturating_sub(used.hru),
    }
}

/// Status of a node as the proxy reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Reporting (or stopped reporting less than the proxy's grace time ago).
    Up,
    /// Not reporting.
    Down,
    /// Powered off by the farmer, wakes on demand.
    Standby,
}

impl NodeStatus {
    /// The query-string spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Up => "up",
            NodeStatus::Down => "down",
            NodeStatus::Standby => "standby",
        }
    }
}

/// A node's public configuration; only the gateway domain matters here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicConfig {
    /// Gateway domain; a node with a domain can host `gateway-name-proxy` workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// A node as listed by the grid proxy. `used_resources` lags reality (see GRID.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// Node id.
    pub node_id: u32,
    /// Farm id.
    pub farm_id: u32,
    /// The node's own twin id.
    pub twin_id: u32,
    /// Total capacity.
    #[serde(rename = "total_resources")]
    pub total_resources: Resources,
    /// Used capacity as last reported by the node (lags).
    #[serde(rename = "used_resources")]
    pub used_resources: Resources,
    /// Status as the proxy believes it.
    pub status: NodeStatus,
    /// Result of the proxy's last health check.
    pub healthy: bool,
    /// Public configuration (gateway domain).
    pub public_config: PublicConfig,
    /// A dedicated node must be rented whole.
    pub dedicated: bool,
    /// Rented by some twin.
    pub rented: bool,
    /// The renting twin, 0 when not rented.
    pub rented_by_twin_id: u32,
    /// Workload features the node supports, e.g. `zmachine-light`, `network-light`.
    pub features: Vec<String>,
}

impl Node {
    /// Free capacity according to this (possibly stale) listing.
    pub fn free(&self) -> Resources {
        free_resources(&self.total_resources, &self.used_resources)
    }
}

/// Filters of the proxy's node listing. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFilter {
    /// Least free memory, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_mru: Option<u64>,
    /// Least free SSD, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_sru: Option<u64>,
    /// Least free HDD, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_hru: Option<u64>,
    /// Only nodes with this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NodeStatus>,
    /// Only healthy (true) or unhealthy (false) nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// `true`: only nodes with a gateway domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<bool>,
    /// Only nodes of these farms (comma separated on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub farm_ids: Option<String>,
    /// Only this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u32>,
    /// Only nodes this twin may deploy on (not rented by someone else, not dedicated-unrented).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_for: Option<u32>,
    /// Page number, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// Page size (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Also return the count of all matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret_count: Option<bool>,
}

impl NodeFilter {
    /// Sets `farm_ids` from a list.
    pub fn with_farms(mut self, farms: &[u32]) -> Self {
        self.farm_ids = Some(
            farms
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
        self
    }
}

/// One page of the node listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodePage {
    /// The nodes of this page.
    pub nodes: Vec<Node>,
    /// Count of all matches, when `ret_count` was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Chain face
// ---------------------------------------------------------------------------------------------

/// A request for a chain session (the long-lived "connection" of the real client).
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionRequest {
    /// The twin the calls are made as.
    pub twin_id: u32,
    /// The twin's secret (stands for its mnemonic).
    pub secret: String,
}

impl fmt::Debug for SessionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRequest")
            .field("twin_id", &self.twin_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A session token to send in [`SESSION_HEADER`] on every chain and node call.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    /// Opaque token.
    pub session: String,
    /// The twin the session acts as.
    pub twin_id: u32,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("twin_id", &self.twin_id)
            .finish_non_exhaustive()
    }
}

/// State of a contract on the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContractState {
    /// Live and paid for.
    Created,
    /// Out of funds: workloads paused, deleted after 14 days.
    GracePeriod,
    /// Cancelled (the chain forgets it right after).
    Deleted,
}

/// What a contract is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContractKind {
    /// A deployment on a node.
    Node {
        /// The node.
        node_id: u32,
        /// Hash of the deployment (see [`Deployment::challenge_hash`]).
        deployment_hash: String,
        /// Free text, at most 512 bytes (the controller stores the Tester UID here).
        metadata: String,
    },
    /// A global gateway name.
    Name {
        /// The name.
        name: String,
    },
}

/// A contract on the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    /// Contract id.
    pub contract_id: u64,
    /// Owner twin.
    pub twin_id: u32,
    /// State.
    pub state: ContractState,
    /// Unix seconds of creation.
    pub created_at: u64,
    /// Node or name contract.
    #[serde(flatten)]
    pub kind: ContractKind,
}

/// Create a node contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeContractRequest {
    /// The node.
    pub node_id: u32,
    /// Hash of the deployment that will be sent to the node.
    pub deployment_hash: String,
    /// At most 512 bytes.
    pub metadata: String,
}

/// Create a name contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameContractRequest {
    /// The gateway name, 3–64 chars of `[a-z0-9-_]`.
    pub name: String,
}

/// Which contract holds a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameOwner {
    /// The name.
    pub name: String,
    /// The name contract.
    pub contract_id: u64,
    /// Owner twin.
    pub twin_id: u32,
}

/// Why a gateway name is refused by the chain, or `None` when its shape is fine.
pub fn check_name(name: &str) -> Option<ErrorCode> {
    if name.len() < 3 {
        return Some(ErrorCode::NameContractNameTooShort);
    }
    if name.len() > 64 {
        return Some(ErrorCode::NameContractNameTooLong);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Some(ErrorCode::NameNotValid);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Node face
// ---------------------------------------------------------------------------------------------

/// A deployment sent to a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// 0 on create.
    #[serde(default)]
    pub version: u32,
    /// Owner twin.
    pub twin_id: u32,
    /// The node contract that pays for it.
    pub contract_id: u64,
    /// Free text.
    #[serde(default)]
    pub metadata: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Deprecated in zos (always 0), but part of the challenge.
    #[serde(default)]
    pub expiration: u64,
    /// Who must sign the deployment (grid-client: the deploying twin, weight 1).
    #[serde(default)]
    pub signature_requirement: SignatureRequirement,
    /// Workloads, names unique.
    pub workloads: Vec<Workload>,
}

/// Who must sign a deployment, as zos's `SignatureRequirement`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRequirement {
    /// One request per signing twin.
    #[serde(default)]
    pub requests: Vec<SignatureRequest>,
    /// The weight the signatures must add up to.
    #[serde(default)]
    pub weight_required: u32,
    /// `""` (sign the challenge hash) or `polka-wallet`.
    #[serde(default)]
    pub signature_style: String,
}

impl SignatureRequirement {
    /// What grid-client asks for: the deploying twin alone, weight 1.
    pub fn by(twin_id: u32) -> Self {
        Self {
            requests: vec![SignatureRequest {
                twin_id,
                required: false,
                weight: 1,
            }],
            weight_required: 1,
            signature_style: String::new(),
        }
    }
}

/// One twin's part of a [`SignatureRequirement`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRequest {
    /// The twin.
    pub twin_id: u32,
    /// Whether its signature is required.
    #[serde(default)]
    pub required: bool,
    /// Its weight.
    pub weight: u32,
}

impl Deployment {
    /// The hash the node contract must carry for this deployment: zos's MD5 challenge hash,
    /// 32 hex digits (see [`crate::zos::challenge`]). The contract id and the results are not
    /// part of it, so it can be computed before the contract exists.
    pub fn challenge_hash(&self) -> String {
        crate::zos::challenge_hash(self)
    }

    /// The workload of that name.
    pub fn workload(&self, name: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.name == name)
    }

    /// Workloads whose result is `error`, with their messages.
    pub fn errors(&self) -> Vec<(&str, &str)> {
        self.workloads
            .iter()
            .filter(|w| w.result.state == WorkloadState::Error)
            .map(|w| (w.name.as_str(), w.result.message.as_str()))
            .collect()
    }

    /// True when every workload reached `ok`.
    pub fn all_ok(&self) -> bool {
        self.workloads
            .iter()
            .all(|w| w.result.state == WorkloadState::Ok)
    }
}

/// A workload of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// `^[a-zA-Z0-9_]+$`, at most 36 chars, unique in the deployment.
    pub name: String,
    /// Version, 0 on create.
    #[serde(default)]
    pub version: u32,
    /// Type and data.
    #[serde(flatten)]
    pub data: WorkloadData,
    /// Free text.
    #[serde(default)]
    pub metadata: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Filled in by the node; ignored on deploy.
    #[serde(default)]
    pub result: WorkloadResult,
}

impl Workload {
    /// A new workload with an empty result.
    pub fn new(name: impl Into<String>, data: WorkloadData) -> Self {
        Workload {
            name: name.into(),
            version: 0,
            data,
            metadata: String::new(),
            description: String::new(),
            result: WorkloadResult::default(),
        }
    }

    /// The zmachine result, when this is a zmachine with a result.
    pub fn zmachine_result(&self) -> Option<ZmachineResult> {
        match self.data {
            WorkloadData::ZmachineLight(_) => serde_json::from_value(self.result.data.clone()).ok(),
            _ => None,
        }
    }

    /// The gateway result, when this is a gateway with a result.
    pub fn gateway_result(&self) -> Option<GatewayResult> {
        match self.data {
            WorkloadData::GatewayNameProxy(_) => {
                serde_json::from_value(self.result.data.clone()).ok()
            }
            _ => None,
        }
    }
}

/// The workload types this grid supports, tagged by `type` with the payload in `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum WorkloadData {
    /// A private network (mycelium only).
    #[serde(rename = "network-light")]
    NetworkLight(NetworkLight),
    /// A disk.
    #[serde(rename = "zmount")]
    Zmount(Zmount),
    /// A micro VM.
    #[serde(rename = "zmachine-light")]
    ZmachineLight(ZmachineLight),
    /// A gateway name proxying to one backend.
    #[serde(rename = "gateway-name-proxy")]
    GatewayNameProxy(GatewayNameProxy),
}

impl WorkloadData {
    /// The zos type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            WorkloadData::NetworkLight(_) => "network-light",
            WorkloadData::Zmount(_) => "zmount",
            WorkloadData::ZmachineLight(_) => "zmachine-light",
            WorkloadData::GatewayNameProxy(_) => "gateway-name-proxy",
        }
    }
}

/// `network-light`: a private network reached over mycelium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "NetworkLightWire")]
pub struct NetworkLight {
    /// IPv4 subnet of the network on this node, e.g. `10.20.2.0/24`.
    pub subnet: String,
    /// The network's mycelium node.
    pub mycelium: NetworkMycelium,
}

/// What a `network-light` may look like when read: zos's shape, or the flat `mycelium_key`
/// gridshim stored before it spoke zos's (so an existing gridshim database still loads).
#[derive(Deserialize)]
#[serde(untagged)]
enum NetworkLightWire {
    Zos {
        subnet: String,
        mycelium: NetworkMycelium,
    },
    Flat {
        subnet: String,
        mycelium_key: String,
    },
}

impl From<NetworkLightWire> for NetworkLight {
    fn from(w: NetworkLightWire) -> Self {
        match w {
            NetworkLightWire::Zos { subnet, mycelium } => Self { subnet, mycelium },
            NetworkLightWire::Flat {
                subnet,
                mycelium_key,
            } => Self {
                subnet,
                mycelium: NetworkMycelium {
                    hex_key: mycelium_key,
                    peers: Vec::new(),
                },
            },
        }
    }
}

/// The mycelium node of a `network-light`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkMycelium {
    /// 32 bytes, hex: the node's key; its address (and so every VM's) derives from it.
    pub hex_key: String,
    /// Peers to use instead of the default list.
    #[serde(default)]
    pub peers: Vec<String>,
}

/// `zmount`: a disk of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zmount {
    /// Bytes.
    pub size: u64,
}

/// `zmachine-light`: a micro VM. Its `Debug` prints the env's names, never its values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZmachineLight {
    /// Image URL.
    pub flist: String,
    /// Network attachment.
    pub network: ZmachineNetwork,
    /// Root filesystem size, bytes.
    pub size: u64,
    /// vCPU and memory.
    pub compute_capacity: ComputeCapacity,
    /// Disks to mount (names of `zmount` workloads of the same deployment).
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Entry point.
    #[serde(default)]
    pub entrypoint: String,
    /// Environment; [`AGENT_KEY_ENV`] holds the key the VM agent accepts.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Run with the zos core-x console.
    #[serde(default)]
    pub corex: bool,
}

impl fmt::Debug for ZmachineLight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZmachineLight")
            .field("flist", &self.flist)
            .field("network", &self.network)
            .field("size", &self.size)
            .field("compute_capacity", &self.compute_capacity)
            .field("mounts", &self.mounts)
            .field("entrypoint", &self.entrypoint)
            .field(
                "env",
                &self
                    .env
                    .keys()
                    .map(|k| (k, "<redacted>"))
                    .collect::<BTreeMap<_, _>>(),
            )
            .field("corex", &self.corex)
            .finish()
    }
}

/// How a zmachine attaches to its network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZmachineNetwork {
    /// Exactly one interface.
    pub interfaces: Vec<NetworkInterface>,
    /// The mycelium attachment.
    pub mycelium: MyceliumAttachment,
}

/// A network interface of a zmachine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// Name of a `network-light` workload of the same deployment.
    pub network: String,
    /// IPv4 inside the network's subnet.
    pub ip: String,
}

/// The mycelium attachment of a zmachine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyceliumAttachment {
    /// Name of the `network-light` workload.
    pub network: String,
    /// 6 bytes, hex; the VM's mycelium address is the network's /64 + `ff0f` + seed.
    #[serde(rename = "hex_seed", alias = "seed")]
    pub seed: String,
}

/// vCPU and memory of a zmachine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeCapacity {
    /// At least 1.
    pub cpu: u8,
    /// Bytes, at least 250 MiB.
    pub memory: u64,
}

/// A disk mount of a zmachine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Name of a `zmount` workload.
    pub name: String,
    /// Where it is mounted.
    pub mountpoint: String,
}

/// `gateway-name-proxy`: `NAME.<node domain>` proxying to one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayNameProxy {
    /// The name (a name contract of the same twin must hold it).
    pub name: String,
    /// Pass TLS through instead of terminating it.
    #[serde(default)]
    pub tls_passthrough: bool,
    /// Exactly one backend, `http://[<mycelium ip>]:port`.
    pub backends: Vec<String>,
    /// A network of the same deployment the backend is reached through, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// State of a workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadState {
    /// Accepted, being worked on.
    #[default]
    Init,
    /// Deployed.
    Ok,
    /// Failed; see the message.
    Error,
    /// Removed.
    Deleted,
    /// Paused (contract in grace period).
    Paused,
}

/// The node's result for a workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// Unix seconds of this state.
    #[serde(default)]
    pub created: u64,
    /// State.
    #[serde(default)]
    pub state: WorkloadState,
    /// Error text when `state` is `error`.
    #[serde(default)]
    pub message: String,
    /// Type-specific data ([`ZmachineResult`], [`GatewayResult`]); may be empty.
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Result data of a `zmachine-light`. Any field may be missing (a real failure mode).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZmachineResult {
    /// VM id on the node.
    #[serde(default)]
    pub id: String,
    /// IPv4 in the private network.
    #[serde(default)]
    pub ip: String,
    /// Mycelium IPv6 address; the VM's agent and web side are reached through it.
    #[serde(default)]
    pub mycelium_ip: String,
    /// Console URL.
    #[serde(default)]
    pub console_url: String,
}

/// Result data of a `gateway-name-proxy`. `fqdn` may be missing (a real failure mode).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayResult {
    /// `NAME.<node domain>`.
    #[serde(default)]
    pub fqdn: String,
}

/// One entry of a deployment's change history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadChange {
    /// Workload name.
    pub name: String,
    /// zos type name.
    #[serde(rename = "type")]
    pub workload_type: String,
    /// Workload version.
    pub version: u32,
    /// The state reached.
    pub result: WorkloadResult,
}

/// A VM's mycelium address, as zos derives it (see [`crate::zos::vm_mycelium_ip`]): lets a
/// client compute the address when the node's result lacks it. `None` unless the network key
/// is 32 hex bytes and the seed 6.
pub fn mycelium_ip(network_key_hex: &str, seed_hex: &str) -> Option<String> {
    crate::zos::vm_mycelium_ip(network_key_hex, seed_hex).map(|ip| ip.to_string())
}

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

// ---------------------------------------------------------------------------------------------
// VM agent
// ---------------------------------------------------------------------------------------------

/// How to reach a VM's agent: its mycelium address and the deployer's key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentTarget {
    /// The VM's mycelium address (from the zmachine result, or [`mycelium_ip`]).
    pub mycelium_ip: String,
    /// The key that was put in the zmachine env as [`AGENT_KEY_ENV`].
    pub key: String,
}

impl fmt::Debug for AgentTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentTarget")
            .field("mycelium_ip", &self.mycelium_ip)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Settings of a VM's sign-in gate, set by the controller through the agent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSettings {
    /// OIDC issuer URL.
    pub issuer: String,
    /// OIDC client id.
    pub client_id: String,
    /// OIDC client secret (never logged nor shown).
    pub client_secret: String,
    /// Accounts allowed to sign in.
    pub allowed_accounts: Vec<String>,
    /// The VM's public URL through the gateway (`http://NAME.<domain>:port`), for the callback.
    pub public_url: String,
}

impl fmt::Debug for GateSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("allowed_accounts", &self.allowed_accounts)
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// An engine URL with the tester's token, handed to a VM.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineCredential {
    /// Engine name (`embedder`, `voice`).
    pub engine: String,
    /// Engine base URL.
    pub url: String,
    /// Bearer token (never logged nor shown).
    pub token: String,
}

impl fmt::Debug for EngineCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineCredential")
            .field("engine", &self.engine)
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Body of `PUT /v1/engines` on the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineCredentials {
    /// Replaces the whole set.
    pub engines: Vec<EngineCredential>,
}

/// Body of `PUT /v1/ssh-keys` on the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKeys {
    /// Replaces the whole set; empty disables SSH.
    pub keys: Vec<String>,
}

/// Body of `PUT /v1/ai-keys` on the agent: provider → key. Never logged nor shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiKeys {
    /// Replaces the whole set.
    pub keys: BTreeMap<String, String>,
}

impl fmt::Debug for AiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AiKeys")
            .field("providers", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What a VM agent holds, without any secret: for the controller to check, not assume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfigView {
    /// Gate issuer, client id, allowed accounts and public URL (no secret), if configured.
    pub gate: Option<GateView>,
    /// Engine name → URL (no token).
    pub engines: BTreeMap<String, String>,
    /// Engine name → SHA-256 (hex) of the token the machine holds for it: proves which token
    /// reached the machine without giving it away.
    #[serde(default)]
    pub engine_token_digests: BTreeMap<String, String>,
    /// How many SSH keys are set.
    pub ssh_keys: usize,
    /// AI providers that have a key (no key).
    pub ai_providers: Vec<String>,
}

/// The gate settings without the client secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateView {
    /// OIDC issuer URL.
    pub issuer: String,
    /// OIDC client id.
    pub client_id: String,
    /// Accounts allowed to sign in.
    pub allowed_accounts: Vec<String>,
    /// Public URL.
    pub public_url: String,
}

/// A release channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Released builds.
    Stable,
    /// Builds published ahead of release.
    Prerelease,
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Channel::Stable => "stable",
            Channel::Prerelease => "prerelease",
        })
    }
}

/// The apps of the stack (DOMAIN.md), in install order of the real system.
pub const APPS: [&str; 9] = [
    "gateway",
    "cockpit",
    "assistant",
    "planner",
    "whiteboard",
    "slides",
    "books",
    "memory",
    "voice",
];

/// Body of `POST /v1/install` on the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRequest {
    /// Channel to install from (recorded).
    pub channel: Channel,
    /// Apps to install (see [`APPS`]).
    pub apps: Vec<String>,
}

/// State of an install or of one of its steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstallState {
    /// Never asked.
    #[default]
    Idle,
    /// Queued, not started.
    Pending,
    /// Under way.
    Running,
    /// Done.
    Succeeded,
    /// Failed; see the log.
    Failed,
}

/// One step of an install (one app).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallStep {
    /// The app.
    pub app: String,
    /// State.
    pub state: InstallState,
    /// Version being installed (from the catalog), when known.
    #[serde(default)]
    pub version: Option<String>,
    /// Log lines.
    pub log: Vec<String>,
}

/// Status of the install on a VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallStatus {
    /// Overall state.
    pub state: InstallState,
    /// Channel of the last install asked.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// Apps of the last install asked.
    #[serde(default)]
    pub apps: Vec<String>,
    /// One step per app.
    #[serde(default)]
    pub steps: Vec<InstallStep>,
    /// Installed component → exact version (kept across installs).
    #[serde(default)]
    pub components: BTreeMap<String, String>,
    /// Channel each installed component came from.
    #[serde(default)]
    pub component_channels: BTreeMap<String, Channel>,
    /// How many installs were started on this VM.
    #[serde(default)]
    pub attempt: u32,
}

/// Health of one app on a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppHealthEntry {
    /// The app.
    pub app: String,
    /// Answers on the machine.
    pub healthy: bool,
    /// Installed version, if any.
    #[serde(default)]
    pub version: Option<String>,
    /// Why not healthy.
    #[serde(default)]
    pub detail: String,
}

/// Per-app health of a VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppHealth {
    /// One entry per app of the last install (or per installed app).
    pub apps: Vec<AppHealthEntry>,
}

// ---------------------------------------------------------------------------------------------
// Engines and catalog
// ---------------------------------------------------------------------------------------------

/// A shared engine on the admin machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// `embedder` or `voice`.
    pub name: String,
    /// Base URL the VMs use.
    pub url: String,
    /// The call path, e.g. `/v1/embeddings`.
    pub call_path: String,
    /// Whether its listener is open (closed while its token store is unavailable).
    pub listening: bool,
    /// Whether it can reach its token store.
    pub token_store_available: bool,
    /// How many tokens are registered.
    pub tokens: usize,
}

/// How many requests gridshim's grid faces served (`GET /admin/requests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    /// Requests to the proxy, chain, node, data-plane, engine-registry and catalog faces.
    pub served: u64,
}

/// What an engine's token store (`GET {tokenStore.url}`) says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenStoreInfo {
    /// The engine kind, e.g. `embedder`.
    pub engine: String,
    /// The path testers call on the engine's URL (a tester's token is proven by one call).
    pub call_path: String,
    /// How many tester tokens the store holds.
    pub tokens: usize,
}

/// Body of `PUT {tokenStore.url}/tokens/{tester}` (and of gridshim's `PUT /engines/{engine}/tokens/{tester}`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRegistration {
    /// The bearer token (stored hashed).
    pub token: String,
}

impl fmt::Debug for TokenRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenRegistration { token: <redacted> }")
    }
}

/// The release catalog: newest version per app per channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Channel → app → version.
    pub channels: BTreeMap<Channel, BTreeMap<String, String>>,
}

impl Catalog {
    /// Newest version of an app in a channel.
    pub fn version(&self, channel: Channel, app: &str) -> Option<&str> {
        self.channels
            .get(&channel)
            .and_then(|m| m.get(app))
            .map(String::as_str)
    }
}

// ---------------------------------------------------------------------------------------------
// Faults, inspection
// ---------------------------------------------------------------------------------------------

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

/// Everything live on the grid, for tests to prove nothing leaked. No secret appears.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inspection {
    /// Live contracts.
    pub contracts: Vec<Contract>,
    /// Live names.
    pub names: Vec<NameOwner>,
    /// Live VMs.
    pub vms: Vec<VmView>,
    /// Live gateways.
    pub gateways: Vec<GatewayView>,
    /// Registered engine tokens (hash prefix only).
    pub tokens: Vec<TokenView>,
}

/// A VM in the inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// A gateway in the inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayView {
    /// Full name.
    pub fqdn: String,
    /// Contract of its deployment.
    pub contract_id: u64,
    /// Node.
    pub node_id: u32,
    /// Backend URL.
    pub backend: String,
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

// ---------------------------------------------------------------------------------------------
// Errors on the wire
// ---------------------------------------------------------------------------------------------

/// Error codes on the wire; chain codes carry the chain's own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Name taken.
    NameExists,
    /// Same node and hash already under contract.
    ContractIsNotUnique,
    /// No such contract.
    ContractNotExists,
    /// Not the owner.
    TwinNotAuthorizedToCancelContract,
    /// Name has characters outside `[a-z0-9-_]`.
    NameNotValid,
    /// Name shorter than 3.
    NameContractNameTooShort,
    /// Name longer than 64.
    NameContractNameTooLong,
    /// Metadata longer than 512 bytes.
    ContractMetadataTooLong,
    /// No such node.
    NodeNotExists,
    /// Node rented by another twin or dedicated.
    NodeNotAvailableToDeploy,
    /// The call timed out; it may still have happened.
    Timeout,
    /// The node cannot be reached over the message bus.
    NodeUnreachable,
    /// Relay or proxy answered 502.
    BadGateway,
    /// The session is stale: reconnect.
    StaleConnection,
    /// Unknown session or wrong secret.
    Unauthenticated,
    /// Wrong key, or not the owner.
    Unauthorized,
    /// Something asked for does not exist.
    NotFound,
    /// Already exists / conflicting state.
    Conflict,
    /// Node refuses for capacity.
    Capacity,
    /// Request fails validation.
    Invalid,
    /// Deletion through the node is disabled.
    DeletionDisabled,
    /// Busy, try later.
    Busy,
    /// Bug in gridshim.
    Internal,
}

/// The JSON body of every error answer of gridshim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Code.
    pub code: ErrorCode,
    /// The grid's error text.
    pub message: String,
    /// For `NameExists`: the owner twin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_twin: Option<u32>,
    /// For `NameExists`: the contract holding the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_follow_the_real_rules() {
        let small = Resources {
            cru: 4,
            mru: 8 * GIB,
            sru: 100 * GIB,
            hru: 1000 * GIB,
        };
        let r = reserves(&small);
        assert_eq!(r.mru, 2 * GIB, "2 GiB floor when 10 % is less");
        assert_eq!(r.sru, 20 * GIB);
        assert_eq!(r.hru, 0);
        let big = Resources {
            mru: 64 * GIB,
            ..small
        };
        assert_eq!(
            reserves(&big).mru,
            64 * GIB / 10,
            "10 % when more than 2 GiB"
        );
    }

    #[test]
    fn free_is_total_minus_used_as_the_proxy_counts_reserves_in_used() {
        let total = Resources {
            cru: 8,
            mru: 32 * GIB,
            sru: 500 * GIB,
            hru: 0,
        };
        let used = Resources {
            cru: 2,
            mru: 4 * GIB,
            sru: 50 * GIB,
            hru: 0,
        };
        let f = free_resources(&total, &used);
        assert_eq!(f.cru, 6);
        assert_eq!(f.mru, 28 * GIB);
        assert_eq!(f.sru, 450 * GIB);
        let full = Resources {
            sru: 510 * GIB,
            ..used
        };
        assert_eq!(free_resources(&total, &full).sru, 0, "never below zero");
    }

    #[test]
    fn name_rules() {
        assert_eq!(check_name("ab"), Some(ErrorCode::NameContractNameTooShort));
        assert_eq!(
            check_name(&"a".repeat(65)),
            Some(ErrorCode::NameContractNameTooLong)
        );
        assert_eq!(check_name("Alice"), Some(ErrorCode::NameNotValid));
        assert_eq!(check_name("al.ice"), Some(ErrorCode::NameNotValid));
        assert_eq!(check_name("alice-01_x"), None);
        assert_eq!(check_name(&"a".repeat(64)), None);
        assert_eq!(check_name("abc"), None);
    }

    #[test]
    fn mycelium_ip_is_the_networks_64_then_ff0f_then_the_seed() {
        let key = "ab".repeat(32);
        let ip = mycelium_ip(&key, "0102030405ff").unwrap();
        assert!(ip.ends_with(":ff0f:102:304:5ff"), "{ip}");
        assert!(mycelium_ip(&key, "0102").is_none(), "a seed is 6 bytes");
        assert!(
            mycelium_ip("00aa", "0102030405ff").is_none(),
            "a key is 32 bytes"
        );
    }

    #[test]
    fn a_network_stored_before_the_zos_shape_still_loads() {
        let old: NetworkLight =
            serde_json::from_str(r#"{"subnet":"10.20.2.0/24","mycelium_key":"abcd"}"#).unwrap();
        assert_eq!(old.mycelium.hex_key, "abcd");
        let zos: NetworkLight = serde_json::from_str(
            r#"{"subnet":"10.20.2.0/24","mycelium":{"hex_key":"abcd","peers":["tcp://p:9651"]}}"#,
        )
        .unwrap();
        assert_eq!(zos.mycelium.peers, ["tcp://p:9651"]);
        let written = serde_json::to_value(&zos).unwrap();
        assert_eq!(
            written["mycelium"]["hex_key"], "abcd",
            "written in zos's shape"
        );
    }

    #[test]
    fn workload_wire_format_matches_zos() {
        let w = Workload::new("disk", WorkloadData::Zmount(Zmount { size: 10 }));
        let v = serde_json::to_value(&w).unwrap();
        assert_eq!(v["type"], "zmount");
        assert_eq!(v["data"]["size"], 10);
        let back: Workload = serde_json::from_value(v).unwrap();
        assert_eq!(back, w);
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let g = GateSettings {
            issuer: "i".into(),
            client_id: "c".into(),
            client_secret: "s3cr3t".into(),
            allowed_accounts: vec![],
            public_url: "u".into(),
        };
        assert!(!format!("{g:?}").contains("s3cr3t"));
        let k = AiKeys {
            keys: [("openai".to_string(), "sk-123".to_string())].into(),
        };
        assert!(!format!("{k:?}").contains("sk-123"));
    }
}
