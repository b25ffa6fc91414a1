//! The SharedEngine reconciler: whether the engine listens and its token store answers, and how
//! many testers' tokens it holds.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;

use crate::{
    context::Context,
    error::{Error, KubeContext, Result},
    resources::{ConditionExt, SharedEngine, SharedEngineStatus},
};

/// Reconciles one SharedEngine.
pub async fn reconcile(se: Arc<SharedEngine>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics
        .reconciles
        .with_label_values(&["sharedengine"])
        .inc();
    let ns = se
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let old = se.status.clone().unwrap_or_default();
    let mut status = SharedEngineStatus {
        conditions: old.conditions.clone(),
        testers: old.testers,
        ..Default::default()
    };
    let (ok, reason, message) = match ctx.grid("list_engines", ctx.grid.list_engines()).await {
        Ok(engines) => match engines.into_iter().find(|e| e.name == se.spec.engine) {
            Some(e) if e.listening && e.token_store_available => {
                status.testers = e.tokens as u32;
                (
                    true,
                    "Available",
                    format!(
                        "{} answers; {} tester token(s) registered",
                        se.spec.engine, e.tokens
                    ),
                )
            }
            Some(e) if !e.token_store_available => (
                false,
                "TokenStoreUnavailable",
                format!(
                    "{}'s token store is unavailable, so it refuses to listen",
                    se.spec.engine
                ),
            ),
            Some(_) => (
                false,
                "NotListening",
                format!("{} is not listening", se.spec.engine),
            ),
            None => (
                false,
                "EngineNotFound",
                format!(
                    "the grid's admin machine runs no engine {:?}",
                    se.spec.engine
                ),
            ),
        },
        Err(e) => (false, "GridUnavailable", e.to_string()),
    };
    status.phase = Some(if ok { "Available" } else { "Unavailable" }.into());
    status.conditions.set_condition(
        Condition {
            type_: "Available".into(),
            status: if ok { "True" } else { "False" }.into(),
            reason: reason.into(),
            message,
            observed_generation: se.metadata.generation,
            last_transition_time: Time(Timestamp::now()),
        },
        Time(Timestamp::now()),
    );
    status.observed_generation = se.metadata.generation;
    if status != old {
        ctx.kube_turn().await;
        let api: Api<SharedEngine> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"apiVersion": "sandbox.hero.dev/v1alpha1", "kind": "SharedEngine", "status": status});
        api.patch_status(
            &se.name_any(),
            &PatchParams::apply(crate::tester::MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .kube("writing the SharedEngine status")?;
        ctx.count_write("patch", "sharedengines/status");
    }
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// Requeue policy on errors.
pub fn error_policy(_se: Arc<SharedEngine>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .errors
        .with_label_values(&["sharedengine", "reconcile", error.label()])
        .inc();
    Action::requeue(Duration::from_secs(10))
}
