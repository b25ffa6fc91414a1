//! The controller's configuration: command-line flags, each also settable from the environment.
//!
//! Secrets (the grid twin's secret, the Forge's admin token, the SMTP password) come only from
//! the environment, which the Helm chart fills from existing Secrets;
//! their values are never printed (`hide_env_values`).

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use secrecy::SecretString;

/// Parses a secret flag into a type whose `Debug` prints no value.
fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(s.into())
}

/// Which grid the controller talks to.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GridKind {
    /// The simulator.
    Gridshim,
    /// The real ThreeFold grid.
    Tfgrid,
}

/// How node calls travel.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeBusKind {
    /// RMB, through a relay.
    Rmb,
    /// gridshim's HTTP transport.
    Http,
}

fn network(s: &str) -> Result<tfgrid::network::Network, String> {
    s.parse()
}

fn key_type(s: &str) -> Result<tfgrid::identity::KeyType, String> {
    s.parse()
        .map_err(|e: tfgrid::identity::IdentityError| e.to_string())
}

/// Onboards testers onto a shared sandbox on the grid.
#[derive(Parser, Clone, Debug)]
#[command(name = "controller", version)]
pub struct Config {
    /// Which grid: `gridshim` (the simulator at `GRID_URL`: its chain over its HTTP transport)
    /// or `tfgrid` (the real ThreeFold grid of `GRID_NETWORK`: proxy over HTTPS, node calls
    /// over RMB, chain over substrate).
    #[arg(long, env = "GRID", value_enum, default_value_t = GridKind::Gridshim)]
    pub grid: GridKind,

    /// The ThreeFold network (with `GRID=tfgrid`): main, test, qa or dev. Gives the proxy,
    /// relay and chain endpoints; each can be overridden.
    #[arg(long, env = "GRID_NETWORK", default_value = "main", value_parser = network)]
    pub grid_network: tfgrid::network::Network,

    /// How node calls travel: `rmb` (the real message bus, through a relay; needs
    /// `GRID_MNEMONIC`) or `http` (gridshim's HTTP stand-in for it).
    #[arg(long, env = "GRID_NODE_BUS", value_enum, default_value_t = NodeBusKind::Rmb)]
    pub grid_node_bus: NodeBusKind,

    /// The operator's mnemonic (BIP-39), from a Secret: signs RMB envelopes and, on the real
    /// grid, chain calls. Never printed.
    #[arg(long, env = "GRID_MNEMONIC", hide_env_values = true, value_parser = secret)]
    pub grid_mnemonic: Option<SecretString>,

    /// The mnemonic's key type: sr25519 (the grid's default) or ed25519.
    #[arg(long, env = "GRID_KEY_TYPE", default_value = "sr25519", value_parser = key_type)]
    pub grid_key_type: tfgrid::identity::KeyType,

    /// The RMB relay (default: the network's; with gridshim, `GRID_URL`'s `/relay`).
    #[arg(long, env = "GRID_RELAY_URL")]
    pub grid_relay_url: Option<String>,

    /// tfchain's JSON-RPC websocket (default: the network's).
    #[arg(long, env = "GRID_CHAIN_URL")]
    pub grid_chain_url: Option<String>,

    /// How long an RMB call waits for its answer (the real client's 60 s).
    #[arg(long, env = "GRID_CALL_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub grid_call_timeout: Duration,

    /// Base URL of gridshim's chain and node transport, proxy and catalog (with `GRID=gridshim`).
    #[arg(long, env = "GRID_URL")]
    pub grid_url: Option<String>,

    /// The grid proxy's URL (default: `GRID_URL`, which gridshim also serves the proxy on).
    #[arg(long, env = "GRID_PROXY_URL")]
    pub grid_proxy_url: Option<String>,

    /// The release catalog's URL (default: `GRID_URL` + `/catalog`).
    #[arg(long, env = "CATALOG_URL")]
    pub catalog_url: Option<String>,

    /// The port every VM agent listens on, on the VM's private (mycelium) address.
    #[arg(long, env = "AGENT_PORT", default_value_t = 7070)]
    pub agent_port: u16,

    /// An HTTP proxy into the private (mycelium) network, for a controller that is not on it
    /// itself (gridshim's gateway is one). Unset: agents are reached directly.
    #[arg(long, env = "PRIVATE_NETWORK_PROXY")]
    pub private_network_proxy: Option<String>,

    /// The twin the controller acts as on gridshim's chain (with the real grid, the twin is
    /// looked up from the mnemonic's account).
    #[arg(long, env = "GRID_TWIN_ID")]
    pub grid_twin_id: Option<u32>,

    /// The twin's secret on gridshim's HTTP chain transport.
    #[arg(long, env = "GRID_TWIN_SECRET", hide_env_values = true, value_parser = secret)]
    pub grid_twin_secret: Option<SecretString>,

    /// The Secret (in the controller's namespace, `POD_NAMESPACE`) holding the key every
    /// request to a VM agent is signed with; made with a new random key when missing. VMs get
    /// only its public half.
    #[arg(
        long,
        env = "AGENT_SIGNING_KEY_SECRET",
        default_value = "sandbox-controller-agent-signing-key"
    )]
    pub agent_signing_key_secret: String,

    /// The release index the VM agents install from (default: `GRID_URL` +
    /// `/releases/index.json`).
    #[arg(long, env = "RELEASE_INDEX_URL")]
    pub release_index_url: Option<String>,

    /// Administrators: accounts always allowed through every tester's sign-in gate.
    #[arg(long, env = "ADMINS", value_delimiter = ',')]
    pub admins: Vec<String>,

    /// Whom a refused visitor is told to ask (shown on the gate's 403 page).
    #[arg(long, env = "ADMIN_CONTACT", default_value = "your administrator")]
    pub admin_contact: String,

    /// The Forge (Gitea or Forgejo) the testers sign in with: accounts and each tester's own
    /// OAuth2 application are made there, e.g. `https://forge.example.org/`.
    #[arg(long, env = "FORGE_URL")]
    pub forge_url: String,

    /// The Forge administrator's API token (scope `all`: accounts and applications).
    #[arg(long, env = "FORGE_TOKEN", hide_env_values = true, value_parser = secret)]
    pub forge_token: SecretString,

    /// The OIDC issuer the gates send testers to, when it is not `FORGE_URL` itself (a Forge
    /// behind another public address).
    #[arg(long, env = "OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// The team's support SSH public keys, installed on every machine (one per value).
    #[arg(long, env = "SUPPORT_SSH_KEYS", value_delimiter = '\n')]
    pub support_ssh_keys: Vec<String>,

    /// Name of the Secret (in each Tester's namespace) holding the default AI-provider keys,
    /// one data key per provider.
    #[arg(long, env = "AI_KEYS_SECRET", default_value = "ai-provider-keys")]
    pub ai_keys_secret: String,

    /// SMTP server for welcome emails, e.g. `smtp://mail.example.com:587`. Without it, welcome
    /// emails are logged as not sent (reason `NoProvider`).
    #[arg(long, env = "SMTP_URL")]
    pub smtp_url: Option<String>,

    /// SMTP user name.
    #[arg(long, env = "SMTP_USERNAME")]
    pub smtp_username: Option<String>,

    /// SMTP password.
    #[arg(long, env = "SMTP_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub smtp_password: Option<SecretString>,

    /// Sender of welcome emails.
    #[arg(long, env = "SMTP_FROM", default_value = "Sandbox <sandbox@localhost>")]
    pub smtp_from: String,

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,

    /// How many Testers are reconciled at once.
    #[arg(long, env = "CONCURRENCY", default_value_t = 32)]
    pub concurrency: u16,

    /// Client-side rate limit towards the API server, requests per second.
    #[arg(long, env = "KUBE_QPS", default_value_t = 50)]
    pub kube_qps: u32,

    /// Client-side rate limit towards the grid, requests per second.
    #[arg(long, env = "GRID_QPS", default_value_t = 100)]
    pub grid_qps: u32,

    /// How long to wait for a new VM to answer on the private network before reporting it
    /// unreachable (the controller keeps retrying afterwards, with backoff).
    #[arg(long, env = "REACHABILITY_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub reachability_timeout: Duration,

    /// How long the grid proxy takes to count a new deployment in a node's used resources;
    /// until then the scheduler subtracts the placement itself.
    #[arg(long, env = "PROXY_LAG", default_value = "60s", value_parser = humantime::parse_duration)]
    pub proxy_lag: Duration,

    /// Where `*.localhost` names resolve (gridshim's gateway domains end in `.localhost`):
    /// 127.0.0.1, or the address of gridshim's machine for a controller that runs in a Pod.
    #[arg(long, env = "LOCALHOST_ADDRESS", default_value = "127.0.0.1")]
    pub localhost_address: std::net::IpAddr,

    /// Format of a tester's public URL; `{fqdn}` is the gateway's `NAME.<domain>`.
    #[arg(long, env = "PUBLIC_URL_FORMAT", default_value = "https://{fqdn}/")]
    pub public_url_format: String,

    /// How often a Ready tester is checked again (gate still secured, apps healthy). Checks are
    /// reads only; nothing is written unless something changed.
    #[arg(long, env = "RESYNC", default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync: Duration,

    /// How often a Ready tester is verified in full (machine, name, gate settings, tokens, keys,
    /// install; ±20 % jitter). The passes in between only prove the gate from outside and check
    /// the apps when due; any change of the Tester or of what it uses starts a full pass at once.
    #[arg(long, env = "VERIFY_INTERVAL", default_value = "30m", value_parser = humantime::parse_duration)]
    pub verify_interval: Duration,

    /// How often each Ready tester's apps are asked for their health (`AppsHealthy`).
    #[arg(long, env = "APP_HEALTH_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub app_health_interval: Duration,

    /// For simulations only: divides the controller's own waits (requeues, backoff floors) by
    /// this factor, to match a grid simulator run with `--time-scale N`, so that a one-second
    /// real-time floor does not count as N simulated seconds. Keep 1 against a real grid.
    #[arg(long, env = "TIME_SCALE", default_value_t = 1.0, value_parser = time_scale)]
    pub time_scale: f64,

    /// Run leader election so that only one replica reconciles.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,

    /// The controller's namespace: its leader-election Lease and its agent-signing key Secret.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// Name of the leader-election Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "sandbox-controller")]
    pub lease_name: String,

    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "sandbox-controller")]
    pub identity: String,
}

/// Parses `TIME_SCALE`: a finite factor of at least 1.
fn time_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 1.0 => Ok(f),
        _ => Err(format!(
            "{s:?} is not a time scale: give a number of at least 1"
        )),
    }
}

impl Config {
    /// A wait of the controller's own, divided by `TIME_SCALE` (unchanged at the default 1).
    pub fn scaled(&self, wait: Duration) -> Duration {
        wait.div_f64(self.time_scale)
    }

    /// The release index's URL.
    pub fn release_index_url(&self) -> String {
        self.release_index_url.clone().unwrap_or_else(|| {
            format!(
                "{}/releases/index.json",
                self.grid_url
                    .as_deref()
                    .unwrap_or_default()
                    .trim_end_matches('/')
            )
        })
    }

    /// The OIDC issuer of every gate: `OIDC_ISSUER`, else the Forge's URL (with the trailing
    /// slash Gitea's issuer has).
    pub fn issuer(&self) -> String {
        match &self.oidc_issuer {
            Some(issuer) => issuer.clone(),
            None => format!("{}/", self.forge_url.trim_end_matches('/')),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_secret_shows_in_debug_output() {
        let config = Config::try_parse_from([
            "controller",
            "--grid-url=http://grid",
            "--grid-twin-id=7",
            "--grid-twin-secret=twin-secret-31337",
            "--forge-url=http://forge",
            "--forge-token=forge-token-31337",
            "--smtp-password=smtp-password-31337",
            "--grid-mnemonic=bottom drive obey lake curtain smoke basket hold race lonely fit walk",
        ])
        .unwrap();
        let printed = format!("{config:?} {config:#?}");
        for secret in [
            "bottom drive",
            "twin-secret-31337",
            "forge-token-31337",
            "smtp-password-31337",
        ] {
            assert!(!printed.contains(secret), "{secret} printed by Debug");
        }
        assert!(printed.contains("http://grid"), "the rest is printed");
    }

    #[test]
    fn a_time_scale_divides_the_controllers_own_waits() {
        let parse = |scale: &str| {
            Config::try_parse_from([
                "controller",
                "--grid-url=http://grid",
                "--grid-twin-id=7",
                "--grid-twin-secret=s",
                "--forge-url=http://forge",
                "--forge-token=t",
                &format!("--time-scale={scale}"),
            ])
        };
        let config = parse("60").unwrap();
        assert_eq!(
            config.scaled(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
        assert_eq!(
            parse("1").unwrap().scaled(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        for bad in ["0", "0.5", "-3", "NaN", "inf", "fast"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("is not a time scale"), "{bad}: {e}");
        }
    }
}
