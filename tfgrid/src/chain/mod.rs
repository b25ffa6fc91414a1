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

pub mod errors;
mod lazy;
pub mod runtime;
pub mod signer;

pub use lazy::LazyChain;

use std::{fmt, sync::Arc, time::Duration};

use gridapi::{
    ErrorCode, GridError, GridFuture,
    chain::{
        Cause, Chain, Contract, ContractData, ContractState, CreateNodeContract,
        MAX_DEPLOYMENT_DATA, NameContract, NodeContract, RentContract, check_name,
    },
};
use subxt::{
    OnlineClient,
    backend::LegacyBackend,
    config::{DefaultExtrinsicParamsBuilder, RpcConfigFor},
    error::{ExtrinsicError, TransactionEventsError, TransactionProgressError},
    rpcs::{RpcClient, methods::LegacyRpcMethods},
    tx::TransactionStatus,
};
use tokio::sync::Mutex;

use crate::identity::Identity;
use errors::{
    TIMEOUT_MESSAGE, chain_text, from_dispatch_error, from_pallet_error, from_pool_refusal,
    is_connection_lost, name_exists,
};
use runtime::{contract_types as ct, tfchain};
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

/// What a landed extrinsic gave back.
enum Landed {
    /// Its events (success).
    Events(subxt::extrinsics::ExtrinsicEvents<TfConfig>),
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

    /// Signs and submits a call, and waits for its block (at most [`BLOCK_TIMEOUT`]). A
    /// dispatch error is returned as `Err(Ok(pallet error))` for the caller to map.
    async fn submit<C>(&self, call: &C, what: &str) -> Result<Landed, SubmitError>
    where
        C: subxt::tx::Payload + Send + Sync,
    {
        let conn = self.conn().await.map_err(SubmitError::Grid)?;
        let lost = |e: &(dyn std::error::Error + 'static)| match Failure::from_subxt(e, what) {
            Failure::ConnectionLost(text) => SubmitError::Lost(text),
            Failure::Grid(g) => SubmitError::Grid(g),
        };
        // Sign with the pool's next nonce and submit, one submission at a time.
        let progress = {
            let _one = self.submit.lock().await;
            let at = tokio::time::timeout(READ_TIMEOUT, conn.at_best())
                .await
                .map_err(|_| SubmitError::Grid(timeout(what)))?
                .map_err(|e| lost(&e))?;
            let params = DefaultExtrinsicParamsBuilder::<TfConfig>::new()
                .mortal(MORTALITY)
                .build();
            let mut tx = at.tx();
            let signed = tokio::time::timeout(
                READ_TIMEOUT,
                tx.create_signed(call, &*self.identity, params),
            )
            .await
            .map_err(|_| SubmitError::Grid(timeout(what)))?
            .map_err(|e| match &e {
                ExtrinsicError::ErrorSubmittingTransaction(_) => lost(&e),
                _ if is_connection_lost(&e) => lost(&e),
                _ => SubmitError::Grid(GridError::Fatal {
                    code: ErrorCode::Internal,
                    message: format!("{what}: cannot build the extrinsic: {}", chain_text(&e)),
                }),
            })?;
            tokio::time::timeout(READ_TIMEOUT, signed.submit_and_watch())
                .await
                .map_err(|_| SubmitError::Grid(timeout(what)))?
                .map_err(|e| {
                    if is_connection_lost(&e) {
                        lost(&e)
                    } else {
                        SubmitError::Grid(from_pool_refusal(&chain_text(&e), what))
                    }
                })?
        };
        let wait = async move {
            let mut progress = progress;
            while let Some(status) = progress.next().await {
                let status = status.map_err(|e| match &e {
                    TransactionProgressError::TransactionStatusError(s) => {
                        SubmitError::Grid(from_pool_refusal(&s.to_string(), what))
                    }
                    _ => lost(&e),
                })?;
                let in_block = match status {
                    TransactionStatus::InBestBlock(b) | TransactionStatus::InFinalizedBlock(b) => b,
                    TransactionStatus::Error { message }
                    | TransactionStatus::Invalid { message }
                    | TransactionStatus::Dropped { message } => {
                        return Err(SubmitError::Grid(from_pool_refusal(&message, what)));
                    }
                    _ => continue,
                };
                return match in_block.wait_for_success().await {
                    Ok(events) => Ok(Landed::Events(events)),
                    Err(TransactionEventsError::ExtrinsicFailed(d)) => {
                        Err(SubmitError::Dispatch(from_dispatch_error(&d, what)))
                    }
                    Err(e) => Err(lost(&e)),
                };
            }
            Err(SubmitError::Grid(timeout(what)))
        };
        tokio::time::timeout(BLOCK_TIMEOUT, wait)
            .await
            .unwrap_or_else(|_| Err(SubmitError::Grid(timeout(what))))
    }

    /// [`Self::submit`], errors mapped, a lost connection dropped for the next call.
    async fn submit_mapped<C>(&self, call: &C, what: &str) -> Result<Landed, SubmitFailure>
    where
        C: subxt::tx::Payload + Send + Sync,
    {
        match self.submit(call, what).await {
            Ok(l) => Ok(l),
            Err(SubmitError::Grid(g)) => Err(SubmitFailure::Grid(g)),
            Err(SubmitError::Dispatch(Ok(g))) => Err(SubmitFailure::Grid(g)),
            Err(SubmitError::Dispatch(Err(pe))) => Err(SubmitFailure::Pallet(pe)),
            Err(SubmitError::Lost(text)) => {
                self.drop_conn().await;
                Err(SubmitFailure::Grid(stale(format!(
                    "{what}: tfchain connection lost while submitting, it may have landed: {text}"
                ))))
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

fn missing_event(what: &str) -> GridError {
    GridError::Fatal {
        code: ErrorCode::Internal,
        message: format!("{what}: landed, but no ContractCreated event and no contract found"),
    }
}

/// Why a submission failed, before mapping.
enum SubmitError {
    /// Final, mapped.
    Grid(GridError),
    /// The extrinsic failed in its block: mapped, or a pallet error by name.
    Dispatch(Result<GridError, errors::PalletError>),
    /// The connection was lost: it may have landed.
    Lost(String),
}

/// Why a submission failed, after mapping.
enum SubmitFailure {
    Grid(GridError),
    Pallet(errors::PalletError),
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
