//! The VMs' running listeners and agents, as the simulator holds them; the `vm` module opens
//! them. Each VM's agent keeps its files under a directory of its own below [`VmRuntime::root`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use agent::Agent;

/// The running listeners of one VM.
pub struct VmHandle {
    /// The node it runs on.
    pub node_id: u32,
    /// Cleared when its listeners close.
    pub alive: Arc<AtomicBool>,
    /// Closes its listeners.
    pub stop: tokio::sync::watch::Sender<bool>,
}

/// Where the VMs' root directories are.
#[derive(Debug)]
pub enum VmRoot {
    /// A directory that outlives gridshim (next to its database).
    Kept(PathBuf),
    /// A temporary directory, removed when gridshim stops (database in memory).
    Temporary(tempfile::TempDir),
}

impl VmRoot {
    fn path(&self) -> &Path {
        match self {
            VmRoot::Kept(p) => p,
            VmRoot::Temporary(t) => t.path(),
        }
    }
}

/// The VMs' listeners and agents.
pub struct VmRuntime {
    root: VmRoot,
    /// Open listeners by VM key.
    pub running: Mutex<HashMap<String, VmHandle>>,
    /// Each VM's agent (kept while its node is down: the machine keeps its disk).
    pub agents: Mutex<HashMap<String, Arc<Agent>>>,
}

impl std::fmt::Debug for VmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmRuntime")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl VmRuntime {
    /// VMs whose root directories are under `root`.
    pub fn new(root: VmRoot) -> Self {
        VmRuntime {
            root,
            running: Mutex::default(),
            agents: Mutex::default(),
        }
    }

    /// The root directory of the VM `key` (`contract/workload`).
    pub fn root_of(&self, key: &str) -> PathBuf {
        self.root.path().join(key.replace('/', "-"))
    }

    /// The agent of a VM, if it runs one.
    pub fn agent(&self, key: &str) -> Option<Arc<Agent>> {
        self.agents.lock().expect("agent lock").get(key).cloned()
    }

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

    /// Destroys a VM: closes its listeners, drops its agent and removes its disk.
    pub fn destroy(&self, key: &str) {
        self.stop(key);
        self.agents.lock().expect("agent lock").remove(key);
        let root = self.root_of(key);
        if let Err(e) = std::fs::remove_dir_all(&root)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(vm = key, error = %e, "cannot remove the VM's disk");
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
