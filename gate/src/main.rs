//! The standalone gate for a real machine: listens on the machine's addresses (public and
//! private) and forwards allowed requests to the app stack on a local port.
//!
//! Settings come from a JSON file (`--config`, written by the VM agent, so they survive a
//! restart), overridden by flags or `GATE_*` environment variables. The session key is kept in
//! a file too, created on first start, so sessions survive a restart as well.

use anyhow::{Context as _, bail};
use clap::Parser;
use gate::{Gate, GateConfig, SessionKey};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

#[derive(Parser, Debug)]
#[command(version, about = "OIDC sign-in gate in front of a tester's apps")]
struct Args {
    /// JSON settings file (the same names as the flags, in snake_case).
    #[arg(long, env = "GATE_CONFIG")]
    config: Option<PathBuf>,
    /// The provider's issuer URL.
    #[arg(long, env = "GATE_ISSUER")]
    issuer: Option<String>,
    /// The OAuth2 client id.
    #[arg(long, env = "GATE_CLIENT_ID")]
    client_id: Option<String>,
    /// A file holding the client secret (preferred over the environment variable).
    #[arg(long, env = "GATE_CLIENT_SECRET_FILE")]
    client_secret_file: Option<PathBuf>,
    /// The client secret (environment only; never pass secrets as flags).
    #[arg(skip = std::env::var("GATE_CLIENT_SECRET").ok())]
    client_secret: Option<String>,
    /// Allowed usernames or emails, comma-separated.
    #[arg(long, env = "GATE_ALLOWED_ACCOUNTS", value_delimiter = ',')]
    allowed_accounts: Vec<String>,
    /// Administrators (always allowed), comma-separated.
    #[arg(long, env = "GATE_ADMINS", value_delimiter = ',')]
    admins: Vec<String>,
    /// The external base URL, e.g. https://alice-x1.gw.example
    #[arg(long, env = "GATE_PUBLIC_URL")]
    public_url: Option<Url>,
    /// Where the apps listen, e.g. http://127.0.0.1:3000
    #[arg(long, env = "GATE_UPSTREAM")]
    upstream: Option<Url>,
    /// Addresses to listen on (every one gated alike), comma-separated.
    #[arg(long, env = "GATE_LISTEN", value_delimiter = ',')]
    listen: Vec<SocketAddr>,
    /// File holding the session key; created with a random key when missing.
    #[arg(long, env = "GATE_SESSION_KEY_FILE")]
    session_key_file: Option<PathBuf>,
    /// Session lifetime in seconds.
    #[arg(long, env = "GATE_SESSION_MAX_AGE")]
    session_max_age: Option<u64>,
    /// Whom refused accounts should ask.
    #[arg(long, env = "GATE_CONTACT")]
    contact: Option<String>,
    /// Peers whose X-Forwarded-* headers are trusted, comma-separated.
    #[arg(long, env = "GATE_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<IpAddr>,
}

/// The settings file. Every field is optional; flags and environment take precedence.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    #[serde(default)]
    allowed_accounts: Vec<String>,
    #[serde(default)]
    admins: Vec<String>,
    public_url: Option<Url>,
    upstream: Option<Url>,
    #[serde(default)]
    listen: Vec<SocketAddr>,
    session_key_file: Option<PathBuf>,
    session_max_age: Option<u64>,
    contact: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<IpAddr>,
}

fn or_file<T>(flag: Option<T>, file: Option<T>, what: &str) -> anyhow::Result<T> {
    flag.or(file)
        .with_context(|| format!("{what} is not set (flag, GATE_* variable or config file)"))
}

fn non_empty<T>(flag: Vec<T>, file: Vec<T>) -> Vec<T> {
    if flag.is_empty() { file } else { flag }
}

fn read_secret(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the client secret from {}", path.display()))?;
    Ok(text.trim().to_string())
}

fn session_key(path: Option<&Path>) -> anyhow::Result<SessionKey> {
    let Some(path) = path else {
        tracing::warn!("no session key file: sessions end when the gate restarts");
        return Ok(SessionKey::random());
    };
    match std::fs::read_to_string(path) {
        Ok(text) => SessionKey::from_text(&text)
            .with_context(|| format!("the session key in {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SessionKey::random();
            write_private(path, &key.to_hex())
                .with_context(|| format!("writing a new session key to {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading the session key {}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(text.as_bytes())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let file: FileConfig = match &args.config {
        Some(path) => serde_json::from_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?,
        None => FileConfig::default(),
    };
    let secret_file = args.client_secret_file.or(file.client_secret_file);
    let client_secret = match (secret_file, args.client_secret, file.client_secret) {
        (Some(path), _, _) => read_secret(&path)?,
        (None, Some(secret), _) | (None, None, Some(secret)) => secret,
        (None, None, None) => bail!(
            "the client secret is not set (GATE_CLIENT_SECRET_FILE, GATE_CLIENT_SECRET or config file)"
        ),
    };
    let mut config = GateConfig::new(
        or_file(args.issuer, file.issuer, "the issuer")?,
        or_file(args.client_id, file.client_id, "the client id")?,
        client_secret,
        or_file(args.public_url, file.public_url, "the public URL")?,
    );
    config.allowed_accounts = non_empty(args.allowed_accounts, file.allowed_accounts);
    config.admins = non_empty(args.admins, file.admins);
    config.trusted_proxies = non_empty(args.trusted_proxies, file.trusted_proxies);
    config.session_key = session_key(args.session_key_file.or(file.session_key_file).as_deref())?;
    if let Some(secs) = args.session_max_age.or(file.session_max_age) {
        config.session_max_age = Duration::from_secs(secs);
    }
    if let Some(contact) = args.contact.or(file.contact) {
        config.contact = contact;
    }
    let upstream = or_file(args.upstream, file.upstream, "the upstream URL")?;
    let listen = non_empty(args.listen, file.listen);
    if listen.is_empty() {
        bail!("no listen address (--listen or GATE_LISTEN)");
    }
    tracing::info!(?config, upstream = %upstream, ?listen, "starting the gate");
    let router = Gate::new(config)?.proxy(upstream);
    let mut listeners = Vec::new();
    for addr in listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        tracing::info!(addr = %listener.local_addr()?, "listening");
        listeners.push(listener);
    }
    tokio::select! {
        result = gate::serve(router, listeners) => result?,
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    Ok(())
}
