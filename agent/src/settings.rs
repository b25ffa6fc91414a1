//! What the controller set on this machine (gate, engine credentials, SSH keys, AI keys), how
//! each is put in place on the machine, and what the agent reports of it: every value as a
//! digest, so the controller sees a rotated secret reach the machine without reading it.

use std::collections::BTreeMap;
use std::fmt;

use gridapi::agent::{
    AgentConfigView, EngineCredential, GateSettings, GateView, digest, ssh_keys_digest,
};
use serde::{Deserialize, Serialize};

use crate::machine::{Machine, read_file, write_file};

/// Where the settings are kept (readable by root only).
pub const SETTINGS_FILE: &str = "/var/lib/hero-agent/settings.json";
/// The SSH keys allowed to log in.
pub const AUTHORIZED_KEYS: &str = "/root/.ssh/authorized_keys";
/// The AI-provider keys, readable only by [`APPS_USER`].
pub const AI_KEYS_FILE: &str = "/etc/hero/ai-keys.env";
/// The engine URLs and token, readable only by [`APPS_USER`].
pub const ENGINES_FILE: &str = "/etc/hero/engines.json";
/// The user the apps run as.
pub const APPS_USER: &str = "apps";

/// Everything the controller set. Its `Debug` shows no secret.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The sign-in gate's settings (`None`: closed, only `/health` answers).
    pub gate: Option<GateSettings>,
    /// Engine URL + token pairs.
    pub engines: Vec<EngineCredential>,
    /// SSH keys allowed to log in.
    pub ssh_keys: Vec<String>,
    /// AI provider → key.
    pub ai_keys: BTreeMap<String, String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("gate", &self.gate)
            .field("engines", &self.engines)
            .field("ssh_keys", &self.ssh_keys.len())
            .field("ai_providers", &self.ai_keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Settings {
    /// Reads the kept settings (empty when there are none yet).
    pub fn load(machine: &dyn Machine) -> std::io::Result<Settings> {
        match read_file(machine, SETTINGS_FILE)? {
            None => Ok(Settings::default()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::other(format!("{SETTINGS_FILE} is damaged: {e}"))),
        }
    }

    /// Keeps the settings.
    pub fn save(&self, machine: &dyn Machine) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        write_file(machine, SETTINGS_FILE, &bytes, 0o600, None)
    }

    /// What the agent reports: no secret, a digest of each.
    pub fn view(&self) -> AgentConfigView {
        AgentConfigView {
            gate: self.gate.as_ref().map(|g| GateView {
                issuer: g.issuer.clone(),
                client_id: g.client_id.clone(),
                allowed_accounts: g.allowed_accounts.clone(),
                public_url: g.public_url.clone(),
                client_secret_digest: Some(digest(&g.client_secret)),
            }),
            engines: self
                .engines
                .iter()
                .map(|e| (e.engine.clone(), e.url.clone()))
                .collect(),
            engine_token_digests: self
                .engines
                .iter()
                .map(|e| (e.engine.clone(), digest(&e.token)))
                .collect(),
            ssh_keys: self.ssh_keys.len(),
            ssh_keys_digest: ssh_keys_digest(&self.ssh_keys),
            ai_providers: self.ai_keys.keys().cloned().collect(),
            ai_key_digests: self
                .ai_keys
                .iter()
                .map(|(p, k)| (p.clone(), digest(k)))
                .collect(),
        }
    }
}

/// Writes `authorized_keys` when its content differs from `keys` (one per line).
pub fn write_ssh_keys(machine: &dyn Machine, keys: &[String]) -> std::io::Result<()> {
    let mut content: String = keys
        .iter()
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    if !content.is_empty() {
        content.push('\n');
    }
    if read_file(machine, AUTHORIZED_KEYS)?.as_deref() == Some(content.as_bytes()) {
        return Ok(());
    }
    write_file(machine, AUTHORIZED_KEYS, content.as_bytes(), 0o600, None)
}

/// Writes the AI keys as `<PROVIDER>_API_KEY=<key>` lines, readable only by the apps' user.
pub fn write_ai_keys(
    machine: &dyn Machine,
    keys: &BTreeMap<String, String>,
) -> std::io::Result<()> {
    let content: String = keys
        .iter()
        .map(|(p, k)| format!("{}_API_KEY={k}\n", env_name(p)))
        .collect();
    write_file(
        machine,
        AI_KEYS_FILE,
        content.as_bytes(),
        0o600,
        Some(APPS_USER),
    )
}

/// Writes the engine URLs and token, readable only by the apps' user.
pub fn write_engines(machine: &dyn Machine, engines: &[EngineCredential]) -> std::io::Result<()> {
    let map: BTreeMap<&str, serde_json::Value> = engines
        .iter()
        .map(|e| {
            (
                e.engine.as_str(),
                serde_json::json!({ "url": e.url, "token": e.token }),
            )
        })
        .collect();
    let bytes = serde_json::to_vec_pretty(&map).map_err(std::io::Error::other)?;
    write_file(machine, ENGINES_FILE, &bytes, 0o600, Some(APPS_USER))
}

fn env_name(provider: &str) -> String {
    provider
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_and_debug_hold_digests_never_values() {
        let s = Settings {
            gate: Some(GateSettings {
                issuer: "https://forge".into(),
                client_id: "c".into(),
                client_secret: "gate-secret-1".into(),
                allowed_accounts: vec!["alice".into()],
                public_url: "http://alice.gw".into(),
            }),
            engines: vec![EngineCredential {
                engine: "voice".into(),
                url: "http://voice".into(),
                token: "engine-token-1".into(),
            }],
            ssh_keys: vec!["ssh-ed25519 AAAA support".into()],
            ai_keys: [("openai".to_string(), "sk-ai-1".to_string())].into(),
        };
        let printed = format!("{:?} {:?}", s, s.view());
        for secret in ["gate-secret-1", "engine-token-1", "sk-ai-1"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        let v = s.view();
        assert_eq!(v.ai_key_digests["openai"], digest("sk-ai-1"));
        assert_eq!(v.engine_token_digests["voice"], digest("engine-token-1"));
        assert_eq!(
            v.gate.unwrap().client_secret_digest,
            Some(digest("gate-secret-1"))
        );
        assert_eq!(env_name("open-ai"), "OPEN_AI");
    }
}
