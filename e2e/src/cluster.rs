//! The control plane and per-test namespaces.

use std::{
    path::PathBuf,
    process::{Command, Output},
    sync::OnceLock,
};

use anyhow::{Context, bail};

use crate::procs::repo_root;

/// The running control plane every test shares.
pub struct Cluster {
    /// Path of the kubeconfig for the admin user.
    pub kubeconfig: PathBuf,
    /// Where `kubectl` and the other built tools live.
    pub tools_bin: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// Starts (or reuses) the control plane and installs the CRDs, once per test process.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| start().expect("start the local control plane (hack/cluster.sh up)"))
}

fn start() -> anyhow::Result<Cluster> {
    let root = repo_root();
    let out = Command::new("bash")
        .arg(root.join("hack/cluster.sh"))
        .arg("up")
        .output()
        .context("run hack/cluster.sh up")?;
    if !out.status.success() {
        bail!(
            "hack/cluster.sh up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let kubeconfig = stdout
        .lines()
        .find_map(|l| l.strip_prefix("export KUBECONFIG="))
        .context("hack/cluster.sh printed no KUBECONFIG line")?;
    let tools = Command::new("bash")
        .args(["-c", "source hack/lib.sh && echo $TOOLS_BIN"])
        .current_dir(&root)
        .output()?;
    let cluster = Cluster {
        kubeconfig: PathBuf::from(kubeconfig.trim()),
        tools_bin: PathBuf::from(String::from_utf8_lossy(&tools.stdout).trim()),
    };
    // SAFETY of intent: set once, before any client is built, so every kube::Client and every
    // kubectl child of this test process talks to the same cluster.
    unsafe_env_set("KUBECONFIG", &cluster.kubeconfig);
    let crds = root.join("crds");
    let apply = cluster.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        crds.to_str().unwrap(),
    ]);
    if !apply.status.success() {
        bail!(
            "installing the CRDs failed: {}",
            String::from_utf8_lossy(&apply.stderr)
        );
    }
    let wait = cluster.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/testers.sandbox.hero.dev",
        "crd/hostpools.sandbox.hero.dev",
        "crd/sharedengines.sandbox.hero.dev",
        "crd/warmmachines.sandbox.hero.dev",
    ]);
    if !wait.status.success() {
        bail!(
            "CRDs not Established: {}",
            String::from_utf8_lossy(&wait.stderr)
        );
    }
    Ok(cluster)
}

fn unsafe_env_set(key: &str, value: &std::path::Path) {
    // Edition 2024 marks set_var unsafe because other threads may read the environment at the
    // same time; this runs inside the OnceLock initializer before any test uses the cluster.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(key, value)
    };
}

impl Cluster {
    /// Runs the real `kubectl` against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Runs `kubectl` with `stdin` piped in (for `apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut cmd = Command::new(self.tools_bin.join("kubectl"));
        cmd.args(args).env("KUBECONFIG", &self.kubeconfig);
        cmd.stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().expect("wait for kubectl")
    }

    /// A kube client for the admin user.
    pub async fn client(&self) -> kube::Client {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig"),
            &Default::default(),
        )
        .await
        .expect("kubeconfig");
        kube::Client::try_from(config).expect("kube client")
    }
}

/// Runs `kubectl` against the shared cluster.
pub fn kubectl(args: &[&str]) -> Output {
    cluster().kubectl(args)
}

/// A namespace of a test's own, deleted (without waiting) when dropped.
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
}

impl TestNamespace {
    /// Creates `PREFIX-<random>`.
    pub fn new(prefix: &str) -> Self {
        let name = format!("{prefix}-{:08x}", rand_u32());
        let out = kubectl(&["create", "namespace", &name]);
        assert!(
            out.status.success(),
            "create namespace: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { name }
    }

    /// Runs `kubectl -n <ns> ARGS`.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        kubectl(&all)
    }

    /// The value of `key` in the Secret `secret` of the namespace, decoded; panics when either
    /// is missing.
    pub fn secret_value(&self, secret: &str, key: &str) -> String {
        let out = self.kubectl(&[
            "get",
            "secret",
            secret,
            "-o",
            &format!("jsonpath={{.data.{key}}}"),
        ]);
        assert!(out.status.success(), "secret {secret}");
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            out.stdout.trim_ascii(),
        )
        .expect("Secret data is base64");
        String::from_utf8(bytes).expect("a text value")
    }

    /// `kubectl -n <ns> apply -f -` with `yaml`; returns the output.
    pub fn apply(&self, yaml: &str) -> Output {
        cluster().kubectl_stdin(&["-n", &self.name, "apply", "-f", "-"], Some(yaml))
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var_os("E2E_KEEP_NAMESPACES").is_none() {
            let _ = kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
        }
    }
}

fn rand_u32() -> u32 {
    rand::random()
}
