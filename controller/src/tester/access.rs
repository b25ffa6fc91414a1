//! Step `TokensRegistered`: the tester's engine token (minted here, kept in a Secret, registered
//! with every SharedEngine it uses, proven by a call), and the keys and access handed to the
//! machine: engine URL + token pairs, the chosen AI-provider keys, SSH keys.

use std::collections::BTreeMap;

use gridapi::agent::{
    AgentConfigView, AiKeys, EngineCredential, EngineCredentials, SshKeys, digest, ssh_keys_digest,
};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt, runtime::reflector::ObjectRef};
use secrecy::{ExposeSecret, SecretString};

use super::{
    Flow, Pass,
    conditions::TOKENS_REGISTERED,
    grid::{agent, agent_view, forget_agent_view},
    secrets::rotatable_secret,
};
use crate::{
    engines::{EngineError, TokenStore},
    error::{Error, KubeContext, Result},
    names::engine_identity,
    resources::{RegisteredEngine, SharedEngine},
    sharedengine::token_store,
};

/// Set (or change) this annotation's value to give the tester a new engine token: it is
/// registered with every engine (the old one stops working there) and handed to the machine.
pub const ROTATE_TOKEN_ANNOTATION: &str = "sandbox.hero.dev/rotate-engine-token";

/// Key of the token in the tester's token Secret.
pub const TOKEN_KEY: &str = "token";

/// Name of the Secret holding a tester's engine token.
pub fn token_secret_name(tester: &str) -> String {
    format!("{tester}-engine-token")
}

/// Owns `TokensRegistered`.
pub async fn tokens(pass: &mut Pass<'_>) -> Result<Flow> {
    let target = agent(pass)?;
    let rotation = pass
        .tester
        .annotations()
        .get(ROTATE_TOKEN_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let token: SecretString = rotatable_secret(
        pass,
        &token_secret_name(&pass.name),
        TOKEN_KEY,
        48,
        &rotation,
    )
    .await?
    .into();
    pass.status.token_secret = Some(token_secret_name(&pass.name));
    let identity = identity_of(pass);
    pass.status.engine_identity = Some(identity.clone());

    let wanted = match spec_engines(pass).await? {
        Ok(wanted) => wanted,
        Err(name) => {
            pass.set(
                TOKENS_REGISTERED,
                false,
                "EngineNotFound",
                &format!(
                    "SharedEngine {name:?} does not exist in namespace {:?}",
                    pass.ns
                ),
            );
            return Ok(Flow::Requeue(std::time::Duration::from_secs(60)));
        }
    };
    // Recorded before the token is sent anywhere: deletion must find every store that may
    // hold it, even when this pass stops right after sending. A new tester's placement write
    // carried them already (`intend`).
    record_engines(pass, &wanted);
    let written = &pass.written().registered_engines;
    if !pass
        .status
        .registered_engines
        .iter()
        .all(|e| written.contains(e))
    {
        pass.persist().await?;
    }

    let mut credentials = Vec::new();
    for se in &wanted {
        let Some(store) = token_store(pass.ctx, se).await? else {
            pass.set(
                TOKENS_REGISTERED,
                false,
                "EngineCredentialMissing",
                &format!(
                    "the token-store credential Secret that SharedEngine {:?} names is missing or lacks its key",
                    se.name_any()
                ),
            );
            return Ok(Flow::Requeue(std::time::Duration::from_secs(60)));
        };
        register_and_prove(pass, se, &store, &identity, &token).await?;
        credentials.push(EngineCredential {
            engine: se.spec.engine.clone(),
            url: se.spec.url.clone(),
            token: token.expose_secret().to_string(),
        });
    }

    let (ai_keys, missing) = ai_keys(pass).await?;
    let mut ssh_keys: Vec<String> = pass
        .ctx
        .config
        .support_ssh_keys
        .iter()
        .filter(|k| !k.trim().is_empty())
        .cloned()
        .collect();
    ssh_keys.extend(pass.tester.spec.ssh_key.clone());

    let view = agent_view(pass).await?;
    let fresh = !pass.done_for_generation(TOKENS_REGISTERED);
    let stale = Stale::of(&view, &credentials, &ai_keys, &ssh_keys);
    if fresh || stale.engines {
        let body = EngineCredentials {
            engines: credentials.clone(),
        };
        pass.ctx
            .grid(
                "agent_set_engines",
                pass.ctx.grid.agents.set_engines(&target, &body),
            )
            .await?;
        forget_agent_view(pass);
    }
    if fresh || stale.ai_keys {
        let body = AiKeys {
            keys: ai_keys.clone(),
        };
        pass.ctx
            .grid(
                "agent_set_ai_keys",
                pass.ctx.grid.agents.set_ai_keys(&target, &body),
            )
            .await?;
        forget_agent_view(pass);
    }
    if fresh || stale.ssh_keys {
        let body = SshKeys {
            keys: ssh_keys.clone(),
        };
        pass.ctx
            .grid(
                "agent_set_ssh_keys",
                pass.ctx.grid.agents.set_ssh_keys(&target, &body),
            )
            .await?;
        forget_agent_view(pass);
    }

    if !missing.is_empty() {
        let msg = format!(
            "no key for AI provider(s) {} in Secret {:?}; the other {} key(s) were handed over",
            missing.join(", "),
            pass.ctx.config.ai_keys_secret,
            ai_keys.len()
        );
        pass.set(TOKENS_REGISTERED, false, "AIKeyMissing", &msg);
        return Ok(Flow::Requeue(std::time::Duration::from_secs(60)));
    }
    let engines = credentials
        .iter()
        .map(|c| c.engine.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let msg = format!(
        "token registered and proven with [{engines}]; {} AI-provider key(s) and {} SSH key(s) on the machine",
        ai_keys.len(),
        ssh_keys.len()
    );
    pass.set(TOKENS_REGISTERED, true, "Registered", &msg);
    Ok(Flow::Continue)
}

/// Which of the machine's settings differ from what it should hold, compared by value (the
/// agent reports a digest of each secret): a rotated token, AI key or SSH key is handed over
/// again.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stale {
    engines: bool,
    ai_keys: bool,
    ssh_keys: bool,
}

impl Stale {
    fn of(
        view: &AgentConfigView,
        engines: &[EngineCredential],
        ai_keys: &BTreeMap<String, String>,
        ssh_keys: &[String],
    ) -> Stale {
        let urls: BTreeMap<String, String> = engines
            .iter()
            .map(|c| (c.engine.clone(), c.url.clone()))
            .collect();
        let tokens: BTreeMap<String, String> = engines
            .iter()
            .map(|c| (c.engine.clone(), digest(&c.token)))
            .collect();
        let ai: BTreeMap<String, String> = ai_keys
            .iter()
            .map(|(p, k)| (p.clone(), digest(k)))
            .collect();
        Stale {
            engines: view.engines != urls || view.engine_token_digests != tokens,
            ai_keys: view.ai_key_digests != ai,
            ssh_keys: view.ssh_keys_digest != ssh_keys_digest(ssh_keys),
        }
    }
}

/// The identity the engines know this tester by: the recorded one, or (first time) a new one.
pub fn identity_of(pass: &Pass<'_>) -> String {
    pass.status
        .engine_identity
        .clone()
        .unwrap_or_else(|| engine_identity(&pass.ns, &pass.tester.spec.account_name, &pass.uid))
}

/// The spec's SharedEngines, or the name of the first one that does not exist.
async fn spec_engines(pass: &Pass<'_>) -> Result<std::result::Result<Vec<SharedEngine>, String>> {
    let engines: Api<SharedEngine> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    let mut wanted = Vec::new();
    for name in &pass.tester.spec.shared_engines {
        pass.ctx.kube_turn().await;
        match engines.get_opt(name).await.kube("reading a SharedEngine")? {
            Some(se) => wanted.push(se),
            None => return Ok(Err(name.clone())),
        }
    }
    Ok(Ok(wanted))
}

/// Adds `engines` to `registeredEngines` (in memory; sorted, no duplicates).
fn record_engines(pass: &mut Pass<'_>, engines: &[SharedEngine]) {
    let registered = &mut pass.status.registered_engines;
    for se in engines {
        let entry = registered_entry(se);
        if !registered.contains(&entry) {
            registered.push(entry);
        }
    }
    registered.sort();
}

/// Records, in memory, the engines a new tester's token will be sent to, so that the status
/// write of its placement carries them and the tokens step need not write again before sending.
/// An engine recorded but never sent the token is harmless: deletion's revoke is idempotent.
pub async fn intend(pass: &mut Pass<'_>) -> Result<()> {
    if let Ok(engines) = spec_engines(pass).await? {
        record_engines(pass, &engines);
    }
    Ok(())
}

/// The status entry recording that `se`'s token store may hold the tester's token.
pub fn registered_entry(se: &SharedEngine) -> RegisteredEngine {
    RegisteredEngine {
        name: se.name_any(),
        token_store_url: se.spec.token_store.url.clone(),
    }
}

/// Proves the token with one engine call; registers it first when the engine refuses it.
async fn register_and_prove(
    pass: &Pass<'_>,
    se: &SharedEngine,
    store: &TokenStore,
    identity: &str,
    token: &SecretString,
) -> Result<()> {
    let engines = &pass.ctx.engines;
    let failed = |source| Error::Engine {
        engine: se.name_any(),
        source,
    };
    let info = engines.info(store).await.map_err(failed)?;
    let call = || engines.call(&se.spec.url, &info.call_path, identity, token);
    match call().await {
        Ok(()) => return Ok(()),
        Err(EngineError::TokenRefused { .. }) => {}
        Err(e) => return Err(failed(e)),
    }
    engines
        .register(store, identity, token)
        .await
        .map_err(failed)?;
    call().await.map_err(failed)
}

/// The chosen AI-provider keys from the operator's Secret, and the providers it has no key for.
async fn ai_keys(pass: &Pass<'_>) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    let wanted = &pass.tester.spec.ai_providers;
    if wanted.is_empty() {
        return Ok((BTreeMap::new(), Vec::new()));
    }
    let name = &pass.ctx.config.ai_keys_secret;
    let secret = match pass.ctx.stores.get() {
        // The watch's cache, once it has listed.
        Some(stores) => {
            stores
                .ai_keys
                .wait_until_ready()
                .await
                .map_err(|_| Error::Poisoned("AI-provider keys cache"))?;
            stores
                .ai_keys
                .get(&ObjectRef::new(name).within(&pass.ns))
                .map(|s| s.as_ref().clone())
        }
        // No watches (unit tests).
        None => {
            pass.ctx.kube_turn().await;
            Api::<Secret>::namespaced(pass.ctx.client.clone(), &pass.ns)
                .get_opt(name)
                .await
                .kube("reading the AI-provider keys Secret")?
        }
    };
    let data = secret.and_then(|s| s.data).unwrap_or_default();
    let mut keys = BTreeMap::new();
    let mut missing = Vec::new();
    for provider in wanted {
        match data
            .get(provider)
            .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
            .filter(|v| !v.is_empty())
        {
            Some(key) => {
                keys.insert(provider.clone(), key);
            }
            None => missing.push(provider.clone()),
        }
    }
    Ok((keys, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_stale_when_a_value_differs_not_only_a_count() {
        let engines = vec![EngineCredential {
            engine: "voice".into(),
            url: "http://voice".into(),
            token: "new-token".into(),
        }];
        let ai = BTreeMap::from([("openai".to_string(), "sk-new".to_string())]);
        let ssh = vec!["ssh-ed25519 AAAA new".to_string()];
        let on_machine = |token: &str, key: &str, ssh_key: &str| AgentConfigView {
            engines: [("voice".to_string(), "http://voice".to_string())].into(),
            engine_token_digests: [("voice".to_string(), digest(token))].into(),
            ssh_keys: 1,
            ssh_keys_digest: ssh_keys_digest(&[ssh_key.to_string()]),
            ai_providers: vec!["openai".into()],
            ai_key_digests: [("openai".to_string(), digest(key))].into(),
            ..Default::default()
        };
        let current = on_machine("new-token", "sk-new", "ssh-ed25519 AAAA new");
        assert_eq!(Stale::of(&current, &engines, &ai, &ssh), Stale::default());
        let old = on_machine("old-token", "sk-old", "ssh-ed25519 AAAA old");
        assert_eq!(
            Stale::of(&old, &engines, &ai, &ssh),
            Stale {
                engines: true,
                ai_keys: true,
                ssh_keys: true
            }
        );
    }
}
