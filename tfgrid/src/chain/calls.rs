//! The pure part of the chain client: the calls' payloads and storage keys as the runtime takes
//! them, and the pallet's contracts as the seam's types (tested offline against
//! `vectors/chain.json`).

use gridapi::{
    ErrorCode, GridError,
    chain::{
        Cause, Contract, ContractData, ContractState, CreateNodeContract, MAX_DEPLOYMENT_DATA,
        NameContract, NodeContract, RentContract, check_name,
    },
};

use super::runtime::{contract_types as ct, tfchain};

/// The deployment hash as the chain stores it: the 32 hex characters' ASCII bytes (as
/// tfchain-client-go's `NewHexHash` and grid-client pass it).
pub fn hex_hash(deployment_hash: &str) -> Result<[u8; 32], GridError> {
    <[u8; 32]>::try_from(deployment_hash.as_bytes()).map_err(|_| GridError::Fatal {
        code: ErrorCode::Invalid,
        message: format!(
            "deployment hash must be 32 hex characters, got {} bytes",
            deployment_hash.len()
        ),
    })
}

/// A contract as the pallet stores it → [`Contract`].
pub fn to_contract(c: ct::Contract) -> Contract {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Contract {
        version: c.version,
        state: match c.state {
            ct::ContractState::Created => ContractState::Created,
            ct::ContractState::Deleted(cause) => ContractState::Deleted(match cause {
                ct::Cause::CanceledByUser => Cause::CanceledByUser,
                ct::Cause::OutOfFunds => Cause::OutOfFunds,
                ct::Cause::CanceledByCollective => Cause::CanceledByCollective,
            }),
            ct::ContractState::GracePeriod(block) => ContractState::GracePeriod(block),
        },
        contract_id: c.contract_id,
        twin_id: c.twin_id,
        contract_type: match c.contract_type {
            ct::ContractData::NodeContract(n) => ContractData::NodeContract(NodeContract {
                node_id: n.node_id,
                deployment_hash: text(&n.deployment_hash),
                deployment_data: text(&n.deployment_data.0),
                public_ips: n.public_ips,
            }),
            ct::ContractData::NameContract(n) => ContractData::NameContract(NameContract {
                name: text(&n.name.0.0),
            }),
            ct::ContractData::RentContract(r) => {
                ContractData::RentContract(RentContract { node_id: r.node_id })
            }
        },
        solution_provider_id: c.solution_provider_id,
    }
}

fn bounded(b: Vec<u8>) -> tfchain::runtime_types::bounded_collections::bounded_vec::BoundedVec<u8> {
    tfchain::runtime_types::bounded_collections::bounded_vec::BoundedVec(b)
}

/// The call `SmartContractModule::create_node_contract`.
pub fn create_node_contract_call(
    req: &CreateNodeContract,
) -> Result<
    subxt::tx::StaticPayload<tfchain::smart_contract_module::calls::CreateNodeContract>,
    GridError,
> {
    if req.deployment_data.len() > MAX_DEPLOYMENT_DATA {
        return Err(GridError::from_body(gridapi::ErrorBody::new(
            ErrorCode::ContractMetadataTooLong,
            format!(
                "ContractMetadataTooLong: deployment data is {} bytes, at most {MAX_DEPLOYMENT_DATA}",
                req.deployment_data.len()
            ),
        )));
    }
    Ok(tfchain::transactions()
        .smart_contract_module()
        .create_node_contract(
            req.node_id,
            hex_hash(&req.deployment_hash)?,
            bounded(req.deployment_data.as_bytes().to_vec()),
            req.public_ips,
            req.solution_provider_id,
        )
        .unvalidated())
}

/// The call `SmartContractModule::create_name_contract`.
pub fn create_name_contract_call(
    name: &str,
) -> Result<
    subxt::tx::StaticPayload<tfchain::smart_contract_module::calls::CreateNameContract>,
    GridError,
> {
    if let Some(code) = check_name(name) {
        return Err(GridError::from_body(gridapi::ErrorBody::new(
            code,
            format!("{code:?}: gateway name {name:?}"),
        )));
    }
    Ok(tfchain::transactions()
        .smart_contract_module()
        .create_name_contract(name.as_bytes().to_vec())
        .unvalidated())
}

/// The call `SmartContractModule::cancel_contract`.
pub fn cancel_contract_call(
    contract_id: u64,
) -> subxt::tx::StaticPayload<tfchain::smart_contract_module::calls::CancelContract> {
    tfchain::transactions()
        .smart_contract_module()
        .cancel_contract(contract_id)
        .unvalidated()
}

/// The name as the storage key `ContractIDByNameRegistration` takes it.
pub fn name_key(
    name: &str,
) -> tfchain::runtime_types::pallet_smart_contract::grid_contract::NameContractName {
    tfchain::runtime_types::pallet_smart_contract::grid_contract::NameContractName(bounded(
        name.as_bytes().to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_the_hex_characters() {
        assert_eq!(
            &hex_hash("0123456789abcdef0123456789abcdef").unwrap(),
            b"0123456789abcdef0123456789abcdef"
        );
        assert!(hex_hash("0123").is_err());
    }

    #[test]
    fn calls_refuse_what_the_chain_refuses() {
        let long = CreateNodeContract {
            node_id: 1,
            deployment_hash: "0123456789abcdef0123456789abcdef".into(),
            deployment_data: "x".repeat(MAX_DEPLOYMENT_DATA + 1),
            public_ips: 0,
            solution_provider_id: None,
        };
        let err = create_node_contract_call(&long).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ContractMetadataTooLong);
        let err = create_name_contract_call("ab").unwrap_err();
        assert_eq!(err.code(), ErrorCode::NameContractNameTooShort);
        assert!(create_name_contract_call("alice-sandbox").is_ok());
    }

    #[test]
    fn contracts_convert() {
        let c = ct::Contract {
            version: 6,
            state: ct::ContractState::Deleted(ct::Cause::OutOfFunds),
            contract_id: 42,
            twin_id: 7,
            contract_type: ct::ContractData::NodeContract(ct::NodeContract {
                node_id: 11,
                deployment_hash: *b"0123456789abcdef0123456789abcdef",
                deployment_data: bounded(b"{}".to_vec()),
                public_ips: 0,
                public_ips_list:
                    tfchain::runtime_types::bounded_collections::bounded_vec::BoundedVec(vec![]),
            }),
            solution_provider_id: None,
        };
        let c = to_contract(c);
        assert_eq!(c.state, ContractState::Deleted(Cause::OutOfFunds));
        let n = c.node_contract().unwrap();
        assert_eq!(n.deployment_hash, "0123456789abcdef0123456789abcdef");
        assert_eq!(n.deployment_data, "{}");
        assert_eq!(n.node_id, 11);
    }
}
