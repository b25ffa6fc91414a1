//! zos's deployment commands over RMB: [`RmbNodeBus`] implements [`NodeBus`]. Payloads and
//! answers are the JSON of zos's own types; a node's error comes back as text only (zos sends
//! code 0), so it is sorted by the texts zos and the message bus use.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use gridapi::{
    ErrorCode, GridError, GridFuture,
    node::{CMD_CHANGES, CMD_DEPLOY, CMD_GET, ContractRef, NodeBus},
    proxy::Proxy,
    zos::{Deployment, Signature, WorkloadChange},
};
use serde::{Serialize, de::DeserializeOwned};

use super::{
    peer::{Link, Peer, PeerConfig},
    twins::ProxyTwins,
};
use crate::identity::{AccountId, Identity, IdentityError};

/// What the node bus needs to start its peer.
pub struct RmbSetup {
    /// The operator's identity, or why the mnemonic gave none (reported on every call).
    pub identity: Result<Arc<Identity>, IdentityError>,
    /// Where twins are looked up (our own by account, the nodes' by id).
    pub proxy: Arc<dyn Proxy>,
    /// The relay and the call time-out.
    pub peer: PeerConfig,
    /// The twin the rest of the controller acts as, when configured: the identity's twin must
    /// be the same.
    pub expected_twin: Option<u32>,
}

/// [`NodeBus`] over RMB. Its peer starts on first use (or [`RmbNodeBus::warm_up`]): a wrong
/// mnemonic, an account with no twin or an unreachable relay is the error of every call (and
/// of [`RmbNodeBus::health`]) until it is mended, never a crash.
#[derive(Clone)]
pub struct RmbNodeBus {
    inner: Arc<Inner>,
}

struct Inner {
    setup: RmbSetup,
    twins: Arc<ProxyTwins>,
    peer: tokio::sync::Mutex<Option<Arc<Peer>>>,
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for RmbNodeBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RmbNodeBus")
            .field("relay", &self.inner.setup.peer.relay)
            .finish_non_exhaustive()
    }
}

impl RmbNodeBus {
    /// A node bus that will speak as `setup.identity` through `setup.peer.relay`.
    pub fn new(setup: RmbSetup) -> Self {
        let twins = Arc::new(ProxyTwins::new(
            setup.proxy.clone(),
            Duration::from_secs(300),
        ));
        RmbNodeBus {
            inner: Arc::new(Inner {
                setup,
                twins,
                peer: tokio::sync::Mutex::new(None),
                last_error: Mutex::default(),
            }),
        }
    }

    /// Starts the peer in the background, retrying every 5 s until it starts.
    pub fn warm_up(&self) -> tokio::task::JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            while bus.peer().await.is_err() {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    }

    /// `Ok` while the peer is connected to its relay; otherwise why not, for `/readyz`.
    pub fn health(&self) -> Result<(), String> {
        if let Ok(guard) = self.inner.peer.try_lock()
            && let Some(peer) = guard.as_ref()
        {
            return match &*peer.link().borrow() {
                Link::Up => Ok(()),
                Link::Connecting => Err(format!(
                    "connecting to the relay {}",
                    self.inner.setup.peer.relay
                )),
                Link::Down(why) => Err(format!(
                    "relay {} unreachable: {why}",
                    self.inner.setup.peer.relay
                )),
            };
        }
        Err(self
            .inner
            .last_error
            .lock()
            .expect("error lock")
            .clone()
            .unwrap_or_else(|| "the message bus has not started yet".into()))
    }

    /// The peer, started on first use.
    async fn peer(&self) -> Result<Arc<Peer>, GridError> {
        let mut slot = self.inner.peer.lock().await;
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let started = self.start().await;
        *self.inner.last_error.lock().expect("error lock") =
            started.as_ref().err().map(|e| e.to_string());
        let peer = started?;
        *slot = Some(peer.clone());
        Ok(peer)
    }

    async fn start(&self) -> Result<Arc<Peer>, GridError> {
        let setup = &self.inner.setup;
        let refused = |message: String| GridError::Fatal {
            code: ErrorCode::Unauthenticated,
            message,
        };
        let identity = setup
            .identity
            .as_ref()
            .map_err(|e| refused(e.to_string()))?
            .clone();
        let me = self.inner.twins.of_account(&identity.account()).await;
        let me = me.map_err(|e| match e {
            GridError::NotFound { message, .. } => refused(message),
            other => other,
        })?;
        if let Some(want) = setup.expected_twin
            && want != me.id
        {
            return Err(refused(format!(
                "the grid mnemonic's account {} is twin {}, but the controller is configured as twin {want}: use that twin's mnemonic or GRID_TWIN_ID={}",
                identity.account(),
                me.id,
                me.id
            )));
        }
        let peer = Peer::start(
            identity,
            me.id,
            setup.peer.clone(),
            self.inner.twins.clone(),
        )?;
        if me.e2e.as_deref() != Some(&peer.e2e_public()[..]) {
            return Err(refused(format!(
                "twin {} publishes another end-to-end key than its mnemonic's (or none), so nodes would encrypt their answers to a key this controller does not hold: update the twin's public key and relay on chain (rmb-peer or the ThreeFold dashboard does it)",
                me.id
            )));
        }
        tracing::info!(twin = me.id, relay = %setup.peer.relay, "message bus started");
        Ok(Arc::new(peer))
    }

    async fn call<T: DeserializeOwned, P: Serialize>(
        &self,
        node_twin: u32,
        command: &str,
        payload: P,
    ) -> Result<T, GridError> {
        let body = serde_json::to_vec(&payload).expect("zos types serialise");
        let answer = self.peer().await?.call(node_twin, command, body).await?;
        let answer: &[u8] = if answer.is_empty() { b"null" } else { &answer };
        serde_json::from_slice(answer).map_err(|e| GridError::Fatal {
            code: ErrorCode::Internal,
            message: format!("{command} to twin {node_twin}: cannot read the answer: {e}"),
        })
    }
}

impl NodeBus for RmbNodeBus {
    /// Signs the deployment's challenge hash as grid-client does (`Deployment.Sign`), then sends it.
    fn deploy<'a>(&'a self, node_twin: u32, deployment: &'a Deployment) -> GridFuture<'a, ()> {
        Box::pin(async move {
            let twin = self.peer().await?.twin();
            let identity = self
                .inner
                .setup
                .identity
                .as_ref()
                .expect("a started peer has an identity");
            let signed = sign(deployment, twin, identity);
            let _: serde_json::Value = self.call(node_twin, CMD_DEPLOY, &signed).await?;
            Ok(())
        })
    }

    fn get(&self, node_twin: u32, contract_id: u64) -> GridFuture<'_, Deployment> {
        Box::pin(self.call(node_twin, CMD_GET, ContractRef { contract_id }))
    }

    /// Started as a twin that exists and publishes our key, and connected to the relay (a link
    /// still connecting gets 2 s).
    fn ready(&self) -> GridFuture<'_, ()> {
        Box::pin(async move {
            let peer = self.peer().await?;
            let mut link = peer.link();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            loop {
                let why = match &*link.borrow_and_update() {
                    Link::Up => return Ok(()),
                    Link::Connecting => "still connecting".to_string(),
                    Link::Down(why) => why.clone(),
                };
                if tokio::time::timeout_at(deadline, link.changed())
                    .await
                    .is_err()
                {
                    return Err(GridError::RetryLater {
                        code: ErrorCode::BadGateway,
                        message: format!(
                            "relay {} unreachable: {why}",
                            self.inner.setup.peer.relay
                        ),
                    });
                }
            }
        })
    }

    fn changes(&self, node_twin: u32, contract_id: u64) -> GridFuture<'_, Vec<WorkloadChange>> {
        Box::pin(self.call(node_twin, CMD_CHANGES, ContractRef { contract_id }))
    }
}

/// The deployment with `twin`'s signature of its challenge hash (the raw 16 bytes of the MD5),
/// replacing an earlier signature of the same twin, as zos's `Deployment.Sign` does.
pub fn sign(deployment: &Deployment, twin: u32, identity: &Identity) -> Deployment {
    let mut signed = deployment.clone();
    let hash = hex::decode(deployment.challenge_hash()).expect("the challenge hash is hex");
    let signature = Signature {
        twin_id: twin,
        signature: hex::encode(identity.sign(&hash)),
        signature_type: identity.key_type().to_string(),
    };
    let sigs = &mut signed.signature_requirement.signatures;
    sigs.retain(|s| s.twin_id != twin);
    sigs.push(signature);
    signed
}

/// Checks a deployment's signatures as zos's `Deployment.Verify` does (default signature style),
/// with its texts; `key_of` gives a twin's account.
pub fn verify(
    deployment: &Deployment,
    key_of: impl Fn(u32) -> Option<AccountId>,
) -> Result<(), String> {
    let req = &deployment.signature_requirement;
    let hash = hex::decode(deployment.challenge_hash()).expect("the challenge hash is hex");
    let mut originator = false;
    let mut weight = 0;
    for r in &req.requests {
        let required = r.required || r.twin_id == deployment.twin_id;
        originator |= r.twin_id == deployment.twin_id;
        let Some(sig) = req.signatures.iter().find(|s| s.twin_id == r.twin_id) else {
            if required {
                return Err(format!(
                    "missing required signature for twin '{}'",
                    r.twin_id
                ));
            }
            continue;
        };
        let account = key_of(r.twin_id)
            .ok_or_else(|| format!("failed to get public key for twin '{}'", r.twin_id))?;
        let raw = hex::decode(&sig.signature).map_err(|e| format!("invalid signature: {e}"))?;
        let prefix = if sig.signature_type == "sr25519" {
            crate::identity::SR_PREFIX
        } else {
            crate::identity::ED_PREFIX
        };
        let prefixed = [&[prefix][..], &raw].concat();
        account
            .verify(&prefixed, &hash)
            .map_err(|_| "failed to verify signature".to_string())?;
        weight += r.weight;
    }
    if !originator {
        return Err("originator twin id must be in the signature requests".into());
    }
    if weight < req.weight_required {
        return Err("required signature weight is not reached".into());
    }
    Ok(())
}

/// Sorts a node's error text into what the caller does about it.
pub fn node_error(text: &str, node_twin: u32, command: &str) -> GridError {
    let message = format!("{command} to twin {node_twin}: {text}");
    let has = |s: &str| text.contains(s);
    if has("failed to send request") || has("unreachable") {
        GridError::RetryLater {
            code: ErrorCode::NodeUnreachable,
            message,
        }
    } else if has("context deadline exceeded") || has("timeout") {
        GridError::RetryLater {
            code: ErrorCode::Timeout,
            message,
        }
    } else if has("already exists") || has("already registered") {
        GridError::Conflict {
            code: ErrorCode::Conflict,
            message,
        }
    } else if has("contract") && has("not found") {
        GridError::NotFound {
            code: ErrorCode::ContractNotExists,
            message,
        }
    } else if has("not found") {
        GridError::NotFound {
            code: ErrorCode::NotFound,
            message,
        }
    } else if has("twin id mismatch") {
        GridError::Fatal {
            code: ErrorCode::Unauthorized,
            message,
        }
    } else if has("deletion over the api is disabled") {
        GridError::Fatal {
            code: ErrorCode::DeletionDisabled,
            message,
        }
    } else {
        GridError::Fatal {
            code: ErrorCode::Invalid,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridapi::ErrorCategory::*;

    #[test]
    fn a_signed_deployment_verifies_and_a_changed_one_does_not() {
        use gridapi::zos::SignatureRequirement;
        let me = Identity::from_seed(zeroize::Zeroizing::new([4; 32]), Default::default());
        let d = Deployment {
            version: 0,
            twin_id: 7,
            contract_id: 5,
            metadata: String::new(),
            description: "test".into(),
            expiration: 0,
            signature_requirement: SignatureRequirement::by(7),
            workloads: vec![],
        };
        let key = |t: u32| (t == 7).then(|| me.account());
        assert_eq!(
            verify(&d, key),
            Err("missing required signature for twin '7'".into())
        );
        let signed = sign(&d, 7, &me);
        assert_eq!(verify(&signed, key), Ok(()));
        assert_eq!(
            signed.challenge_hash(),
            d.challenge_hash(),
            "signatures are not hashed"
        );
        let resigned = sign(&signed, 7, &me);
        assert_eq!(resigned.signature_requirement.signatures.len(), 1);
        let mut changed = signed.clone();
        changed.description = "other".into();
        assert_eq!(
            verify(&changed, key),
            Err("failed to verify signature".into())
        );
    }

    #[test]
    fn zos_texts_sort_as_the_http_transport_codes_do() {
        let cases = [
            (
                "failed to send request to node 3 (twin 1003): context deadline exceeded",
                RetryLater,
            ),
            ("context deadline exceeded", RetryLater),
            ("deployment with contract 5 already exists", Conflict),
            ("contract 5 not found", NotFound),
            ("deployment 5 not found", NotFound),
            ("twin id mismatch", Fatal),
            (
                "deletion over the api is disabled, please cancel your contract instead",
                Fatal,
            ),
            ("deployment hash does not match the contract's hash", Fatal),
        ];
        for (text, want) in cases {
            assert_eq!(node_error(text, 1003, "deploy").category(), want, "{text}");
        }
        assert_eq!(
            node_error("contract 5 not found", 1, "get").code(),
            ErrorCode::ContractNotExists
        );
    }
}
