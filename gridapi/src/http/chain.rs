//! The chain over the HTTP transport: each pallet call is a `POST` of its arguments to
//! `/chain/tx/<call>`, each storage map a `GET` of `/chain/storage/<map>/<keys>`; the bodies
//! are the pallet's types. Value-query maps answer 0 for a missing key, as on chain.

use std::sync::Arc;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{encode, json, session::Session};
use crate::{
    GridFuture,
    chain::{Chain, Contract, CreateNameContract, CreateNodeContract},
};

/// Path of the `create_node_contract` call.
pub const TX_CREATE_NODE_CONTRACT: &str = "/chain/tx/create_node_contract";
/// Path of the `create_name_contract` call.
pub const TX_CREATE_NAME_CONTRACT: &str = "/chain/tx/create_name_contract";
/// Path of the `cancel_contract` call.
pub const TX_CANCEL_CONTRACT: &str = "/chain/tx/cancel_contract";
/// Prefix of the `Contracts` storage map (`/{contract_id}`).
pub const STORAGE_CONTRACTS: &str = "/chain/storage/Contracts";
/// Prefix of the `ContractIDByNameRegistration` storage map (`/{name}`).
pub const STORAGE_CONTRACT_ID_BY_NAME: &str = "/chain/storage/ContractIDByNameRegistration";
/// Prefix of the `ContractIDByNodeIDAndHash` storage map (`/{node_id}/{hash}`).
pub const STORAGE_CONTRACT_ID_BY_NODE_HASH: &str = "/chain/storage/ContractIDByNodeIDAndHash";

/// Arguments of `cancel_contract`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelContract {
    /// The contract to cancel.
    pub contract_id: u64,
}

/// [`Chain`] over the HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpChain {
    session: Arc<Session>,
}

impl HttpChain {
    /// The chain face of a session.
    pub fn new(session: Arc<Session>) -> Self {
        HttpChain { session }
    }
}

fn some_id(id: u64) -> Option<u64> {
    Some(id).filter(|&i| i != 0)
}

impl Chain for HttpChain {
    fn twin_id(&self) -> u32 {
        self.session.twin_id()
    }

    fn create_node_contract<'a>(&'a self, req: &'a CreateNodeContract) -> GridFuture<'a, Contract> {
        Box::pin(async move {
            self.session
                .call(
                    Method::POST,
                    TX_CREATE_NODE_CONTRACT,
                    Some(json(req)),
                    "create node contract",
                )
                .await
        })
    }

    fn create_name_contract<'a>(&'a self, name: &'a str) -> GridFuture<'a, Contract> {
        Box::pin(async move {
            let req = CreateNameContract {
                name: name.to_string(),
            };
            self.session
                .call(
                    Method::POST,
                    TX_CREATE_NAME_CONTRACT,
                    Some(json(&req)),
                    "create name contract",
                )
                .await
                .map_err(|e| e.for_name(name))
        })
    }

    fn cancel_contract(&self, contract_id: u64) -> GridFuture<'_, ()> {
        Box::pin(async move {
            self.session
                .call(
                    Method::POST,
                    TX_CANCEL_CONTRACT,
                    Some(json(&CancelContract { contract_id })),
                    "cancel contract",
                )
                .await
        })
    }

    fn contract(&self, contract_id: u64) -> GridFuture<'_, Option<Contract>> {
        Box::pin(async move {
            self.session
                .call(
                    Method::GET,
                    &format!("{STORAGE_CONTRACTS}/{contract_id}"),
                    None,
                    "read contract",
                )
                .await
        })
    }

    fn contract_id_by_name<'a>(&'a self, name: &'a str) -> GridFuture<'a, Option<u64>> {
        Box::pin(async move {
            self.session
                .call(
                    Method::GET,
                    &format!("{STORAGE_CONTRACT_ID_BY_NAME}/{}", encode(name)),
                    None,
                    "look up name",
                )
                .await
                .map(some_id)
        })
    }

    fn contract_id_by_node_hash<'a>(
        &'a self,
        node_id: u32,
        deployment_hash: &'a str,
    ) -> GridFuture<'a, Option<u64>> {
        Box::pin(async move {
            self.session
                .call(
                    Method::GET,
                    &format!(
                        "{STORAGE_CONTRACT_ID_BY_NODE_HASH}/{node_id}/{}",
                        encode(deployment_hash)
                    ),
                    None,
                    "look up node contract",
                )
                .await
                .map(some_id)
        })
    }
}
