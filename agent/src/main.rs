//! `hero-agent`: the agent of a tester's VM, started by zinit (see `agent/image/`).
//!
//! It reads only public values from its environment: the controller's public key and its own
//! machine id ([`gridapi::agent::signing`]). Its API listens on the private network; its web
//! side (the apps behind the gate) on every web listener.

use std::net::SocketAddr;
use std::path::PathBuf;

use agent::{Agent, AgentOptions, machine::HostMachine};
use anyhow::Context as _;
use clap::Parser;
use gridapi::agent::signing::{CONTROLLER_KEY_ENV, ControllerPublicKey, MACHINE_ID_ENV};

/// The agent of a tester's VM.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The controller's public key (base64); only requests it signed are obeyed.
    #[arg(long, env = CONTROLLER_KEY_ENV)]
    controller_key: String,
    /// This machine's id; requests signed for another machine are refused.
    #[arg(long, env = MACHINE_ID_ENV)]
    machine_id: String,
    /// Where the API listens (the private network).
    #[arg(long, env = "HERO_AGENT_LISTEN", default_value = "[::]:7070")]
    api_listen: SocketAddr,
    /// Where the apps are served behind the gate (the gateway's backend, the private network).
    #[arg(
        long,
        env = "HERO_WEB_LISTEN",
        value_delimiter = ',',
        default_value = "[::]:8080"
    )]
    web_listen: Vec<SocketAddr>,
    /// The machine's root directory.
    #[arg(long, env = "HERO_ROOT", default_value = "/")]
    root: PathBuf,
    /// The zinit binary that runs the apps' services.
    #[arg(long, env = "HERO_ZINIT", default_value = "/sbin/zinit")]
    zinit: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let controller_key = ControllerPublicKey::from_base64(&args.controller_key)
        .with_context(|| format!("reading {CONTROLLER_KEY_ENV}"))?;
    anyhow::ensure!(
        !args.machine_id.trim().is_empty(),
        "{MACHINE_ID_ENV} is empty"
    );
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .context("building the download client")?;
    let machine = std::sync::Arc::new(HostMachine::new(args.root, args.zinit));
    let agent = Agent::open(
        machine,
        AgentOptions {
            controller_key,
            machine_id: args.machine_id.clone(),
            http,
        },
    )?;
    let api = tokio::net::TcpListener::bind(args.api_listen)
        .await
        .with_context(|| format!("listening on {}", args.api_listen))?;
    let mut web = Vec::new();
    for addr in &args.web_listen {
        web.push(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?,
        );
    }
    tracing::info!(machine = %args.machine_id, api = %args.api_listen, web = ?args.web_listen, "agent started");
    let api_router = agent.api();
    tokio::select! {
        r = axum::serve(api, api_router) => r.context("serving the API")?,
        r = gate::serve(agent.web(), web) => r.context("serving the web side")?,
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    Ok(())
}
