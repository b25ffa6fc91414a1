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

use k8s_openapi::api::core::v1::Secret;

use crate::{
    context::Context,
    engines::TokenStore,
    error::{Error, KubeContext, Result},
    resources::{ConditionExt, SharedEngine, SharedEngineStatus},
    tester::secret_value,
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
    let (ok, reason, message) = match token_store(&ctx, &se).await? {
        None => (
            false,
            "CredentialMissing",
            "the token-store credential Secret or key named in spec.tokenStore.credentials is missing"
                .to_string(),
        ),
        Some(store) => match ctx.engines.info(&store).await {
            Ok(info) if info.engine == se.spec.engine => {
                status.testers = u32::try_from(info.tokens).unwrap_or(u32::MAX);
                (
                    true,
                    "Available",
                    format!(
                        "{}'s token store answers; {} tester token(s) registered",
                        se.spec.engine, info.tokens
                    ),
                )
            }
            Ok(info) => (
                false,
                "WrongEngine",
                format!(
                    "the token store at {} belongs to engine {:?}, not {:?}",
                    store.url, info.engine, se.spec.engine
                ),
            ),
            Err(e) => (false, "TokenStoreUnavailable", e.to_string()),
        },
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
    }
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// The engine's token store with its credential (read from the Secret the SharedEngine
/// names); `None` when that Secret or key is missing.
pub async fn token_store(ctx: &Context, se: &SharedEngine) -> Result<Option<TokenStore>> {
    let credential = match &se.spec.token_store.credentials {
        None => None,
        Some(r) => {
            ctx.kube_turn().await;
            let ns = se
                .namespace()
                .ok_or(Error::MissingField("metadata.namespace"))?;
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            match secrets
                .get_opt(&r.name)
                .await
                .kube("reading a token-store credential Secret")?
                .and_then(|s| secret_value(&s, &r.key))
            {
                Some(v) => Some(v.into()),
                None => return Ok(None),
            }
        }
    };
    Ok(Some(TokenStore {
        url: se.spec.token_store.url.clone(),
        credential,
    }))
}

/// Requeue policy on errors.
pub fn error_policy(_se: Arc<SharedEngine>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .errors
        .with_label_values(&["sharedengine", "reconcile", error.label()])
        .inc();
    Action::requeue(Duration::from_secs(10))
}
