//! The simulator's shared state: [`Sim`] (configuration, timing, the sub-systems) and
//! [`World`] (everything live); the records it holds are in `records`, the resource
//! arithmetic of nodes in `capacity`.
//!
//! The world is held in one `std::sync::Mutex` and never across an `.await`; every change is
//! written through to SQLite ([`crate::store`]) while the lock is held, so the file always
//! matches memory in order.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

mod capacity;
pub mod catalog;
pub mod engines;
mod records;
pub mod rmb;
pub mod vms;
pub mod waits;

pub use capacity::{node_used, workload_resources};
pub use records::*;

use crate::config::Config;
use crate::error::StartError;
use crate::error::{ApiError, ApiResult};
use crate::faults::{Faults, Hit};
use crate::prelude::*;
use crate::store::{Store, StoreError};
use crate::timing::{Timing, Wait};
use crate::wire::*;
use catalog::CatalogState;
use engines::Engines;
use vms::VmRuntime;

/// Everything the grid holds.
#[derive(Debug, Default)]
pub struct World {
    /// Next contract id.
    pub next_contract_id: u64,
    /// Live contracts.
    pub contracts: BTreeMap<u64, ContractRec>,
    /// Name → name contract.
    pub names: HashMap<String, u64>,
    /// Contract → deployment.
    pub deployments: BTreeMap<u64, DeploymentRec>,
    /// Nodes.
    pub nodes: BTreeMap<u32, NodeRec>,
    /// Session token → session.
    pub sessions: HashMap<String, SessionRec>,
    /// VM key → VM.
    pub vms: BTreeMap<String, VmRec>,
    /// Mycelium address → VM key.
    pub vm_by_mycelium: HashMap<String, String>,
    /// Next VM loopback index.
    pub next_vm_index: u32,
    /// fqdn → gateway.
    pub gateways: BTreeMap<String, GatewayRec>,
    /// (engine, tester) → SHA-256 of the token.
    pub tokens: BTreeMap<(String, String), String>,
    /// Waits drawn for contracts and names whose VM or gateway does not exist yet.
    pub pending_waits: waits::PendingWaits,
}

/// Persisted counters.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Counters {
    next_contract_id: u64,
    next_vm_index: u32,
}

/// A persisted token registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRec {
    engine: String,
    tester: String,
    sha256: String,
}

/// The simulator.
pub struct Sim {
    /// Configuration.
    pub cfg: Config,
    /// Clock.
    pub timing: Timing,
    /// Persistence.
    pub store: Store,
    /// State.
    pub world: Mutex<World>,
    /// Injected faults.
    pub faults: Faults,
    /// Release catalog.
    pub catalog: CatalogState,
    /// Shared engines.
    pub engines: Engines,
    /// VM listeners.
    pub vms: VmRuntime,
    /// One queue per node.
    pub queues: Mutex<HashMap<u32, tokio::sync::mpsc::UnboundedSender<u64>>>,
    /// HTTP client of the gateway (no redirects followed: they belong to the browser).
    pub http: reqwest::Client,
    /// The gateway's bound address.
    pub gateway_addr: Mutex<Option<SocketAddr>>,
    /// Requests served on the grid's faces (admin, inspection and health not counted): a test
    /// can prove a client made no grid call. A command over the RMB relay counts as one.
    pub requests: std::sync::atomic::AtomicU64,
    /// The API's bound address (the relay's address `GET /twins` lists).
    pub api_addr: Mutex<Option<SocketAddr>>,
    /// The twins the RMB relay knows, with their keys.
    pub rmb: rmb::RmbTwins,
    /// The live RMB relay connections.
    pub relay: rmb::RelayConnections,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").finish_non_exhaustive()
    }
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A random hex string of `bytes` bytes.
pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// SHA-256 hex of a secret (tokens are only ever stored this way).
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

impl Sim {
    /// Builds the simulator from config, loading persisted state.
    pub fn new(cfg: Config, store: Store, vm_root: vms::VmRoot) -> Result<Arc<Sim>, StartError> {
        let timing = Timing::new(cfg.profile, cfg.time_scale)
            .with_proxy_lag(cfg.proxy_lag_ms.map(std::time::Duration::from_millis));
        let catalog = CatalogState::new(&cfg)?;
        let engines = Engines::new(&cfg);
        let faults = Faults::default();
        let rmb = rmb::RmbTwins::new(&cfg)?;
        for f in &cfg.faults {
            faults.inject(f.clone());
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| StartError::Other(e.to_string()))?;
        let sim = Arc::new(Sim {
            timing,
            store,
            world: Mutex::new(World::default()),
            faults,
            catalog,
            engines,
            vms: VmRuntime::new(vm_root),
            queues: Mutex::new(HashMap::new()),
            http,
            gateway_addr: Mutex::new(None),
            requests: Default::default(),
            api_addr: Mutex::new(None),
            rmb,
            relay: Default::default(),
            cfg,
        });
        sim.load()?;
        Ok(sim)
    }

    fn load(&self) -> Result<(), StoreError> {
        let mut w = self.world.lock().expect("world lock");
        let now = Instant::now();
        for n in &self.cfg.nodes {
            let cond: Option<NodeCondRec> = self.store.get("node", &n.id.to_string())?;
            let (status, healthy) = cond
                .map(|c| (c.status, c.healthy))
                .unwrap_or((n.status, n.healthy));
            w.nodes.insert(
                n.id,
                NodeRec {
                    cfg: n.clone(),
                    status,
                    down_since: (status == NodeStatus::Down).then_some(now),
                    healthy,
                    reports: vec![],
                    images: Default::default(),
                },
            );
        }
        let counters: Counters = self.store.get("meta", "counters")?.unwrap_or_default();
        w.next_contract_id = counters.next_contract_id.max(1);
        w.next_vm_index = counters.next_vm_index;
        for (_, c) in self.store.all::<ContractRec>("contract")? {
            if let ContractKind::Name { name } = &c.kind {
                w.names.insert(name.clone(), c.contract_id);
            }
            w.next_contract_id = w.next_contract_id.max(c.contract_id + 1);
            w.contracts.insert(c.contract_id, c);
        }
        for (_, d) in self.store.all::<DeploymentRec>("deployment")? {
            w.deployments.insert(d.deployment.contract_id, d);
        }
        for (_, v) in self.store.all::<VmRec>("vm")? {
            w.vm_by_mycelium
                .insert(v.mycelium_ip.clone(), v.key.clone());
            w.vms.insert(v.key.clone(), v);
        }
        for (_, g) in self.store.all::<GatewayRec>("gateway")? {
            w.gateways.insert(g.fqdn.clone(), g);
        }
        for (_, t) in self.store.all::<TokenRec>("token")? {
            w.tokens.insert((t.engine, t.tester), t.sha256);
        }
        // Reports start from what is deployed now: the lag only applies to later changes.
        let ids: Vec<u32> = w.nodes.keys().copied().collect();
        for id in ids {
            let used = node_used(&w, id);
            if let Some(n) = w.nodes.get_mut(&id) {
                n.reports.push((now, used));
            }
        }
        for name in self.cfg.leftover_names.clone() {
            if !w.names.contains_key(&name.name) {
                self.add_name_contract(&mut w, &name.name, name.twin_id)?;
            }
        }
        Ok(())
    }

    /// Persists the counters.
    pub fn save_counters(&self, w: &World) -> Result<(), StoreError> {
        self.store.put(
            "meta",
            "counters",
            &Counters {
                next_contract_id: w.next_contract_id,
                next_vm_index: w.next_vm_index,
            },
        )
    }

    /// Persists a node's condition.
    pub fn save_node(&self, n: &NodeRec) -> Result<(), StoreError> {
        self.store.put(
            "node",
            &n.cfg.id.to_string(),
            &NodeCondRec {
                status: n.status,
                healthy: n.healthy,
            },
        )
    }

    /// Persists a deployment.
    pub fn save_deployment(&self, d: &DeploymentRec) -> Result<(), StoreError> {
        self.store
            .put("deployment", &d.deployment.contract_id.to_string(), d)
    }

    /// Persists a VM.
    pub fn save_vm(&self, v: &VmRec) -> Result<(), StoreError> {
        self.store.put("vm", &v.key, v)
    }

    /// Persists a token registration (hash only).
    pub fn save_token(
        &self,
        engine: &str,
        tester: &str,
        sha: Option<&str>,
    ) -> Result<(), StoreError> {
        let key = format!("{engine}/{tester}");
        match sha {
            Some(s) => self.store.put(
                "token",
                &key,
                &TokenRec {
                    engine: engine.into(),
                    tester: tester.into(),
                    sha256: s.into(),
                },
            ),
            None => self.store.delete("token", &key),
        }
    }

    /// Creates a name contract (no checks; callers check).
    pub fn add_name_contract(
        &self,
        w: &mut World,
        name: &str,
        twin_id: u32,
    ) -> Result<ContractRec, StoreError> {
        let id = w.next_contract_id;
        w.next_contract_id += 1;
        let c = ContractRec {
            contract_id: id,
            twin_id,
            state: RecordState::Created,
            created_at: now_secs(),
            kind: ContractKind::Name { name: name.into() },
        };
        w.contracts.insert(id, c.clone());
        w.names.insert(name.into(), id);
        self.store.put("contract", &id.to_string(), &c)?;
        self.save_counters(w)?;
        Ok(c)
    }

    /// Records a node's used capacity after a change (the proxy sees it after its lag).
    pub fn report_used(&self, w: &mut World, node_id: u32) {
        let used = node_used(w, node_id);
        let lag = self.timing.of(Wait::ProxyLag);
        if let Some(n) = w.nodes.get_mut(&node_id) {
            let now = Instant::now();
            n.reports.push((now, used));
            // Keep only the newest report older than the lag, and everything after it.
            let cutoff = now.checked_sub(lag).unwrap_or(now);
            let older = n.reports.iter().filter(|(t, _)| *t <= cutoff).count();
            if older > 1 {
                n.reports.drain(..older - 1);
            }
        }
    }

    /// The twin behind a session header, applying the stale-connection fault.
    pub fn session(
        &self,
        headers: &HeaderMap,
        call: &str,
        node: Option<u32>,
        name: Option<&str>,
    ) -> ApiResult<u32> {
        let token = headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthenticated,
                    format!("missing {SESSION_HEADER} header: open a session first"),
                )
            })?;
        let mut w = self.world.lock().expect("world lock");
        let Some(s) = w.sessions.get_mut(token) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "unknown session: open a new one",
            ));
        };
        if !s.stale
            && self
                .faults
                .fire(Hit::new("stale_connection", call).node(node).name(name))
                .is_some()
        {
            s.stale = true;
        }
        if s.stale {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::StaleConnection,
                "background task closed, restart required",
            ));
        }
        Ok(s.twin_id)
    }
}

impl Sim {
    /// Drops every queued deployment step (on stop).
    pub fn stop_queues(&self) {
        self.queues.lock().expect("queues lock").clear();
    }
}
