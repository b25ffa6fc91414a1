//! What the RMB relay knows: each twin's keys (the chain's part: a test twin's from its
//! mnemonic, a node twin's deterministic) and the live relay connections, one per (twin,
//! session).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tfgrid::identity::{Identity, KeyType};
use tfgrid::rmb::crypto::E2eKey;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::config::{Config, ConfigError};

/// A twin the relay knows: its keys, and the node it is the twin of.
#[derive(Debug, Clone)]
pub struct RmbTwin {
    /// Signs (a node twin's answers) and verifies (its account).
    pub identity: Arc<Identity>,
    /// Its end-to-end key.
    pub e2e: E2eKey,
    /// The node whose twin this is.
    pub node: Option<u32>,
}

/// The identity of a node's twin: seed SHA-256(`gridshim node twin {twin}`), sr25519.
pub fn node_identity(twin: u32) -> Identity {
    let seed: [u8; 32] = Sha256::digest(format!("gridshim node twin {twin}").as_bytes()).into();
    Identity::from_seed(Zeroizing::new(seed), KeyType::Sr25519)
}

/// Every twin the relay knows, by id.
#[derive(Debug, Default)]
pub struct RmbTwins(BTreeMap<u32, RmbTwin>);

impl RmbTwins {
    /// The config's twins that have a mnemonic, and every node's twin.
    pub fn new(cfg: &Config) -> Result<RmbTwins, ConfigError> {
        let mut twins = BTreeMap::new();
        let key = |id: u32, identity: Identity| {
            E2eKey::of(&identity)
                .map_err(|e| ConfigError::Invalid(format!("twin {id}: {e}")))
                .map(|e2e| (Arc::new(identity), e2e))
        };
        for n in &cfg.nodes {
            let id = n.twin_id();
            let (identity, e2e) = key(id, node_identity(id))?;
            twins.insert(
                id,
                RmbTwin {
                    identity,
                    e2e,
                    node: Some(n.id),
                },
            );
        }
        for t in &cfg.twins {
            if let Some(identity) = t.identity()? {
                let (identity, e2e) = key(t.id, identity)?;
                twins.insert(
                    t.id,
                    RmbTwin {
                        identity,
                        e2e,
                        node: None,
                    },
                );
            }
        }
        Ok(RmbTwins(twins))
    }

    /// The twin `id`.
    pub fn get(&self, id: u32) -> Option<&RmbTwin> {
        self.0.get(&id)
    }

    /// Every twin, by id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &RmbTwin)> {
        self.0.iter().map(|(id, t)| (*id, t))
    }
}

/// A connection's key: the twin and its session id.
type ConnKey = (u32, Option<String>);

/// The live relay connections: one per (twin, session); a newer one replaces the older.
#[derive(Debug, Default)]
pub struct RelayConnections {
    next: AtomicU64,
    /// Per key: the live connection's id, and the sender whose drop tells it to go.
    live: Mutex<HashMap<ConnKey, (u64, oneshot::Sender<()>)>>,
}

impl RelayConnections {
    /// Registers a connection; the receiver resolves when a newer one replaces it (its sender is
    /// dropped). Returns the connection's id and that receiver.
    pub fn register(&self, twin: u32, sid: Option<String>) -> (u64, oneshot::Receiver<()>) {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        let old = self
            .live
            .lock()
            .expect("relay lock")
            .insert((twin, sid), (id, tx));
        drop(old);
        (id, rx)
    }

    /// Forgets connection `id` of (twin, session), unless a newer one took its place.
    pub fn unregister(&self, twin: u32, sid: Option<String>, id: u64) {
        let mut live = self.live.lock().expect("relay lock");
        let key = (twin, sid);
        if live.get(&key).is_some_and(|(cur, _)| *cur == id) {
            live.remove(&key);
        }
    }

    /// How many connections are live.
    pub fn len(&self) -> usize {
        self.live.lock().expect("relay lock").len()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_twins_are_deterministic_and_distinct() {
        assert_eq!(node_identity(1011).account(), node_identity(1011).account());
        assert_ne!(node_identity(1011).account(), node_identity(1012).account());
        assert_eq!(node_identity(1011).key_type(), KeyType::Sr25519);
    }

    #[test]
    fn a_newer_connection_replaces_the_older() {
        let c = RelayConnections::default();
        let (a, mut rx_a) = c.register(7, None);
        assert!(
            rx_a.try_recv()
                .is_err_and(|e| e == oneshot::error::TryRecvError::Empty)
        );
        let (b, mut rx_b) = c.register(7, None);
        assert_eq!(
            rx_a.try_recv(),
            Err(oneshot::error::TryRecvError::Closed),
            "the older one is told to go"
        );
        let (_, _rx_other) = c.register(7, Some("s2".into()));
        assert_eq!(c.len(), 2, "another session lives beside it");
        c.unregister(7, None, a);
        assert_eq!(c.len(), 2, "the older one cannot remove the newer");
        assert_eq!(rx_b.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        c.unregister(7, None, b);
        assert_eq!(c.len(), 1);
    }
}
