//! The Tester reconciler: from `kubectl apply` to Ready, and back to nothing on delete.
//!
//! A pass runs the steps in order. Each step is one function in its own module, owns one
//! condition, and is idempotent: it looks at what exists (in the status, on the grid, on the
//! machine) before it changes anything, so an interrupted pass is simply continued by the next.
//! A step either lets the pass go on or stops it with a requeue; the status is written only when
//! it changed, so a Ready tester at rest costs no API writes.

mod access;
mod account;
mod apps;
mod cleanup;
pub mod conditions;
pub(crate) mod deployment;
mod email;
pub mod freshness;
mod gate;
pub(crate) mod gateway;
pub(crate) mod grid;
pub(crate) mod install;
mod machine;
pub(crate) mod machine_keys;
mod observe;
mod pass;
mod pause;
mod remediation;
pub(crate) mod schedule;
mod secrets;
mod sign_in_client;
pub mod warm_start;

use std::{sync::Arc, time::Duration};

use kube::{
    Api, ResourceExt,
    runtime::{
        controller::Action,
        finalizer::{Event as Finalizer, finalizer},
    },
};
use tracing::{info, instrument, warn};

pub use install::grid_channel;
pub use pass::{MANAGER, Pass};
pub use remediation::Breaker;
pub use schedule::pool_nodes;
pub use secrets::secret_value;

use crate::{
    context::Context,
    error::{Error, KubeContext, Result},
    resources::{ManagementPolicy, Tester},
};

/// The finalizer that keeps a Tester until nothing of it is left on the grid.
pub const FINALIZER: &str = "sandbox.hero.dev/cleanup";

/// What a step tells the pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Flow {
    /// The step's condition holds; go on.
    Continue,
    /// Stop here and look again after the given time (or on the next watch event).
    Requeue(Duration),
}

/// Reconciles one Tester (the entry point given to the kube-runtime Controller).
#[instrument(skip_all, fields(tester = %format!("{}/{}", tester.namespace().unwrap_or_default(), tester.name_any())))]
pub async fn reconcile(tester: Arc<Tester>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics.reconciles.with_label_values(&["tester"]).inc();
    let _timer = ctx
        .metrics
        .reconcile_duration
        .with_label_values(&["tester"])
        .start_timer();
    let ns = tester
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let pool = ctx.pool_of(&tester);
    if let Some((reason, message)) = pause::paused_by(&tester, pool.as_deref()) {
        return pause::hold(tester, ctx, reason, &message).await;
    }
    let api: Api<Tester> = Api::namespaced(ctx.client.clone(), &ns);
    let key = tester.uid().unwrap_or_else(|| tester.name_any());
    let action = finalizer(&api, FINALIZER, tester, |event| async {
        match event {
            Finalizer::Apply(t) => apply(t, ctx.clone()).await,
            Finalizer::Cleanup(t) => cleanup::cleanup(t, ctx.clone()).await,
        }
    })
    .await
    .map_err(Error::from)?;
    ctx.backoffs.succeeded(&key);
    Ok(action)
}

/// Requeue policy on errors: a step already recorded the error in its condition.
pub fn error_policy(tester: Arc<Tester>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .errors
        .with_label_values(&["tester", "reconcile", error.label()])
        .inc();
    if matches!(error, Error::Stale) {
        return Action::requeue(ctx.config.scaled(Duration::from_millis(500)));
    }
    let key = tester.uid().unwrap_or_else(|| tester.name_any());
    let after = ctx
        .config
        .scaled(ctx.backoffs.failed(&key, error.is_fatal()));
    warn!(tester = %tester.name_any(), error = %error, retry_in = ?after, "reconcile failed");
    Action::requeue(after)
}

/// Runs the steps in order until one stops the pass.
async fn apply(tester: Arc<Tester>, ctx: Arc<Context>) -> Result<Action> {
    let tester = fresh(tester, &ctx).await?;
    if tester.status.is_none()
        && let Some(uid) = tester.uid()
    {
        ctx.saw_new(&uid);
    }
    let mut pass = Pass::new(&tester, &ctx)?;
    pause::resume(&mut pass);
    let full = tester.spec.management_policy != ManagementPolicy::ObserveOnly;
    let light = full && freshness::is_fresh(&ctx, &tester) && freshness::light(&mut pass).await?;
    let flow = match tester.spec.management_policy {
        _ if light => Ok(Flow::Continue),
        ManagementPolicy::ObserveOnly => observe::observe(&mut pass).await,
        ManagementPolicy::Full | ManagementPolicy::OrphanOnDelete => run_steps(&mut pass).await,
    };
    if full && !light {
        match &flow {
            Ok(Flow::Continue) if pass.is_true(conditions::READY) => {
                ctx.forget_new(&pass.uid);
                freshness::record(&ctx, &tester, ctx.config.verify_interval)
            }
            _ => freshness::forget(&ctx, &pass.uid),
        }
    }
    pass.conclude().await?;
    match flow {
        Ok(Flow::Continue) => Ok(Action::requeue(
            ctx.config.resync.min(ctx.config.app_health_interval),
        )),
        Ok(Flow::Requeue(after)) => Ok(Action::requeue(ctx.config.scaled(after))),
        Err(e) => Err(e),
    }
}

/// The Tester as the API server has it now when the watch has not yet delivered this
/// controller's own last status write (a requeue can come before the watch event): a pass must
/// not build on a status older than the one it wrote.
async fn fresh(tester: Arc<Tester>, ctx: &Context) -> Result<Arc<Tester>> {
    let Some(uid) = tester.uid() else {
        return Ok(tester);
    };
    let last = ctx
        .written_versions
        .lock()
        .map_err(|_| Error::Poisoned("written versions"))?
        .remove(&uid);
    if !needs_fresh_read(tester.resource_version().as_deref(), last.as_deref()) {
        return Ok(tester);
    }
    ctx.kube_turn().await;
    let ns = tester
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<Tester> = Api::namespaced(ctx.client.clone(), &ns);
    // A GET is a quorum read: at least as new as our own write, so the entry can go.
    match api
        .get_opt(&tester.name_any())
        .await
        .kube("reading the Tester afresh")?
    {
        Some(t) => Ok(Arc::new(t)),
        None => Ok(tester),
    }
}

/// Whether a pass must read the Tester afresh: the controller wrote a status whose
/// `resourceVersion` is not the one of the cached copy. `resourceVersion` is opaque (API
/// convention): it is only compared for equality, never ordered, so any other version (older,
/// or newer after someone else's write) is read again once.
fn needs_fresh_read(cached: Option<&str>, last_written: Option<&str>) -> bool {
    last_written.is_some_and(|w| cached != Some(w))
}

async fn run_steps(pass: &mut Pass<'_>) -> Result<Flow> {
    macro_rules! step {
        ($name:literal, $cond:expr, $f:expr) => {{
            let timer = pass.ctx.metrics.step_duration.with_label_values(&[$name]).start_timer();
            let out = $f.await;
            timer.observe_duration();
            match out {
                Ok(Flow::Continue) => {}
                Ok(flow) => return Ok(flow),
                Err(e) => {
                    pass.ctx.metrics.errors.with_label_values(&["tester", $name, e.label()]).inc();
                    let retry = e.is_retry_later();
                    let reason = match &e {
                        Error::Grid { .. } if retry => "GridRetrying",
                        Error::Engine { .. } if retry => "EngineRetrying",
                        Error::Forge { .. } if retry => "ForgeUnavailable",
                        Error::Forge { source: crate::forge::ForgeError::Unauthorized { .. } } => {
                            "ForgeUnauthorized"
                        }
                        _ if e.is_fatal() => "Refused",
                        _ => "Error",
                    };
                    let message = match e.remedy() {
                        Some(remedy) => format!("{e}; {remedy}"),
                        None => e.to_string(),
                    };
                    pass.set($cond, false, reason, &message);
                    if retry {
                        info!(step = $name, error = %e, "grid asked to retry later");
                        return Ok(Flow::Requeue(pass.backoff($cond)));
                    }
                    return Err(e);
                }
            }
        }};
    }
    machine::rebuild_if_asked(pass).await?;
    remediation::remediate_if_unhealthy(pass).await?;
    step!("account", conditions::ACCOUNT_READY, account::account(pass));
    step!("schedule", conditions::SCHEDULED, schedule::schedule(pass));
    step!("machine", conditions::MACHINE_READY, machine::machine(pass));
    step!("install_begin", conditions::INSTALLED, install::begin(pass));
    step!("gateway", conditions::GATEWAY_READY, gateway::gateway(pass));
    step!(
        "sign_in_client",
        conditions::SIGN_IN_CLIENT_READY,
        sign_in_client::sign_in_client(pass)
    );
    step!("gate", conditions::GATE_SECURED, gate::gate(pass));
    step!(
        "tokens",
        conditions::TOKENS_REGISTERED,
        access::tokens(pass)
    );
    step!("install", conditions::INSTALLED, install::install(pass));
    pass.mark_ready();
    step!(
        "email",
        conditions::WELCOME_EMAIL_SENT,
        email::welcome_email(pass)
    );
    step!("apps", conditions::APPS_HEALTHY, apps::apps_health(pass));
    Ok(Flow::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_versions_are_compared_only_for_equality() {
        // Nothing written by us: the cached copy is used.
        assert!(!needs_fresh_read(Some("41"), None));
        // The cache holds our own last write.
        assert!(!needs_fresh_read(Some("42"), Some("42")));
        // Opaque versions that do not parse as numbers still work.
        assert!(needs_fresh_read(Some("etcd-b7"), Some("etcd-c1")));
        assert!(!needs_fresh_read(Some("etcd-c1"), Some("etcd-c1")));
        // A version that "looks" newer is not ordered: it is read afresh, once.
        assert!(needs_fresh_read(Some("100"), Some("99")));
        assert!(needs_fresh_read(None, Some("99")));
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;
    use crate::testing::{FakeGrid, context, tester};
    use gridapi::{ErrorCode, GridError};

    fn grid_error(source: GridError) -> Error {
        Error::Grid {
            call: "create_node_contract",
            source,
        }
    }

    #[tokio::test]
    async fn a_fatal_grid_error_waits_the_longest_and_says_what_to_change() {
        let ctx = Arc::new(context(FakeGrid::default()));
        let t = Arc::new(tester("bob", "bob"));
        let fatal = grid_error(GridError::Fatal {
            code: ErrorCode::Unauthorized,
            message: "twin not authorized".into(),
        });
        assert_eq!(
            error_policy(t.clone(), &fatal, ctx.clone()),
            Action::requeue(Duration::from_secs(300))
        );
        assert!(fatal.remedy().unwrap().contains("GRID_TWIN_SECRET"));
        // A transient error starts short: not the old fixed 5 s, not the cap.
        let transient = Error::DeletionPending("waiting".into());
        let first = error_policy(t, &transient, ctx);
        assert_ne!(first, Action::requeue(Duration::from_secs(300)));
        assert_ne!(first, Action::requeue(Duration::from_secs(5)));
    }

    #[tokio::test]
    async fn what_a_tester_seen_new_has_not_had_made_is_known_not_to_exist_once() {
        let ctx = context(FakeGrid::default());
        assert!(
            !ctx.unmade("u1", "a-sign-in"),
            "a Tester not seen new: look first"
        );
        ctx.saw_new("u1");
        assert!(ctx.unmade("u1", "a-sign-in"));
        assert!(
            !ctx.unmade("u1", "a-sign-in"),
            "once: a pass after a failed attempt looks"
        );
        ctx.made("u1", "a-machine");
        assert!(!ctx.unmade("u1", "a-machine"), "made before the claim");
        assert!(ctx.unmade("u1", "a-engine-token"));
        ctx.forget_new("u1");
        assert!(!ctx.unmade("u1", "a-other"), "forgotten once Ready");
    }

    #[tokio::test]
    async fn a_tester_being_deleted_is_not_made_ready_again_by_the_status_write() {
        let ctx = context(FakeGrid::default());
        let mut t = tester("bob", "bob");
        t.metadata.deletion_timestamp = t.metadata.creation_timestamp.clone();
        let mut pass = Pass::new(&t, &ctx).unwrap();
        for c in conditions::REQUIRED {
            pass.set(c, true, "Ok", "holds");
        }
        pass.set(
            conditions::READY,
            false,
            "Deleting",
            "deletion is waiting for: cancelling the VM contract 7",
        );
        pass.mark_ready(); // what every status write does first
        let ready = pass.condition(conditions::READY).unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(
            ready.message,
            "deletion is waiting for: cancelling the VM contract 7"
        );
        assert_eq!(ctx.metrics.time_to_ready.get_sample_count(), 0);
    }
}
