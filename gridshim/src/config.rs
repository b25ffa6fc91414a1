//! gridshim's configuration file (YAML): twins, farms, nodes, the data plane's addresses, the
//! engines, the release catalog, install behaviour, timing and faults to inject at start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use gridapi::{
    GIB,
    catalog::{Catalog, Channel},
    proxy::{NodeStatus, Resources},
};

use crate::timing::Profile;
use crate::wire::{FaultSpec, LeftoverName};

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid YAML for this schema.
    #[error("invalid configuration {path}: {source}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Cause.
        source: serde_yaml::Error,
    },
    /// The content is inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the API (`127.0.0.1:8800`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// SQLite file; relative paths are relative to the config file. None: in memory.
    #[serde(default)]
    pub db: Option<PathBuf>,
    /// Timing profile.
    #[serde(default)]
    pub profile: Profile,
    /// Realistic timings are divided by this.
    #[serde(default = "one")]
    pub time_scale: f64,
    /// How long the proxy takes to count a new deployment in a node's used figures, in
    /// milliseconds, whatever the profile (unset: the profile's own, zero on `instant`). Lets a
    /// test on the instant profile show what a client does with a listing that lags.
    #[serde(default)]
    pub proxy_lag_ms: Option<u64>,
    /// Twins that may call the chain and nodes.
    pub twins: Vec<TwinConfig>,
    /// Nodes of the grid.
    pub nodes: Vec<NodeConfig>,
    /// The gateway's listener.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// How private addresses map onto loopback.
    #[serde(default)]
    pub private_network: PrivateNetworkConfig,
    /// Shared engines on the admin machine.
    #[serde(default)]
    pub engines: EnginesConfig,
    /// Release catalog.
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// Install behaviour.
    #[serde(default)]
    pub install: InstallConfig,
    /// Faults active from the start.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Leftover name registrations present from the start (skipped when already held).
    #[serde(default)]
    pub leftover_names: Vec<LeftoverName>,
    /// Directory of the config file (for relative paths); set by [`Config::load`].
    #[serde(skip)]
    pub base_dir: PathBuf,
}

fn default_listen() -> String {
    "127.0.0.1:8800".into()
}
fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}

/// A twin: its secret (the HTTP chain face's session) and, to use the RMB relay, its mnemonic.
///
/// gridshim stands for the chain, which knows every twin's public keys; a real chain holds only
/// those (the account and the end-to-end key), and a real relay reads them from there. gridshim
/// derives them from a test twin's phrase. `Debug` never shows the phrase.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwinConfig {
    /// Twin id.
    pub id: u32,
    /// Secret the client presents.
    pub secret: String,
    /// The twin's BIP-39 phrase (a test twin's; public development phrases only). Twins without
    /// one cannot use the relay.
    #[serde(default)]
    pub mnemonic: Option<String>,
    /// Key type of the phrase: `sr25519` (default) or `ed25519`.
    #[serde(default)]
    pub key_type: Option<String>,
}

impl std::fmt::Debug for TwinConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwinConfig")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("mnemonic", &self.mnemonic.as_ref().map(|_| "<redacted>"))
            .field("key_type", &self.key_type)
            .finish()
    }
}

impl TwinConfig {
    /// The twin's identity, when it has a mnemonic; the error never repeats the phrase.
    pub fn identity(&self) -> Result<Option<tfgrid::identity::Identity>, ConfigError> {
        let Some(phrase) = &self.mnemonic else {
            return Ok(None);
        };
        let invalid = |e: tfgrid::identity::IdentityError| {
            ConfigError::Invalid(format!("twin {}: {e}", self.id))
        };
        let kind = match &self.key_type {
            Some(k) => k.parse().map_err(invalid)?,
            None => tfgrid::identity::KeyType::Sr25519,
        };
        tfgrid::identity::Identity::from_mnemonic(
            &secrecy::SecretString::from(phrase.clone()),
            kind,
        )
        .map(Some)
        .map_err(invalid)
    }
}

/// A node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Node id.
    pub id: u32,
    /// Farm id.
    #[serde(default = "farm1")]
    pub farm_id: u32,
    /// The node's twin (default 1000 + id).
    #[serde(default)]
    pub twin_id: Option<u32>,
    /// vCPUs.
    pub cru: u64,
    /// Memory, GiB.
    pub mru_gib: u64,
    /// SSD, GiB.
    pub sru_gib: u64,
    /// HDD, GiB.
    #[serde(default)]
    pub hru_gib: u64,
    /// Initial status.
    #[serde(default = "up")]
    pub status: NodeStatus,
    /// Initial health flag.
    #[serde(default = "yes")]
    pub healthy: bool,
    /// Gateway domain, e.g. `gent01.grid.localhost`.
    #[serde(default)]
    pub domain: Option<String>,
    /// Must be rented whole.
    #[serde(default)]
    pub dedicated: bool,
    /// Rented by this twin.
    #[serde(default)]
    pub rented_by: Option<u32>,
    /// Features (default: the light workloads, plus the gateway with a domain).
    #[serde(default)]
    pub features: Option<Vec<String>>,
}

fn farm1() -> u32 {
    1
}
fn up() -> NodeStatus {
    NodeStatus::Up
}

impl NodeConfig {
    /// The node's twin: the message bus addresses the node by it.
    pub fn twin_id(&self) -> u32 {
        self.twin_id.unwrap_or(1000 + self.id)
    }

    /// Total capacity in bytes.
    pub fn total(&self) -> Resources {
        Resources {
            cru: self.cru,
            mru: self.mru_gib * GIB,
            sru: self.sru_gib * GIB,
            hru: self.hru_gib * GIB,
        }
    }
    /// Features reported.
    pub fn features(&self) -> Vec<String> {
        self.features.clone().unwrap_or_else(|| {
            let mut f: Vec<String> = ["zmount", "network-light", "zmachine-light"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            if self.domain.is_some() {
                f.push("gateway-name-proxy".into());
            }
            f
        })
    }
}

/// The gateway's listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// `127.0.0.1:8880`; port 0 picks one.
    #[serde(default = "gateway_listen")]
    pub listen: String,
}
fn gateway_listen() -> String {
    "127.0.0.1:8880".into()
}
impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: gateway_listen(),
        }
    }
}

/// How private (mycelium) addresses map onto loopback: the admin machine is `PREFIX.0.1`, VMs
/// get `PREFIX.x.y` from `PREFIX.0.2` on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateNetworkConfig {
    /// First two octets, e.g. `127.77`.
    #[serde(default = "prefix")]
    pub loopback_prefix: String,
    /// Port of every VM agent.
    #[serde(default = "agent_port")]
    pub agent_port: u16,
    /// Port of every VM's web side.
    #[serde(default = "web_port")]
    pub web_port: u16,
}
fn prefix() -> String {
    "127.77".into()
}
fn agent_port() -> u16 {
    7070
}
fn web_port() -> u16 {
    8080
}
impl Default for PrivateNetworkConfig {
    fn default() -> Self {
        PrivateNetworkConfig {
            loopback_prefix: prefix(),
            agent_port: agent_port(),
            web_port: web_port(),
        }
    }
}

impl PrivateNetworkConfig {
    /// The admin machine's loopback address.
    pub fn admin_ip(&self) -> String {
        format!("{}.0.1", self.loopback_prefix)
    }
    /// Loopback address of the n-th VM (n from 0).
    pub fn vm_ip(&self, n: u32) -> String {
        // 250 hosts per third octet, from .2, so .0/.1/.255 are never used by VMs.
        format!("{}.{}.{}", self.loopback_prefix, n / 250, n % 250 + 2)
    }
}

/// Shared engines on the admin machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnginesConfig {
    /// Address they listen on (default: the admin machine's loopback address).
    #[serde(default)]
    pub ip: Option<String>,
    /// Port of the embedder (0 picks one).
    #[serde(default = "embedder_port")]
    pub embedder_port: u16,
    /// Port of the voice engine (0 picks one).
    #[serde(default = "voice_port")]
    pub voice_port: u16,
    /// Engines whose token store is unavailable at start (fault knob).
    #[serde(default)]
    pub token_store_unavailable: Vec<String>,
}
fn embedder_port() -> u16 {
    7801
}
fn voice_port() -> u16 {
    7802
}
impl Default for EnginesConfig {
    fn default() -> Self {
        EnginesConfig {
            ip: None,
            embedder_port: embedder_port(),
            voice_port: voice_port(),
            token_store_unavailable: vec![],
        }
    }
}

/// Release catalog: a file (re-read when it changes) or inline channels.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// YAML file with `channels: {stable: {app: version}, prerelease: {...}}`.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Inline channels, used when there is no file.
    #[serde(default)]
    pub channels: BTreeMap<Channel, BTreeMap<String, String>>,
}

impl CatalogConfig {
    /// The inline catalog.
    pub fn inline(&self) -> Catalog {
        Catalog {
            channels: self.channels.clone(),
        }
    }
}

/// Install behaviour.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallConfig {
    /// Chance (0–1) that a service start loses its start-up race and the step fails.
    #[serde(default)]
    pub start_race_probability: f64,
}

impl Config {
    /// Reads a YAML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg: Config = serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        cfg.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses YAML text (paths relative to the current directory).
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::from("<inline>"),
            source,
        })?;
        cfg.base_dir = PathBuf::from(".");
        cfg.validate()?;
        Ok(cfg)
    }

    /// Resolves a path relative to the config file.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.twins.is_empty() {
            return Err(ConfigError::Invalid("at least one twin is needed".into()));
        }
        for t in &self.twins {
            t.identity()?;
        }
        let mut ids = std::collections::BTreeSet::new();
        for n in &self.nodes {
            if !ids.insert(n.id) {
                return Err(ConfigError::Invalid(format!("node {} twice", n.id)));
            }
        }
        let p = &self.private_network.loopback_prefix;
        let ok = p.split('.').count() == 2
            && p.starts_with("127.")
            && p.split('.').all(|o| o.parse::<u8>().is_ok());
        if !ok {
            return Err(ConfigError::Invalid(format!(
                "private_network.loopback_prefix {p:?} must be two octets in 127.0.0.0/8"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("gridshim.sample.yaml");
        let cfg = Config::load(&path).unwrap();
        assert!(
            cfg.twins.len() >= 2,
            "two twins so names owned by another twin can be produced"
        );
        assert!(cfg.nodes.iter().any(|n| {
            n.domain
                .as_deref()
                .is_some_and(|d| d.ends_with(".localhost"))
        }));
    }

    #[test]
    fn twin_keys_come_from_the_phrase_and_debug_hides_it() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("gridshim.sample.yaml");
        let cfg = Config::load(&path).unwrap();
        let first = &cfg.twins[0];
        let phrase = first
            .mnemonic
            .clone()
            .expect("the sample's twins have a mnemonic");
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains(phrase.split(' ').next().unwrap()), "{dbg}");
        assert!(!dbg.contains(&first.secret), "{dbg}");
        let sr = first.identity().unwrap().unwrap();
        let ed = TwinConfig {
            key_type: Some("ed25519".into()),
            ..first.clone()
        };
        let ed = ed.identity().unwrap().unwrap();
        assert_eq!(ed.key_type(), tfgrid::identity::KeyType::Ed25519);
        assert_ne!(sr.account(), ed.account());
        let bad = TwinConfig {
            mnemonic: Some(
                "bottom drive obey lake curtain smoke basket hold race lonely fit fit".into(),
            ),
            key_type: None,
            ..first.clone()
        };
        let e = bad.identity().unwrap_err().to_string();
        assert!(!e.contains("bottom"), "{e}");
        let bad = TwinConfig {
            key_type: Some("rsa".into()),
            ..first.clone()
        };
        assert!(bad.identity().is_err());
    }

    #[test]
    fn vm_ips_skip_network_and_admin_addresses() {
        let p = PrivateNetworkConfig::default();
        assert_eq!(p.admin_ip(), "127.77.0.1");
        assert_eq!(p.vm_ip(0), "127.77.0.2");
        assert_eq!(p.vm_ip(249), "127.77.0.251");
        assert_eq!(p.vm_ip(250), "127.77.1.2");
    }
}
