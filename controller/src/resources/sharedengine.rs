//! `SharedEngine`: a heavy service run once and shared by all testers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A heavy, stateless engine (embeddings, voice, ...) run once on the admin machine and shared by
/// every tester over the private network. Each tester gets its own token, bound to its identity.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sandbox.hero.dev",
    version = "v1alpha1",
    kind = "SharedEngine",
    namespaced,
    doc = "A heavy engine run once and shared by all testers, each with its own token.",
    shortname = "se",
    status = "SharedEngineStatus",
    printcolumn = r#"{"name":"Engine","type":"string","jsonPath":".spec.engine"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status"}"#,
    printcolumn = r#"{"name":"Testers","type":"integer","jsonPath":".status.testers"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SharedEngineSpec {
    /// The kind of engine, e.g. `embedder` or `voice`: lowercase letters, digits and '-'.
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z][a-z0-9-]*$')")
        .message("engine must be a lowercase engine kind such as 'embedder' or 'voice'"))]
    pub engine: String,

    /// Where the engine answers testers on the private network, e.g. `http://127.88.0.1:9000`.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^\\\\s/]+(/[^\\\\s]*)?$')")
        .message("url must be an http(s) URL such as http://engine.internal:9000"))]
    pub url: String,

    /// The engine's token store, where the controller registers and revokes tester tokens.
    pub token_store: TokenStore,
}

/// Where an engine keeps the tokens of the testers allowed to call it.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenStore {
    /// Base URL of the token registry, e.g. `http://127.88.0.1:9000/admin`.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^\\\\s/]+(/[^\\\\s]*)?$')")
        .message("tokenStore.url must be an http(s) URL"))]
    pub url: String,
    /// The Secret key holding the credential for the registry, if it needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<SecretKeyRef>,
}

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// What the controller observed of a SharedEngine.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SharedEngineStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Available` or `Unavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// `Available`: whether the engine's token store answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Testers whose token is registered with this engine.
    #[serde(default)]
    pub testers: u32,
}
