//! The machine's random keys (private-network key, mycelium seed, machine id), made once per
//! machine build and kept in the Secret `<tester>-machine`, owned by the Tester (a warm
//! machine's in `<warm machine>-machine`, owned by it, until a tester claims it). They are
//! never derived from anything public (such as the UID): knowing a Tester does not give its
//! VM's keys.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{Api, api::PostParams};

use super::{Pass, deployment::MachineKeys, secrets::read_unless_absent};
use crate::{
    context::Context,
    error::{Error, KubeContext, Result},
};

const BUILD: &str = "build";
const MACHINE_ID: &str = "machine-id";
const NETWORK_KEY: &str = "network-key";
const SEED: &str = "seed";

/// Name of the Secret holding a tester's machine keys.
pub fn machine_secret_name(tester: &str) -> String {
    format!("{tester}-machine")
}

fn value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

/// The keys kept in `secret` for `build`, if it holds them.
fn keys_of(secret: &Secret, build: &str) -> Option<MachineKeys> {
    if value(secret, BUILD)? != build {
        return None;
    }
    let keys = MachineKeys {
        machine_id: value(secret, MACHINE_ID)?,
        network_key: value(secret, NETWORK_KEY)?,
        seed: value(secret, SEED)?,
    };
    // A damaged value is replaced rather than deployed.
    (keys.network_key.len() == 64 && keys.seed.len() == 12 && !keys.machine_id.is_empty())
        .then_some(keys)
}

fn data(keys: &MachineKeys, build: &str) -> BTreeMap<String, ByteString> {
    [
        (BUILD, build),
        (MACHINE_ID, keys.machine_id.as_str()),
        (NETWORK_KEY, keys.network_key.as_str()),
        (SEED, keys.seed.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect()
}

/// The keys of the machine of `build`: the kept ones, or new random ones kept first (a new
/// build replaces the old build's keys; the old machine is already cancelled).
pub async fn machine_keys(pass: &Pass<'_>, build: &str) -> Result<MachineKeys> {
    let name = machine_secret_name(&pass.name);
    let absent = pass.ctx.unmade(&pass.uid, &name);
    kept(pass.ctx, &pass.ns, pass.owned_meta(&name)?, build, absent).await
}

/// The keys kept in the Secret `meta` names for `build`, or new random ones kept first in a
/// Secret with `meta` (its owner and labels). With `absent`, the Secret is known not to exist
/// and is not read first.
pub async fn kept(
    ctx: &Context,
    ns: &str,
    meta: ObjectMeta,
    build: &str,
    absent: bool,
) -> Result<MachineKeys> {
    let name = meta
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let existing = read_unless_absent(
        ctx,
        &secrets,
        &name,
        absent,
        "reading the machine keys Secret",
    )
    .await?;
    if let Some(keys) = existing.as_ref().and_then(|s| keys_of(s, build)) {
        return Ok(keys);
    }
    let keys = MachineKeys::generate();
    let conflict = match keep(ctx, &secrets, meta.clone(), existing, &keys, build).await {
        Ok(()) => return Ok(keys),
        Err(kube::Error::Api(s)) if s.code == 409 => s,
        Err(e) => return Err(kept_error(e)),
    };
    // Another writer won: use what it kept, if it is for this build.
    ctx.kube_turn().await;
    let theirs = secrets
        .get(&name)
        .await
        .kube("reading the machine keys Secret")?;
    if let Some(keys) = keys_of(&theirs, build) {
        return Ok(keys);
    }
    if !absent {
        return Err(kept_error(kube::Error::Api(conflict)));
    }
    // Taken for absent, but there: a warm machine's keys handed over by a process stopped before
    // it recorded the claim; this (cold) build's keys replace them.
    keep(ctx, &secrets, meta, Some(theirs), &keys, build)
        .await
        .map_err(kept_error)?;
    Ok(keys)
}

fn kept_error(source: kube::Error) -> Error {
    Error::Kube {
        action: "keeping the machine keys",
        source,
    }
}

/// The keys kept in the Secret `name` for `build`, if it holds them.
pub async fn read(ctx: &Context, ns: &str, name: &str, build: &str) -> Result<Option<MachineKeys>> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    ctx.kube_turn().await;
    Ok(secrets
        .get_opt(name)
        .await
        .kube("reading the machine keys Secret")?
        .and_then(|s| keys_of(&s, build)))
}

/// Keeps `keys` for `build` in the tester's Secret (a claimed warm machine's keys become the
/// tester's own), replacing whatever it held.
pub async fn hand_over(pass: &Pass<'_>, keys: &MachineKeys, build: &str) -> Result<()> {
    let name = machine_secret_name(&pass.name);
    // Made here, before the claim is recorded: the machine step reads it rather than taking it
    // for unmade.
    pass.ctx.made(&pass.uid, &name);
    let secrets: Api<Secret> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    pass.ctx.kube_turn().await;
    let existing = secrets
        .get_opt(&name)
        .await
        .kube("reading the machine keys Secret")?;
    if existing.as_ref().and_then(|s| keys_of(s, build)).as_ref() == Some(keys) {
        return Ok(());
    }
    keep(
        pass.ctx,
        &secrets,
        pass.owned_meta(&name)?,
        existing,
        keys,
        build,
    )
    .await
    .kube("keeping the claimed machine's keys")
}

/// Creates the Secret, or replaces its data if nobody changed it since it was read.
async fn keep(
    ctx: &Context,
    secrets: &Api<Secret>,
    meta: ObjectMeta,
    existing: Option<Secret>,
    keys: &MachineKeys,
    build: &str,
) -> std::result::Result<(), kube::Error> {
    ctx.kube_turn().await;
    match existing {
        None => {
            let secret = Secret {
                metadata: meta,
                data: Some(data(keys, build)),
                type_: Some("Opaque".into()),
                ..Default::default()
            };
            secrets.create(&PostParams::default(), &secret).await?;
        }
        Some(old) => {
            let name = old.metadata.name.clone().unwrap_or_default();
            super::secrets::replace_data(secrets, &name, &old, data(keys, build)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::http::{Request, Response};
    use kube::client::Body;

    use super::*;
    use crate::testing::{FakeGrid, context_with};

    /// What the scripted API server was sent: method, path and body.
    type Sent = Arc<Mutex<Vec<(String, String, serde_json::Value)>>>;

    /// A client whose API server answers the requests in order with `answers` (status, body).
    fn scripted(answers: Vec<(u16, serde_json::Value)>) -> (kube::Client, Sent) {
        let sent = Sent::default();
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let log = sent.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let (log, answers) = (log.clone(), answers.clone());
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect_bytes().await.expect("request body");
                log.lock().unwrap().push((
                    parts.method.to_string(),
                    parts.uri.path().to_string(),
                    serde_json::from_slice(&body).unwrap_or_default(),
                ));
                let (status, answer) = answers.lock().unwrap().next().expect("a scripted answer");
                Ok::<_, std::convert::Infallible>(
                    Response::builder()
                        .status(status)
                        .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                        .unwrap(),
                )
            }
        });
        (kube::Client::new(service, "team"), sent)
    }

    fn conflict() -> (u16, serde_json::Value) {
        (
            409,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "AlreadyExists", "code": 409, "message": "secrets \"bob-machine\" already exists"}),
        )
    }

    fn warm_keys_secret() -> (MachineKeys, serde_json::Value) {
        let keys = MachineKeys::generate();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("bob-machine".into()),
                namespace: Some("team".into()),
                resource_version: Some("5".into()),
                ..Default::default()
            },
            data: Some(data(&keys, "warm-build")),
            ..Default::default()
        };
        (keys, serde_json::to_value(secret).unwrap())
    }

    fn meta() -> ObjectMeta {
        ObjectMeta {
            name: Some("bob-machine".into()),
            namespace: Some("team".into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn keys_taken_for_absent_but_left_by_a_stopped_warm_claim_are_replaced_in_the_same_pass()
    {
        let (warm, theirs) = warm_keys_secret();
        // The PATCH's answer is only read as a Secret.
        let (client, sent) = scripted(vec![conflict(), (200, theirs.clone()), (200, theirs)]);
        let ctx = context_with(FakeGrid::default(), client);
        let keys = kept(&ctx, "team", meta(), "cold-build", true).await;
        let sent = sent.lock().unwrap().clone();
        let calls: Vec<_> = sent.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
        assert_eq!(
            calls,
            [
                "POST /api/v1/namespaces/team/secrets",
                "GET /api/v1/namespaces/team/secrets/bob-machine",
                "PATCH /api/v1/namespaces/team/secrets/bob-machine",
            ]
        );
        let patch = &sent[2].2;
        assert_eq!(
            patch["metadata"]["resourceVersion"], "5",
            "only over what was read"
        );
        let written = Secret {
            data: serde_json::from_value(patch["data"].clone()).unwrap(),
            ..Default::default()
        };
        let keys = keys.expect("the cold build's keys");
        assert_eq!(keys_of(&written, "cold-build"), Some(keys.clone()));
        assert_ne!(keys, warm);
    }

    #[tokio::test]
    async fn keys_of_another_build_written_by_a_racing_writer_after_a_read_are_not_overwritten() {
        let (_, theirs) = warm_keys_secret();
        let (client, sent) = scripted(vec![
            (
                404,
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": 404, "message": "not found"}),
            ),
            conflict(),
            (200, theirs),
        ]);
        let ctx = context_with(FakeGrid::default(), client);
        let kept = kept(&ctx, "team", meta(), "cold-build", false).await;
        assert!(
            matches!(&kept, Err(Error::Kube { source: kube::Error::Api(s), .. }) if s.code == 409),
            "{kept:?}"
        );
        assert_eq!(sent.lock().unwrap().len(), 3, "no write after the conflict");
    }

    #[test]
    fn keys_are_read_back_only_for_their_build() {
        let keys = MachineKeys::generate();
        let secret = Secret {
            data: Some(data(&keys, "b1")),
            ..Default::default()
        };
        assert_eq!(keys_of(&secret, "b1"), Some(keys));
        assert_eq!(keys_of(&secret, "b2"), None);
        assert_eq!(keys_of(&Secret::default(), ""), None);
    }
}
