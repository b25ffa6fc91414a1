//! `Tester`: one person and their machine on the grid.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::tester_status::*;

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
