//! Changing the chain: sign, submit, wait for the block (at most [`BLOCK_TIMEOUT`]), and sort
//! what went wrong (a pallet error by name, a lost connection: it may have landed).

use gridapi::{ErrorCode, GridError};
use subxt::{
    config::DefaultExtrinsicParamsBuilder,
    error::{ExtrinsicError, TransactionEventsError, TransactionProgressError},
    tx::TransactionStatus,
};

use super::{
    BLOCK_TIMEOUT, Failure, MORTALITY, READ_TIMEOUT, TfChain,
    errors::{self, chain_text, from_dispatch_error, from_pool_refusal, is_connection_lost},
    signer::TfConfig,
    stale, timeout,
};

/// What a landed extrinsic gave back.
pub(super) enum Landed {
    /// Its events (success).
    Events(subxt::extrinsics::ExtrinsicEvents<TfConfig>),
}

pub(super) fn missing_event(what: &str) -> GridError {
    GridError::Fatal {
        code: ErrorCode::Internal,
        message: format!("{what}: landed, but no ContractCreated event and no contract found"),
    }
}

/// Why a submission failed, before mapping.
pub(super) enum SubmitError {
    /// Final, mapped.
    Grid(GridError),
    /// The extrinsic failed in its block: mapped, or a pallet error by name.
    Dispatch(Result<GridError, errors::PalletError>),
    /// The connection was lost: it may have landed.
    Lost(String),
}

/// Why a submission failed, after mapping.
pub(super) enum SubmitFailure {
    Grid(GridError),
    Pallet(errors::PalletError),
}

impl TfChain {
    /// Signs and submits a call, and waits for its block (at most [`BLOCK_TIMEOUT`]). A
    /// dispatch error is returned as `Err(Ok(pallet error))` for the caller to map.
    pub(super) async fn submit<C>(&self, call: &C, what: &str) -> Result<Landed, SubmitError>
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
    pub(super) async fn submit_mapped<C>(
        &self,
        call: &C,
        what: &str,
    ) -> Result<Landed, SubmitFailure>
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
}
