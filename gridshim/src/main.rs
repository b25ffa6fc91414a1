//! `gridshim`: runs the grid simulator.
//!
//! Prints `gridshim listening on http://ADDR` on stdout once every listener is open (harnesses
//! wait for that line); logs JSON to stderr.

use std::path::PathBuf;

use clap::Parser;
use gridshim::config::Config;
use gridshim::server::{StartOptions, start};
use gridshim::timing::Profile;

/// A faithful, fault-injectable simulator of the grid.
#[derive(Debug, Parser)]
#[command(name = "gridshim", version)]
struct Args {
    /// Configuration file (YAML).
    #[arg(long, env = "GRIDSHIM_CONFIG")]
    config: PathBuf,
    /// Address of the API, e.g. 127.0.0.1:8800 (overrides the config).
    #[arg(long)]
    listen: Option<String>,
    /// SQLite file (overrides the config).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Start from an empty database.
    #[arg(long)]
    reset: bool,
    /// Timing profile (overrides the config).
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// Divide realistic timings by N (e.g. 60 replays realistic 60x faster).
    #[arg(long)]
    time_scale: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let cfg = Config::load(&args.config)?;
    let running = start(
        cfg,
        StartOptions {
            listen: args.listen,
            db: args.db,
            in_memory: false,
            reset: args.reset,
            profile: args.profile,
            time_scale: args.time_scale,
        },
    )
    .await?;
    println!("gridshim listening on {}", running.url());
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
