//! Shared helpers of the integration tests: start gridshim in-process on ephemeral ports, each
//! test on its own loopback range so tests run in parallel, and build deployments.

// Each test binary uses a part of these helpers and of the re-exported grid types.
#![allow(dead_code, unused_imports)]

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub use gridapi::http::session::SESSION_HEADER;
pub use gridapi::{
    ErrorBody, ErrorCategory, ErrorCode, GIB, GridError,
    agent::*,
    catalog::*,
    chain::{Contract, CreateNodeContract, NameOwner},
    proxy::{Contract as ProxyContract, ContractFilter, Limit, Node, NodeFilter, NodeStatus, Page},
    zos::*,
};
use gridshim::admin::Admin;
use gridshim::config::Config;
use gridshim::server::{Running, StartOptions, start};
pub use gridshim::wire::*;

/// The arguments of `create_node_contract` the tests use.
pub struct NodeContractRequest {
    pub node_id: u32,
    pub deployment_hash: String,
    pub metadata: String,
}

/// The deployment data of a listed node contract.
pub fn data_of(c: &ProxyContract) -> Option<&str> {
    match &c.details {
        gridapi::proxy::ContractDetails::Node(d) => Some(&d.deployment_data),
        _ => None,
    }
}

/// Every face of a gridshim as one twin, through the seam's HTTP clients (the ones the
/// controller uses), with the names the tests read best.
pub struct Client {
    pub grid: gridapi::Grid,
    session: std::sync::Arc<gridapi::http::session::Session>,
}

impl Client {
    /// The twin's faces of the gridshim at `url`; agents through the gateway's private proxy.
    pub fn new(url: &str, gateway: &str, twin: u32, secret: &str) -> Self {
        let grid = gridapi::http::connect(&gridapi::http::Endpoints {
            proxy: url.into(),
            bus: url.into(),
            catalog: format!("{url}/catalog"),
            twin_id: twin,
            secret: secret.to_string().into(),
            agent_port: 7070,
            private_proxy: Some(gateway.into()),
            agent_key: CONTROLLER_KEY.clone(),
        })
        .expect("URLs");
        let mut grid = grid;
        let session = std::sync::Arc::new(gridapi::http::session::Session::new(
            url,
            twin,
            secret.to_string().into(),
            gridapi::http::client(),
        ));
        grid.chain = std::sync::Arc::new(gridapi::http::chain::HttpChain::new(session.clone()));
        grid.nodes = std::sync::Arc::new(gridapi::http::node::HttpNodeBus::new(session.clone()));
        Client { grid, session }
    }
    pub fn twin_id(&self) -> u32 {
        self.grid.twin_id()
    }
    /// Opens a new session (drops the old one).
    pub async fn connect(&self) -> Result<String, GridError> {
        self.session.connect().await
    }
    pub async fn list_nodes(&self, f: &NodeFilter) -> Result<Page<Node>, GridError> {
        self.grid.proxy.nodes(f, Limit::default()).await
    }
    pub async fn list_nodes_page(
        &self,
        f: &NodeFilter,
        limit: Limit,
    ) -> Result<Page<Node>, GridError> {
        self.grid.proxy.nodes(f, limit).await
    }
    pub async fn get_node(&self, id: u32) -> Result<Node, GridError> {
        self.grid.proxy.node(id).await.map(Node::from)
    }
    pub async fn create_node_contract(
        &self,
        req: &NodeContractRequest,
    ) -> Result<Contract, GridError> {
        self.grid
            .chain
            .create_node_contract(&CreateNodeContract {
                node_id: req.node_id,
                deployment_hash: req.deployment_hash.clone(),
                deployment_data: req.metadata.clone(),
                public_ips: 0,
                solution_provider_id: None,
            })
            .await
    }
    pub async fn create_name_contract(&self, name: &str) -> Result<Contract, GridError> {
        self.grid.chain.create_name_contract(name).await
    }
    pub async fn cancel_contract(&self, id: u64) -> Result<(), GridError> {
        self.grid.chain.cancel_contract(id).await
    }
    pub async fn get_contract(&self, id: u64) -> Result<Contract, GridError> {
        self.grid.chain.get_contract(id).await
    }
    pub async fn name_owner(&self, name: &str) -> Result<Option<NameOwner>, GridError> {
        self.grid.chain.name_owner(name).await
    }
    /// This twin's contracts as the proxy lists them.
    pub async fn list_my_contracts(&self) -> Result<Vec<ProxyContract>, GridError> {
        self.list_my_contracts_with(None).await
    }
    /// This twin's contracts whose deployment data is exactly `data` (any, with `None`).
    pub async fn list_my_contracts_with(
        &self,
        data: Option<&str>,
    ) -> Result<Vec<ProxyContract>, GridError> {
        let f = ContractFilter {
            twin_id: Some(self.twin_id()),
            deployment_data: data.map(str::to_owned),
            ..ContractFilter::default()
        };
        Ok(self.grid.proxy.contracts(&f, Limit::default()).await?.items)
    }
    /// The node's twin: 1000 + node id in the tests' configs.
    fn twin(node: u32) -> u32 {
        1000 + node
    }
    pub async fn deploy(&self, node: u32, d: &Deployment) -> Result<(), GridError> {
        self.grid.nodes.deploy(Self::twin(node), d).await
    }
    pub async fn get_deployment(&self, node: u32, cid: u64) -> Result<Deployment, GridError> {
        self.grid.nodes.get(Self::twin(node), cid).await
    }
    pub async fn deployment_changes(
        &self,
        node: u32,
        cid: u64,
    ) -> Result<Vec<WorkloadChange>, GridError> {
        self.grid.nodes.changes(Self::twin(node), cid).await
    }
    pub async fn agent_configure_gate(
        &self,
        vm: &AgentTarget,
        g: &GateSettings,
    ) -> Result<(), GridError> {
        self.grid.agents.configure_gate(vm, g).await
    }
    pub async fn agent_set_engines(
        &self,
        vm: &AgentTarget,
        engines: &[EngineCredential],
    ) -> Result<(), GridError> {
        let body = EngineCredentials {
            engines: engines.to_vec(),
        };
        self.grid.agents.set_engines(vm, &body).await
    }
    pub async fn agent_set_ssh_keys(
        &self,
        vm: &AgentTarget,
        keys: &[String],
    ) -> Result<(), GridError> {
        let body = SshKeys {
            keys: keys.to_vec(),
        };
        self.grid.agents.set_ssh_keys(vm, &body).await
    }
    pub async fn agent_set_ai_keys(
        &self,
        vm: &AgentTarget,
        keys: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), GridError> {
        let body = AiKeys { keys: keys.clone() };
        self.grid.agents.set_ai_keys(vm, &body).await
    }
    pub async fn agent_config(&self, vm: &AgentTarget) -> Result<AgentConfigView, GridError> {
        self.grid.agents.config(vm).await
    }
    pub async fn agent_start_install(
        &self,
        vm: &AgentTarget,
        req: &InstallRequest,
    ) -> Result<InstallStatus, GridError> {
        self.grid.agents.start_install(vm, req).await
    }
    pub async fn agent_install_status(&self, vm: &AgentTarget) -> Result<InstallStatus, GridError> {
        self.grid.agents.install_status(vm).await
    }
    pub async fn agent_app_health(&self, vm: &AgentTarget) -> Result<AppHealth, GridError> {
        self.grid.agents.app_health(vm).await
    }
    pub async fn catalog(&self) -> Result<Catalog, GridError> {
        self.grid.catalog.catalog().await
    }
}

/// The key the tests sign agent requests with, as the controller does; every test VM gets its
/// public half.
pub static CONTROLLER_KEY: std::sync::LazyLock<gridapi::agent::signing::ControllerKey> =
    std::sync::LazyLock::new(gridapi::agent::signing::ControllerKey::generate);

/// Twin the controller acts as, and another twin.
pub const US: u32 = 7;
/// Another twin.
pub const OTHER: u32 = 99;
/// The node with a gateway domain.
pub const GW_NODE: u32 = 11;
/// A node with 16 GiB of memory.
pub const SMALL_NODE: u32 = 13;

static NEXT: AtomicU32 = AtomicU32::new(0);
static OCTET: AtomicU32 = AtomicU32::new(0);

/// A unique number per call in this test binary.
pub fn unique() -> u32 {
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// The test config: ephemeral API, gateway and engine ports; the private network on its own
/// `127.N` range so tests do not collide on VM addresses.
pub fn config(extra: &str) -> (Config, u8) {
    let octet = 100 + (OCTET.fetch_add(1, Ordering::SeqCst) % 150) as u8;
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
twins:
  - {{ id: {US}, secret: us }}
  - {{ id: {OTHER}, secret: other }}
nodes:
  - {{ id: 11, farm_id: 1, cru: 32, mru_gib: 128, sru_gib: 2000, domain: gent01.grid.localhost }}
  - {{ id: 12, farm_id: 1, cru: 16, mru_gib: 64, sru_gib: 1000 }}
  - {{ id: 13, farm_id: 2, cru: 8, mru_gib: 16, sru_gib: 250, domain: gent02.grid.localhost }}
  - {{ id: 14, farm_id: 2, cru: 8, mru_gib: 32, sru_gib: 500, status: down }}
gateway: {{ listen: "127.0.0.1:0" }}
private_network: {{ loopback_prefix: "127.{octet}" }}
engines: {{ embedder_port: 0, voice_port: 0 }}
catalog:
  channels:
    stable: {{ gateway: "1.0.0", cockpit: "2.0.0", planner: "1.2.0", books: "1.1.0" }}
    prerelease: {{ gateway: "1.1.0-rc.1", cockpit: "2.1.0-rc.1", planner: "1.3.0-rc.1", books: "1.2.0-rc.1" }}
{extra}
"#
    );
    (Config::from_yaml(&yaml).expect("test config"), octet)
}

/// A started gridshim with clients for both twins.
pub struct Shim {
    pub running: Running,
    pub us: Client,
    pub other: Client,
    pub admin: Admin,
    pub http: reqwest::Client,
}

impl Shim {
    pub fn url(&self) -> String {
        self.running.url()
    }
    pub fn gateway(&self) -> String {
        format!("http://{}", self.running.gateway_addr)
    }
    /// The release index the agents install from.
    pub fn index_url(&self) -> String {
        format!("{}/releases/index.json", self.url())
    }
}

/// Starts gridshim in memory.
pub async fn shim(extra: &str) -> Shim {
    shim_with(extra, None, false).await
}

/// Starts gridshim with an optional database file.
pub async fn shim_with(extra: &str, db: Option<&Path>, reset: bool) -> Shim {
    let (cfg, _) = config(extra);
    shim_cfg(cfg, db, reset).await
}

/// Starts gridshim from a config.
pub async fn shim_cfg(cfg: Config, db: Option<&Path>, reset: bool) -> Shim {
    let running = start(
        cfg,
        StartOptions {
            in_memory: db.is_none(),
            db: db.map(Path::to_path_buf),
            reset,
            ..Default::default()
        },
    )
    .await
    .expect("gridshim starts");
    let url = running.url();
    let gateway = format!("http://{}", running.gateway_addr);
    Shim {
        us: Client::new(&url, &gateway, US, "us"),
        other: Client::new(&url, &gateway, OTHER, "other"),
        admin: Admin::new(&url),
        http: reqwest::Client::new(),
        running,
    }
}

/// A fresh 6-byte seed.
pub fn seed() -> String {
    format!("{:012x}", 0x0a00_0000_0000u64 + u64::from(unique()))
}

/// The network key used by the tests' deployments.
pub const NET_KEY: &str = "abababababababababababababababababababababababababababababababab";

/// A VM deployment: disk, network, zmachine whose agent answers to `machine_id` and obeys
/// [`CONTROLLER_KEY`].
pub fn vm_deployment(twin: u32, machine_id: &str, seed: &str, memory_gib: u64) -> Deployment {
    Deployment {
        version: 0,
        twin_id: twin,
        contract_id: 0,
        metadata: String::new(),
        description: String::new(),
        expiration: 0,
        signature_requirement: SignatureRequirement::by(twin),
        workloads: vec![
            Workload::new("disk", WorkloadData::Zmount(Zmount { size: 10 * GIB })),
            Workload::new(
                "net",
                WorkloadData::NetworkLight(NetworkLight {
                    subnet: "10.20.2.0/24".into(),
                    mycelium: NetworkMycelium {
                        hex_key: NET_KEY.into(),
                        peers: vec![],
                    },
                }),
            ),
            Workload::new(
                "vm",
                WorkloadData::ZmachineLight(ZmachineLight {
                    flist: "https://hub.grid.tf/tester/machine.flist".into(),
                    network: ZmachineNetwork {
                        interfaces: vec![NetworkInterface {
                            network: "net".into(),
                            ip: "10.20.2.2".into(),
                        }],
                        mycelium: MyceliumAttachment {
                            network: "net".into(),
                            seed: seed.into(),
                        },
                    },
                    size: 20 * GIB,
                    compute_capacity: ComputeCapacity {
                        cpu: 2,
                        memory: memory_gib * GIB,
                    },
                    mounts: vec![Mount {
                        name: "disk".into(),
                        mountpoint: "/data".into(),
                    }],
                    entrypoint: "/sbin/zinit init".into(),
                    env: [
                        (
                            signing::CONTROLLER_KEY_ENV.to_string(),
                            CONTROLLER_KEY.public().to_base64(),
                        ),
                        (signing::MACHINE_ID_ENV.to_string(), machine_id.to_string()),
                    ]
                    .into(),
                    corex: false,
                }),
            ),
        ],
    }
}

/// A gateway deployment for `name` to `backend`.
pub fn gw_deployment(twin: u32, name: &str, backend: &str) -> Deployment {
    Deployment {
        version: 0,
        twin_id: twin,
        contract_id: 0,
        metadata: String::new(),
        description: String::new(),
        expiration: 0,
        signature_requirement: SignatureRequirement::by(twin),
        workloads: vec![Workload::new(
            "gw",
            WorkloadData::GatewayNameProxy(GatewayNameProxy {
                name: name.into(),
                tls_passthrough: false,
                backends: vec![backend.into()],
                network: None,
            }),
        )],
    }
}

/// Creates the contract and sends the deployment; returns the contract id.
pub async fn submit(
    grid: &Client,
    node: u32,
    d: &mut Deployment,
    metadata: &str,
) -> Result<u64, GridError> {
    let c = grid
        .create_node_contract(&NodeContractRequest {
            node_id: node,
            deployment_hash: d.challenge_hash(),
            metadata: metadata.into(),
        })
        .await?;
    d.contract_id = c.contract_id;
    grid.deploy(node, d).await?;
    Ok(c.contract_id)
}

/// Polls until no workload is `init` (bounded; no timing is asserted).
pub async fn settled(grid: &Client, node: u32, cid: u64) -> Deployment {
    for _ in 0..2000 {
        let d = grid
            .get_deployment(node, cid)
            .await
            .expect("get deployment");
        if d.workloads
            .iter()
            .all(|w| w.result.state != WorkloadState::Init)
        {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("deployment {cid} never settled");
}

/// Deploys a VM and waits for it; returns (contract, agent target).
pub async fn vm(grid: &Client, node: u32, key: &str) -> (u64, AgentTarget) {
    let mut d = vm_deployment(grid.twin_id(), key, &seed(), 2);
    let cid = submit(grid, node, &mut d, "tester-uid")
        .await
        .expect("submit vm");
    let d = settled(grid, node, cid).await;
    assert!(d.all_ok(), "vm deployment failed: {:?}", d.errors());
    let r = d.workload("vm").unwrap().zmachine_result().unwrap();
    (
        cid,
        AgentTarget {
            mycelium_ip: r.mycelium_ip,
            machine_id: key.into(),
        },
    )
}

/// Polls a future-producing closure until it returns Ok (bounded).
pub async fn eventually<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, GridError>>,
{
    let mut last = None;
    for _ in 0..1000 {
        match f().await {
            Ok(v) => return v,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never succeeded: {last:?}");
}

/// GET through the gateway with a Host header.
pub async fn via_gateway(s: &Shim, host: &str, path: &str) -> (u16, String) {
    let r = s
        .http
        .get(format!("{}{}", s.gateway(), path))
        .header("host", host)
        .send()
        .await
        .expect("gateway answers");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}
