//! What the controller reports of a Tester: its status and the records in it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Channel;

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
