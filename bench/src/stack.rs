//! One scenario's stack: a namespace, gridshim (instant or realistic), the controller watching
//! that namespace, and a watcher of the Testers that timestamps what it sees.

use std::{
    collections::HashMap,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use controller::resources::{HostPool, Tester, condition_status, find_condition};
use e2e::{
    Process, TestNamespace, fixtures,
    stack::{
        Controller, Gridshim, OTHER_TWIN, TWIN, TWIN_MNEMONIC, TWIN_SECRET, TestNode, free_port,
    },
    target_bin,
};
use futures::{StreamExt, TryStreamExt};
use gridshim::admin::Admin;
use kube::{
    Api,
    api::PostParams,
    runtime::{WatchStreamExt, watcher},
};

/// The conditions of a Tester's way to Ready, in order.
pub const STEPS: [&str; 7] = [
    "Scheduled",
    "MachineReady",
    "GatewayReady",
    "GateSecured",
    "TokensRegistered",
    "Installed",
    "Ready",
];

/// The grid's timing profile.
#[derive(Clone, Copy, Debug)]
pub enum Profile {
    /// Every wait zero.
    Instant,
    /// Real timings divided by the scale.
    Realistic { time_scale: u32 },
}

// 127.250–127.254: outside the 127.100–127.249 range the e2e tests draw from, so a bench and a
// test run may share the machine.
static NEXT_PREFIX: AtomicU32 = AtomicU32::new(0);

/// Starts gridshim with `nodes` on `profile` (the e2e harness only starts `instant`).
pub fn gridshim(nodes: &[TestNode], profile: Profile) -> anyhow::Result<Gridshim> {
    let n = NEXT_PREFIX.fetch_add(1, Ordering::SeqCst);
    let prefix = format!("127.{}", 250 + n % 5);
    let dir = std::env::temp_dir().join(format!("bench-gridshim-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let gateway_port = free_port();
    let api_port = free_port();
    let (profile, scale) = match profile {
        Profile::Instant => ("instant", 1),
        Profile::Realistic { time_scale } => ("realistic", time_scale),
    };
    let mut yaml = format!(
        "listen: 127.0.0.1:{api_port}\ndb: gridshim.db\nprofile: {profile}\ntime_scale: {scale}\n\
         twins:\n  - {{id: {TWIN}, secret: {TWIN_SECRET}, mnemonic: \"{TWIN_MNEMONIC}\"}}\n  - {{id: {OTHER_TWIN}, secret: other-secret}}\n\
         gateway:\n  listen: 127.0.0.1:{gateway_port}\n\
         private_network:\n  loopback_prefix: \"{prefix}\"\n  agent_port: 7070\n  web_port: 8080\n\
         engines:\n  embedder_port: 7801\n  voice_port: 7802\n\
         catalog:\n  file: {catalog}\n\
         nodes:\n",
        catalog = e2e::repo_root()
            .join("gridshim/gridshim.catalog.yaml")
            .display(),
    );
    for node in nodes {
        yaml.push_str(&format!(
            "  - {{id: {}, farm_id: 1, cru: 64, mru_gib: {}, sru_gib: {}, domain: n{}.grid.localhost}}\n",
            node.id, node.mru_gib, node.sru_gib, node.id
        ));
    }
    let config = dir.join("gridshim.yaml");
    std::fs::write(&config, yaml)?;
    let mut cmd = Command::new(target_bin("gridshim"));
    cmd.args(["--config", config.to_str().unwrap(), "--reset"])
        .env("RUST_LOG", "warn");
    let process = Process::spawn(cmd)?;
    let line = process.wait_for_line("gridshim listening on ", Duration::from_secs(60))?;
    let url = line
        .split("gridshim listening on ")
        .nth(1)
        .context("gridshim's listening line")?
        .trim()
        .to_string();
    Ok(Gridshim {
        process,
        admin: Admin::new(url.clone()),
        url,
        gateway_port,
        prefix,
        dir,
    })
}

/// `count` nodes (ids from 1) with `sru_gib` SSD and `mru_gib` memory each.
pub fn nodes(count: u32, sru_gib: u64, mru_gib: u64) -> Vec<TestNode> {
    (1..=count)
        .map(|id| TestNode::new(id, sru_gib, mru_gib))
        .collect()
}

/// A namespace, a grid and a controller. Fields drop in order: the controller stops before
/// its namespace is deleted, so a finished scenario leaves no clean-up running behind it.
pub struct Stack {
    /// The controller.
    pub controller: Controller,
    /// What the bench sees of the Testers.
    pub tracker: Tracker,
    /// Testers of the namespace.
    pub api: Api<Tester>,
    /// HostPools of the namespace.
    pub pools: Api<HostPool>,
    /// The namespace (deleted on drop, after the controller stopped).
    #[expect(dead_code, reason = "held for its Drop")]
    pub ns: TestNamespace,
    /// The grid.
    pub grid: Gridshim,
    /// The Forge the testers' accounts are on.
    pub forge: &'static e2e::forge::Forge,
}

impl Stack {
    /// Starts gridshim on `profile` with `nodes`, a HostPool `pool` over all of them where a
    /// tester needs `disk_gib`/`memory_gib`, and the controller with `env` (later entries win).
    pub async fn start(
        prefix: &str,
        nodes: &[TestNode],
        profile: Profile,
        (disk_gib, memory_gib): (u32, u32),
        forge: &'static e2e::forge::Forge,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let ids: Vec<u32> = nodes.iter().map(|n| n.id).collect();
        let pool = fixtures::host_pool("pool", &ids, disk_gib, memory_gib);
        Self::start_with_pools(prefix, nodes, profile, &[pool], forge, env).await
    }

    /// As [`Stack::start`], with the HostPool documents `pools` (applied before the controller
    /// starts).
    pub async fn start_with_pools(
        prefix: &str,
        nodes: &[TestNode],
        profile: Profile,
        pools: &[String],
        forge: &'static e2e::forge::Forge,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let ns = TestNamespace::new(prefix);
        let grid = gridshim(nodes, profile)?;
        for pool in pools {
            let out = ns.apply(pool);
            anyhow::ensure!(
                out.status.success(),
                "apply HostPool: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let controller = Controller::start(&ns.name, &grid, forge, &env)?;
        let client = e2e::cluster().client().await;
        let api = Api::namespaced(client.clone(), &ns.name);
        let pools = Api::namespaced(client, &ns.name);
        let tracker = Tracker::start(api.clone());
        Ok(Self {
            controller,
            tracker,
            api,
            pools,
            ns,
            grid,
            forge,
        })
    }

    /// The controller's process id.
    pub fn controller_pid(&self) -> u32 {
        self.controller.process.child.id()
    }

    /// Makes the Forge accounts of testers `first..first + count`, `parallel` at a time: the
    /// operator's Forge has them before anyone applies a Tester, so scenarios make them before
    /// their clock starts (Gitea hashing 1,000 passwords would otherwise be timed as ours).
    pub async fn make_accounts(
        &self,
        first: usize,
        count: usize,
        parallel: usize,
    ) -> anyhow::Result<()> {
        futures::stream::iter(first..first + count)
            .map(|i| async move { self.forge.ensure_account(&account_of(i)).await })
            .buffer_unordered(parallel)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Creates testers `t00000`… (`count` of them, from `first`), `parallel` requests at a time;
    /// the tracker records when each create returned.
    pub async fn create_testers(
        &self,
        first: usize,
        count: usize,
        parallel: usize,
    ) -> anyhow::Result<()> {
        futures::stream::iter(first..first + count)
            .map(|i| self.create_one(i))
            .buffer_unordered(parallel)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Creates tester number `i` (its account made beforehand: [`Stack::make_accounts`]).
    pub async fn create_one(&self, i: usize) -> anyhow::Result<()> {
        self.create_on(i, "pool").await
    }

    /// Creates tester number `i` on the HostPool `pool`.
    pub async fn create_on(&self, i: usize, pool: &str) -> anyhow::Result<()> {
        let name = format!("t{i:05}");
        let account = account_of(i);
        let doc = fixtures::tester(&name, &account, pool).build();
        let t: Tester = serde_json::from_str(&doc)?;
        self.api
            .create(&PostParams::default(), &t)
            .await
            .with_context(|| format!("create tester {name}"))?;
        self.tracker.created(&name);
        Ok(())
    }
}

/// Accounts made at once before a scenario's clock starts (Gitea's SQLite takes few writers).
pub const ACCOUNTS_IN_FLIGHT: usize = 8;

/// The Forge account of tester number `i`.
fn account_of(i: usize) -> String {
    format!("bench.user_{i}")
}

/// What the watcher saw of one Tester.
#[derive(Default, Clone)]
pub struct Seen {
    /// When the bench's create call returned.
    pub created: Option<Instant>,
    /// When each condition was first seen `True`.
    pub became_true: HashMap<String, Instant>,
    /// The newest object.
    pub last: Option<Tester>,
}

/// Watches the namespace's Testers (one watch, so it barely adds API load) and timestamps
/// the first time each condition is seen `True`.
pub struct Tracker {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Tracker {
    /// Starts watching.
    pub fn start(api: Api<Tester>) -> Self {
        let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            loop {
                match stream.next().await {
                    Some(Ok(t)) => {
                        let now = Instant::now();
                        let name = t.metadata.name.clone().unwrap_or_default();
                        let mut map = s.lock().unwrap();
                        let entry = map.entry(name).or_default();
                        if let Some(status) = &t.status {
                            for c in STEPS {
                                if condition_status(&status.conditions, c) == "True" {
                                    entry.became_true.entry(c.to_string()).or_insert(now);
                                }
                            }
                        }
                        entry.last = Some(t);
                    }
                    Some(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                    None => break,
                }
            }
        });
        Self { seen, task }
    }

    /// Records that `name` was created now.
    pub fn created(&self, name: &str) {
        self.seen
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .created = Some(Instant::now());
    }

    /// A copy of everything seen.
    pub fn snapshot(&self) -> HashMap<String, Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many Testers are `Ready=True` now.
    pub fn ready_now(&self) -> usize {
        self.count(|t| has(t, "Ready", "True"))
    }

    /// How many Testers satisfy `f` now.
    pub fn count(&self, f: impl Fn(&Tester) -> bool) -> usize {
        self.seen
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.last.as_ref().is_some_and(&f))
            .count()
    }

    /// Waits until `done` holds of the count of Ready testers, or `timeout`; returns whether
    /// it held.
    pub async fn wait_ready(&self, n: usize, timeout: Duration) -> bool {
        self.wait(timeout, || self.ready_now() >= n).await
    }

    /// Waits until `done()` or `timeout`; returns whether it held.
    pub async fn wait(&self, timeout: Duration, done: impl Fn() -> bool) -> bool {
        crate::measure::poll_until(timeout, done).await
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether the Tester's condition `type_` has `status`.
pub fn has(t: &Tester, type_: &str, status: &str) -> bool {
    t.status
        .as_ref()
        .is_some_and(|s| condition_status(&s.conditions, type_) == status)
}

/// The reason of the Tester's condition `type_`.
pub fn reason(t: &Tester, type_: &str) -> Option<String> {
    t.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, type_))
        .map(|c| c.reason.clone())
}
