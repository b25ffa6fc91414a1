//! The parts under test, started for real: gridshim (instant profile), the Forge (a real Gitea,
//! shared by the checkout's stacks) and the controller binary, each a separate process, wired
//! to one test namespace.
//!
//! Every stack gets its own loopback range for the simulated private network and its own
//! ports, and its controller watches only its own namespace, so tests run in parallel.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::Context as _;
use gridshim::admin::Admin;

use serde::Deserialize;

use crate::{Process, cluster, forge::Forge, repo_root, target_bin};

/// A node of a test grid.
#[derive(Clone, Debug)]
pub struct TestNode {
    /// Node id.
    pub id: u32,
    /// Total SSD in GiB.
    pub sru_gib: u64,
    /// Total memory in GiB.
    pub mru_gib: u64,
    /// Gateway domain (`None`: a capacity node; it takes testers only when their HostPool names
    /// gateway nodes).
    pub domain: Option<String>,
    /// Farm id (1 unless a test needs another).
    pub farm_id: u32,
}

impl TestNode {
    /// A node with a gateway domain.
    pub fn new(id: u32, sru_gib: u64, mru_gib: u64) -> Self {
        Self {
            id,
            sru_gib,
            mru_gib,
            domain: Some(format!("n{id}.grid.localhost")),
            farm_id: 1,
        }
    }
}

/// Picks a free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

static NEXT_PREFIX: AtomicU32 = AtomicU32::new(0);

/// A running gridshim.
pub struct Gridshim {
    /// The process.
    pub process: Process,
    /// API base URL.
    pub url: String,
    /// Port of the public gateway.
    pub gateway_port: u16,
    /// Loopback prefix of the private network, e.g. `127.101`.
    pub prefix: String,
    /// The admin client (faults, inspection).
    pub admin: Admin,
    /// Working directory (config, database).
    pub dir: PathBuf,
}

/// The controller's twin in every test grid.
pub const TWIN: u32 = 7;
/// Its secret.
pub const TWIN_SECRET: &str = "controller-secret";
/// Its mnemonic: the controller's node calls go over RMB, signed with its keys (Substrate's
/// public development phrase: it holds nothing anywhere else).
pub const TWIN_MNEMONIC: &str =
    "bottom drive obey lake curtain smoke basket hold race lonely fit walk";
/// The other twin (owner of names that are not ours).
pub const OTHER_TWIN: u32 = 99;
/// Its mnemonic (rmb-rs's test phrase).
const OTHER_MNEMONIC: &str =
    "volume behind cable present pull exchange wish loyal avocado snap film increase";

impl Gridshim {
    /// Starts gridshim with `nodes` on the instant profile; `extra` is appended to the config.
    pub fn start(nodes: &[TestNode], extra: &str) -> anyhow::Result<Self> {
        Self::start_bound(nodes, extra, "127.0.0.1")
    }

    /// [`Gridshim::start`] with its API and gateway listening on `bind` (e.g. `0.0.0.0`, for a
    /// controller in a Pod of the local node).
    pub fn start_bound(nodes: &[TestNode], extra: &str, bind: &str) -> anyhow::Result<Self> {
        // A port found free can be taken (by any process's outgoing connection) before gridshim
        // binds it: then try again with other ports.
        let mut attempt = 0;
        loop {
            match Self::try_start(nodes, extra, bind) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn try_start(nodes: &[TestNode], extra: &str, bind: &str) -> anyhow::Result<Self> {
        let n = NEXT_PREFIX.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("127.{}", 100 + (std::process::id() + n * 7) % 150);
        let dir = std::env::temp_dir().join(format!("e2e-gridshim-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let gateway_port = free_port();
        let api_port = free_port();
        let mut yaml = format!(
            "listen: {bind}:{api_port}\ndb: gridshim.db\nprofile: instant\ntime_scale: 1\n\
             twins:\n  - {{id: {TWIN}, secret: {TWIN_SECRET}, mnemonic: \"{TWIN_MNEMONIC}\"}}\n  - {{id: {OTHER_TWIN}, secret: other-secret, mnemonic: \"{OTHER_MNEMONIC}\"}}\n\
             gateway:\n  listen: {bind}:{gateway_port}\n\
             private_network:\n  loopback_prefix: \"{prefix}\"\n  agent_port: 7070\n  web_port: 8080\n\
             engines:\n  embedder_port: 7801\n  voice_port: 7802\n\
             catalog:\n  file: {catalog}\n\
             nodes:\n",
            catalog = repo_root().join("gridshim/gridshim.catalog.yaml").display(),
        );
        for node in nodes {
            yaml.push_str(&format!(
                "  - {{id: {}, farm_id: {}, cru: 64, mru_gib: {}, sru_gib: {}{}}}\n",
                node.id,
                node.farm_id,
                node.mru_gib,
                node.sru_gib,
                node.domain
                    .as_ref()
                    .map(|d| format!(", domain: {d}"))
                    .unwrap_or_default()
            ));
        }
        yaml.push_str(extra);
        let config = dir.join("gridshim.yaml");
        std::fs::write(&config, yaml)?;
        let mut cmd = Command::new(target_bin("gridshim"));
        cmd.args(["--config", config.to_str().unwrap(), "--reset"]);
        let process = Process::spawn(cmd)?;
        let line = process.wait_for_line("gridshim listening on ", Duration::from_secs(30))?;
        let url = line
            .split("gridshim listening on ")
            .nth(1)
            .unwrap()
            .trim()
            .to_string();
        Ok(Self {
            process,
            admin: Admin::new(url.clone()),
            url,
            gateway_port,
            prefix,
            dir,
        })
    }

    /// A node as the grid proxy lists it now.
    pub async fn admin_node(&self, id: u32) -> gridapi::proxy::Node {
        self.faces().proxy.node(id).await.expect("get node").into()
    }

    /// Every face of this gridshim as the controller's twin, reaching VM agents through the
    /// gateway (gridshim's HTTP proxy into the private network), as the controller does.
    ///
    /// Agent requests are signed with a key of its own, which no VM obeys: use
    /// [`Gridshim::faces_as`] with the controller's key to talk to agents.
    pub fn faces(&self) -> gridapi::Grid {
        self.faces_as(gridapi::agent::signing::ControllerKey::generate())
    }

    /// [`Gridshim::faces`], agent requests signed with `agent_key`.
    pub fn faces_as(&self, agent_key: gridapi::agent::signing::ControllerKey) -> gridapi::Grid {
        gridapi::http::connect(&gridapi::http::Endpoints {
            proxy: self.url.clone(),
            bus: self.url.clone(),
            catalog: format!("{}/catalog", self.url),
            twin_id: TWIN,
            secret: TWIN_SECRET.to_string().into(),
            agent_port: 7070,
            private_proxy: Some(self.private_proxy()),
            agent_key,
        })
        .expect("gridshim's endpoints are URLs")
    }

    /// A file on a VM's disk (`path` absolute in the VM), as its agent left it; `None` when
    /// missing. gridshim keeps each VM's disk under `gridshim.vms/<contract>-<workload>/`.
    pub fn vm_file(&self, vm: &gridshim::wire::VmView, path: &str) -> Option<String> {
        let file = self
            .dir
            .join("gridshim.vms")
            .join(format!("{}-{}", vm.contract_id, vm.name))
            .join(path.trim_start_matches('/'));
        std::fs::read_to_string(file).ok()
    }

    /// gridshim's HTTP proxy into the private network (its gateway listener).
    pub fn private_proxy(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }

    /// URL of an engine's call endpoint on the admin machine.
    pub fn engine_url(&self, engine: &str) -> String {
        let port = if engine == "voice" { 7802 } else { 7801 };
        format!("http://{}.0.1:{port}", self.prefix)
    }
}

/// The administrator allowed through every gate (an account of the test Forge).
pub const ADMIN: &str = "ops";

/// The Secret the controller keeps its agent-signing key in (its default name).
pub const AGENT_KEY_SECRET: &str = "sandbox-controller-agent-signing-key";

/// A running controller, watching one namespace.
pub struct Controller {
    /// The process.
    pub process: Process,
    /// Base URL of `/metrics`, `/healthz`, `/readyz`.
    pub metrics_url: String,
    env: Vec<(String, String)>,
}

impl Controller {
    /// Starts the controller binary against `grid` and `forge`, watching `namespace`, with
    /// `extra` environment (e.g. `SMTP_URL`).
    pub fn start(
        namespace: &str,
        grid: &Gridshim,
        forge: &Forge,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let c = cluster();
        let port = free_port();
        let mut env: Vec<(String, String)> = vec![
            ("KUBECONFIG".into(), c.kubeconfig.display().to_string()),
            ("GRID_URL".into(), grid.url.clone()),
            ("PRIVATE_NETWORK_PROXY".into(), grid.private_proxy()),
            ("GRID_TWIN_ID".into(), TWIN.to_string()),
            ("GRID_TWIN_SECRET".into(), TWIN_SECRET.into()),
            ("GRID_MNEMONIC".into(), TWIN_MNEMONIC.into()),
            // The controller's own namespace is the test's: its signing-key Secret goes there.
            ("POD_NAMESPACE".into(), namespace.into()),
            ("ADMINS".into(), ADMIN.into()),
            ("FORGE_URL".into(), forge.url.clone()),
            ("FORGE_TOKEN".into(), forge.token().into()),
            (
                "SUPPORT_SSH_KEYS".into(),
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsupport support@team".into(),
            ),
            ("WATCH_NAMESPACE".into(), namespace.into()),
            ("METRICS_ADDR".into(), format!("127.0.0.1:{port}")),
            (
                "PUBLIC_URL_FORMAT".into(),
                format!("http://{{fqdn}}:{}/", grid.gateway_port),
            ),
            ("PROXY_LAG".into(), "0s".into()),
            ("RESYNC".into(), "20s".into()),
            ("POD_NAME".into(), format!("e2e-{namespace}")),
            ("RUST_LOG".into(), "info,kube=warn".into()),
        ];
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        let process = Self::spawn(&env)?;
        Ok(Self {
            process,
            metrics_url: format!("http://127.0.0.1:{port}"),
            env,
        })
    }

    fn spawn(env: &[(String, String)]) -> anyhow::Result<Process> {
        let mut cmd = Command::new(target_bin("controller"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let process = Process::spawn(cmd).context("start the controller")?;
        process.wait_for_line("scheduler ledger rebuilt", Duration::from_secs(30))?;
        Ok(process)
    }

    /// What the controller printed so far (its log lines).
    pub fn output(&self) -> String {
        self.process.output()
    }

    /// Kills the controller with SIGKILL (no cleanup of any kind) and starts it again; returns
    /// the output of the killed process.
    pub fn kill_and_restart(&mut self) -> anyhow::Result<String> {
        self.process.kill();
        let out = self.process.output();
        self.process = Self::spawn(&self.env)?;
        Ok(out)
    }

    /// The value of one metric series of this controller process, e.g.
    /// `sandbox_step_duration_seconds_count{step="email"}` (0 when it has no sample yet).
    pub async fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until `series` reaches `at_least` (metrics have no watch: this polls /metrics).
    pub async fn metric_reaches(
        &self,
        series: &str,
        at_least: f64,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let v = self.metric(series).await;
            if v >= at_least {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("{series} is {v} after {timeout:?}, not {at_least}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The metrics text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.metrics_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A whole test stack: a namespace, gridshim, the Forge (shared by the checkout's stacks) and a
/// controller watching the namespace, plus a Tester API for it.
pub struct Stack {
    /// The namespace.
    pub ns: crate::TestNamespace,
    /// gridshim.
    pub grid: Gridshim,
    /// The Forge: the identity provider.
    pub forge: &'static Forge,
    /// The controller (started by [`Stack::start`] unless asked not to).
    pub controller: Option<Controller>,
    /// Testers of the namespace.
    pub api: kube::Api<controller::resources::Tester>,
}

impl Stack {
    /// Starts everything; `grid_extra` is appended to gridshim's config, `env` goes to the
    /// controller.
    pub async fn start(
        prefix: &str,
        nodes: &[TestNode],
        grid_extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut s = Self::without_controller(prefix, nodes, grid_extra).await;
        s.start_controller(env);
        s
    }

    /// Starts everything but the controller.
    pub async fn without_controller(prefix: &str, nodes: &[TestNode], grid_extra: &str) -> Self {
        let ns = crate::TestNamespace::new(prefix);
        let grid = Gridshim::start(nodes, grid_extra).expect("start gridshim");
        let forge = Forge::shared();
        let api = kube::Api::namespaced(cluster().client().await, &ns.name);
        Self {
            ns,
            grid,
            forge,
            controller: None,
            api,
        }
    }

    /// The key the controller signs agent requests with, from the Secret it made in the
    /// namespace (its `POD_NAMESPACE` here).
    pub async fn agent_key(&self) -> gridapi::agent::signing::ControllerKey {
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(cluster().client().await, &self.ns.name);
        let secret = secrets
            .get(AGENT_KEY_SECRET)
            .await
            .expect("the signing-key Secret");
        let value = secret.data.expect("data")["signing-key"].0.clone();
        gridapi::agent::signing::ControllerKey::from_base64(&String::from_utf8_lossy(&value))
            .expect("a signing key")
    }

    /// The grid's faces as the controller: agent requests signed with its key.
    pub async fn controller_faces(&self) -> gridapi::Grid {
        self.grid.faces_as(self.agent_key().await)
    }

    /// How to reach the agent of a VM listed by gridshim's inspection.
    pub fn target(vm: &gridshim::wire::VmView) -> gridapi::agent::AgentTarget {
        gridapi::agent::AgentTarget {
            mycelium_ip: vm.mycelium_ip.clone(),
            machine_id: vm.machine_id.clone().expect("the VM has a machine id"),
        }
    }

    /// What the agent of a VM holds (no secret values), asked as the controller.
    pub async fn agent_view(&self, vm: &gridshim::wire::VmView) -> gridapi::agent::AgentConfigView {
        self.controller_faces()
            .await
            .agents
            .config(&Self::target(vm))
            .await
            .expect("the agent's config")
    }

    /// Starts the controller.
    pub fn start_controller(&mut self, env: &[(&str, &str)]) {
        self.controller = Some(
            Controller::start(&self.ns.name, &self.grid, self.forge, env)
                .expect("start the controller"),
        );
    }

    /// `kubectl apply` of `doc` into the namespace; panics with kubectl's message on failure.
    /// The account of a Tester with `accountType: Existing` is made at the Forge first, as an
    /// operator's Forge would already have it (see [`Forge::ensure_account`]).
    pub fn apply(&self, doc: &str) {
        let mut objects = Vec::new();
        for d in serde_yaml::Deserializer::from_str(doc) {
            let Ok(v) = serde_yaml::Value::deserialize(d) else {
                continue;
            };
            match v["items"].as_sequence() {
                Some(items) if v["kind"].as_str() == Some("List") => objects.extend(items.clone()),
                _ => objects.push(v),
            }
        }
        for v in objects {
            if v["kind"].as_str() == Some("Tester")
                && v["spec"]["accountType"].as_str() == Some("Existing")
                && let Some(name) = v["spec"]["accountName"].as_str()
            {
                // On a thread of its own: callable from any test, async or not.
                let forge = self.forge;
                std::thread::scope(|t| {
                    t.spawn(|| {
                        tokio::runtime::Runtime::new()
                            .expect("a runtime")
                            .block_on(forge.ensure_account(name))
                    })
                    .join()
                    .expect("the account thread")
                })
                .expect("make the account at the Forge");
            }
        }
        let out = self.ns.apply(doc);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The controller.
    pub fn controller(&mut self) -> &mut Controller {
        self.controller.as_mut().expect("controller started")
    }
}
