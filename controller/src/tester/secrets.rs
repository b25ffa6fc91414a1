//! The tester's own Secrets (owned by the Tester, so they go with it): made with a random value
//! when missing, and renewed when asked.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{Api, api::PostParams};
use rand::distr::{Alphanumeric, SampleString};

use super::Pass;
use crate::{
    context::Context,
    error::{Error, KubeContext, Result},
};

/// Data key recording which rotation a renewable Secret's value was made for.
const ROTATION_KEY: &str = "rotation";

/// The Secret `name`, read with a GET unless it is `absent`: known not to exist, because this
/// process saw its Tester new and has not made it yet (see `Context::unmade`).
pub async fn read_unless_absent(
    ctx: &Context,
    secrets: &Api<Secret>,
    name: &str,
    absent: bool,
    action: &'static str,
) -> Result<Option<Secret>> {
    if absent {
        return Ok(None);
    }
    ctx.kube_turn().await;
    secrets.get_opt(name).await.kube(action)
}

/// Reads `key` of the tester's Secret `name`, creating the Secret (owned by the Tester, so it
/// goes with it) with a random value of `len` characters when it does not exist.
pub async fn ensure_secret(pass: &Pass<'_>, name: &str, key: &str, len: usize) -> Result<String> {
    let secrets: Api<Secret> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    pass.ctx.kube_turn().await;
    if let Some(value) = secrets
        .get_opt(name)
        .await
        .kube("reading a tester Secret")?
        .and_then(|s| secret_value(&s, key))
    {
        return Ok(value);
    }
    let value = Alphanumeric.sample_string(&mut rand::rng(), len);
    let secret = Secret {
        metadata: pass.owned_meta(name)?,
        data: Some(BTreeMap::from([(
            key.to_string(),
            ByteString(value.clone().into_bytes()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    pass.ctx.kube_turn().await;
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(value),
        // Another pass created it first: use theirs.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let s = secrets.get(name).await.kube("reading a tester Secret")?;
            secret_value(&s, key).ok_or(Error::MissingField("secret data"))
        }
        Err(e) => Err(Error::Kube {
            action: "creating a tester Secret",
            source: e,
        }),
    }
}

/// The value of `key` in a Secret.
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

/// Replaces a Secret's data with a patch that holds only if nobody changed the Secret since it
/// was read (its resourceVersion is a precondition): 409 otherwise.
pub async fn replace_data(
    secrets: &Api<Secret>,
    name: &str,
    old: &Secret,
    data: BTreeMap<String, ByteString>,
) -> std::result::Result<Secret, kube::Error> {
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": old.metadata.resource_version },
        "data": data,
    });
    secrets
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
}

/// Like [`ensure_secret`], but the value is made anew whenever `rotation` differs from the one
/// the Secret records (the operator's rotation annotation): the Secret is replaced only if
/// nobody changed it since it was read. For Secrets made only after the Tester's placement is
/// recorded (a new Tester's is then known not to exist and not read first).
pub async fn rotatable_secret(
    pass: &Pass<'_>,
    name: &str,
    key: &str,
    len: usize,
    rotation: &str,
) -> Result<String> {
    let secrets: Api<Secret> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    // Not read when it is known not to exist yet (see `Context::unmade`): callers make it only
    // after the Tester's placement is recorded.
    let absent = pass.ctx.unmade(&pass.uid, name);
    let existing =
        read_unless_absent(pass.ctx, &secrets, name, absent, "reading a tester Secret").await?;
    let recorded = |s: &Secret| secret_value(s, ROTATION_KEY).unwrap_or_default();
    if let Some(s) = &existing
        && recorded(s) == rotation
        && let Some(value) = secret_value(s, key)
    {
        return Ok(value);
    }
    let value = Alphanumeric.sample_string(&mut rand::rng(), len);
    let data = BTreeMap::from([
        (key.to_string(), ByteString(value.clone().into_bytes())),
        (
            ROTATION_KEY.to_string(),
            ByteString(rotation.as_bytes().to_vec()),
        ),
    ]);
    pass.ctx.kube_turn().await;
    let written = match existing {
        None => {
            let secret = Secret {
                metadata: pass.owned_meta(name)?,
                data: Some(data),
                type_: Some("Opaque".into()),
                ..Default::default()
            };
            secrets.create(&PostParams::default(), &secret).await
        }
        Some(old) => replace_data(&secrets, name, &old, data).await,
    };
    match written {
        Ok(_) => Ok(value),
        // Another writer won: the next pass reads what it kept.
        Err(e) => Err(Error::Kube {
            action: "renewing a tester Secret",
            source: e,
        }),
    }
}
