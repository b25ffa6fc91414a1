//! [`LazyChain`]: tfchain connected on first use, and again after a failed attempt. An
//! unreachable endpoint, a wrong mnemonic or an account without a twin is every call's error
//! (a condition on the Tester) and [`LazyChain::health`]'s answer until mended, never a crash.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU32, Ordering},
};
use std::time::Duration;

use gridapi::{
    ErrorCode, GridError, GridFuture,
    chain::{Chain, Contract, CreateNodeContract},
};

use super::{ChainError, TfChain};
use crate::identity::{Identity, IdentityError};

/// [`Chain`] over a [`TfChain`] that connects when first needed.
pub struct LazyChain {
    url: String,
    identity: Result<Arc<Identity>, IdentityError>,
    chain: tokio::sync::Mutex<Option<Arc<TfChain>>>,
    twin: AtomicU32,
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for LazyChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyChain")
            .field("url", &self.url)
            .field("twin", &self.twin.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl LazyChain {
    /// A chain at `url` acting as `identity` (or reporting why there is none).
    pub fn new(url: &str, identity: Result<Arc<Identity>, IdentityError>) -> Arc<LazyChain> {
        Arc::new(LazyChain {
            url: url.to_string(),
            identity,
            chain: tokio::sync::Mutex::new(None),
            twin: AtomicU32::new(0),
            last_error: Mutex::default(),
        })
    }

    /// Connects in the background, retrying every 10 s until connected.
    pub fn warm_up(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            while me.chain().await.is_err() {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        })
    }

    /// `Ok` once connected with a twin; otherwise why not, for `/readyz`.
    pub fn health(&self) -> Result<(), String> {
        if self.twin.load(Ordering::Relaxed) != 0 {
            return Ok(());
        }
        Err(self
            .last_error
            .lock()
            .expect("error lock")
            .clone()
            .unwrap_or_else(|| format!("connecting to tfchain at {}", self.url)))
    }

    async fn chain(&self) -> Result<Arc<TfChain>, GridError> {
        let mut slot = self.chain.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let connected = self.connect().await;
        *self.last_error.lock().expect("error lock") =
            connected.as_ref().err().map(|e| e.to_string());
        let chain = Arc::new(connected?);
        self.twin.store(chain.twin_id(), Ordering::Relaxed);
        *slot = Some(chain.clone());
        Ok(chain)
    }

    async fn connect(&self) -> Result<TfChain, GridError> {
        let identity = self.identity.as_ref().map_err(|e| GridError::Fatal {
            code: ErrorCode::Unauthenticated,
            message: e.to_string(),
        })?;
        TfChain::connect(&self.url, identity.clone())
            .await
            .map_err(|e| match e {
                ChainError::Connect { .. } => GridError::RetryLater {
                    code: ErrorCode::BadGateway,
                    message: e.to_string(),
                },
                ChainError::NoTwin { .. } => GridError::Fatal {
                    code: ErrorCode::Unauthenticated,
                    message: e.to_string(),
                },
                ChainError::Lookup { source, .. } => source,
            })
    }
}

impl Chain for LazyChain {
    /// The twin, or 0 until the first connection.
    fn twin_id(&self) -> u32 {
        self.twin.load(Ordering::Relaxed)
    }

    fn create_node_contract<'a>(&'a self, req: &'a CreateNodeContract) -> GridFuture<'a, Contract> {
        Box::pin(async move { self.chain().await?.create_node_contract(req).await })
    }

    fn create_name_contract<'a>(&'a self, name: &'a str) -> GridFuture<'a, Contract> {
        Box::pin(async move { self.chain().await?.create_name_contract(name).await })
    }

    fn cancel_contract(&self, contract_id: u64) -> GridFuture<'_, ()> {
        Box::pin(async move { self.chain().await?.cancel_contract(contract_id).await })
    }

    fn contract(&self, contract_id: u64) -> GridFuture<'_, Option<Contract>> {
        Box::pin(async move { self.chain().await?.contract(contract_id).await })
    }

    fn contract_id_by_name<'a>(&'a self, name: &'a str) -> GridFuture<'a, Option<u64>> {
        Box::pin(async move { self.chain().await?.contract_id_by_name(name).await })
    }

    fn contract_id_by_node_hash<'a>(
        &'a self,
        node_id: u32,
        deployment_hash: &'a str,
    ) -> GridFuture<'a, Option<u64>> {
        Box::pin(async move {
            self.chain()
                .await?
                .contract_id_by_node_hash(node_id, deployment_hash)
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_chain_is_a_retry_later_and_the_health_says_where() {
        let identity = Identity::from_seed(
            zeroize::Zeroizing::new([5; 32]),
            crate::identity::KeyType::Sr25519,
        );
        let chain = LazyChain::new("ws://127.0.0.1:9", Ok(Arc::new(identity)));
        let e = chain.contract(1).await.unwrap_err();
        assert!(e.is_retry_later(), "{e}");
        assert!(chain.health().unwrap_err().contains("127.0.0.1:9"));
        assert_eq!(chain.twin_id(), 0);
    }

    #[tokio::test]
    async fn a_bad_mnemonic_is_refused_on_every_call() {
        let chain = LazyChain::new(
            "ws://127.0.0.1:9",
            Err(IdentityError::Mnemonic("3 words".into())),
        );
        let e = chain.cancel_contract(1).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Unauthenticated);
        assert!(chain.health().unwrap_err().contains("BIP-39"));
    }
}
