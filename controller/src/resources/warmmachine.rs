//! `WarmMachine`: one pre-built machine of a HostPool's warm pool, made and owned by the
//! controller.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{App, Channel, Placement, TesterResources};

/// A machine built ahead of any tester: VM deployed, apps installed, agent running, gate
/// closed (it serves nothing but `/health`). A new Tester that matches it claims it, and only
/// the person-specific steps run then. Made, claimed and deleted by the controller; an operator
/// sizes the pool with `HostPool.spec.warmPool` and never edits these.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sandbox.hero.dev",
    version = "v1alpha1",
    kind = "WarmMachine",
    namespaced,
    doc = "A pre-built machine of a HostPool's warm pool (made, claimed and deleted by the controller).",
    shortname = "wm",
    status = "WarmMachineStatus",
    printcolumn = r#"{"name":"Pool","type":"string","jsonPath":".spec.hostPool"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Node","type":"integer","jsonPath":".status.placement.nodeId"}"#,
    printcolumn = r#"{"name":"Claimed-By","type":"string","jsonPath":".spec.claim.tester"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(oldSelf.claim) || (has(self.claim) && self.claim == oldSelf.claim)")
    .message("a claim is final: it cannot be changed or removed"))]
#[x_kube(validation = Rule::new("self.hostPool == oldSelf.hostPool && self.resources == oldSelf.resources && self.channel == oldSelf.channel && self.apps == oldSelf.apps")
    .message("a warm machine's pool, resources, channel and apps are fixed when it is made"))]
pub struct WarmMachineSpec {
    /// The HostPool whose warm pool this machine belongs to.
    #[schemars(length(min = 1, max = 253))]
    pub host_pool: String,
    /// The machine's resources (the pool's `perTester` when it was made).
    pub resources: TesterResources,
    /// The channel its apps are installed from.
    pub channel: Channel,
    /// The apps installed on it (besides the gateway app every machine has).
    pub apps: Vec<App>,
    /// Whether it pre-registers a neutral gateway name that becomes its tester's address.
    #[serde(default)]
    pub neutral_name: bool,
    /// The Tester that took this machine. Set once, by the controller, guarded by the
    /// object's resourceVersion so that two Testers never take the same machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<WarmClaim>,
}

/// Who claimed a warm machine.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WarmClaim {
    /// The Tester's name.
    pub tester: String,
    /// The Tester's UID.
    pub tester_uid: String,
}

/// Where a warm machine's build stands.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WarmPhase {
    /// Waiting for a place on a node.
    #[default]
    Pending,
    /// The VM is being deployed or is not reachable yet.
    Deploying,
    /// The apps are being installed.
    Installing,
    /// Built and healthy, gate closed: can be claimed.
    Ready,
    /// The build or the health check failed; the pool replaces it.
    Failed,
}

/// What the controller built of a warm machine.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WarmMachineStatus {
    /// Where the build stands.
    #[serde(default)]
    pub phase: WarmPhase,
    /// What the build is doing or why it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The node it is placed on and what it holds there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// The VM's node contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<u64>,
    /// The VM's private (mycelium) address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_address: Option<String>,
    /// The machine id its agent answers to (not secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// The exact version of every app installed, once installed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
    /// When it became claimable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<Time>,
    /// Its pre-registered neutral gateway name (`neutralName` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_name: Option<String>,
    /// The name contract holding `gatewayName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_contract_id: Option<u64>,
    /// The contract of the gateway deployment routing the name to the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_contract_id: Option<u64>,
    /// The node running the name proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_node_id: Option<u32>,
    /// The address the name gives (the tester's address once claimed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl WarmMachine {
    /// The Secret holding this machine's keys (network key, seed, machine id).
    pub fn keys_secret_name(&self) -> String {
        format!("{}-machine", kube::ResourceExt::name_any(self))
    }

    /// Whether a Tester may claim it now.
    pub fn claimable(&self) -> bool {
        self.spec.claim.is_none()
            && self.metadata.deletion_timestamp.is_none()
            && self
                .status
                .as_ref()
                .is_some_and(|s| s.phase == WarmPhase::Ready)
    }
}

/// How many machines a HostPool keeps warm, and what they carry.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WarmPool {
    /// Machines to keep ready for new testers (0-50). They are real deployments: each holds
    /// the pool's `perTester` resources on a node and counts against `fit`.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 50").message("warmPool.size must be between 0 and 50"))]
    pub size: u32,
    /// The channel the warm machines' apps come from (default `stable`). A Tester on another
    /// channel starts cold.
    #[serde(default)]
    pub channel: Channel,
    /// The apps installed on the warm machines (default: all). A Tester with another app set
    /// starts cold.
    #[serde(default = "App::default_set")]
    #[schemars(length(max = 8))]
    pub apps: Vec<App>,
    /// Whose name a claimed machine answers at: `own` (default) binds the tester's own name
    /// (`<account>-<suffix>` or its `gatewayName`) at claim, which costs one name contract and
    /// one gateway set-up; `neutral` has each warm machine pre-register a neutral name that
    /// becomes the tester's address at claim, ready in seconds (a Tester with a custom
    /// `gatewayName` then starts cold).
    #[serde(default)]
    pub names: WarmNames,
    /// How many warm machines are built at once (1-10, default 2): refills and rolls to a newer
    /// release go this fast, never emptying the pool.
    #[serde(default = "default_max_building")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 10").message("warmPool.maxBuilding must be between 1 and 10"))]
    pub max_building: u32,
}

/// Whose name a claimed warm machine answers at.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WarmNames {
    /// The tester's own name, bound at claim.
    #[default]
    Own,
    /// A neutral name each warm machine pre-registers.
    Neutral,
}

fn default_max_building() -> u32 {
    2
}

impl Default for WarmPool {
    /// No machine, with the defaults of every other field.
    fn default() -> Self {
        Self {
            size: 0,
            channel: Channel::default(),
            apps: App::default_set(),
            names: WarmNames::default(),
            max_building: default_max_building(),
        }
    }
}

/// The warm pool's counts, in the HostPool's status.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WarmPoolStatus {
    /// Machines the pool should keep ready.
    #[serde(default)]
    pub desired: u32,
    /// Machines ready to be claimed.
    #[serde(default)]
    pub ready: u32,
    /// Machines being built.
    #[serde(default)]
    pub warming: u32,
    /// Ready machines with an older release than the channel's newest, being replaced.
    #[serde(default)]
    pub outdated: u32,
    /// Why the pool is short of `desired` ready machines, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The warm machine a Tester claimed, in its status.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WarmStart {
    /// The WarmMachine it took (deleted once the Tester recorded it).
    pub machine: String,
    /// The UID of that WarmMachine when the tester took its neutral name too (its gateway
    /// deployment carries that UID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_by: Option<String>,
    /// When it took it.
    pub claimed_at: Time,
}
