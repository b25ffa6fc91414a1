//! The warm pool: machines built ahead of any tester (`WarmMachine`), kept at the size the
//! HostPool asks for ([`pool`]), built by [`build`], claimed by new Testers
//! (`tester::warm_start`).
//!
//! Who owns a machine's contract: the WarmMachine until a Tester's claim is written on it; from
//! then on the Tester. A claimed WarmMachine is deleted only once its Tester's status records
//! the contract (or the Tester is gone, and then the contract is cancelled), so a contract is
//! never cancelled under a tester and never leaked.

mod build;
mod install;
mod name;
pub mod pool;
mod teardown;

use std::{sync::Arc, time::Duration};

use kube::{
    Api, ResourceExt,
    api::DeleteParams,
    runtime::{
        controller::Action,
        finalizer::{Event as Finalizer, finalizer},
    },
};
use tracing::{info, instrument, warn};

pub use build::WARM_BUILD;

use crate::{
    context::Context,
    error::{Error, KubeContext, Result},
    resources::{HostPool, Tester, WarmMachine, WarmPhase},
    tester::{Flow, warm_start},
};

/// The finalizer that keeps a WarmMachine until its contract is cancelled or handed over.
pub const FINALIZER: &str = "sandbox.hero.dev/warm-cleanup";

/// Reconciles one WarmMachine.
#[instrument(skip_all, fields(warm_machine = %machine.name_any()))]
pub async fn reconcile(machine: Arc<WarmMachine>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics
        .reconciles
        .with_label_values(&["warmmachine"])
        .inc();
    let ns = machine
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<WarmMachine> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, machine, |event| async {
        match event {
            Finalizer::Apply(m) => apply(m, ctx.clone()).await,
            Finalizer::Cleanup(m) => cleanup(m, ctx.clone()).await,
        }
    })
    .await
    .map_err(Error::from)
}

/// Requeue policy on errors.
pub fn error_policy(_machine: Arc<WarmMachine>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .errors
        .with_label_values(&["warmmachine", "reconcile", error.label()])
        .inc();
    warn!(error = %error, "warm machine reconcile failed");
    Action::requeue(ctx.config.scaled(Duration::from_secs(5)))
}

/// Where the claim's Tester stands.
enum Claimant {
    /// Its status records the machine: the hand-over is complete.
    Recorded,
    /// It exists and has not recorded it yet.
    Pending,
    /// It no longer exists (deleted, or another object now has its name), or it has a machine
    /// of its own and will never take this one.
    Gone,
}

/// Reads the claiming Tester from the API server (not a cache: a Tester the cache has not seen
/// go must not lose its machine, nor a gone one keep it).
async fn claimant(ctx: &Context, machine: &WarmMachine) -> Result<Option<Claimant>> {
    let Some(claim) = &machine.spec.claim else {
        return Ok(None);
    };
    let api: Api<Tester> =
        Api::namespaced(ctx.client.clone(), &machine.namespace().unwrap_or_default());
    ctx.kube_turn().await;
    let tester = api
        .get_opt(&claim.tester)
        .await
        .kube("reading the Tester that claimed a warm machine")?;
    Ok(Some(match tester {
        Some(t) if t.uid().as_deref() == Some(claim.tester_uid.as_str()) => {
            if warm_start::recorded(&t, machine) {
                Claimant::Recorded
            } else if warm_start::placed_elsewhere(&t, machine) {
                Claimant::Gone
            } else {
                Claimant::Pending
            }
        }
        _ => Claimant::Gone,
    }))
}

async fn apply(machine: Arc<WarmMachine>, ctx: Arc<Context>) -> Result<Action> {
    let ns = machine.namespace().unwrap_or_default();
    let name = machine.name_any();
    if machine.spec.claim.is_some() {
        return match claimant(&ctx, &machine).await? {
            Some(Claimant::Pending) => Ok(Action::requeue(Duration::from_secs(2))),
            // Handed over (its clean-up leaves the contract), or its Tester is gone (its
            // clean-up cancels it): either way the WarmMachine goes.
            _ => {
                delete(&ctx, &ns, &name).await?;
                Ok(Action::await_change())
            }
        };
    }
    let pool = match ctx.stores.get().and_then(|s| {
        s.pools.get(
            &kube::runtime::reflector::ObjectRef::<HostPool>::new(&machine.spec.host_pool)
                .within(&ns),
        )
    }) {
        Some(p) => p,
        // Its pool is gone: the owner reference's garbage collection deletes it.
        None => return Ok(Action::requeue(Duration::from_secs(30))),
    };
    let mut b = build::Build {
        ctx: &ctx,
        machine: &machine,
        pool: &pool,
        ns,
        name,
        uid: machine.uid().unwrap_or_default(),
        status: machine.status.clone().unwrap_or_default(),
    };
    let flow = build::build(&mut b).await;
    b.persist().await?;
    match flow? {
        Flow::Continue => Ok(Action::requeue(build::health_interval(&ctx))),
        Flow::Requeue(after) => Ok(Action::requeue(ctx.config.scaled(after))),
    }
}

/// The contract is cancelled unless a Tester took it over.
async fn cleanup(machine: Arc<WarmMachine>, ctx: Arc<Context>) -> Result<Action> {
    match claimant(&ctx, &machine).await? {
        Some(Claimant::Recorded) => {
            if let Some(uid) = machine.uid() {
                ctx.ledger.lock().await.release(&uid);
            }
            info!(warm_machine = %machine.name_any(), "handed over to its tester");
        }
        Some(Claimant::Pending) => {
            return Err(Error::DeletionPending(format!(
                "warm machine {} waits for tester {} to record it",
                machine.name_any(),
                machine
                    .spec
                    .claim
                    .as_ref()
                    .map_or("", |c| c.tester.as_str())
            )));
        }
        None | Some(Claimant::Gone) => {
            teardown::tear_down(&ctx, &machine).await?;
            let phase = machine.status.as_ref().map(|s| s.phase);
            info!(warm_machine = %machine.name_any(), ?phase, "warm machine removed from the grid");
        }
    }
    Ok(Action::await_change())
}

async fn delete(ctx: &Context, ns: &str, name: &str) -> Result<()> {
    let api: Api<WarmMachine> = Api::namespaced(ctx.client.clone(), ns);
    ctx.kube_turn().await;
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube {
            action: "deleting a warm machine",
            source: e,
        }),
    }
}

/// Whether a phase counts as being built.
pub fn warming(phase: WarmPhase) -> bool {
    matches!(
        phase,
        WarmPhase::Pending | WarmPhase::Deploying | WarmPhase::Installing
    )
}
