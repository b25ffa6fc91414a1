//! The VMs' running listeners, as the simulator holds them; the `vm` module opens them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;

/// The running listeners of one VM.
pub struct VmHandle {
    /// The node it runs on.
    pub node_id: u32,
    /// Cleared when its listeners close.
    pub alive: Arc<AtomicBool>,
    /// Closes its listeners.
    pub stop: tokio::sync::watch::Sender<bool>,
    /// Its web side (swapped when the gate settings change).
    pub web: Arc<RwLock<Router>>,
}

/// The VMs' listeners.
#[derive(Default)]
pub struct VmRuntime {
    /// Open listeners by VM key.
    pub running: Mutex<HashMap<String, VmHandle>>,
}

impl std::fmt::Debug for VmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmRuntime").finish_non_exhaustive()
    }
}

impl VmRuntime {
    /// Whether a VM's listeners are open.
    pub fn is_listening(&self, key: &str) -> bool {
        self.running.lock().expect("vm lock").contains_key(key)
    }

    /// Closes a VM's listeners.
    pub fn stop(&self, key: &str) {
        if let Some(h) = self.running.lock().expect("vm lock").remove(key) {
            h.alive.store(false, Ordering::SeqCst);
            let _ = h.stop.send(true);
        }
    }

    /// Closes the listeners of every VM of a node.
    pub fn stop_node(&self, node_id: u32) {
        let keys: Vec<String> = self
            .running
            .lock()
            .expect("vm lock")
            .iter()
            .filter(|(_, h)| h.node_id == node_id)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.stop(&k);
        }
    }

    /// Closes every listener.
    pub fn stop_all(&self) {
        let keys: Vec<String> = self
            .running
            .lock()
            .expect("vm lock")
            .keys()
            .cloned()
            .collect();
        for k in keys {
            self.stop(&k);
        }
    }
}
