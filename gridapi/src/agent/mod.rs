//! The machine agent's face: what the controller asks of the agent in a tester's VM (gate
//! settings, engine credentials, SSH and AI keys, the app install, app health), and
//! [`MachineAgent`], the trait of its client. The agent is the project's own service, reached
//! on the VM's private (mycelium) address.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{GridFuture, catalog::Channel};

pub mod signing;

/// How to reach a VM's agent: its private address and its machine id. Nothing here is secret:
/// requests are signed with the controller's key ([`signing`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentTarget {
    /// The VM's mycelium address (from the zmachine result, or [`crate::zos::mycelium_ip`]).
    pub mycelium_ip: String,
    /// The machine id in the VM's env ([`signing::MACHINE_ID_ENV`]); requests are signed for it.
    pub machine_id: String,
}

/// SHA-256 (hex) of a secret value: what an agent reports to prove which value it holds without
/// giving it away.
pub fn digest(value: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

/// The digest of a set of SSH keys, compared by content (trimmed, sorted, without duplicates).
pub fn ssh_keys_digest(keys: &[String]) -> String {
    let mut keys: Vec<&str> = keys
        .iter()
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    digest(&keys.join("\n"))
}

/// Settings of a VM's sign-in gate, set by the controller through the agent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSettings {
    /// OIDC issuer URL.
    pub issuer: String,
    /// OIDC client id.
    pub client_id: String,
    /// OIDC client secret (never logged nor shown).
    pub client_secret: String,
    /// Accounts allowed to sign in.
    pub allowed_accounts: Vec<String>,
    /// The VM's public URL through the gateway (`http://NAME.<domain>:port`), for the callback.
    pub public_url: String,
}

impl fmt::Debug for GateSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("allowed_accounts", &self.allowed_accounts)
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// An engine URL with the tester's token, handed to a VM.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineCredential {
    /// Engine name (`embedder`, `voice`).
    pub engine: String,
    /// Engine base URL.
    pub url: String,
    /// Bearer token (never logged nor shown).
    pub token: String,
}

impl fmt::Debug for EngineCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineCredential")
            .field("engine", &self.engine)
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Body of `PUT /v1/engines` on the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineCredentials {
    /// Replaces the whole set.
    pub engines: Vec<EngineCredential>,
}

/// Body of `PUT /v1/ssh-keys` on the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKeys {
    /// Replaces the whole set; empty disables SSH.
    pub keys: Vec<String>,
}

/// Body of `PUT /v1/ai-keys` on the agent: provider → key. Never logged nor shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiKeys {
    /// Replaces the whole set.
    pub keys: BTreeMap<String, String>,
}

impl fmt::Debug for AiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AiKeys")
            .field("providers", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What a VM agent holds, without any secret: for the controller to check, not assume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfigView {
    /// Gate issuer, client id, allowed accounts and public URL (no secret), if configured.
    pub gate: Option<GateView>,
    /// Engine name → URL (no token).
    pub engines: BTreeMap<String, String>,
    /// Engine name → SHA-256 (hex) of the token the machine holds for it: proves which token
    /// reached the machine without giving it away.
    #[serde(default)]
    pub engine_token_digests: BTreeMap<String, String>,
    /// How many SSH keys are set.
    pub ssh_keys: usize,
    /// [`ssh_keys_digest`] of the SSH keys set.
    #[serde(default)]
    pub ssh_keys_digest: String,
    /// AI providers that have a key (no key).
    pub ai_providers: Vec<String>,
    /// AI provider → [`digest`] of its key.
    #[serde(default)]
    pub ai_key_digests: BTreeMap<String, String>,
}

/// The gate settings without the client secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateView {
    /// OIDC issuer URL.
    pub issuer: String,
    /// OIDC client id.
    pub client_id: String,
    /// Accounts allowed to sign in.
    pub allowed_accounts: Vec<String>,
    /// Public URL.
    pub public_url: String,
    /// SHA-256 (hex) of the client secret the gate runs with: proves a renewed secret reached
    /// the machine without giving it away.
    #[serde(default)]
    pub client_secret_digest: Option<String>,
}

/// Body of `POST /v1/install` on the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRequest {
    /// Channel to install from (recorded).
    pub channel: Channel,
    /// Apps to install (see [`crate::catalog::APPS`]).
    pub apps: Vec<String>,
    /// Where the release index is ([`crate::catalog::ReleaseIndex`]): each component is
    /// downloaded from the URL it names and checked against its SHA-256.
    pub index_url: String,
}

/// State of an install or of one of its steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstallState {
    /// Never asked.
    #[default]
    Idle,
    /// Queued, not started.
    Pending,
    /// Under way.
    Running,
    /// Done.
    Succeeded,
    /// Failed; see the log.
    Failed,
}

/// One step of an install (one app).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallStep {
    /// The app.
    pub app: String,
    /// State.
    pub state: InstallState,
    /// Version being installed (from the catalog), when known.
    #[serde(default)]
    pub version: Option<String>,
    /// Log lines.
    pub log: Vec<String>,
}

/// Status of the install on a VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallStatus {
    /// Overall state.
    pub state: InstallState,
    /// Channel of the last install asked.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// Apps of the last install asked.
    #[serde(default)]
    pub apps: Vec<String>,
    /// One step per app.
    #[serde(default)]
    pub steps: Vec<InstallStep>,
    /// Installed component → exact version (kept across installs).
    #[serde(default)]
    pub components: BTreeMap<String, String>,
    /// Channel each installed component came from.
    #[serde(default)]
    pub component_channels: BTreeMap<String, Channel>,
    /// How many installs were started on this VM.
    #[serde(default)]
    pub attempt: u32,
}

/// Health of one app on a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppHealthEntry {
    /// The app.
    pub app: String,
    /// Answers on the machine.
    pub healthy: bool,
    /// Installed version, if any.
    #[serde(default)]
    pub version: Option<String>,
    /// Why not healthy.
    #[serde(default)]
    pub detail: String,
}

/// Per-app health of a VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppHealth {
    /// One entry per app of the last install (or per installed app).
    pub apps: Vec<AppHealthEntry>,
}

// ---------------------------------------------------------------------------------------------

/// The agent in a tester's VM. Every call goes to the VM's private address, signed with the
/// controller's key for the VM's machine id.
pub trait MachineAgent: Send + Sync {
    /// `PUT /v1/gate`: the sign-in gate's settings.
    fn configure_gate<'a>(
        &'a self,
        vm: &'a AgentTarget,
        gate: &'a GateSettings,
    ) -> GridFuture<'a, ()>;
    /// `PUT /v1/engines`: the engine URLs with the tester's token.
    fn set_engines<'a>(
        &'a self,
        vm: &'a AgentTarget,
        engines: &'a EngineCredentials,
    ) -> GridFuture<'a, ()>;
    /// `PUT /v1/ssh-keys`: the keys allowed to log in.
    fn set_ssh_keys<'a>(&'a self, vm: &'a AgentTarget, keys: &'a SshKeys) -> GridFuture<'a, ()>;
    /// `PUT /v1/ai-keys`: the AI providers' keys.
    fn set_ai_keys<'a>(&'a self, vm: &'a AgentTarget, keys: &'a AiKeys) -> GridFuture<'a, ()>;
    /// `GET /v1/config`: what the agent holds, without any secret.
    fn config<'a>(&'a self, vm: &'a AgentTarget) -> GridFuture<'a, AgentConfigView>;
    /// `POST /v1/install`: starts (or restarts) the install of the app stack.
    fn start_install<'a>(
        &'a self,
        vm: &'a AgentTarget,
        req: &'a InstallRequest,
    ) -> GridFuture<'a, InstallStatus>;
    /// `GET /v1/install`: progress of the install.
    fn install_status<'a>(&'a self, vm: &'a AgentTarget) -> GridFuture<'a, InstallStatus>;
    /// `GET /v1/health`: each installed app's health.
    fn app_health<'a>(&'a self, vm: &'a AgentTarget) -> GridFuture<'a, AppHealth>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_debug_printed() {
        let g = GateSettings {
            issuer: "i".into(),
            client_id: "c".into(),
            client_secret: "s3cr3t".into(),
            allowed_accounts: vec![],
            public_url: "u".into(),
        };
        assert!(!format!("{g:?}").contains("s3cr3t"));
        let k = AiKeys {
            keys: [("openai".to_string(), "sk-123".to_string())].into(),
        };
        assert!(!format!("{k:?}").contains("sk-123"));
    }
}
