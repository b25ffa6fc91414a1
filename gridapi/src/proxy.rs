//! The grid proxy's face: its REST API's types as tfgrid-sdk-go's `grid-proxy/pkg/types`
//! defines them, and [`Proxy`], the trait of its client.
//!
//! The proxy is an indexer: what it lists lags the chain and the nodes (GRID.md). Its
//! `used_resources` already include the node's reserves, so free capacity is total − used.

use serde::{Deserialize, Serialize};

use crate::{GIB, GridFuture};

/// The SSD a node keeps back for itself, in bytes (zos reserves 20 GiB).
pub const SSD_RESERVE: u64 = 20 * GIB;
/// The least memory a node keeps back for itself, in bytes.
pub const MIN_MEMORY_RESERVE: u64 = 2 * GIB;

/// Capacity figures (grid-proxy's `Capacity`): vCPU count and bytes of memory, SSD and HDD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// vCPU count.
    pub cru: u64,
    /// SSD, bytes.
    pub sru: u64,
    /// HDD, bytes.
    pub hru: u64,
    /// Memory, bytes.
    pub mru: u64,
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

/// Paging of every listing (grid-proxy's `Limit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// Page size (the proxy's default is 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Page number, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// Also return the count of all matches, in the `count` header.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ret_count: bool,
}

impl Limit {
    /// Page `page` of `size` entries, with the total count.
    pub fn page(page: u32, size: u32) -> Limit {
        Limit {
            size: Some(size),
            page: Some(page),
            ret_count: true,
        }
    }
}

/// One page of a listing and, when asked (`ret_count`), the count of all matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The entries of this page.
    pub items: Vec<T>,
    /// Count of all matches (the `count` header).
    pub count: Option<u64>,
}

/// The header carrying the count of all matches.
pub const COUNT_HEADER: &str = "count";

/// A farm (grid-proxy's `Farm`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Farm {
    /// Farm name.
    pub name: String,
    /// Farm id.
    pub farm_id: u32,
    /// The farmer's twin.
    pub twin_id: u32,
    /// Pricing policy.
    #[serde(default)]
    pub pricing_policy_id: u32,
    /// `Diy` or `Certified`.
    #[serde(default)]
    pub certification_type: String,
    /// Payout address.
    #[serde(default)]
    pub stellar_address: String,
    /// Every node of the farm must be rented whole.
    #[serde(default)]
    pub dedicated: bool,
    /// The farm's public IPs.
    #[serde(default)]
    pub public_ips: Vec<PublicIp>,
}

/// A public IP of a farm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIp {
    /// The indexer's row id.
    #[serde(default)]
    pub id: String,
    /// The address, CIDR.
    pub ip: String,
    /// The farm (a string in the proxy's answer).
    #[serde(default)]
    pub farm_id: String,
    /// The contract using it, 0 when free.
    #[serde(default)]
    pub contract_id: u64,
    /// Its gateway.
    #[serde(default)]
    pub gateway: String,
}

/// Filters of `GET /farms` (the ones used here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FarmFilter {
    /// Only this farm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub farm_id: Option<u32>,
    /// Only farms of this twin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twin_id: Option<u32>,
    /// Only the farm of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// State of a contract as the proxy spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContractState {
    /// Live and paid for.
    Created,
    /// Out of funds: workloads paused, deleted after 14 days.
    GracePeriod,
    /// Cancelled.
    Deleted,
}

/// The details of a node contract (grid-proxy's `NodeContractDetails`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeContractDetails {
    /// The node.
    #[serde(rename = "nodeId")]
    pub node_id: u32,
    /// The deployment data the contract was created with (at most 512 bytes).
    #[serde(default)]
    pub deployment_data: String,
    /// The deployment's challenge hash, 32 hex digits.
    #[serde(default)]
    pub deployment_hash: String,
    /// Public IPs reserved with it.
    #[serde(default)]
    pub number_of_public_ips: u32,
    /// The node's farm name.
    #[serde(default)]
    pub farm_name: String,
    /// The node's farm.
    #[serde(default)]
    pub farm_id: u32,
}

/// The details of a name contract.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameContractDetails {
    /// The gateway name.
    pub name: String,
}

/// The details of a rent contract.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RentContractDetails {
    /// The rented node.
    #[serde(rename = "nodeId")]
    pub node_id: u32,
    /// Its farm name.
    #[serde(default)]
    pub farm_name: String,
    /// Its farm.
    #[serde(default)]
    pub farm_id: u32,
}

/// What a contract is for, with its details: `type` and `details` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "details", rename_all = "lowercase")]
pub enum ContractDetails {
    /// A deployment on a node.
    Node(NodeContractDetails),
    /// A gateway name.
    Name(NameContractDetails),
    /// A whole node rented.
    Rent(RentContractDetails),
}

/// A contract as the proxy lists it (grid-proxy's `Contract`).
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
    /// Type and details.
    #[serde(flatten)]
    pub details: ContractDetails,
}

/// The type filter of `GET /contracts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContractType {
    /// Node contracts.
    Node,
    /// Name contracts.
    Name,
    /// Rent contracts.
    Rent,
}

/// Filters of `GET /contracts` (the ones used here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractFilter {
    /// Only this contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<u64>,
    /// Only contracts of this twin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twin_id: Option<u32>,
    /// Only contracts on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u32>,
    /// Only contracts of this type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ContractType>,
    /// Only contracts in one of these states.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "comma")]
    pub state: Vec<ContractState>,
    /// Only the name contract of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only node contracts with this deployment hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_hash: Option<String>,
}

/// The grid proxy: read-only listings that lag the chain and the nodes.
pub trait Proxy: Send + Sync {
    /// `GET /nodes`: one page of the nodes matching `filter`.
    fn nodes<'a>(&'a self, filter: &'a NodeFilter, limit: Limit) -> GridFuture<'a, Page<Node>>;
    /// `GET /nodes/{id}`: one node, capacity nested.
    fn node(&self, node_id: u32) -> GridFuture<'_, NodeWithNestedCapacity>;
    /// `GET /gateways`: one page of the nodes with a gateway domain matching `filter`.
    fn gateways<'a>(&'a self, filter: &'a NodeFilter, limit: Limit) -> GridFuture<'a, Page<Node>>;
    /// `GET /contracts`: one page of the contracts matching `filter` (lags the chain).
    fn contracts<'a>(
        &'a self,
        filter: &'a ContractFilter,
        limit: Limit,
    ) -> GridFuture<'a, Page<Contract>>;
    /// `GET /farms`: one page of the farms matching `filter`.
    fn farms<'a>(&'a self, filter: &'a FarmFilter, limit: Limit) -> GridFuture<'a, Page<Farm>>;
}

/// Lists as one comma-separated query value, as grid-proxy reads them (it also takes the key
/// repeated; [`split_list`] reads both).
mod comma {
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};

    pub fn serialize<T: Serialize, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        let parts: Vec<String> = v
            .iter()
            .map(|x| match serde_json::to_value(x) {
                Ok(serde_json::Value::String(t)) => Ok(t),
                Ok(other) => Ok(other.to_string()),
                Err(e) => Err(serde::ser::Error::custom(e)),
            })
            .collect::<Result<_, _>>()?;
        parts.join(",").serialize(s)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        let text = String::deserialize(d)?;
        super::split_list(&text).map_err(serde::de::Error::custom)
    }
}

/// Reads one comma-separated list value: `1,2` → `[1, 2]`, `up,standby` → the statuses.
pub fn split_list<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let v = p
                .parse::<u64>()
                .map(serde_json::Value::from)
                .unwrap_or_else(|_| serde_json::Value::String(p.to_string()));
            serde_json::from_value(v).map_err(|e| format!("{p:?}: {e}"))
        })
        .collect()
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
    fn filters_travel_as_the_proxy_reads_them() {
        let f = NodeFilter {
            status: vec![NodeStatus::Up, NodeStatus::Standby],
            farm_ids: vec![1, 2],
            features: vec!["zmachine-light".into()],
            domain: Some(false),
            ..NodeFilter::default()
        };
        let q = serde_json::to_value(&f).unwrap();
        assert_eq!(q["status"], "up,standby");
        assert_eq!(q["farm_ids"], "1,2");
        assert_eq!(q["features"], "zmachine-light");
        assert_eq!(q["domain"], false);
        let back: NodeFilter = serde_json::from_value(q).unwrap();
        assert_eq!(back, f);
        let c = ContractFilter {
            twin_id: Some(7),
            kind: Some(ContractType::Node),
            state: vec![ContractState::Created, ContractState::GracePeriod],
            ..ContractFilter::default()
        };
        let q = serde_json::to_value(&c).unwrap();
        assert_eq!(q["type"], "node");
        assert_eq!(q["state"], "Created,GracePeriod");
    }

    #[test]
    fn an_empty_domain_means_none() {
        assert_eq!(PublicConfig::default().domain(), None);
        let p = PublicConfig {
            domain: "gent01.grid.tf".into(),
            ..PublicConfig::default()
        };
        assert_eq!(p.domain(), Some("gent01.grid.tf"));
    }
}
