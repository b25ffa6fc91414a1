//! The chain's face: tfchain's smart-contract pallet (`pallet-smart-contract`: `Contract`,
//! `ContractData`, `ContractState`, the `create_node_contract`, `create_name_contract` and
//! `cancel_contract` calls, the `Contracts`, `ContractIDByNameRegistration` and
//! `ContractIDByNodeIDAndHash` storage maps) and [`Chain`], the trait of its client.
//!
//! The chain is exact and final: look-ups here see a contract the moment its block is in,
//! unlike the proxy's listing.

use serde::{Deserialize, Serialize};

use crate::{ErrorCode, GridError, GridFuture};

/// Longest node-contract deployment data the chain accepts, in bytes
/// (`MaxDeploymentDataLength`).
pub const MAX_DEPLOYMENT_DATA: usize = 512;

/// Why a contract was deleted (the pallet's `Cause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cause {
    /// Its owner cancelled it.
    CanceledByUser,
    /// It ran out of funds.
    OutOfFunds,
    /// The council cancelled it.
    CanceledByCollective,
}

/// State of a contract (the pallet's `ContractState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContractState {
    /// Live and paid for.
    Created,
    /// Cancelled, and why (the chain forgets it right after).
    Deleted(Cause),
    /// Out of funds since this block: workloads paused, deleted after 14 days.
    GracePeriod(u64),
}

/// A node contract (the pallet's `NodeContract`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeContract {
    /// The node.
    pub node_id: u32,
    /// The deployment's challenge hash: 32 hex digits (see [`crate::zos::challenge_hash`]).
    pub deployment_hash: String,
    /// Free data, at most [`MAX_DEPLOYMENT_DATA`] bytes (the controller tags its contracts).
    pub deployment_data: String,
    /// Public IPs reserved with it.
    pub public_ips: u32,
}

/// A name contract (the pallet's `NameContract`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameContract {
    /// The gateway name, 3–64 characters of `[a-z0-9-_]`.
    pub name: String,
}

/// A rent contract (the pallet's `RentContract`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RentContract {
    /// The rented node.
    pub node_id: u32,
}

/// What a contract is for (the pallet's `ContractData`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContractData {
    /// A deployment on a node.
    NodeContract(NodeContract),
    /// A global gateway name.
    NameContract(NameContract),
    /// A whole node.
    RentContract(RentContract),
}

/// A contract on the chain (the pallet's `Contract`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    /// Storage version.
    pub version: u32,
    /// State.
    pub state: ContractState,
    /// Contract id.
    pub contract_id: u64,
    /// Owner twin.
    pub twin_id: u32,
    /// Node, name or rent contract.
    pub contract_type: ContractData,
    /// The solution provider paid a share, if any.
    pub solution_provider_id: Option<u64>,
}

impl Contract {
    /// The node contract, when it is one.
    pub fn node_contract(&self) -> Option<&NodeContract> {
        match &self.contract_type {
            ContractData::NodeContract(n) => Some(n),
            _ => None,
        }
    }
}

/// Arguments of `create_node_contract`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateNodeContract {
    /// The node.
    pub node_id: u32,
    /// The challenge hash of the deployment that will be sent to the node.
    pub deployment_hash: String,
    /// At most [`MAX_DEPLOYMENT_DATA`] bytes.
    pub deployment_data: String,
    /// Public IPs to reserve (always 0 here).
    pub public_ips: u32,
    /// Solution provider.
    pub solution_provider_id: Option<u64>,
}

/// Arguments of `create_name_contract`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateNameContract {
    /// The gateway name, 3–64 chars of `[a-z0-9-_]`.
    pub name: String,
}

/// Which contract holds a name (two storage reads: the name's contract id, then the contract).
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

/// The chain: contracts, exact and final. Calls that change it may fail with
/// [`GridError::RetryLater`] after they landed (a block-wait time-out): look before creating
/// again.
pub trait Chain: Send + Sync {
    /// The twin every call is made as.
    fn twin_id(&self) -> u32;
    /// `create_node_contract`; the new contract (event `ContractCreated`).
    fn create_node_contract<'a>(&'a self, req: &'a CreateNodeContract) -> GridFuture<'a, Contract>;
    /// `create_name_contract`; the new contract. A taken name is [`GridError::NameExists`].
    fn create_name_contract<'a>(&'a self, name: &'a str) -> GridFuture<'a, Contract>;
    /// `cancel_contract`. An unknown contract is `ContractNotExists` (category NotFound).
    fn cancel_contract(&self, contract_id: u64) -> GridFuture<'_, ()>;
    /// Storage `Contracts(id)`: `None` when there is no such contract.
    fn contract(&self, contract_id: u64) -> GridFuture<'_, Option<Contract>>;
    /// Storage `ContractIDByNameRegistration(name)`: `None` when no contract holds the name.
    fn contract_id_by_name<'a>(&'a self, name: &'a str) -> GridFuture<'a, Option<u64>>;
    /// Storage `ContractIDByNodeIDAndHash(node, hash)`: the live node contract for exactly this
    /// deployment on this node.
    fn contract_id_by_node_hash<'a>(
        &'a self,
        node_id: u32,
        deployment_hash: &'a str,
    ) -> GridFuture<'a, Option<u64>>;

    /// Which contract and twin hold `name`, if any.
    fn name_owner<'a>(&'a self, name: &'a str) -> GridFuture<'a, Option<NameOwner>> {
        Box::pin(async move {
            let Some(id) = self.contract_id_by_name(name).await? else {
                return Ok(None);
            };
            Ok(self.contract(id).await?.map(|c| NameOwner {
                name: name.to_string(),
                contract_id: c.contract_id,
                twin_id: c.twin_id,
            }))
        })
    }

    /// The contract, or `ContractNotExists` (category NotFound).
    fn get_contract(&self, contract_id: u64) -> GridFuture<'_, Contract> {
        Box::pin(async move {
            self.contract(contract_id)
                .await?
                .ok_or_else(|| GridError::NotFound {
                    code: ErrorCode::ContractNotExists,
                    message: format!("ContractNotExists: contract {contract_id}"),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_contract_reads_as_the_pallet_writes_it() {
        let c: Contract = serde_json::from_str(
            r#"{"version":4,"state":{"GracePeriod":1200},"contract_id":9,"twin_id":7,
                "contract_type":{"NameContract":{"name":"alice"}},"solution_provider_id":null}"#,
        )
        .unwrap();
        assert_eq!(c.state, ContractState::GracePeriod(1200));
        assert!(c.node_contract().is_none());
        let v = serde_json::to_value(ContractState::Deleted(Cause::CanceledByUser)).unwrap();
        assert_eq!(v, serde_json::json!({"Deleted": "CanceledByUser"}));
        assert_eq!(
            serde_json::to_value(ContractState::Created).unwrap(),
            "Created"
        );
    }
}
