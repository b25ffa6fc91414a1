//! The [`Context`] every reconcile gets: clients, configuration, metrics, the scheduler's ledger.

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use gridapi::{Grid, GridError};
use kube::{
    ResourceExt,
    runtime::{
        events::{Recorder, Reporter},
        reflector::{ObjectRef, Store},
    },
};

use crate::{
    backoff::Backoffs,
    config::Config,
    engines::Engines,
    error::{Error, Result},
    mail::Mailer,
    metrics::Metrics,
    resources::{HostPool, Tester},
    scheduler::{Ledger, NodeView},
};

/// A HostPool's nodes as last listed from the grid proxy.
#[derive(Clone, Debug)]
pub struct PoolNodes {
    /// The nodes.
    pub nodes: Vec<NodeView>,
    /// The gateway nodes for new testers: the pool's `gatewayNodes`, then the up and healthy
    /// gateways the proxy lists in its `gatewayFarms`.
    pub gateways: Vec<u32>,
    /// When the listing was taken.
    pub listed_at: Instant,
}

/// The caches of the watched objects, filled by the controllers' watches.
pub struct Stores {
    /// Every Tester.
    pub testers: Store<Tester>,
    /// Every HostPool.
    pub pools: Store<HostPool>,
    /// Every WarmMachine.
    pub warm: Store<crate::resources::WarmMachine>,
    /// The operator's AI-provider keys Secret (`AI_KEYS_SECRET`), in each namespace that has
    /// one.
    pub ai_keys: Store<k8s_openapi::api::core::v1::Secret>,
}

/// Shared by every reconcile.
pub struct Context {
    /// Kubernetes client.
    pub client: kube::Client,
    /// The grid.
    pub grid: Grid,
    /// Configuration.
    pub config: Config,
    /// Metrics.
    pub metrics: Metrics,
    /// The shared engines' token stores.
    pub engines: Arc<dyn Engines>,
    /// The Forge: testers' accounts and sign-in clients.
    pub forge: Arc<dyn crate::forge::Forge>,
    /// The welcome emails' transport (`None` without `SMTP_URL`).
    pub mailer: Option<Mailer>,
    /// Who publishes Events (a Recorder is made per pass, so no cache of Events outlives it:
    /// with at most a few Events per tester there is nothing to aggregate).
    pub reporter: Reporter,
    /// Every placement made, guarded for the whole of a placement decision.
    pub ledger: tokio::sync::Mutex<Ledger>,
    /// Node listings per HostPool (`namespace/name`), refreshed by the HostPool reconciler.
    pub pools: Mutex<HashMap<String, PoolNodes>>,
    /// Warm machines created per HostPool (`namespace/name`) that the cache may not show yet.
    pub warm_created: Mutex<HashMap<String, Vec<(String, Instant)>>>,
    /// Each node's twin (node id → twin id), as the proxy listed it once.
    pub node_twins: Mutex<HashMap<u32, u32>>,
    /// The resourceVersion of each Tester's last status write (by UID), until a pass sees it:
    /// a pass whose cached copy has another version reads the object afresh instead of
    /// working from a stale status.
    pub written_versions: Mutex<HashMap<String, String>>,
    /// The watched objects (set once the controllers start; empty in unit tests).
    pub stores: OnceLock<Stores>,
    /// When each Tester was last verified in full (by UID; see `tester::freshness`).
    pub verified: Mutex<HashMap<String, Verified>>,
    /// When each Tester's apps were last checked (by UID).
    pub app_checks: Mutex<HashMap<String, Instant>>,
    /// Testers this process first saw with no status at all (by UID), with what it has made
    /// for them since, until they are Ready: see [`Context::unmade`].
    pub seen_new: Mutex<HashMap<String, Vec<String>>>,
    /// When each HostPool's status was last written (`namespace/name`).
    pub pool_writes: Mutex<HashMap<String, Instant>>,
    /// Retry delays of the Testers whose last reconcile failed.
    pub backoffs: Backoffs,
    /// HTTP client for probing testers' public URLs (never follows redirects).
    pub http: reqwest::Client,
    /// The public half of the agent-signing key, put in every VM's env.
    pub agent_public_key: gridapi::agent::signing::ControllerPublicKey,
    grid_limiter: DefaultDirectRateLimiter,
    kube_limiter: DefaultDirectRateLimiter,
}

/// When a Tester was last verified in full, and what it looked like then.
#[derive(Debug, Clone, Copy)]
pub struct Verified {
    /// What the full pass's outcome depended on in the Tester object.
    pub fingerprint: u64,
    /// Light passes until then.
    pub until: Instant,
}

impl Context {
    /// Builds the context.
    pub fn new(
        client: kube::Client,
        grid: Grid,
        engines: Arc<dyn Engines>,
        forge: Arc<dyn crate::forge::Forge>,
        mailer: Option<Mailer>,
        config: Config,
        metrics: Metrics,
    ) -> Self {
        let reporter = Reporter {
            controller: "sandbox-controller".into(),
            instance: Some(config.identity.clone()),
        };
        // The gate's outside proof: two requests to each tester's own host per pass, then
        // nothing for a resync. An idle connection per host, kept the default 90 s, held
        // buffers for every Ready tester between resyncs; 2 s covers the pair.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(2))
            .dns_resolver(Arc::new(LocalhostResolver(config.localhost_address)))
            .build()
            .expect("build HTTP client");
        let per_second = |n: u32| Quota::per_second(NonZeroU32::new(n.max(1)).unwrap());
        Self {
            grid_limiter: RateLimiter::direct(per_second(config.grid_qps)),
            kube_limiter: RateLimiter::direct(per_second(config.kube_qps)),
            client,
            grid,
            engines,
            forge,
            mailer,
            config,
            metrics,
            reporter,
            ledger: Default::default(),
            pools: Default::default(),
            node_twins: Default::default(),
            warm_created: Default::default(),
            written_versions: Default::default(),
            backoffs: Backoffs::default(),
            stores: OnceLock::new(),
            app_checks: Default::default(),
            pool_writes: Default::default(),
            seen_new: Default::default(),
            verified: Default::default(),
            http,
            // A key of no controller until [`Context::with_agent_public_key`] sets the real one.
            agent_public_key: gridapi::agent::signing::ControllerKey::generate().public(),
        }
    }

    /// The public half of the agent-signing key the VMs are deployed with.
    pub fn with_agent_public_key(
        mut self,
        key: gridapi::agent::signing::ControllerPublicKey,
    ) -> Self {
        self.agent_public_key = key;
        self
    }

    /// Runs one grid call: rate-limited, timed, its errors counted and named.
    pub async fn grid<T>(
        &self,
        call: &'static str,
        fut: impl Future<Output = Result<T, GridError>>,
    ) -> Result<T> {
        self.grid_limiter.until_ready().await;
        let timer = self
            .metrics
            .grid_duration
            .with_label_values(&[call])
            .start_timer();
        let out = fut.await;
        timer.observe_duration();
        out.map_err(|source| {
            let kind = format!("{:?}", source.category());
            self.metrics
                .grid_errors
                .with_label_values(&[call, &kind])
                .inc();
            Error::Grid { call, source }
        })
    }

    /// Waits for the client-side rate limit towards the API server; call before each request
    /// a reconcile makes (watches are not limited).
    pub async fn kube_turn(&self) {
        self.kube_limiter.until_ready().await;
    }

    /// The Tester's HostPool from the watch cache (`None` before the cache is filled, or when
    /// the pool does not exist).
    pub fn pool_of(&self, tester: &Tester) -> Option<Arc<HostPool>> {
        let stores = self.stores.get()?;
        let ns = tester.namespace()?;
        stores
            .pools
            .get(&ObjectRef::new(&tester.spec.host_pool).within(&ns))
    }

    /// A Recorder for one pass's Events.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    /// Notes a Tester seen with no status at all: no controller has written it yet, so nothing
    /// that comes after its first status write (the placement) was made for it by an earlier
    /// process: not its machine keys, engine token or sign-in client.
    pub fn saw_new(&self, uid: &str) {
        if let Ok(mut seen) = self.seen_new.lock() {
            seen.entry(uid.to_string()).or_default();
        }
    }

    /// Whether `what` (a Secret's name, the sign-in application), made only after the
    /// Tester's placement is recorded, is known not to exist: this process saw the Tester new
    /// and has not made or tried to make it since. Answers `true` once, as the caller is about
    /// to make it: a pass that then fails before recording it (killed, an API error) leaves the
    /// next one to look. Like the expectations of Kubernetes' own controllers this lives in
    /// memory only; a restarted controller looks.
    pub fn unmade(&self, uid: &str, what: &str) -> bool {
        let Ok(mut seen) = self.seen_new.lock() else {
            return false;
        };
        match seen.get_mut(uid) {
            Some(made) if !made.iter().any(|m| m == what) => {
                made.push(what.to_string());
                true
            }
            _ => false,
        }
    }

    /// Records that `what` was made for the Tester, so [`Context::unmade`] no longer answers
    /// `true` for it (for what may be made before the Tester's first status write, such as a
    /// claimed warm machine's keys, handed over before the claim is recorded).
    pub fn made(&self, uid: &str, what: &str) {
        if let Ok(mut seen) = self.seen_new.lock()
            && let Some(made) = seen.get_mut(uid)
            && !made.iter().any(|m| m == what)
        {
            made.push(what.to_string());
        }
    }

    /// Forgets what [`Context::unmade`] knows of a Tester (Ready, or deleted).
    pub fn forget_new(&self, uid: &str) {
        if let Ok(mut seen) = self.seen_new.lock() {
            seen.remove(uid);
        }
    }

    /// Times a request to a service other than the grid and the API server until dropped.
    pub fn outside_timer(&self, service: &str) -> prometheus::HistogramTimer {
        self.metrics
            .outside_duration
            .with_label_values(&[service])
            .start_timer()
    }
}

/// Resolves `*.localhost` to the loopback address, as browsers and curl do (RFC 6761), or to
/// the address configured for a controller in a Pod (`LOCALHOST_ADDRESS`), and everything else
/// through the system resolver. Gateway domains of the local grid end in `.localhost`, so a
/// tester's URL works as it is.
pub struct LocalhostResolver(pub std::net::IpAddr);

impl reqwest::dns::Resolve for LocalhostResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let local = self.0;
        Box::pin(async move {
            if host == "localhost" || host.ends_with(".localhost") {
                let addrs: reqwest::dns::Addrs =
                    Box::new(std::iter::once(SocketAddr::new(local, 0)));
                return Ok(addrs);
            }
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.collect::<Vec<_>>().into_iter());
            Ok(addrs)
        })
    }
}
