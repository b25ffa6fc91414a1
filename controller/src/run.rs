//! The runtime: health and metrics server, leader election, the four controllers (Tester,
//! HostPool, SharedEngine, WarmMachine), graceful shutdown.

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use futures::{StreamExt, future::FutureExt};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::Config as ControllerConfig,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tokio::sync::watch;
use tracing::{error, info};

use crate::{
    config::Config,
    context::Context,
    hostpool,
    metrics::Metrics,
    resources::{HostPool, PAUSED_ANNOTATION, SharedEngine, Tester, WarmMachine, find_condition},
    sharedengine,
    tester::{self, conditions},
    warm,
};

/// Runs the controller until SIGTERM/SIGINT (or until leadership is lost).
pub async fn run(config: Config) -> anyhow::Result<()> {
    // A mail URL that would leak in plaintext stops the controller here, before anything else.
    let mailer = crate::mail::mailer(&config)?;
    // Health and metrics first: the process is alive (and says it is not ready) while what
    // follows waits for the API server.
    let metrics = Metrics::default();
    let client = crate::api_client::client(&metrics).await?;
    let (ready_tx, ready_rx) = watch::channel(false);
    // The grid's faces, once built: `/readyz` also says whether they reach the relay and chain.
    let (grid_health, grid_health_rx) =
        watch::channel::<Option<Arc<crate::grid_setup::Connected>>>(None);

    let server = tokio::net::TcpListener::bind(config.metrics_addr).await?;
    info!(addr = %config.metrics_addr, "serving /metrics, /healthz and /readyz");
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Metrics>| async move { m.render() }),
        )
        .with_state(metrics.clone())
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = *ready_rx.borrow();
                let grid = match &*grid_health_rx.borrow() {
                    Some(connected) => connected.health(),
                    None => Ok(()),
                };
                async move {
                    match (ready, grid) {
                        (true, Ok(())) => (StatusCode::OK, "ready".to_string()),
                        (_, Err(why)) => {
                            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}"))
                        }
                        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not ready".into()),
                    }
                }
            }),
        );
    tokio::spawn(async move { axum::serve(server, app).await });

    let agent_key = agent_signing_key(&client, &config).await?;
    let plan = crate::grid_setup::plan(&config).map_err(anyhow::Error::msg)?;
    let connected = Arc::new(crate::grid_setup::connect(
        &config,
        &plan,
        agent_key.clone(),
    )?);
    let _ = grid_health.send(Some(connected.clone()));
    let grid = connected.grid.clone();
    let outside = |service| metrics.outside_duration.with_label_values(&[service]);
    let engines = Arc::new(crate::engines::HttpEngines::new()?.timed(outside("engine")));
    let forge = Arc::new(
        crate::forge::HttpForge::new(&config.forge_url, config.forge_token.clone())?
            .timed(outside("forge")),
    );
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            grid,
            engines,
            forge,
            mailer,
            config.clone(),
            metrics.clone(),
        )
        .with_agent_public_key(agent_key.public()),
    );

    let mut leadership = None;
    if config.leader_election {
        let manager =
            kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &config.lease_name)
                .with_namespace(&config.lease_namespace)
                .with_identity(&config.identity)
                .with_duration(15)
                .with_grace(5)
                .build()
                .await?;
        let (mut rx, task) = manager.watch().await;
        // A standby replica is ready: it can take over the moment the lease is free. Readiness
        // that waited for leadership would stall every rolling update that keeps a replica up
        // (the new Pod could never become Ready while the old one leads).
        let _ = ready_tx.send(true);
        info!(lease = %config.lease_name, "waiting to become the leader");
        while !*rx.borrow_and_update() {
            rx.changed().await?;
        }
        info!("leading");
        leadership = Some((rx, task));
    }

    let placements = crate::placements::rebuild_ledger(&ctx).await?;
    // Start-up scripts and tests wait for this line (logged here, under `controller::run`).
    info!(
        placements,
        "scheduler ledger rebuilt from Tester and WarmMachine statuses"
    );
    let _ = ready_tx.send(true);

    let lost = async move {
        match leadership {
            Some((mut rx, _task)) => {
                while *rx.borrow_and_update() {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
                error!("lost the leader lease; stopping so that another replica takes over");
            }
            None => futures::future::pending::<()>().await,
        }
    };
    let shutdown = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
            _ = sigterm() => info!("SIGTERM: shutting down"),
            _ = lost => {},
        }
    }
    .shared();

    let (testers, pools, engines) = apis(&client, &config);
    let secrets: Api<Secret> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let cfg = ControllerConfig::default().concurrency(config.concurrency);

    // The Tester watch: cached without `managedFields` (a third of a Tester's bytes) nor kubectl's
    // last-applied copy, and a pass starts only for a change worth one (see `worth_a_pass`),
    // never for this controller's own status write: a pass that must look again asks for it
    // with its requeue.
    // The same watch wakes the HostPool of every Tester that changed (its status and its removal
    // included: the pool counts its testers), so the Tester objects are listed and decoded once.
    let (store, writer) = reflector::store();
    let (pool_wake, pools_woken) = futures::channel::mpsc::unbounded();
    let trigger = watcher(testers, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(slim)
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(
                watcher::Event::Apply(t) | watcher::Event::InitApply(t) | watcher::Event::Delete(t),
            ) = event
                && let Some(pool) = pool_of(t)
            {
                // Fails only once the HostPool controller has stopped (shutdown).
                let _ = pool_wake.unbounded_send(pool);
            }
        })
        .applied_objects()
        .predicate_filter(worth_a_pass, Default::default());
    let tester_controller = Controller::for_stream(trigger, store.clone()).with_config(cfg.clone());
    let warm_api: Api<WarmMachine> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let warm_controller =
        Controller::new(warm_api.clone(), watcher::Config::default().any_semantic())
            .with_config(cfg.clone());
    let pool_controller = Controller::new(pools.clone(), watcher::Config::default().any_semantic())
        .owns(warm_api, watcher::Config::default().any_semantic())
        .with_config(cfg.clone());
    // Only the operator's AI-keys Secret, by name, cached (a pass reads it from here, not with a
    // GET): a key added there reaches the testers that were waiting for it at once.
    let (ai_keys, ai_keys_writer) = reflector::store();
    let ai_keys_changes = watcher(
        secrets,
        watcher::Config::default()
            .any_semantic()
            .fields(&format!("metadata.name={}", config.ai_keys_secret)),
    )
    .default_backoff()
    .modify(|s: &mut Secret| s.managed_fields_mut().clear())
    .reflect(ai_keys_writer)
    .applied_objects();
    let _ = ctx.stores.set(crate::context::Stores {
        testers: store.clone(),
        pools: pool_controller.store(),
        warm: warm_controller.store(),
        ai_keys,
    });
    let tester_run = tester_controller
        .watches(
            pools.clone(),
            watcher::Config::default().any_semantic(),
            unscheduled_testers_of(store.clone()),
        )
        .watches_stream(
            ai_keys_changes,
            testers_using_ai_keys(store.clone(), ctx.clone()),
        )
        .watches(
            engines.clone(),
            watcher::Config::default().any_semantic(),
            testers_using_engine(store.clone(), ctx.clone()),
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(tester::reconcile, tester::error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));

    let pool_run = pool_controller
        .reconcile_on(pools_woken)
        .graceful_shutdown_on(shutdown.clone())
        .run(hostpool::reconcile, hostpool::error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));

    let engine_run = Controller::new(engines, watcher::Config::default().any_semantic())
        .with_config(cfg)
        .graceful_shutdown_on(shutdown.clone())
        .run(
            sharedengine::reconcile,
            sharedengine::error_policy,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()));

    let warm_run = warm_controller
        .graceful_shutdown_on(shutdown.clone())
        .run(warm::reconcile, warm::error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));

    let phases = phase_gauge(store, ctx.clone());
    tokio::select! {
        _ = futures::future::join4(tester_run, pool_run, engine_run, warm_run) => {},
        _ = phases => {},
    }
    info!("controllers stopped");
    Ok(())
}

/// The annotation `kubectl apply` keeps its last applied configuration in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A Tester as the cache keeps it: without `managedFields` nor `kubectl apply`'s copy of the
/// whole spec (never read here; the cached object is never written back).
fn slim(t: &mut Tester) {
    t.managed_fields_mut().clear();
    t.annotations_mut().remove(LAST_APPLIED);
}

/// What of a Tester is worth a pass when it changes: its spec (the generation), its metadata
/// that steers the controller (annotations such as rotation, rebuild and pause; labels;
/// finalizers, since adding ours waits for the change) and the start of its deletion. The status
/// is not: only this controller writes it.
fn worth_a_pass(t: &Tester) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = kube::Resource::meta(t);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.labels.hash(&mut h);
    meta.finalizers.hash(&mut h);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut h);
    Some(h.finish())
}

/// The HostPool a Tester is placed from.
fn pool_of(t: &Tester) -> Option<ObjectRef<HostPool>> {
    t.namespace()
        .map(|ns| ObjectRef::new(&t.spec.host_pool).within(&ns))
}

fn apis(client: &Client, config: &Config) -> (Api<Tester>, Api<HostPool>, Api<SharedEngine>) {
    match &config.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    }
}

/// A HostPool change (capacity freed, a node back online, a pause) wakes the testers of that
/// pool that are still waiting for a place or are paused with it, instead of polling them.
fn unscheduled_testers_of(
    store: Store<Tester>,
) -> impl Fn(HostPool) -> Vec<ObjectRef<Tester>> + Send + Sync + 'static {
    move |pool: HostPool| {
        let ns = pool.namespace();
        let name = pool.name_any();
        let pool_paused = pool.annotations().contains_key(PAUSED_ANNOTATION);
        store
            .state()
            .iter()
            .filter(|t| t.namespace() == ns && t.spec.host_pool == name)
            .filter(|t| {
                let status = t.status.as_ref();
                // Waiting for room, or to be paused or resumed with the pool.
                status.is_none_or(|s| s.placement.is_none())
                    || pool_paused
                    || status.is_some_and(|s| {
                        find_condition(&s.conditions, conditions::PAUSED)
                            .is_some_and(|c| c.status == "True")
                    })
            })
            .map(|t| ObjectRef::from_obj(t.as_ref()))
            .collect()
    }
}

/// A change of the AI-keys Secret wakes the testers of its namespace that hand over AI keys,
/// for a full pass (the keys on their machines are compared again).
fn testers_using_ai_keys(
    store: Store<Tester>,
    ctx: Arc<Context>,
) -> impl Fn(Secret) -> Vec<ObjectRef<Tester>> + Send + Sync + 'static {
    move |secret: Secret| {
        let ns = secret.namespace();
        store
            .state()
            .iter()
            .filter(|t| t.namespace() == ns && !t.spec.ai_providers.is_empty())
            .inspect(|t| tester::freshness::forget(&ctx, &t.uid().unwrap_or_default()))
            .map(|t| ObjectRef::from_obj(t.as_ref()))
            .collect()
    }
}

/// The agent-signing key, retried with backoff while the API server cannot be reached (a key
/// Secret that holds no valid key stops the controller: the operator must act).
async fn agent_signing_key(
    client: &Client,
    config: &Config,
) -> anyhow::Result<gridapi::agent::signing::ControllerKey> {
    use backon::{ExponentialBuilder, Retryable as _};
    let load = || {
        crate::agent_key::load_or_create(
            client.clone(),
            &config.lease_namespace,
            &config.agent_signing_key_secret,
        )
    };
    let key = load
        .retry(
            ExponentialBuilder::default()
                .with_max_delay(Duration::from_secs(30))
                .without_max_times(),
        )
        .when(|e| matches!(e, crate::agent_key::AgentKeyError::Kube { .. }))
        .notify(|e, after| tracing::warn!(error = %e, ?after, "retrying"))
        .await?;
    Ok(key)
}

/// A change of a SharedEngine (its URL, its token store) wakes the testers that use it, for a
/// full pass: their machines get the new URL and their token is proven there.
fn testers_using_engine(
    store: Store<Tester>,
    ctx: Arc<Context>,
) -> impl Fn(SharedEngine) -> Vec<ObjectRef<Tester>> + Send + Sync + 'static {
    move |engine: SharedEngine| {
        let ns = engine.namespace();
        let name = engine.name_any();
        store
            .state()
            .iter()
            .filter(|t| t.namespace() == ns && t.spec.shared_engines.contains(&name))
            .inspect(|t| tester::freshness::forget(&ctx, &t.uid().unwrap_or_default()))
            .map(|t| ObjectRef::from_obj(t.as_ref()))
            .collect()
    }
}

/// Keeps the `sandbox_testers{phase}` gauge in step with the Tester cache.
async fn phase_gauge(store: Store<Tester>, ctx: Arc<Context>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut counts = std::collections::BTreeMap::<String, i64>::new();
        let mut unhealthy = std::collections::BTreeMap::<String, i64>::new();
        for t in store.state() {
            for app in t.status.iter().flat_map(|s| &s.apps) {
                *unhealthy.entry(app.app.clone()).or_default() += i64::from(!app.healthy);
            }
            let phase = t
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".into());
            *counts.entry(phase).or_default() += 1;
        }
        ctx.metrics.testers.reset();
        for (phase, n) in counts {
            ctx.metrics.testers.with_label_values(&[&phase]).set(n);
        }
        ctx.metrics.apps_unhealthy.reset();
        for (app, n) in unhealthy {
            ctx.metrics.apps_unhealthy.with_label_values(&[&app]).set(n);
        }
    }
}

async fn sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => futures::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{resources::TesterStatus, testing::tester};

    #[test]
    fn a_status_write_is_not_worth_a_pass_but_the_spec_and_steering_metadata_are() {
        let t = tester("bob", "bob");
        let before = worth_a_pass(&t);

        let mut written = t.clone();
        written.status = Some(TesterStatus {
            phase: Some("Ready".into()),
            ..Default::default()
        });
        written.metadata.resource_version = Some("99".into());
        written.metadata.managed_fields = None;
        assert_eq!(worth_a_pass(&written), before, "own status write");

        let mut edited = t.clone();
        edited.metadata.generation = Some(t.metadata.generation.unwrap_or(1) + 1);
        assert_ne!(worth_a_pass(&edited), before, "spec change");

        let mut rotated = t.clone();
        rotated
            .annotations_mut()
            .insert("sandbox.hero.dev/rotate-engine-token".into(), "2".into());
        assert_ne!(worth_a_pass(&rotated), before, "rotation annotation");

        let mut finalized = t.clone();
        finalized.finalizers_mut().push(tester::FINALIZER.into());
        assert_ne!(worth_a_pass(&finalized), before, "our finalizer added");

        let mut deleted = t;
        deleted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        assert_ne!(worth_a_pass(&deleted), before, "deletion started");
    }

    #[test]
    fn the_cache_keeps_a_tester_without_managed_fields_and_kubectls_copy() {
        let mut t = tester("bob", "bob");
        t.annotations_mut().insert(
            LAST_APPLIED.into(),
            r#"{"spec":{"accountName":"bob"}}"#.into(),
        );
        t.annotations_mut()
            .insert("sandbox.hero.dev/rotate-engine-token".into(), "2".into());
        t.metadata.managed_fields = Some(vec![Default::default()]);
        slim(&mut t);
        assert!(t.managed_fields().is_empty());
        assert_eq!(
            t.annotations().keys().collect::<Vec<_>>(),
            ["sandbox.hero.dev/rotate-engine-token"],
            "steering annotations stay"
        );
    }
}
