//! The proxy's farms and contracts: what `/farms` and `/contracts` answer, and their filters.

use serde::{Deserialize, Serialize};

use super::comma;

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
    /// Only node contracts whose deployment data (the metadata given at creation) is exactly
    /// this: grid-proxy's `deployment_data` filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_data: Option<String>,
}

impl ContractFilter {
    /// Whether grid-proxy lists `c` under this filter: every given field must match exactly
    /// (`state`: any of them; a field a contract's type does not have never matches).
    pub fn matches(&self, c: &Contract) -> bool {
        let (kind, node, name, hash, data) = match &c.details {
            ContractDetails::Node(d) => (
                ContractType::Node,
                Some(d.node_id),
                None,
                Some(d.deployment_hash.as_str()),
                Some(d.deployment_data.as_str()),
            ),
            ContractDetails::Name(d) => {
                (ContractType::Name, None, Some(d.name.as_str()), None, None)
            }
            ContractDetails::Rent(d) => (ContractType::Rent, Some(d.node_id), None, None, None),
        };
        self.contract_id.is_none_or(|id| id == c.contract_id)
            && self.twin_id.is_none_or(|t| t == c.twin_id)
            && self.kind.is_none_or(|k| k == kind)
            && (self.state.is_empty() || self.state.contains(&c.state))
            && self.node_id.is_none_or(|n| Some(n) == node)
            && self.name.as_deref().is_none_or(|n| Some(n) == name)
            && self
                .deployment_hash
                .as_deref()
                .is_none_or(|h| Some(h) == hash)
            && self
                .deployment_data
                .as_deref()
                .is_none_or(|d| Some(d) == data)
    }
}

/// A twin as `GET /twins` lists it: who it is on chain, where its relay is, and its end-to-end
/// key (RMB encrypts to it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Twin {
    /// Twin id.
    pub twin_id: u32,
    /// The twin's account, SS58.
    pub account_id: String,
    /// The relay(s) the twin is reached through (hosts, `_`-separated), empty when none.
    #[serde(default)]
    pub relay: String,
    /// The twin's end-to-end public key (compressed secp256k1, hex), empty when none.
    #[serde(default)]
    pub public_key: String,
}

/// Filters of `GET /twins` (the ones used here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinFilter {
    /// Only this twin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twin_id: Option<u32>,
    /// Only the twin of this account (SS58).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}
