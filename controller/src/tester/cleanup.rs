//! Deletion: nothing of the tester may be left on the grid.
//!
//! The token is revoked on *every* engine (not only those in the spec: an engine removed from
//! the spec may still hold it), the gateway deployment, the name and the VM are cancelled (what
//! the status records, and anything else on the grid tagged with the Tester's UID), the Secrets
//! are deleted and the placement released. Every step tolerates "already gone"; while anything
//! remains the finalizer stays and the status says what deletion waits for.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api, ResourceExt,
    api::DeleteParams,
    runtime::{controller::Action, events::EventType},
};

use super::{
    Pass,
    access::{identity_of, token_secret_name},
    conditions::READY,
    email::password_secret_name,
    gateway::{MAX_NAME_ATTEMPTS, held_by_another_tester},
    grid::{cancel_contract, tagged_contracts},
    install::log_config_map_name,
};
use crate::{
    context::Context,
    engines::TokenStore,
    error::{Error, KubeContext, Result},
    names::gateway_name,
    resources::{ManagementPolicy, SharedEngine, Tester},
    sharedengine::token_store,
};

/// Removes everything the tester has on the grid and in the cluster.
pub async fn cleanup(tester: Arc<Tester>, ctx: Arc<Context>) -> Result<Action> {
    let mut pass = Pass::new(&tester, &ctx)?;
    super::pause::resume(&mut pass);
    let mut waiting: Vec<String> = Vec::new();
    let policy = tester.spec.management_policy;

    // An observed tester was never ours to change: nothing on the grid is touched.
    if policy != ManagementPolicy::ObserveOnly {
        revoke_tokens(&mut pass, &mut waiting).await?;
    }
    if policy == ManagementPolicy::Full {
        for (what, id) in contracts_to_cancel(&pass).await? {
            if let Err(e) = cancel_contract(&pass, id).await {
                waiting.push(format!("cancelling the {what} contract {id}: {e}"));
            }
        }
        if waiting.is_empty() {
            // Verify: nothing tagged with this tester, and the name no longer ours.
            let left = contracts_to_cancel(&pass).await?;
            if !left.is_empty() {
                waiting.push(format!("{} contract(s) still on the grid", left.len()));
            }
        }
    }

    // The sign-in client goes with every policy (a credential, like the tokens); the account
    // only when this Tester made it and its accountDeletionPolicy is Delete.
    if policy != ManagementPolicy::ObserveOnly {
        if let Err(e) = super::sign_in_client::delete_client(&pass).await {
            waiting.push(format!("deleting the sign-in client at the Forge: {e}"));
        }
        if let Err(e) = super::account::delete_account(&pass).await {
            waiting.push(format!("deleting the account at the Forge: {e}"));
        }
    }

    if !waiting.is_empty() {
        let msg = format!("deletion is waiting for: {}", waiting.join("; "));
        pass.set(READY, false, "Deleting", &msg);
        pass.conclude().await?;
        return Err(Error::DeletionPending(msg));
    }

    delete_owned(&pass).await?;
    ctx.ledger.lock().await.release(&pass.uid);
    ctx.written_versions
        .lock()
        .expect("versions lock")
        .remove(&pass.uid);
    ctx.forget_new(&pass.uid);
    // The freed place must show in the pool's next listing: waiting testers are woken by it.
    let key = format!("{}/{}", pass.ns, tester.spec.host_pool);
    ctx.pools.lock().expect("pools lock").remove(&key);
    let (reason, note, done) = match policy {
        ManagementPolicy::Full => (
            "Deleted",
            "token revoked on every engine; gateway, name and VM contracts cancelled".to_string(),
            "nothing of this tester is left on the grid",
        ),
        ManagementPolicy::OrphanOnDelete => (
            "Orphaned",
            format!(
                "token revoked on every engine; left on the grid as managementPolicy OrphanOnDelete asks: {}",
                orphans(&pass)
            ),
            "the machine and its name stay on the grid (OrphanOnDelete)",
        ),
        ManagementPolicy::ObserveOnly => (
            "Released",
            "observe-only: nothing on the grid was touched".to_string(),
            "nothing on the grid was touched (ObserveOnly)",
        ),
    };
    pass.event(EventType::Normal, reason, &note);
    pass.set(READY, false, "Deleted", done);
    pass.conclude().await?;
    Ok(Action::await_change())
}

/// The contracts an orphaning deletion leaves, for its Event.
fn orphans(pass: &Pass<'_>) -> String {
    let m = pass.status.machine.clone().unwrap_or_default();
    let mut parts = Vec::new();
    if let Some(id) = m.contract_id {
        parts.push(format!("VM contract {id}"));
    }
    if let Some(id) = m.gateway_contract_id {
        parts.push(format!("gateway contract {id}"));
    }
    if let (Some(id), Some(name)) = (m.name_contract_id, &pass.status.gateway_name) {
        parts.push(format!("name {name} (contract {id})"));
    }
    if parts.is_empty() {
        "nothing was created yet".into()
    } else {
        parts.join(", ")
    }
}

/// Revokes the tester's token from every token store that may hold it: each one recorded in
/// its status, and each SharedEngine of the namespace (an engine removed from the spec may
/// still hold it). A store that does not answer keeps the finalizer, unless its SharedEngine
/// was deleted: then its tokens went with it, and an Event says so.
async fn revoke_tokens(pass: &mut Pass<'_>, waiting: &mut Vec<String>) -> Result<()> {
    let ctx = pass.ctx;
    let identity = identity_of(pass);
    ctx.kube_turn().await;
    let engines: Api<SharedEngine> = Api::namespaced(ctx.client.clone(), &pass.ns);
    let existing = engines
        .list(&Default::default())
        .await
        .kube("listing the SharedEngines")?
        .items;
    let mut stores: Vec<(String, TokenStore)> = Vec::new();
    for se in &existing {
        match token_store(ctx, se).await? {
            Some(store) => stores.push((se.name_any(), store)),
            None => waiting.push(format!(
                "the token-store credential of SharedEngine {} (missing Secret or key)",
                se.name_any()
            )),
        }
    }
    let live: Vec<String> = existing
        .iter()
        .map(|se| se.spec.token_store.url.clone())
        .collect();
    for r in &pass.status.registered_engines {
        if !live.contains(&r.token_store_url) {
            stores.push((
                r.name.clone(),
                TokenStore {
                    url: r.token_store_url.clone(),
                    credential: None,
                },
            ));
        }
    }
    for (name, store) in stores {
        let deleted = !existing.iter().any(|se| se.name_any() == name);
        if let Err(e) = ctx.engines.revoke(&store, &identity).await {
            if deleted {
                pass.event(
                    EventType::Normal,
                    "TokenStoreGone",
                    &format!(
                        "SharedEngine {name} was deleted and its token store does not answer ({e}); the token went with it"
                    ),
                );
            } else {
                waiting.push(format!("revoking the token on SharedEngine {name}: {e}"));
            }
        }
    }
    Ok(())
}

/// Every contract of this tester: those in the status, the holder of its name when it is ours,
/// and any contract tagged with its UID (a contract created by a pass whose status write was
/// lost). Gateway first, then the name, then the VM.
async fn contracts_to_cancel(pass: &Pass<'_>) -> Result<Vec<(&'static str, u64)>> {
    let ctx = pass.ctx;
    let mut out: Vec<(&'static str, u64)> = Vec::new();
    let mut push = |what: &'static str, id: u64| {
        if !out.iter().any(|(_, i)| *i == id) {
            out.push((what, id));
        }
    };
    // The proxy's listing lags: it finds what a lost status write forgot, while the recorded
    // contracts below are checked on the chain, which is exact.
    for c in tagged_contracts(ctx).await? {
        if c.tag.tester == pass.uid {
            push(
                if c.tag.kind == "gw" { "gateway" } else { "VM" },
                c.contract_id,
            );
        }
    }
    for name in names_of(pass) {
        let recorded = pass.status.gateway_name.as_deref() == Some(name.as_str());
        if let Some(owner) = ctx.grid("name_owner", ctx.grid.chain.name_owner(&name)).await?
            && owner.twin_id == ctx.grid.twin_id()
            // A custom name claimed by a pass whose status write was lost is ours unless
            // another Tester records it (two Testers may ask for the same custom name).
            && (recorded || !held_by_another_tester(pass, &name).await?)
        {
            push("name", owner.contract_id);
        }
    }
    if let Some(m) = &pass.status.machine {
        let recorded = [
            ("gateway", m.gateway_contract_id),
            ("name", m.name_contract_id),
            ("VM", m.contract_id),
        ]
        .into_iter()
        .filter_map(|(what, id)| Some((what, id?)))
        .chain(
            m.retired_contracts
                .iter()
                .map(|id| ("retired machine's", *id)),
        );
        for (what, id) in recorded {
            let live = ctx
                .grid("get_contract", ctx.grid.chain.contract(id))
                .await?
                .is_some_and(|c| c.twin_id == ctx.grid.twin_id());
            if live {
                push(what, id);
            }
        }
    }
    out.sort_by_key(|(what, _)| match *what {
        "gateway" => 0,
        "name" => 1,
        _ => 2,
    });
    Ok(out)
}

/// The names this tester may hold: the one in its status, and every name it could have claimed
/// before a status write was lost (its custom name, or its UID-derived candidates).
fn names_of(pass: &Pass<'_>) -> Vec<String> {
    let spec = &pass.tester.spec;
    let mut names: Vec<String> = pass.status.gateway_name.iter().cloned().collect();
    match &spec.gateway_name {
        Some(custom) => names.push(custom.clone()),
        None => names
            .extend((0..MAX_NAME_ATTEMPTS).map(|i| gateway_name(&spec.account_name, &pass.uid, i))),
    }
    names.dedup();
    names
}

/// Deletes the Secrets and the ConfigMap the controller made for the tester (they are owned by
/// the Tester too, so the garbage collector would remove them; deleting them here means they
/// are gone before the Tester is).
async fn delete_owned(pass: &Pass<'_>) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    for name in [
        token_secret_name(&pass.name),
        password_secret_name(&pass.name),
    ] {
        pass.ctx.kube_turn().await;
        match secrets.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e).kube("deleting a tester Secret"),
        }
    }
    let cms: Api<ConfigMap> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    pass.ctx.kube_turn().await;
    match cms
        .delete(&log_config_map_name(&pass.name), &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e).kube("deleting the install log ConfigMap"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeGrid, context, tester};

    #[tokio::test]
    async fn a_custom_name_not_yet_recorded_is_looked_for_on_delete() {
        let ctx = context(FakeGrid::default());
        let mut t = tester("c", "carl");
        t.spec.gateway_name = Some("carlsbox".into());
        let pass = Pass::new(&t, &ctx).unwrap();
        // Claimed by a pass whose status write was lost: the status does not name it.
        assert_eq!(names_of(&pass), ["carlsbox"]);
        let mut generated = tester("g", "gina");
        generated.status = Some(crate::resources::TesterStatus {
            gateway_name: Some(gateway_name("gina", "uid-g", 0)),
            ..Default::default()
        });
        let pass = Pass::new(&generated, &ctx).unwrap();
        let names = names_of(&pass);
        assert_eq!(names.len() as u32, MAX_NAME_ATTEMPTS, "{names:?}");
        assert_eq!(names[0], gateway_name("gina", "uid-g", 0));
    }
}
