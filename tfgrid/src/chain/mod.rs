//! tfchain over substrate JSON-RPC (websocket) with subxt and the vendored runtime metadata;
//! [`TfChain`] implements [`gridapi::chain::Chain`].
//!
//! * [`runtime`]: the statically generated API of tfchain's runtime (`metadata/tfchain.scale`).
//! * [`signer`]: extrinsics signed by the operator's [`Identity`] (sr25519 or ed25519).
//! * [`errors`]: pallet errors by name → [`GridError`].
//!
//! The client speaks the legacy substrate RPCs (`chain_*`, `state_*`,
//! `author_submitAndWatchExtrinsic`), which every tfchain node serves. Reads are made at the best
//! block (as tfchain-client-go reads), so a contract is seen the moment its block is in. A change
//! is signed with a mortal era (64 blocks) and the pool's next nonce, submitted, and waited for
//! until its block is in, at most [`BLOCK_TIMEOUT`]; a time-out is
//! [`GridError::RetryLater`] (`Timeout`): the extrinsic may still land, look before creating
//! again. Submissions are serialised (one nonce at a time) until the pool has accepted them.
//!
//! The generated calls and storage addresses are used unvalidated: the live runtime's own type
//! information encodes and decodes them, so runtime upgrades that keep these calls and types
//! (by name and shape) do not break the client.

mod calls;
pub mod errors;
mod lazy;
pub mod runtime;
pub mod signer;
mod submit;

pub use calls::*;
pub use lazy::LazyChain;
use submit::{Landed, SubmitFailure, missing_event};

use std::{fmt, sync::Arc, time::Duration};

use gridapi::{
    ErrorCode, GridError, GridFuture,
    chain::{Chain, Contract, CreateNodeContract},
};
use subxt::{
    OnlineClient,
    backend::LegacyBackend,
    config::RpcConfigFor,
    rpcs::{RpcClient, methods::LegacyRpcMethods},
};
use tokio::sync::Mutex;

use crate::identity::Identity;
use errors::{TIMEOUT_MESSAGE, chain_text, from_pallet_error, is_connection_lost, name_exists};
use runtime::tfchain;
use signer::{TfConfig, account_id32};

/// How long a change waits for its block.
pub const BLOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting (websocket and the chain's genesis hash) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one read may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Mortality of the extrinsics, in blocks (6 s each).
pub const MORTALITY: u64 = 64;

/// Why [`TfChain::connect`] failed. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node cannot be reached or does not speak substrate JSON-RPC.
    #[error("cannot connect to tfchain at {url}: {reason}")]
    Connect {
        /// The websocket URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The operator's account has no twin.
    #[error(
        "account {account} has no twin on this chain: create one (e.g. on the ThreeFold dashboard) and try again"
    )]
    NoTwin {
        /// The account, SS58.
        account: String,
    },
    /// Looking up the twin failed.
    #[error("looking up the twin of account {account} failed: {source}")]
    Lookup {
        /// The account, SS58.
        account: String,
        /// The error.
        #[source]
        source: GridError,
    },
}

/// One connection: the subxt client and the raw legacy RPC methods over the same socket.
#[derive(Clone)]
struct Conn {
    client: OnlineClient<TfConfig>,
    rpc: LegacyRpcMethods<RpcConfigFor<TfConfig>>,
}

impl Conn {
    async fn open(url: &str) -> Result<Conn, String> {
        let rpc_client = if url.starts_with("ws://") {
            RpcClient::from_insecure_url(url).await
        } else {
            RpcClient::from_url(url).await
        }
        .map_err(|e| chain_text(&e))?;
        let backend = LegacyBackend::<TfConfig>::builder().build(rpc_client.clone());
        let client = OnlineClient::from_backend_with_config(TfConfig::new(), Arc::new(backend))
            .await
            .map_err(|e| chain_text(&e))?;
        Ok(Conn {
            client,
            rpc: LegacyRpcMethods::new(rpc_client),
        })
    }

    /// A client at the best block.
    async fn at_best(&self) -> Result<AtBlock, subxt::Error> {
        let hash = self
            .rpc
            .chain_get_block_hash(None)
            .await?
            .ok_or_else(|| subxt::Error::other_str("the node has no best block"))?;
        Ok(self.client.at_block(hash).await?)
    }
}

type AtBlock =
    subxt::client::ClientAtBlock<TfConfig, subxt::client::OnlineClientAtBlockImpl<TfConfig>>;

/// The tfchain client of one operator identity. `Send + Sync`; one connection behind a lock,
/// rebuilt once when the node drops it.
pub struct TfChain {
    url: String,
    identity: Arc<Identity>,
    twin_id: u32,
    conn: Mutex<Option<Conn>>,
    submit: Mutex<()>,
}

impl fmt::Debug for TfChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TfChain")
            .field("url", &self.url)
            .field("account", &self.identity.account().ss58())
            .field("key_type", &self.identity.key_type())
            .field("twin_id", &self.twin_id)
            .finish()
    }
}

/// A failure of one attempt: the connection is gone, or a final error.
enum Failure {
    ConnectionLost(String),
    Grid(GridError),
}

impl Failure {
    fn from_subxt(err: &(dyn std::error::Error + 'static), context: &str) -> Failure {
        let text = chain_text(err);
        if is_connection_lost(err) {
            Failure::ConnectionLost(format!("{context}: {text}"))
        } else {
            Failure::Grid(GridError::RetryLater {
                code: ErrorCode::BadGateway,
                message: format!("{context}: tfchain RPC failed: {text}"),
            })
        }
    }

    fn decode(err: &(dyn std::error::Error + 'static), context: &str) -> Failure {
        Failure::Grid(GridError::Fatal {
            code: ErrorCode::Internal,
            message: format!(
                "{context}: cannot decode tfchain's answer: {}",
                chain_text(err)
            ),
        })
    }
}

fn timeout(context: &str) -> GridError {
    tracing::warn!("{context}: {TIMEOUT_MESSAGE}");
    GridError::RetryLater {
        code: ErrorCode::Timeout,
        message: TIMEOUT_MESSAGE.to_string(),
    }
}

fn stale(message: String) -> GridError {
    GridError::RetryLater {
        code: ErrorCode::StaleConnection,
        message,
    }
}

impl TfChain {
    /// Connects to a tfchain node (`wss://tfchain.grid.tf/ws`, ...) and looks up the identity's
    /// twin (`TfgridModule::TwinIdByAccountID`).
    pub async fn connect(url: &str, identity: Arc<Identity>) -> Result<TfChain, ChainError> {
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, Conn::open(url))
            .await
            .map_err(|_| ChainError::Connect {
                url: url.to_string(),
                reason: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
            })?
            .map_err(|reason| ChainError::Connect {
                url: url.to_string(),
                reason,
            })?;
        let mut chain = TfChain {
            url: url.to_string(),
            identity,
            twin_id: 0,
            conn: Mutex::new(Some(conn)),
            submit: Mutex::new(()),
        };
        let account = chain.identity.account();
        let twin = chain
            .read("TwinIdByAccountID", |at| async move {
                let addr = tfchain::storage()
                    .tfgrid_module()
                    .twin_id_by_account_id()
                    .unvalidated();
                let v = at
                    .storage()
                    .try_fetch(addr, (account_id32(&account),))
                    .await
                    .map_err(|e| Failure::from_subxt(&e, "TwinIdByAccountID"))?;
                v.map(|v| v.decode())
                    .transpose()
                    .map_err(|e| Failure::decode(&e, "TwinIdByAccountID"))
            })
            .await
            .map_err(|source| ChainError::Lookup {
                account: account.ss58(),
                source,
            })?;
        match twin {
            Some(id) if id != 0 => {
                chain.twin_id = id;
                Ok(chain)
            }
            _ => Err(ChainError::NoTwin {
                account: account.ss58(),
            }),
        }
    }

    /// The websocket URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The current connection, opened anew when the last one was dropped.
    async fn conn(&self) -> Result<Conn, GridError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(CONNECT_TIMEOUT, Conn::open(&self.url))
            .await
            .map_err(|_| {
                stale(format!(
                    "reconnecting to tfchain at {}: no answer within {}s",
                    self.url,
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| stale(format!("reconnecting to tfchain at {}: {e}", self.url)))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Drops the connection; the next call opens a new one.
    async fn drop_conn(&self) {
        *self.conn.lock().await = None;
    }

    /// A read at the best block; on a lost connection the client is rebuilt once and the read
    /// retried.
    async fn read<T, F, Fut>(&self, what: &str, f: F) -> Result<T, GridError>
    where
        F: Fn(AtBlock) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut retried = false;
        loop {
            let attempt = async {
                let conn = self.conn().await.map_err(Failure::Grid)?;
                let at = conn
                    .at_best()
                    .await
                    .map_err(|e| Failure::from_subxt(&e, what))?;
                f(at).await
            };
            let result = tokio::time::timeout(READ_TIMEOUT, attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(Failure::Grid(GridError::RetryLater {
                        code: ErrorCode::Timeout,
                        message: format!(
                            "{what}: tfchain did not answer within {}s",
                            READ_TIMEOUT.as_secs()
                        ),
                    }))
                });
            match result {
                Ok(v) => return Ok(v),
                Err(Failure::Grid(e)) => return Err(e),
                Err(Failure::ConnectionLost(text)) => {
                    self.drop_conn().await;
                    if retried {
                        return Err(stale(format!("tfchain connection lost twice: {text}")));
                    }
                    tracing::warn!(url = %self.url, "tfchain connection lost, reconnecting: {text}");
                    retried = true;
                }
            }
        }
    }

    async fn contract_inner(&self, contract_id: u64) -> Result<Option<Contract>, GridError> {
        self.read("Contracts", |at| async move {
            let addr = tfchain::storage()
                .smart_contract_module()
                .contracts()
                .unvalidated();
            let v = at
                .storage()
                .try_fetch(addr, (contract_id,))
                .await
                .map_err(|e| Failure::from_subxt(&e, "Contracts"))?;
            v.map(|v| v.decode().map(to_contract))
                .transpose()
                .map_err(|e| Failure::decode(&e, "Contracts"))
        })
        .await
    }

    async fn contract_id_by_name_inner(&self, name: &str) -> Result<Option<u64>, GridError> {
        self.read("ContractIDByNameRegistration", |at| async move {
            let addr = tfchain::storage()
                .smart_contract_module()
                .contract_id_by_name_registration()
                .unvalidated();
            let v = at
                .storage()
                .try_fetch(addr, (name_key(name),))
                .await
                .map_err(|e| Failure::from_subxt(&e, "ContractIDByNameRegistration"))?;
            let id = v
                .map(|v| v.decode())
                .transpose()
                .map_err(|e| Failure::decode(&e, "ContractIDByNameRegistration"))?;
            Ok(id.filter(|&id| id != 0))
        })
        .await
    }

    async fn contract_id_by_node_hash_inner(
        &self,
        node_id: u32,
        deployment_hash: &str,
    ) -> Result<Option<u64>, GridError> {
        let hash = hex_hash(deployment_hash)?;
        self.read("ContractIDByNodeIDAndHash", |at| async move {
            let addr = tfchain::storage()
                .smart_contract_module()
                .contract_id_by_node_id_and_hash()
                .unvalidated();
            let v = at
                .storage()
                .try_fetch(addr, (node_id, hash))
                .await
                .map_err(|e| Failure::from_subxt(&e, "ContractIDByNodeIDAndHash"))?;
            let id = v
                .map(|v| v.decode())
                .transpose()
                .map_err(|e| Failure::decode(&e, "ContractIDByNodeIDAndHash"))?;
            Ok(id.filter(|&id| id != 0))
        })
        .await
    }

    /// The contract of a `ContractCreated` event among the events, or a look-up when the event is
    /// missing.
    fn created(events: &subxt::extrinsics::ExtrinsicEvents<TfConfig>) -> Option<Contract> {
        events
            .find_first::<tfchain::smart_contract_module::events::ContractCreated>()
            .and_then(Result::ok)
            .map(|ev| to_contract(ev.0))
    }

    async fn create_node_contract_inner(
        &self,
        req: &CreateNodeContract,
    ) -> Result<Contract, GridError> {
        let call = create_node_contract_call(req)?;
        let what = format!(
            "create_node_contract(node {}, hash {})",
            req.node_id, req.deployment_hash
        );
        match self.submit_mapped(&call, &what).await {
            Ok(Landed::Events(ev)) => match Self::created(&ev) {
                Some(c) => Ok(c),
                None => {
                    let id = self
                        .contract_id_by_node_hash_inner(req.node_id, &req.deployment_hash)
                        .await?
                        .ok_or_else(|| missing_event(&what))?;
                    self.contract_inner(id)
                        .await?
                        .ok_or_else(|| missing_event(&what))
                }
            },
            Err(SubmitFailure::Grid(g)) => Err(g),
            Err(SubmitFailure::Pallet(pe)) => {
                let mut ctx = what.clone();
                if pe.name == "ContractIsNotUnique"
                    && let Ok(Some(id)) = self
                        .contract_id_by_node_hash_inner(req.node_id, &req.deployment_hash)
                        .await
                {
                    ctx = format!("{what}: held by contract {id}");
                }
                Err(from_pallet_error(&pe, &ctx))
            }
        }
    }

    async fn create_name_contract_inner(&self, name: &str) -> Result<Contract, GridError> {
        let call = create_name_contract_call(name)?;
        let what = format!("create_name_contract({name:?})");
        match self.submit_mapped(&call, &what).await {
            Ok(Landed::Events(ev)) => match Self::created(&ev) {
                Some(c) => Ok(c),
                None => {
                    let id = self
                        .contract_id_by_name_inner(name)
                        .await?
                        .ok_or_else(|| missing_event(&what))?;
                    self.contract_inner(id)
                        .await?
                        .ok_or_else(|| missing_event(&what))
                }
            },
            Err(SubmitFailure::Grid(g)) => Err(g),
            Err(SubmitFailure::Pallet(pe)) if pe.name == "NameExists" => {
                let Some(id) = self.contract_id_by_name_inner(name).await? else {
                    // Released in between: the caller may try again.
                    return Err(GridError::RetryLater {
                        code: ErrorCode::Busy,
                        message: format!(
                            "NameExists: name {name:?} was taken, and is free again: try again"
                        ),
                    });
                };
                let owner = self.contract_inner(id).await?.map(|c| c.twin_id);
                Err(name_exists(name, owner.unwrap_or_default(), id))
            }
            Err(SubmitFailure::Pallet(pe)) => Err(from_pallet_error(&pe, &what)),
        }
    }

    async fn cancel_contract_inner(&self, contract_id: u64) -> Result<(), GridError> {
        let call = cancel_contract_call(contract_id);
        let what = format!("cancel_contract({contract_id})");
        match self.submit_mapped(&call, &what).await {
            Ok(Landed::Events(_)) => Ok(()),
            Err(SubmitFailure::Grid(g)) => Err(g),
            Err(SubmitFailure::Pallet(pe)) => Err(from_pallet_error(&pe, &what)),
        }
    }
}

impl Chain for TfChain {
    fn twin_id(&self) -> u32 {
        self.twin_id
    }

    fn create_node_contract<'a>(&'a self, req: &'a CreateNodeContract) -> GridFuture<'a, Contract> {
        Box::pin(self.create_node_contract_inner(req))
    }

    fn create_name_contract<'a>(&'a self, name: &'a str) -> GridFuture<'a, Contract> {
        Box::pin(self.create_name_contract_inner(name))
    }

    fn cancel_contract(&self, contract_id: u64) -> GridFuture<'_, ()> {
        Box::pin(self.cancel_contract_inner(contract_id))
    }

    fn contract(&self, contract_id: u64) -> GridFuture<'_, Option<Contract>> {
        Box::pin(self.contract_inner(contract_id))
    }

    fn contract_id_by_name<'a>(&'a self, name: &'a str) -> GridFuture<'a, Option<u64>> {
        Box::pin(self.contract_id_by_name_inner(name))
    }

    fn contract_id_by_node_hash<'a>(
        &'a self,
        node_id: u32,
        deployment_hash: &'a str,
    ) -> GridFuture<'a, Option<u64>> {
        Box::pin(self.contract_id_by_node_hash_inner(node_id, deployment_hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn tfchain_is_send_and_sync() {
        assert_send_sync::<TfChain>();
    }
}
