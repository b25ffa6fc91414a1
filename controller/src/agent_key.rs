//! The controller's agent-signing key: every request to a VM agent is signed with it, and each
//! VM gets only its public half ([`gridapi::agent::signing`]). It lives in a Secret in the
//! controller's namespace, made by the first replica that starts (a random ed25519 key) and
//! read by every later start, so replicas and restarts sign with the same key.

use std::collections::BTreeMap;

use gridapi::agent::signing::ControllerKey;
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{Api, api::PostParams};

/// Data key of the signing key (base64 of its 32-byte seed) in the Secret.
pub const SIGNING_KEY: &str = "signing-key";

/// Why the signing key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum AgentKeyError {
    /// The API server refused or failed.
    #[error(
        "cannot {action} the agent-signing key Secret {namespace}/{name}: {source}; check the controller's RBAC for Secrets in its namespace"
    )]
    Kube {
        /// What was being done.
        action: &'static str,
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The failure.
        source: Box<kube::Error>,
    },
    /// The Secret exists but holds no usable key.
    #[error(
        "the Secret {namespace}/{name} has no valid {SIGNING_KEY:?} (base64 of 32 bytes): delete it to have a new key made (every VM is then re-keyed when redeployed) or put the right value back"
    )]
    Invalid {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
}

/// Reads the signing key from `namespace/name`, creating the Secret with a new key when it
/// does not exist (when two replicas race, the loser reads the winner's key).
pub async fn load_or_create(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<ControllerKey, AgentKeyError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let kube = |action| {
        move |source| AgentKeyError::Kube {
            action,
            namespace: namespace.into(),
            name: name.into(),
            source: Box::new(source),
        }
    };
    if let Some(s) = api.get_opt(name).await.map_err(kube("read"))? {
        return key_of(&s, namespace, name);
    }
    let key = ControllerKey::generate();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "sandbox-controller".to_string(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            SIGNING_KEY.to_string(),
            ByteString(key.to_base64().into_bytes()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(namespace, name, public_key = %key.public().to_base64(), "made a new agent-signing key");
            Ok(key)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let s = api.get(name).await.map_err(kube("read"))?;
            key_of(&s, namespace, name)
        }
        Err(e) => Err(kube("create")(e)),
    }
}

fn key_of(secret: &Secret, namespace: &str, name: &str) -> Result<ControllerKey, AgentKeyError> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(SIGNING_KEY))
        .and_then(|v| ControllerKey::from_base64(&String::from_utf8_lossy(&v.0)).ok())
        .ok_or_else(|| AgentKeyError::Invalid {
            namespace: namespace.into(),
            name: name.into(),
        })
}
