//! `Tester`: one person and their machine on the grid.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A tester of the shared sandbox: the controller places a machine for them on a node of the
/// chosen HostPool, gives it a public address behind an OIDC sign-in gate, registers a token
/// with every SharedEngine it uses, installs the app stack and sends one welcome email.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sandbox.hero.dev",
    version = "v1alpha1",
    kind = "Tester",
    namespaced,
    doc = "A tester of the shared sandbox and their machine on the grid.",
    shortname = "tst",
    status = "TesterStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Host","type":"string","jsonPath":".status.host"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Apps","type":"string","jsonPath":".status.conditions[?(@.type==\"AppsHealthy\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "has(self.gatewayName) == has(oldSelf.gatewayName) && (!has(self.gatewayName) || self.gatewayName == oldSelf.gatewayName)"
).message("gatewayName cannot be added, changed or removed after creation: a tester keeps its address for life"))]
pub struct TesterSpec {
    /// The tester's account name at the identity provider (Forgejo): 1-40 characters of letters,
    /// digits, '-', '_' and '.', starting and ending with a letter or digit, any case. The
    /// machine's grid and DNS names are derived from it. Immutable.
    #[schemars(length(max = 40))]
    #[x_kube(
        validation = Rule::new("self.matches('^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$')")
            .message("accountName must be 1-40 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"),
        validation = Rule::new("self == oldSelf").message("accountName is immutable: delete the Tester and create a new one to change it")
    )]
    pub account_name: String,

    /// Where the welcome email goes, e.g. `alice@example.com`.
    #[schemars(length(max = 254))]
    #[x_kube(validation = Rule::new("self.matches('^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$')")
        .message("email must look like name@example.com"))]
    pub email: String,

    /// Whether the account is created for this tester (`New`: the welcome email carries a
    /// one-time password) or already exists (`Existing`: the tester signs in with their own).
    #[serde(default)]
    pub account_type: AccountType,

    /// What deleting the Tester does to an account it created at the Forge (`accountType:
    /// New`): `Retain` (default) keeps it, `Delete` deletes it with everything it owns there.
    /// An `Existing` account is never deleted.
    #[serde(default)]
    pub account_deletion_policy: AccountDeletionPolicy,

    /// Name of the HostPool (in this namespace) whose nodes the machine may be placed on.
    /// Immutable.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("hostPool is immutable: delete the Tester and create a new one to move it"))]
    pub host_pool: String,

    /// A custom public gateway name instead of the generated `<account>-<suffix>`: 3-36
    /// characters of lowercase letters and digits (the grid's workload-name rule). Names are
    /// global on the grid; a name held by someone else is reported as `NameTaken`. Cannot be
    /// changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]{3,36}$')")
        .message("gatewayName must be 3-36 characters of lowercase letters and digits (no dashes, dots or upper case)"))]
    pub gateway_name: Option<String>,

    /// Further accounts allowed through the sign-in gate. The administrators and the tester
    /// are always allowed and need not be listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 40)))]
    #[x_kube(validation = Rule::new("self.all(a, size(a) <= 40 && a.matches('^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$'))")
        .message("allowedAccounts entries must be account names: 1-40 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"))]
    pub allowed_accounts: Vec<String>,

    /// The tester's own SSH public key (`ssh-ed25519 AAAA... comment`). Off by default: a
    /// tester never needs one; the team's support keys are installed regardless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+=*( [^\\\\n]*)?$')")
        .message("sshKey must be one OpenSSH public key line: 'ssh-ed25519 AAAA... comment'"))]
    pub ssh_key: Option<String>,

    /// Release channel the app stack is installed from: `stable` or `prerelease`. Changing it
    /// reinstalls the machine in place.
    #[serde(default)]
    pub channel: Channel,

    /// The apps installed on the machine (the gateway with the sign-in gate is always there).
    /// Changing the set reinstalls the machine in place.
    #[serde(default = "App::default_set")]
    #[schemars(length(min = 1, max = 16), extend("x-kubernetes-list-type" = "set"))]
    pub apps: Vec<App>,

    /// Names of the SharedEngines (in this namespace) the tester's machine uses; a token is
    /// registered with each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 63)))]
    #[x_kube(validation = Rule::new("self.all(e, size(e) <= 63 && e.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))")
        .message("sharedEngines entries must be SharedEngine names: lowercase letters, digits and '-', at most 63 characters"))]
    pub shared_engines: Vec<String>,

    /// Default AI-provider keys to hand over to the machine, by provider name (e.g. `openai`,
    /// `anthropic`): each names a key in the operator's AI-keys Secret. A provider without a
    /// key there is reported in the `TokensRegistered` condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 40)))]
    #[x_kube(validation = Rule::new("self.all(p, size(p) <= 40 && p.matches('^[a-z0-9][a-z0-9_-]*$'))")
        .message("aiProviders entries must be provider names: lowercase letters, digits, '-' and '_'"))]
    pub ai_providers: Vec<String>,

    /// Whether to send the welcome email once the machine is Ready. Sent at most once.
    #[serde(default = "default_true")]
    pub welcome_email: bool,

    /// CPU, memory and disk of the machine; what is left out comes from the HostPool's
    /// `perTester` defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceOverrides>,

    /// What the controller may do on the grid for this tester: `Full` (default: create,
    /// repair, delete), `ObserveOnly` (adopt the machine that exists, by the controller's tag
    /// or `contractId`, and report it; never create, change or delete anything) or
    /// `OrphanOnDelete` (as `Full`, but deleting the Tester only revokes its tokens and leaves
    /// the machine and its name on the grid). `ObserveOnly` cannot become `Full` directly: go
    /// through `OrphanOnDelete`, so taking over a machine is a deliberate step.
    #[serde(default)]
    #[x_kube(validation = Rule::new("!(oldSelf == 'ObserveOnly' && self == 'Full')")
        .message("managementPolicy cannot go from ObserveOnly straight to Full: set OrphanOnDelete first (the controller then manages the machine but never deletes it), then Full"))]
    pub management_policy: ManagementPolicy,

    /// For `ObserveOnly`: the VM's node contract when the machine was made outside the
    /// controller (without its tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("contractId must be a grid contract id (1 or more)"))]
    pub contract_id: Option<u64>,
}

/// What the controller may do on the grid for a tester.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ManagementPolicy {
    /// Create, repair and (on delete) remove everything.
    #[default]
    Full,
    /// Report what exists; never create, change or delete anything on the grid.
    ObserveOnly,
    /// Manage as `Full`, but leave the machine and name on the grid when the Tester is deleted
    /// (its tokens are still revoked).
    OrphanOnDelete,
}

fn default_true() -> bool {
    true
}

/// Whether the tester's account exists at the identity provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccountType {
    /// Created for this tester; the welcome email carries a one-time password.
    #[default]
    New,
    /// Already exists; the tester signs in with their own password.
    Existing,
}

/// What deleting a Tester does to the account it created at the Forge.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccountDeletionPolicy {
    /// Keep the account: the person can still sign in to the Forge.
    #[default]
    Retain,
    /// Delete the account (only one this Tester created).
    Delete,
}

/// A release channel of the app stack.
#[derive(
    Serialize,
    Deserialize,
    JsonSchema,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Released builds.
    #[default]
    Stable,
    /// Builds published ahead of release, for testers who try them first.
    Prerelease,
}

impl Channel {
    /// The channel's name as the release catalog spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Stable => "stable",
            Channel::Prerelease => "prerelease",
        }
    }
}

/// An app of the stack that can be installed on a tester's machine.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum App {
    /// The tester's dashboard (Apps, Services, Settings).
    Cockpit,
    /// An AI assistant that drives the other apps as tools.
    Assistant,
    /// Planner.
    Planner,
    /// Whiteboard with shareable board links.
    Whiteboard,
    /// Slides.
    Slides,
    /// A document library with grounded search.
    Books,
    /// The tester's own knowledge store.
    Memory,
    /// A voice widget, client of the shared voice engine.
    Voice,
}

impl App {
    /// Every app, in install order.
    pub const ALL: [App; 8] = [
        App::Cockpit,
        App::Assistant,
        App::Planner,
        App::Whiteboard,
        App::Slides,
        App::Books,
        App::Memory,
        App::Voice,
    ];

    /// The default app set: all of them.
    pub fn default_set() -> Vec<App> {
        Self::ALL.to_vec()
    }

    /// The app's name as the release catalog spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            App::Cockpit => "cockpit",
            App::Assistant => "assistant",
            App::Planner => "planner",
            App::Whiteboard => "whiteboard",
            App::Slides => "slides",
            App::Books => "books",
            App::Memory => "memory",
            App::Voice => "voice",
        }
    }
}

/// Per-tester overrides of the HostPool's `perTester` resources.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceOverrides {
    /// Virtual CPUs, 1-32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 32").message("cpu must be between 1 and 32 vCPUs"))]
    pub cpu: Option<u32>,
    /// Memory in GiB, 1-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 256").message("memoryGiB must be between 1 and 256"))]
    #[serde(rename = "memoryGiB")]
    pub memory_gib: Option<u32>,
    /// Disk in GiB, 1-4096.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 4096").message("diskGiB must be between 1 and 4096"))]
    #[serde(rename = "diskGiB")]
    pub disk_gib: Option<u32>,
}

/// What the controller observed and did for a Tester.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TesterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Coarse summary of progress: Pending, Scheduling, Provisioning, Configuring,
    /// Installing, Ready, Deleting. The conditions say why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,

    /// Where the tester stands, one condition per step: Scheduled, MachineReady,
    /// GatewayReady, GateSecured, TokensRegistered, Installed, WelcomeEmailSent,
    /// UpdateAvailable, and Ready when all required steps hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The node the machine is placed on, recorded before any grid call so two testers can
    /// never take the same last place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,

    /// Human-readable placement, e.g. `node-12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,

    /// The public gateway name, stable for the tester's life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_name: Option<String>,

    /// The tester's address: `http(s)://<gatewayName>.<node gateway domain>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// The machine on the grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineStatus>,

    /// The warm machine this tester claimed, when it did not start cold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_start: Option<super::WarmStart>,

    /// The tester's account at the Forge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountStatus>,

    /// The tester's own sign-in client (an OAuth2 application at the Forge); its secret is in
    /// the Secret named here, never in the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in_client: Option<SignInClientStatus>,

    /// What is installed on the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<InstalledVersions>,

    /// Name of the Secret holding the tester's engine token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,

    /// The identity the shared engines know this tester by: unique to this Tester and the same
    /// for its whole life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_identity: Option<String>,

    /// Every token store the tester's token was sent to; deletion revokes it from each, even
    /// when its SharedEngine was removed from the spec or deleted since.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub registered_engines: Vec<RegisteredEngine>,

    /// Health of each installed app, from the machine's agent (see the `AppsHealthy`
    /// condition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub apps: Vec<AppStatus>,
}

/// The health of one app on the tester's machine.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// The app.
    #[schemars(length(max = 63))]
    pub app: String,
    /// Whether it answers its health check.
    pub healthy: bool,
    /// Since when it has been in this state.
    pub since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    /// Why it is not healthy (empty when healthy).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 1024))]
    pub message: String,
}

/// A token store holding the tester's token.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredEngine {
    /// The SharedEngine's name.
    #[schemars(length(max = 253))]
    pub name: String,
    /// The token store's URL at the time of registration.
    #[schemars(length(max = 2048))]
    pub token_store_url: String,
}

/// The node a tester is placed on and what it holds there.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.nodeId == oldSelf.nodeId")
    .message("placement.nodeId cannot change once placed; clear the placement to reschedule"))]
pub struct Placement {
    /// Grid node id.
    pub node_id: u32,
    /// vCPUs reserved on the node.
    pub cpu: u32,
    /// Memory reserved on the node, in bytes.
    pub memory_bytes: u64,
    /// Disk reserved on the node, in bytes.
    pub disk_bytes: u64,
}

/// The grid contracts and address of a tester's machine.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MachineStatus {
    /// The node contract of the VM deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<u64>,
    /// The name contract holding the gateway name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_contract_id: Option<u64>,
    /// The node contract of the gateway (name proxy) deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_contract_id: Option<u64>,
    /// The gateway node running the name proxy, when the HostPool has gateway nodes (kept for
    /// life, so the address stays when the machine moves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_node_id: Option<u32>,
    /// The VM's address on the private network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_address: Option<String>,
    /// The VM's machine id: its agent obeys only requests signed for it (its keys are in the
    /// Secret `<tester>-machine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// The rebuild annotation value this machine was built for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// How many times the machine was moved off an unhealthy node (each move is a new
    /// machine: new private address, same account, name, tokens and access).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub remediations: u32,
    /// Contracts of replaced machines still to cancel (their node may be down): retried until
    /// the grid accepts, and cancelled on delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub retired_contracts: Vec<u64>,
}

/// The tester's account at the Forge.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// The account's login name.
    #[schemars(length(max = 40))]
    pub name: String,
    /// Whether this Tester created it (only such an account is ever deleted, and only with
    /// `accountDeletionPolicy: Delete`).
    #[serde(default)]
    pub created: bool,
}

/// The tester's OAuth2 application at the Forge.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SignInClientStatus {
    /// The application's id at the Forge.
    pub application_id: i64,
    /// Its OAuth2 client id (not a secret).
    #[schemars(length(max = 128))]
    pub client_id: String,
    /// Its only redirect URI: the gate's callback on the tester's address.
    #[schemars(length(max = 2048))]
    pub redirect_uri: String,
    /// The Secret (owned by the Tester) holding `client_id` and `client_secret`.
    #[schemars(length(max = 253))]
    pub secret_name: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The app stack installed on a tester's machine.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstalledVersions {
    /// The channel the installed versions came from.
    pub channel: Channel,
    /// Exact version of every installed component, by name.
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
}
