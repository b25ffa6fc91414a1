//! The Forge (a real Gitea, started by `hack/forge.sh`): the admin token it mints manages users
//! and OAuth2 applications through Gitea's API, and Gitea's OIDC provider describes itself.
//! Nothing is mocked: every answer comes from the Gitea binary `hack/build-tools.sh gitea` built.

use std::os::unix::fs::PermissionsExt;

use e2e::forge::{Forge, env_value, forge_sh};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// A client that sends the Forge's admin token on every request.
fn admin_client(forge: &Forge) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut auth: reqwest::header::HeaderValue = format!("token {}", forge.token())
        .parse()
        .expect("a header value");
    auth.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, auth);
    Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

#[tokio::test]
async fn admin_token_manages_users_and_oauth2_apps() {
    let forge = Forge::start().expect("the Forge starts");
    let http = admin_client(&forge);
    let name = "tester-alice";
    let password = format!("Pw-{:016x}", rand::random::<u64>());

    // The token file is the administrator's secret: only its owner reads it.
    let mode = std::fs::metadata(&forge.token_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", forge.token_file.display());

    // The token is an administrator's.
    let me: Value = http
        .get(forge.at("api/v1/user"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .expect("the admin token is accepted")
        .json()
        .await
        .unwrap();
    assert_eq!(me["login"], "hero-admin", "{me}");
    assert_eq!(me["is_admin"], true, "{me}");

    // (a) A user, who must change the password at first sign-in.
    let new_user = json!({
        "username": name,
        "email": format!("{name}@testers.localhost"),
        "password": password,
        "must_change_password": true,
        "send_notify": false,
    });
    let resp = http
        .post(forge.at("api/v1/admin/users"))
        .json(&new_user)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let user: Value = resp.json().await.unwrap();
    assert_eq!(user["login"], name, "{user}");
    assert_eq!(user["is_admin"], false, "{user}");

    // Creating it again is refused as existing.
    let again = http
        .post(forge.at("api/v1/admin/users"))
        .json(&new_user)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let msg: Value = again.json().await.unwrap();
    assert!(
        msg["message"]
            .as_str()
            .unwrap_or("")
            .contains("already exists"),
        "{msg}"
    );

    // must_change_password took: her own password gets her nowhere in the API yet.
    let as_her = Client::new()
        .get(forge.at("api/v1/user"))
        .basic_auth(name, Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(as_her.status(), StatusCode::FORBIDDEN);
    let msg: Value = as_her.json().await.unwrap();
    assert!(
        msg["message"]
            .as_str()
            .unwrap_or("")
            .contains("must change your password"),
        "{msg}"
    );
    // A wrong password is refused differently (401): the 403 above was about her password.
    let wrong = Client::new()
        .get(forge.at("api/v1/user"))
        .basic_auth(name, Some("not-her-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // (b) An OAuth2 application of hers (the admin acting as her), with one redirect URI.
    let redirect = "http://alice.tester.localhost:8443/oauth2/callback";
    let resp = http
        .post(forge.at("api/v1/user/applications/oauth2"))
        .header("Sudo", name)
        .json(&json!({
            "name": "alice-gate",
            "redirect_uris": [redirect],
            "confidential_client": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let app: Value = resp.json().await.unwrap();
    let id = app["id"].as_i64().expect("an application id");
    let client_id = app["client_id"].as_str().expect("a client_id").to_string();
    let secret = app["client_secret"]
        .as_str()
        .expect("a client_secret")
        .to_string();
    assert!(!client_id.is_empty() && !secret.is_empty());
    assert_eq!(app["redirect_uris"], json!([redirect]));
    assert_eq!(app["confidential_client"], true);

    // It is hers, not the administrator's.
    let hers: Value = http
        .get(forge.at(&format!("api/v1/user/applications/oauth2/{id}")))
        .header("Sudo", name)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .expect("she sees her application")
        .json()
        .await
        .unwrap();
    assert_eq!(hers["client_id"], client_id.as_str());
    let admins = http
        .get(forge.at(&format!("api/v1/user/applications/oauth2/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(admins.status(), StatusCode::NOT_FOUND);

    // Gitea's token endpoint knows the client: the secret is accepted (only the made-up code is
    // not), a wrong secret is not, and no redirect URI but the one registered is.
    let e = forge
        .token_endpoint_error(&client_id, &secret, redirect)
        .await;
    assert_eq!(e["error_description"], "client is not authorized", "{e}");
    let e = forge
        .token_endpoint_error(&client_id, "wrong-secret", redirect)
        .await;
    assert_eq!(e["error_description"], "invalid client secret", "{e}");
    let e = forge
        .token_endpoint_error(&client_id, &secret, "http://elsewhere.localhost/cb")
        .await;
    assert_eq!(e["error_description"], "unexpected redirect URI", "{e}");

    // (d) Deleting the application, then the user.
    let resp = http
        .delete(forge.at(&format!("api/v1/user/applications/oauth2/{id}")))
        .header("Sudo", name)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let gone = http
        .get(forge.at(&format!("api/v1/user/applications/oauth2/{id}")))
        .header("Sudo", name)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let e = forge
        .token_endpoint_error(&client_id, &secret, redirect)
        .await;
    assert_eq!(e["error"], "invalid_client", "{e}");

    let resp = http
        .delete(forge.at(&format!("api/v1/admin/users/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let gone = http
        .get(forge.at(&format!("api/v1/users/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let again = http
        .delete(forge.at(&format!("api/v1/admin/users/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn oidc_discovery_names_the_forge_as_issuer() {
    let forge = Forge::start().expect("the Forge starts");
    let http = Client::new();

    // (c) Gitea's OpenID Connect discovery document.
    let resp = http
        .get(forge.at(".well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.expect("a JSON discovery document");
    let issuer = doc["issuer"].as_str().expect("an issuer");
    assert_eq!(
        issuer.trim_end_matches('/'),
        forge.url.trim_end_matches('/'),
        "{doc}"
    );
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ] {
        let v = doc[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key}: {doc}"));
        assert!(v.starts_with(&forge.url), "{key} = {v}");
    }

    // Its signing keys are served where the document says.
    let jwks: Value = http
        .get(doc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .expect("the JWKS answers")
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().expect("a key set");
    assert!(!keys.is_empty(), "{jwks}");
}

#[tokio::test]
async fn forge_sh_up_is_idempotent_and_down_stops_it() {
    let forge = Forge::start().expect("the Forge starts");
    let pid = forge.pid().expect("a pid file");
    let token_before = forge.token().to_string();

    // A second `up` leaves the running Forge and its token alone.
    let out = forge.up(None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env_value(&out.stdout, "FORGE_URL").as_deref(),
        Some(forge.url.as_str())
    );
    assert_eq!(forge.pid(), Some(pid));
    let token_after = std::fs::read_to_string(&forge.token_file).unwrap();
    assert!(
        token_after.trim() == token_before,
        "the admin token changed"
    );

    // `env` says where it is; neither it nor `up` prints the token.
    let env = forge_sh(&forge.dir, "env", None);
    assert!(env.status.success());
    assert_eq!(
        env_value(&env.stdout, "FORGE_TOKEN_FILE").map(std::path::PathBuf::from),
        Some(forge.token_file.clone())
    );
    for o in [&out, &env] {
        let all = [o.stdout.as_slice(), o.stderr.as_slice()].concat();
        assert!(
            !String::from_utf8_lossy(&all).contains(&token_before),
            "hack/forge.sh printed the token"
        );
    }

    // `up` with a port that is taken says who holds it.
    let taken = forge_sh(
        &forge.dir.with_extension("other"),
        "up",
        Some(url::Url::parse(&forge.url).unwrap().port().unwrap()),
    );
    let _ = std::fs::remove_dir_all(forge.dir.with_extension("other"));
    assert!(!taken.status.success());
    let msg = String::from_utf8_lossy(&taken.stderr);
    assert!(msg.contains("is taken by the Forge in"), "{msg}");

    // `down` stops the process; the health check then has nobody to answer.
    let down = forge_sh(&forge.dir, "down", None);
    assert!(down.status.success());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "gitea (pid {pid}) still runs after down"
    );
    let health = Client::new().get(forge.at("api/healthz")).send().await;
    assert!(health.is_err(), "something still answers at {}", forge.url);
}
