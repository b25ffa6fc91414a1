//! Test fixtures for reconcile-step unit tests: a scripted fake of the grid seam, a
//! [`Context`] whose Kubernetes client points nowhere (a step that reaches the API server in
//! such a test fails loudly), and a Tester builder.
//!
//! The fake proves a step's *decisions* without I/O; that the steps work against the real
//! parts is proven by the e2e suite.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use clap::Parser;
use futures::future::BoxFuture;
use gridapi::{
    ErrorCode, Grid, GridError, GridFuture,
    agent::*,
    catalog::{Catalog, ReleaseCatalog},
    chain::{
        Chain, Contract, ContractData, ContractState, CreateNodeContract, NameContract, NameOwner,
    },
    node::NodeBus,
    proxy::{
        Contract as ProxyContract, ContractFilter, Farm, FarmFilter, Limit, Node, NodeFilter,
        NodeWithNestedCapacity, Page, Proxy,
    },
    zos::{Deployment, WorkloadChange},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;
use secrecy::SecretString;

use crate::{
    config::Config,
    context::Context,
    engines::{EngineError, Engines, TokenStore, TokenStoreInfo},
    metrics::Metrics,
    resources::{Tester, TesterSpec},
};

/// Our twin in the fake.
pub const ME: u32 = 7;

/// What the fake grid knows and answers.
#[derive(Default)]
pub struct FakeState {
    /// Holders of gateway names.
    pub names: HashMap<String, NameOwner>,
    /// Names another twin takes in the instant between our look-up and our claim.
    pub stolen_on_claim: HashMap<String, u32>,
    /// Every call made, in order (method names).
    pub calls: Vec<&'static str>,
    /// The proxy's contract listing, answered through the asked filter.
    pub listed: Vec<ProxyContract>,
    /// The contract filters asked for, in order.
    pub contract_filters: Vec<ContractFilter>,
    next_id: u64,
}

/// A scripted [`Grid`]: what is not scripted answers `Fatal("not scripted")`.
#[derive(Default, Clone)]
pub struct FakeGrid(pub Arc<Mutex<FakeState>>);

impl FakeGrid {
    /// The calls made so far.
    pub fn calls(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().calls.clone()
    }

    fn record(&self, call: &'static str) {
        self.0.lock().unwrap().calls.push(call);
    }
}

fn unscripted<'a, T: Send + 'a>(what: &'static str) -> GridFuture<'a, T> {
    Box::pin(async move {
        Err(GridError::Fatal {
            code: ErrorCode::Invalid,
            message: format!("not scripted in the fake grid: {what}"),
        })
    })
}

macro_rules! unscripted {
    ($self:ident, $name:literal) => {{
        $self.record($name);
        unscripted($name)
    }};
}

impl Proxy for FakeGrid {
    fn nodes<'a>(&'a self, _: &'a NodeFilter, _: Limit) -> GridFuture<'a, Page<Node>> {
        unscripted!(self, "list_nodes")
    }
    fn node(&self, _: u32) -> GridFuture<'_, NodeWithNestedCapacity> {
        unscripted!(self, "get_node")
    }
    fn gateways<'a>(&'a self, _: &'a NodeFilter, _: Limit) -> GridFuture<'a, Page<Node>> {
        unscripted!(self, "list_gateways")
    }
    fn contracts<'a>(
        &'a self,
        filter: &'a ContractFilter,
        _: Limit,
    ) -> GridFuture<'a, Page<ProxyContract>> {
        self.record("list_contracts");
        let mut s = self.0.lock().unwrap();
        s.contract_filters.push(filter.clone());
        let items: Vec<ProxyContract> = s
            .listed
            .iter()
            .filter(|c| filter.matches(c))
            .cloned()
            .collect();
        Box::pin(async move {
            Ok(Page {
                count: Some(items.len() as u64),
                items,
            })
        })
    }
    fn farms<'a>(&'a self, _: &'a FarmFilter, _: Limit) -> GridFuture<'a, Page<Farm>> {
        unscripted!(self, "list_farms")
    }
}

impl Chain for FakeGrid {
    fn twin_id(&self) -> u32 {
        ME
    }
    fn create_node_contract<'a>(&'a self, _: &'a CreateNodeContract) -> GridFuture<'a, Contract> {
        unscripted!(self, "create_node_contract")
    }
    fn create_name_contract<'a>(&'a self, name: &'a str) -> GridFuture<'a, Contract> {
        self.record("create_name_contract");
        let mut s = self.0.lock().unwrap();
        let out = if let Some(thief) = s.stolen_on_claim.remove(name) {
            s.next_id += 1;
            let owner = NameOwner {
                name: name.into(),
                contract_id: 1000 + s.next_id,
                twin_id: thief,
            };
            s.names.insert(name.into(), owner.clone());
            Err(GridError::NameExists {
                name: name.into(),
                owner_twin: thief,
                contract_id: owner.contract_id,
                message: format!("NameExists: {name}"),
            })
        } else if let Some(o) = s.names.get(name) {
            Err(GridError::NameExists {
                name: name.into(),
                owner_twin: o.twin_id,
                contract_id: o.contract_id,
                message: format!("NameExists: {name}"),
            })
        } else {
            s.next_id += 1;
            let id = s.next_id;
            s.names.insert(
                name.into(),
                NameOwner {
                    name: name.into(),
                    contract_id: id,
                    twin_id: ME,
                },
            );
            Ok(Contract {
                version: 4,
                state: ContractState::Created,
                contract_id: id,
                twin_id: ME,
                contract_type: ContractData::NameContract(NameContract { name: name.into() }),
                solution_provider_id: None,
            })
        };
        Box::pin(async move { out })
    }
    fn cancel_contract(&self, _: u64) -> GridFuture<'_, ()> {
        unscripted!(self, "cancel_contract")
    }
    fn contract(&self, _: u64) -> GridFuture<'_, Option<Contract>> {
        unscripted!(self, "get_contract")
    }
    fn contract_id_by_name<'a>(&'a self, _: &'a str) -> GridFuture<'a, Option<u64>> {
        unscripted!(self, "contract_id_by_name")
    }
    fn contract_id_by_node_hash<'a>(&'a self, _: u32, _: &'a str) -> GridFuture<'a, Option<u64>> {
        unscripted!(self, "contract_id_by_node_hash")
    }
    fn name_owner<'a>(&'a self, name: &'a str) -> GridFuture<'a, Option<NameOwner>> {
        self.record("name_owner");
        let out = self.0.lock().unwrap().names.get(name).cloned();
        Box::pin(async move { Ok(out) })
    }
}

impl NodeBus for FakeGrid {
    fn deploy<'a>(&'a self, _: u32, _: &'a Deployment) -> GridFuture<'a, ()> {
        unscripted!(self, "deploy")
    }
    fn get(&self, _: u32, _: u64) -> GridFuture<'_, Deployment> {
        unscripted!(self, "get_deployment")
    }
    fn changes(&self, _: u32, _: u64) -> GridFuture<'_, Vec<WorkloadChange>> {
        unscripted!(self, "deployment_changes")
    }
}

impl MachineAgent for FakeGrid {
    fn configure_gate<'a>(&'a self, _: &'a AgentTarget, _: &'a GateSettings) -> GridFuture<'a, ()> {
        unscripted!(self, "agent_configure_gate")
    }
    fn set_engines<'a>(
        &'a self,
        _: &'a AgentTarget,
        _: &'a EngineCredentials,
    ) -> GridFuture<'a, ()> {
        unscripted!(self, "agent_set_engines")
    }
    fn set_ssh_keys<'a>(&'a self, _: &'a AgentTarget, _: &'a SshKeys) -> GridFuture<'a, ()> {
        unscripted!(self, "agent_set_ssh_keys")
    }
    fn set_ai_keys<'a>(&'a self, _: &'a AgentTarget, _: &'a AiKeys) -> GridFuture<'a, ()> {
        unscripted!(self, "agent_set_ai_keys")
    }
    fn config<'a>(&'a self, _: &'a AgentTarget) -> GridFuture<'a, AgentConfigView> {
        unscripted!(self, "agent_config")
    }
    fn start_install<'a>(
        &'a self,
        _: &'a AgentTarget,
        _: &'a InstallRequest,
    ) -> GridFuture<'a, InstallStatus> {
        unscripted!(self, "agent_start_install")
    }
    fn install_status<'a>(&'a self, _: &'a AgentTarget) -> GridFuture<'a, InstallStatus> {
        unscripted!(self, "agent_install_status")
    }
    fn app_health<'a>(&'a self, _: &'a AgentTarget) -> GridFuture<'a, AppHealth> {
        unscripted!(self, "agent_app_health")
    }
}

impl ReleaseCatalog for FakeGrid {
    fn catalog(&self) -> GridFuture<'_, Catalog> {
        unscripted!(self, "catalog")
    }
}

/// Engines that answer nothing (no step under unit test reaches them yet).
pub struct NoEngines;

impl Engines for NoEngines {
    fn info<'a>(&'a self, s: &'a TokenStore) -> BoxFuture<'a, Result<TokenStoreInfo, EngineError>> {
        Box::pin(async move { Err(down(&s.url)) })
    }
    fn register<'a>(
        &'a self,
        s: &'a TokenStore,
        _: &'a str,
        _: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move { Err(down(&s.url)) })
    }
    fn revoke<'a>(
        &'a self,
        s: &'a TokenStore,
        _: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move { Err(down(&s.url)) })
    }
    fn call<'a>(
        &'a self,
        url: &'a str,
        _: &'a str,
        _: &'a str,
        _: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move { Err(down(url)) })
    }
}

fn down(url: &str) -> EngineError {
    EngineError::Unreachable {
        url: url.into(),
        reason: "fake".into(),
    }
}

/// A context over `grid` whose Kubernetes client points at a closed port.
pub fn context(grid: FakeGrid) -> Context {
    let kube_config = kube::Config::new("http://127.0.0.1:9".parse().expect("URL"));
    let client = kube::Client::try_from(kube_config).expect("client from config");
    context_with(grid, client)
}

/// A [`Context`] whose Kubernetes client is `client` (for a unit test that scripts the API
/// server's answers to one function).
pub fn context_with(grid: FakeGrid, client: kube::Client) -> Context {
    let config = Config::try_parse_from([
        "controller",
        "--grid-url=http://127.0.0.1:9",
        "--grid-twin-id=7",
        "--grid-twin-secret=s",
        "--forge-url=http://127.0.0.1:9",
        "--forge-token=t",
    ])
    .expect("test config parses");
    Context::new(
        client,
        Grid::from_one(Arc::new(grid)),
        Arc::new(NoEngines),
        // A Forge that does not answer: no step under unit test reaches it yet.
        Arc::new(
            crate::forge::HttpForge::new("http://127.0.0.1:9", "t".to_string().into())
                .expect("client"),
        ),
        None,
        config,
        Metrics::default(),
    )
}

/// A Tester `name` for `account`, as the API server would hand it over.
pub fn tester(name: &str, account: &str) -> Tester {
    let spec: TesterSpec = serde_json::from_value(serde_json::json!({
        "accountName": account,
        "email": format!("{name}@example.com"),
        "hostPool": "pool",
    }))
    .expect("minimal spec");
    let mut t = Tester::new(name, spec);
    t.metadata = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("team".into()),
        uid: Some(format!("uid-{name}")),
        generation: Some(1),
        resource_version: Some("1".into()),
        creation_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
        ..Default::default()
    };
    t
}
