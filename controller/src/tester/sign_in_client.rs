//! Step `SignInClientReady`: the tester's own OAuth2 application at the Forge, whose only
//! redirect URI is the gate's callback on the tester's address; its client id and secret live in
//! a Secret owned by the Tester (and, through the gate step, on that tester's machine only).
//!
//! The Secret is written once the application is made. A pass that stopped in between (killed,
//! an API error) leaves an application the Secret does not name: unless this process saw the
//! Tester new and has not tried before ([`crate::context::Context::unmade`]), the application is looked
//! for at the Forge by its name, unique to the Tester, before one is made, so there is never a
//! second one. (A Secret without a client, as earlier versions wrote before making the
//! application, is read the same way.) The secret is
//! renewed (the Forge makes a new one, the old one stops working) when the Tester's
//! [`ROTATE_ANNOTATION`] changes, when the redirect URI must change, or when the Secret and the
//! Forge disagree.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use secrecy::{ExposeSecret, SecretString};
use tracing::info;

use super::{
    Flow, MANAGER, Pass,
    conditions::SIGN_IN_CLIENT_READY,
    pass::SignIn,
    secrets::{read_unless_absent, secret_value},
};
use crate::{
    error::{Error, KubeContext, Result},
    forge::OAuthApp,
    resources::SignInClientStatus,
};

/// Set (to any new value) on a Tester to renew its sign-in client's secret.
pub const ROTATE_ANNOTATION: &str = "sandbox.hero.dev/rotate-sign-in-secret";
/// On the Secret: the application's id at the Forge.
const APP_ID: &str = "sandbox.hero.dev/application-id";
/// On the Secret: the redirect URI the secret was made for.
const REDIRECT: &str = "sandbox.hero.dev/redirect-uri";
/// On the Secret: the rotation annotation value the secret was made for.
const ROTATION: &str = "sandbox.hero.dev/rotation";

/// The Secret holding a tester's client id and secret.
pub fn secret_name(tester: &str) -> String {
    format!("{tester}-sign-in")
}

/// The application's name at the Forge: unique to this Tester.
pub fn app_name(ns: &str, tester: &str, uid: &str) -> String {
    format!("sandbox {ns}/{tester} {uid}")
}

/// The path of the gate's callback (`gate::CALLBACK_PATH`; the sign-in tests prove they
/// agree: a different path is refused by the Forge as an unregistered redirect).
const CALLBACK_PATH: &str = "/oauth2/callback";

/// The gate's callback on the tester's address: the application's only redirect URI.
pub fn redirect_uri(url: &str) -> String {
    format!("{}{CALLBACK_PATH}", url.trim_end_matches('/'))
}

/// What the Secret says, when it holds a complete client.
#[derive(Debug, PartialEq)]
struct Stored {
    app_id: Option<i64>,
    client: Option<(String, String)>,
    redirect: String,
    rotation: String,
}

fn stored(secret: &Secret) -> Stored {
    let ann = secret.metadata.annotations.clone().unwrap_or_default();
    let client = secret_value(secret, "client_id").zip(secret_value(secret, "client_secret"));
    Stored {
        app_id: ann.get(APP_ID).and_then(|v| v.parse().ok()),
        client,
        redirect: ann.get(REDIRECT).cloned().unwrap_or_default(),
        rotation: ann.get(ROTATION).cloned().unwrap_or_default(),
    }
}

/// Owns `SignInClientReady`.
pub async fn sign_in_client(pass: &mut Pass<'_>) -> Result<Flow> {
    let url = pass
        .status
        .url
        .clone()
        .ok_or(Error::MissingField("status.url"))?;
    let redirect = redirect_uri(&url);
    let rotation = pass
        .tester
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROTATE_ANNOTATION))
        .cloned()
        .unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    let name = secret_name(&pass.name);
    // Neither the Secret nor the application can exist yet when this process saw the Tester new
    // and has not tried to make them.
    let unmade = pass.ctx.unmade(&pass.uid, &name);
    let current = read_unless_absent(
        pass.ctx,
        &secrets,
        &name,
        unmade,
        "reading the sign-in client's Secret",
    )
    .await?
    .map(|s| stored(&s));
    let forge = pass.ctx.forge.clone();
    let app_name = app_name(&pass.ns, &pass.name, &pass.uid);

    // What the Secret holds is kept when it was made for this redirect URI and rotation, and
    // the Forge still has it (asked once per generation of the spec).
    if let Some(Stored {
        app_id: Some(id),
        client: Some((client_id, client_secret)),
        redirect: r,
        rotation: rot,
    }) = &current
        && *r == redirect
        && *rot == rotation
    {
        let holds = pass.done_for_generation(SIGN_IN_CLIENT_READY)
            || forge.app(*id).await?.is_some_and(|app| {
                app.client_id == *client_id && app.redirect_uris == [redirect.clone()]
            });
        if holds {
            let (id, client_id, client_secret) = (*id, client_id.clone(), client_secret.clone());
            return ready(pass, id, client_id, client_secret.into(), &redirect, false);
        }
    }

    // Renew or make the application; one may exist already unless it is known not to.
    let known = match &current {
        None if unmade => None,
        None => forge.app_by_name(&app_name).await?,
        Some(s) => match s.app_id.or(pass
            .status
            .sign_in_client
            .as_ref()
            .map(|c| c.application_id))
        {
            Some(id) => forge.app(id).await?,
            None => forge.app_by_name(&app_name).await?,
        },
    };
    let app = match known {
        Some(app) => forge.update_app(app.id, &app_name, &redirect).await?,
        None => forge.create_app(&app_name, &redirect).await?,
    };
    write_secret(pass, &secrets, &app, &redirect, &rotation).await?;
    info!(tester = %pass.name, client_id = %app.client_id, "sign-in client made at the Forge");
    let secret = app
        .client_secret
        .clone()
        .ok_or(Error::MissingField("client secret"))?;
    ready(pass, app.id, app.client_id.clone(), secret, &redirect, true)
}

fn ready(
    pass: &mut Pass<'_>,
    id: i64,
    client_id: String,
    client_secret: SecretString,
    redirect: &str,
    renewed: bool,
) -> Result<Flow> {
    let msg = format!(
        "client {client_id} at the Forge {} signs in to {redirect} only{}",
        pass.ctx.forge.url(),
        if renewed { " (secret renewed)" } else { "" }
    );
    pass.status.sign_in_client = Some(SignInClientStatus {
        application_id: id,
        client_id: client_id.clone(),
        redirect_uri: redirect.to_string(),
        secret_name: secret_name(&pass.name),
    });
    pass.sign_in = Some(SignIn {
        client_id,
        client_secret,
    });
    pass.set(SIGN_IN_CLIENT_READY, true, "Ready", &msg);
    Ok(Flow::Continue)
}

/// Writes the Secret: the client and what it was made for.
async fn write_secret(
    pass: &Pass<'_>,
    secrets: &Api<Secret>,
    app: &OAuthApp,
    redirect: &str,
    rotation: &str,
) -> Result<()> {
    let mut meta = pass.owned_meta(&secret_name(&pass.name))?;
    meta.annotations = Some(BTreeMap::from([
        (REDIRECT.to_string(), redirect.to_string()),
        (ROTATION.to_string(), rotation.to_string()),
        (APP_ID.to_string(), app.id.to_string()),
    ]));
    let mut data = BTreeMap::from([(
        "client_id".to_string(),
        ByteString(app.client_id.clone().into_bytes()),
    )]);
    if let Some(secret) = &app.client_secret {
        data.insert(
            "client_secret".to_string(),
            ByteString(secret.expose_secret().as_bytes().to_vec()),
        );
    }
    let secret = Secret {
        metadata: meta,
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    pass.ctx.kube_turn().await;
    secrets
        .patch(
            &secret_name(&pass.name),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .kube("writing the sign-in client's Secret")?;
    Ok(())
}

/// Deletes the tester's application at the Forge (deleting the Tester). Found by the status,
/// the Secret, or (after a pass that stopped half-way) its name.
pub async fn delete_client(pass: &Pass<'_>) -> Result<()> {
    let forge = pass.ctx.forge.clone();
    let secrets: Api<Secret> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    pass.ctx.kube_turn().await;
    let stored = secrets
        .get_opt(&secret_name(&pass.name))
        .await
        .kube("reading the sign-in client's Secret")?
        .map(|s| stored(&s));
    let id = match (&pass.status.sign_in_client, &stored) {
        (Some(c), _) => Some(c.application_id),
        (
            None,
            Some(Stored {
                app_id: Some(id), ..
            }),
        ) => Some(*id),
        (None, Some(_)) => forge
            .app_by_name(&app_name(&pass.ns, &pass.name, &pass.uid))
            .await?
            .map(|a| a.id),
        (None, None) => None,
    };
    if let Some(id) = id {
        forge.delete_app(id).await?;
        info!(tester = %pass.name, application = id, "sign-in client deleted at the Forge");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_only_redirect_is_the_gates_callback_on_the_testers_address() {
        assert_eq!(
            redirect_uri("https://alice-1a2b3c.gw.example/"),
            "https://alice-1a2b3c.gw.example/oauth2/callback"
        );
        assert_eq!(
            redirect_uri("http://bob.localhost:8080"),
            "http://bob.localhost:8080/oauth2/callback"
        );
    }

    #[test]
    fn a_secret_without_a_client_is_only_a_mark() {
        let mut s = Secret::default();
        s.metadata.annotations = Some(BTreeMap::from([
            (
                REDIRECT.to_string(),
                "https://a/oauth2/callback".to_string(),
            ),
            (ROTATION.to_string(), String::new()),
        ]));
        let got = stored(&s);
        assert_eq!(got.app_id, None);
        assert_eq!(got.client, None);
        assert_eq!(got.redirect, "https://a/oauth2/callback");
    }

    #[test]
    fn application_names_are_unique_per_tester() {
        assert_ne!(
            app_name("team", "alice", "uid-1"),
            app_name("team", "alice", "uid-2")
        );
    }
}
