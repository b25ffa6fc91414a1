//! The bench's own world: release binaries, a control plane of its own (so restarting its
//! kube-apiserver disturbs nobody), the settings read from the environment, and the versions.

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::{Context as _, bail};
use e2e::repo_root;
use serde_json::{Value, json};

/// What the environment asks of this run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `BENCH_SCALE` (default 1): multiplies every tester count (1,000 → 1,000 × scale).
    pub scale: f64,
    /// `BENCH_ONLY` (e.g. `1,3,6`): the scenarios to run; all by default.
    pub only: Option<Vec<u8>>,
    /// `BENCH_QUIET_SECS` (default 150): length of the quiet window of scenario 4.
    pub quiet: Duration,
    /// Controller environment for every scenario (`CONCURRENCY`, `KUBE_QPS`, `GRID_QPS`),
    /// overridable with `BENCH_CONCURRENCY`, `BENCH_KUBE_QPS`, `BENCH_GRID_QPS`, and anything
    /// in `BENCH_CONTROLLER_ENV` (`K=V,K2=V2`).
    pub controller_env: Vec<(String, String)>,
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

impl Settings {
    /// Reads the settings.
    pub fn from_env() -> anyhow::Result<Self> {
        let scale: f64 = env_or("BENCH_SCALE", "1")
            .parse()
            .context("BENCH_SCALE must be a number")?;
        if !(scale > 0.0 && scale <= 10.0) {
            bail!("BENCH_SCALE must be in (0, 10]");
        }
        let only = std::env::var("BENCH_ONLY").ok().map(|s| {
            s.split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect::<Vec<u8>>()
        });
        let quiet = Duration::from_secs(
            env_or("BENCH_QUIET_SECS", "150")
                .parse()
                .context("BENCH_QUIET_SECS")?,
        );
        let mut controller_env: Vec<(String, String)> = vec![
            ("CONCURRENCY".into(), env_or("BENCH_CONCURRENCY", "64")),
            ("KUBE_QPS".into(), env_or("BENCH_KUBE_QPS", "200")),
            ("GRID_QPS".into(), env_or("BENCH_GRID_QPS", "500")),
            // Warnings only, but the start-up line the harness waits for.
            ("RUST_LOG".into(), "warn,controller::run=info".into()),
        ];
        // Anything else for the controller, e.g. `MALLOC_ARENA_MAX=2,RESYNC=30s`; a piece
        // without `=` continues the value before it (`_RJEM_MALLOC_CONF=narenas:1,tcache:false`).
        let mut more: Vec<(String, String)> = Vec::new();
        for kv in env_or("BENCH_CONTROLLER_ENV", "").split(',') {
            match (kv.split_once('='), more.last_mut()) {
                (Some((k, v)), _) => more.push((k.trim().into(), v.trim().into())),
                (None, Some((_, v))) if !kv.trim().is_empty() => {
                    v.push(',');
                    v.push_str(kv.trim());
                }
                _ => {}
            }
        }
        controller_env.extend(more);
        Ok(Self {
            scale,
            only,
            quiet,
            controller_env,
        })
    }

    /// Whether scenario `n` runs.
    pub fn runs(&self, n: u8) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(&n))
    }

    /// `base` testers at this scale (at least `min`).
    pub fn count(&self, base: usize, min: usize) -> usize {
        ((base as f64 * self.scale).round() as usize).max(min)
    }
}

/// Where the bench's control plane lives.
pub fn cluster_dir() -> PathBuf {
    repo_root().join(".run/bench-cluster")
}

/// Points the process at the release binaries and at a control plane of its own. Must run
/// before any thread starts (it sets environment variables).
///
/// `e2e::target_bin` looks in `$CARGO_TARGET_DIR/debug`; the bench makes a directory whose
/// `debug` is a link to `target/release` and names it as `CARGO_TARGET_DIR`, so the harness
/// starts the release binaries without any change to it.
pub fn prepare_process_env() -> anyhow::Result<()> {
    let target = std::env::var_os("BENCH_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let release = target.join("release");
    for bin in ["controller", "gridshim"] {
        if !release.join(bin).exists() {
            bail!(
                "{} is not built; run `cargo build --release --workspace --bins` (make bench does)",
                release.join(bin).display()
            );
        }
    }
    let shim = target.join("bench-bins");
    std::fs::create_dir_all(&shim)?;
    let link = shim.join("debug");
    if std::fs::read_link(&link).ok() != Some(release.clone()) {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&release, &link)?;
    }
    let port = e2e::stack::free_port();
    let dir = cluster_dir();
    // SAFETY of intent: called first thing in main, before the runtime or any thread exists.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("CARGO_TARGET_DIR", &shim);
        std::env::set_var("CLUSTER_DIR", &dir);
        std::env::set_var("CLUSTER_PORT", port.to_string());
        std::env::set_var("KUBECONFIG", dir.join("kubeconfig"));
        // A finished scenario's namespace stays (its controller is gone, so deleting it would
        // leave kube-controller-manager retrying deletes that pollute the API counts).
        std::env::set_var("E2E_KEEP_NAMESPACES", "1");
    }
    // A clean control plane every run.
    cluster_sh("reset")?;
    Ok(())
}

/// Runs `hack/cluster.sh CMD` against the bench's own control plane (the environment set by
/// [`prepare_process_env`] selects it).
pub fn cluster_sh(cmd: &str) -> anyhow::Result<()> {
    let out = Command::new("bash")
        .arg(repo_root().join("hack/cluster.sh"))
        .arg(cmd)
        .output()
        .with_context(|| format!("hack/cluster.sh {cmd}"))?;
    if !out.status.success() {
        bail!(
            "hack/cluster.sh {cmd} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn run(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(repo_root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn commit_of(path: &str) -> String {
    let hash = run("git", &["log", "-1", "--format=%h", "--", path]);
    let dirty = !run("git", &["status", "--porcelain", "--", path]).is_empty();
    if dirty { format!("{hash}+dirty") } else { hash }
}

/// The machine and the versions of what is measured.
pub fn versions() -> Value {
    let kube = e2e::kubectl(&["version", "-o", "json"]);
    let kube: Value = serde_json::from_slice(&kube.stdout).unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kube_apiserver": kube["serverVersion"]["gitVersion"],
        "rustc": run("rustc", &["--version"]),
        "head": run("git", &["rev-parse", "--short", "HEAD"]),
        "controller_commit": commit_of("controller"),
        "gridshim_commit": commit_of("gridshim"),
    })
}
