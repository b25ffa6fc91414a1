//! The proxy's nodes: what `/nodes` and `/nodes/{id}` answer, and their filter.

use serde::{Deserialize, Serialize};

use super::{Resources, comma, free_resources};

/// Status of a node as the proxy reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Reporting (or stopped reporting less than the proxy's grace time ago).
    Up,
    /// Not reporting.
    #[default]
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

/// A node's public configuration. Empty strings mean "not set": a node without a gateway
/// domain has `domain: ""`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicConfig {
    /// Gateway domain; a node with a domain can host `gateway-name-proxy` workloads.
    #[serde(default)]
    pub domain: String,
    /// Public IPv4 gateway.
    #[serde(default)]
    pub gw4: String,
    /// Public IPv6 gateway.
    #[serde(default)]
    pub gw6: String,
    /// Public IPv4 of the node, CIDR.
    #[serde(default)]
    pub ipv4: String,
    /// Public IPv6 of the node, CIDR.
    #[serde(default)]
    pub ipv6: String,
}

impl PublicConfig {
    /// The gateway domain, `None` when the node has none.
    pub fn domain(&self) -> Option<&str> {
        Some(self.domain.as_str()).filter(|d| !d.is_empty())
    }
}

/// Where a node is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Country name.
    #[serde(default)]
    pub country: String,
    /// City name.
    #[serde(default)]
    pub city: String,
    /// Longitude, when known.
    #[serde(default)]
    pub longitude: Option<f64>,
    /// Latitude, when known.
    #[serde(default)]
    pub latitude: Option<f64>,
}

/// The farmerbot's power report of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePower {
    /// `Up` or `Down`.
    #[serde(default)]
    pub state: String,
    /// What the farmerbot wants it to be.
    #[serde(default)]
    pub target: String,
}

/// What the node listing and the single-node answer share (every field of grid-proxy's `Node`
/// but the capacity, whose shape differs between the two).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// The indexer's row id.
    #[serde(default)]
    pub id: String,
    /// Node id.
    pub node_id: u32,
    /// Farm id.
    pub farm_id: u32,
    /// Farm name.
    #[serde(default)]
    pub farm_name: String,
    /// The node's own twin id (the node is addressed by it on the message bus).
    pub twin_id: u32,
    /// Country.
    #[serde(default)]
    pub country: String,
    /// Grid version.
    #[serde(default)]
    pub grid_version: u32,
    /// City.
    #[serde(default)]
    pub city: String,
    /// Seconds since the node booted, as last reported.
    #[serde(default)]
    pub uptime: i64,
    /// Unix seconds of registration.
    #[serde(default)]
    pub created: i64,
    /// Farming policy.
    #[serde(default)]
    pub farming_policy_id: u32,
    /// Unix seconds of the last report.
    #[serde(default)]
    pub updated_at: i64,
    /// Location.
    #[serde(default)]
    pub location: Location,
    /// Public configuration (gateway domain, public IPs).
    #[serde(default)]
    pub public_config: PublicConfig,
    /// Status as the proxy believes it.
    pub status: NodeStatus,
    /// `Diy` or `Certified`.
    #[serde(default)]
    pub certification_type: String,
    /// A dedicated node must be rented whole.
    #[serde(default)]
    pub dedicated: bool,
    /// The node's farm is dedicated.
    #[serde(default)]
    pub in_dedicated_farm: bool,
    /// The rent contract, 0 when not rented.
    #[serde(default)]
    pub rent_contract_id: u64,
    /// Rented by some twin.
    #[serde(default)]
    pub rented: bool,
    /// Can be rented.
    #[serde(default)]
    pub rentable: bool,
    /// The renting twin, 0 when not rented.
    #[serde(default)]
    pub rented_by_twin_id: u32,
    /// Serial number.
    #[serde(default)]
    pub serial_number: String,
    /// The farmerbot's power report.
    #[serde(default)]
    pub power: NodePower,
    /// GPU count.
    #[serde(default, rename = "num_gpu")]
    pub num_gpu: u32,
    /// Extra fee set by the farmer.
    #[serde(default)]
    pub extra_fee: u64,
    /// Result of the proxy's last health check.
    #[serde(default)]
    pub healthy: bool,
    /// Price in USD per month.
    #[serde(default, rename = "price_usd")]
    pub price_usd: f64,
    /// Free public IPs of the farm.
    #[serde(default, rename = "farm_free_ips")]
    pub farm_free_ips: u64,
    /// Workload features the node supports, e.g. `zmachine-light`, `network-light`.
    #[serde(default)]
    pub features: Vec<String>,
}

/// A node as `GET /nodes` and `GET /gateways` list it (grid-proxy's `Node`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Everything but the capacity.
    #[serde(flatten)]
    pub info: NodeInfo,
    /// Total capacity.
    pub total_resources: Resources,
    /// Used capacity, reserves included, as last reported by the node (lags).
    pub used_resources: Resources,
}

impl Node {
    /// Free capacity according to this (possibly stale) listing.
    pub fn free(&self) -> Resources {
        free_resources(&self.total_resources, &self.used_resources)
    }
}

/// Total and used capacity, nested as `GET /nodes/{id}` answers them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityResult {
    /// Total capacity.
    pub total_resources: Resources,
    /// Used capacity, reserves included.
    pub used_resources: Resources,
}

/// A node as `GET /nodes/{id}` answers it (grid-proxy's `NodeWithNestedCapacity`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeWithNestedCapacity {
    /// Everything but the capacity.
    #[serde(flatten)]
    pub info: NodeInfo,
    /// Total and used capacity.
    pub capacity: CapacityResult,
}

impl From<NodeWithNestedCapacity> for Node {
    fn from(n: NodeWithNestedCapacity) -> Node {
        Node {
            info: n.info,
            total_resources: n.capacity.total_resources,
            used_resources: n.capacity.used_resources,
        }
    }
}

impl From<Node> for NodeWithNestedCapacity {
    fn from(n: Node) -> NodeWithNestedCapacity {
        NodeWithNestedCapacity {
            info: n.info,
            capacity: CapacityResult {
                total_resources: n.total_resources,
                used_resources: n.used_resources,
            },
        }
    }
}

/// Filters of `GET /nodes` and `GET /gateways` (grid-proxy's `NodeFilter`, the ones used here).
/// Empty fields do not filter. Lists travel comma separated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFilter {
    /// Only nodes with one of these statuses.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "comma")]
    pub status: Vec<NodeStatus>,
    /// Least free memory, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_mru: Option<u64>,
    /// Least free HDD, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_hru: Option<u64>,
    /// Least free SSD, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_sru: Option<u64>,
    /// Only healthy (true) or unhealthy (false) nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// `true`: only nodes with a gateway domain; `false`: only nodes without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<bool>,
    /// Only dedicated (true) or shared (false) nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedicated: Option<bool>,
    /// Only nodes this twin may deploy on (rented by it, or not rented and not dedicated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_for: Option<u32>,
    /// Only nodes of these farms.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "comma")]
    pub farm_ids: Vec<u32>,
    /// Only this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u32>,
    /// Only these nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "comma")]
    pub node_ids: Vec<u32>,
    /// Only nodes supporting every one of these workload features.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "comma")]
    pub features: Vec<String>,
}
