//! Identity at the Forge (a real Gitea): the controller checks or makes each tester's account
//! before anything is made on the grid, keeps one OAuth2 application per tester whose only
//! redirect is that tester's callback, rotates its secret on request (the machine's gate gets
//! the new one, the Forge refuses the old one) and removes it with the Tester.

use std::time::Duration;

use controller::resources::{Tester, condition_status, find_condition};
use e2e::{
    fixtures::{host_pool, tester},
    forge::Forge,
    stack::{Stack, TestNode},
    wait,
};
use gridapi::agent::AgentTarget;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const TIMEOUT: Duration = Duration::from_secs(180);

fn applied(out: std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the Tester's `AccountReady` is False for `reason`; returns its message.
async fn refused(s: &Stack, name: &str, reason: &str) -> String {
    let t = wait::tester_until(
        &s.api,
        name,
        TIMEOUT,
        &format!("AccountReady {reason}"),
        |t| {
            t.status
                .as_ref()
                .and_then(|st| find_condition(&st.conditions, "AccountReady"))
                .is_some_and(|c| c.status == "False" && c.reason == reason)
        },
    )
    .await
    .unwrap();
    let status = t.status.unwrap();
    assert_ne!(condition_status(&status.conditions, "Scheduled"), "True");
    assert!(status.placement.is_none(), "{name} was placed");
    find_condition(&status.conditions, "AccountReady")
        .unwrap()
        .message
        .clone()
}

/// Nothing of any tester on the grid: no contract, name, VM or gateway.
async fn grid_is_empty(s: &Stack) {
    let grid = s.grid.admin.inspect().await.unwrap();
    assert!(grid.contracts.is_empty(), "{:?}", grid.contracts);
    assert!(grid.names.is_empty() && grid.vms.is_empty() && grid.gateways.is_empty());
}

/// The Forge's answer to `GET api/v1/<path>` as the administrator: (status, body).
async fn forge_get(forge: &Forge, path: &str) -> (u16, Value) {
    forge.admin(reqwest::Method::GET, path, None).await
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A tester's sign-in client as its Secret holds it.
struct Client {
    id: String,
    secret: String,
    application: String,
    redirect: String,
}

async fn client_of(s: &Stack, name: &str) -> Client {
    let secrets: Api<Secret> = Api::namespaced(s.api.clone().into_client(), &s.ns.name);
    let secret = secrets.get(&format!("{name}-sign-in")).await.unwrap();
    let data = secret.data.unwrap_or_default();
    let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    let ann = secret.metadata.annotations.unwrap_or_default();
    Client {
        id: text("client_id"),
        secret: text("client_secret"),
        application: ann["sandbox.hero.dev/application-id"].clone(),
        redirect: ann["sandbox.hero.dev/redirect-uri"].clone(),
    }
}

/// What the tester's machine's gate runs with: (client id, digest of the client secret).
async fn gate_on_machine(s: &Stack, t: &Tester) -> (String, String) {
    let address = t
        .status
        .as_ref()
        .and_then(|st| st.machine.as_ref())
        .and_then(|m| m.private_address.clone())
        .expect("the machine's private address");
    let machine_id = t
        .status
        .as_ref()
        .and_then(|st| st.machine.as_ref())
        .and_then(|m| m.machine_id.clone())
        .expect("the machine's id");
    let target = AgentTarget {
        mycelium_ip: address,
        machine_id,
    };
    let view = s
        .controller_faces()
        .await
        .agents
        .config(&target)
        .await
        .unwrap();
    let gate = view.gate.expect("a gate on the machine");
    (
        gate.client_id,
        gate.client_secret_digest
            .expect("the gate reports its secret's digest"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_accounts_are_refused_at_the_forge_and_nothing_is_made_on_the_grid() {
    let s = Stack::start("badacct", &[TestNode::new(1, 1000, 64)], "", &[]).await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    let pid = std::process::id();

    // accountType New for a name someone already has: never overwritten.
    let taken = format!("taken{pid}");
    s.forge.ensure_account(&taken).await.unwrap();
    s.apply(
        &tester("taken", &taken, "pool")
            .with("accountType", json!("New"))
            .build(),
    );
    // accountType Existing for a name the Forge does not know (applied without making it).
    let missing = format!("missing{pid}");
    applied(s.ns.apply(&tester("missing", &missing, "pool").build()));
    // A name the Forge itself refuses (Gitea reserves `explore` for its own pages).
    s.apply(
        &tester("reserved", "explore", "pool")
            .with("accountType", json!("New"))
            .build(),
    );

    let msg = refused(&s, "taken", "AccountExists").await;
    assert!(
        msg.contains("never overwritten") && msg.contains("accountType: Existing"),
        "{msg}"
    );
    let msg = refused(&s, "missing", "AccountNotFound").await;
    assert!(
        msg.contains(&missing) && msg.contains("accountType: New"),
        "{msg}"
    );
    let msg = refused(&s, "reserved", "AccountRefused").await;
    assert!(msg.contains("reserved"), "the Forge's own reason: {msg}");

    // The one that was taken keeps its owner's password: the Tester did not touch it.
    let (status, _) = forge_get(s.forge, &format!("users/{taken}")).await;
    assert_eq!(status, 200);
    let owner_signs_in = reqwest::Client::new()
        .get(s.forge.at("api/v1/user"))
        .basic_auth(&taken, Some(e2e::forge::password_of(&taken)))
        .send()
        .await
        .unwrap();
    assert_eq!(owner_signs_in.status(), 200);
    grid_is_empty(&s).await;

    // Once the account exists, the same Tester goes on by itself.
    s.forge.ensure_account(&missing).await.unwrap();
    wait::ready(&s.api, "missing", TIMEOUT).await.unwrap();
    let t = s.api.get("taken").await.unwrap();
    assert_eq!(
        condition_status(&t.status.unwrap().conditions, "AccountReady"),
        "False"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forge_that_is_down_or_refuses_the_token_is_said_and_retried() {
    let forge = Forge::start().expect("a Forge of this test");
    let token = forge.mint_token("controller-under-test").await;
    let mut s = Stack::without_controller("forgedown", &[TestNode::new(1, 1000, 64)], "").await;
    s.start_controller(&[("FORGE_URL", &forge.url), ("FORGE_TOKEN", &token)]);
    s.apply(&host_pool("pool", &[1], 50, 4));
    forge.ensure_account("dora").await.unwrap();
    forge.ensure_account("ulla").await.unwrap();

    // Down: said in the condition, retried, nothing on the grid.
    applied(forge.down());
    applied(s.ns.apply(&tester("dora", "dora", "pool").build()));
    let msg = refused(&s, "dora", "ForgeUnavailable").await;
    assert!(msg.contains(forge.url.trim_end_matches('/')), "{msg}");
    grid_is_empty(&s).await;
    // Back: the same Tester goes on by itself.
    applied(forge.up(None));
    wait::ready(&s.api, "dora", TIMEOUT).await.unwrap();

    // The controller's token revoked at the Forge: said with what to do, never the token.
    forge.revoke_token("controller-under-test").await;
    applied(s.ns.apply(&tester("ulla", "ulla", "pool").build()));
    let msg = refused(&s, "ulla", "ForgeUnauthorized").await;
    assert!(
        msg.contains("FORGE_TOKEN"),
        "says which setting to fix: {msg}"
    );
    assert!(!msg.contains(&token));
    let logs = s.controller().process.output();
    assert!(
        !logs.contains(&token),
        "the Forge token is in the controller's log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_tester_has_its_own_sign_in_client_rotated_on_request_and_removed_with_it() {
    let s = Stack::start("signin", &[TestNode::new(1, 1000, 64)], "", &[]).await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    let pid = std::process::id();
    let (kept, made) = (format!("ida{pid}"), format!("idb{pid}"));
    s.apply(&tester("a", &kept, "pool").build());
    s.apply(
        &tester("b", &made, "pool")
            .with("accountType", json!("New"))
            .with("accountDeletionPolicy", json!("Delete"))
            .build(),
    );
    let ta = wait::ready(&s.api, "a", TIMEOUT).await.unwrap();
    let tb = wait::ready(&s.api, "b", TIMEOUT).await.unwrap();
    let (a, b) = (client_of(&s, "a").await, client_of(&s, "b").await);
    assert_ne!(a.id, b.id);

    // One application per tester, its only redirect the tester's own callback.
    for (t, c) in [(&ta, &a), (&tb, &b)] {
        let url = t.status.as_ref().unwrap().url.clone().unwrap();
        assert_eq!(
            c.redirect,
            format!("{}/oauth2/callback", url.trim_end_matches('/'))
        );
        let recorded = t.status.as_ref().unwrap().sign_in_client.clone().unwrap();
        assert_eq!(recorded.client_id, c.id);
        assert_eq!(recorded.redirect_uri, c.redirect);
        let (status, app) = forge_get(
            s.forge,
            &format!("user/applications/oauth2/{}", c.application),
        )
        .await;
        assert_eq!(status, 200, "{app}");
        assert_eq!(app["client_id"], c.id.as_str());
        assert_eq!(app["redirect_uris"], json!([c.redirect]));
        assert_eq!(app["confidential_client"], true);
        // The machine's gate runs with exactly this client and secret.
        assert_eq!(
            gate_on_machine(&s, t).await,
            (c.id.clone(), sha256_hex(&c.secret))
        );
        // From outside, the gate sends a stranger to the Forge with this tester's client.
        let host = url::Url::parse(&url)
            .unwrap()
            .host_str()
            .unwrap()
            .to_string();
        let resp = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve_to_addrs(&host, &["127.0.0.1:0".parse().unwrap()])
            .build()
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap();
        let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], c.id);
        assert_eq!(q["redirect_uri"], c.redirect);
    }

    // No wildcard: a's client cannot send a code to b's machine, nor use b's secret.
    let e = s
        .forge
        .token_endpoint_error(&a.id, &a.secret, &a.redirect)
        .await;
    assert_eq!(e["error_description"], "client is not authorized", "{e}");
    let e = s
        .forge
        .token_endpoint_error(&a.id, &a.secret, &b.redirect)
        .await;
    assert_eq!(e["error_description"], "unexpected redirect URI", "{e}");
    let e = s
        .forge
        .token_endpoint_error(&a.id, &b.secret, &a.redirect)
        .await;
    assert_eq!(e["error_description"], "invalid client secret", "{e}");

    // Rotation on request: a new secret, on the machine, and the old one refused.
    applied(s.ns.kubectl(&[
        "annotate",
        "tester",
        "a",
        "sandbox.hero.dev/rotate-sign-in-secret=2026-12-04",
    ]));
    let secrets: Api<Secret> = Api::namespaced(s.api.clone().into_client(), &s.ns.name);
    wait::object_until(
        &secrets,
        "a-sign-in",
        TIMEOUT,
        "a new client secret",
        |sec| {
            sec.data
                .as_ref()
                .and_then(|d| d.get("client_secret"))
                .is_some_and(|v| v.0 != a.secret.as_bytes())
        },
    )
    .await
    .unwrap();
    let rotated = client_of(&s, "a").await;
    assert_eq!(rotated.id, a.id, "the client stays, its secret changes");
    let digest = sha256_hex(&rotated.secret);
    let ta = wait::tester_until(&s.api, "a", TIMEOUT, "Ready with the new secret", |t| {
        t.status
            .as_ref()
            .is_some_and(|st| condition_status(&st.conditions, "Ready") == "True")
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    // The agent has no watch: poll its view until the gate runs with the new secret.
    while gate_on_machine(&s, &ta).await.1 != digest {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the machine kept the old secret"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let e = s
        .forge
        .token_endpoint_error(&a.id, &a.secret, &a.redirect)
        .await;
    assert_eq!(
        e["error_description"], "invalid client secret",
        "old secret: {e}"
    );
    let e = s
        .forge
        .token_endpoint_error(&a.id, &rotated.secret, &a.redirect)
        .await;
    assert_eq!(
        e["error_description"], "client is not authorized",
        "new secret: {e}"
    );

    // Deleting the Testers removes their applications, and the account only b's Tester made.
    applied(s.ns.kubectl(&["delete", "tester", "a", "b", "--wait=false"]));
    wait::gone(&s.api, "a", TIMEOUT).await.unwrap();
    wait::gone(&s.api, "b", TIMEOUT).await.unwrap();
    for c in [&a, &b] {
        let (status, _) = forge_get(
            s.forge,
            &format!("user/applications/oauth2/{}", c.application),
        )
        .await;
        assert_eq!(
            status, 404,
            "application {} is left at the Forge",
            c.application
        );
        let e = s
            .forge
            .token_endpoint_error(&c.id, &c.secret, &c.redirect)
            .await;
        assert_eq!(e["error"], "invalid_client", "{e}");
    }
    assert_eq!(forge_get(s.forge, &format!("users/{made}")).await.0, 404);
    assert_eq!(forge_get(s.forge, &format!("users/{kept}")).await.0, 200);
    grid_is_empty(&s).await;
}

/// A pass that stopped between the Forge making the application and the Secret recording it
/// (here: the Secret is lost) finds the application again by its name: the same client, its
/// secret renewed, never a second application.
#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_client_its_secret_does_not_name_is_found_again_not_made_twice() {
    let s = Stack::start("signin-again", &[TestNode::new(1, 1000, 64)], "", &[]).await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    let account = format!("idc{}", std::process::id());
    s.apply(&tester("c", &account, "pool").build());
    let t = wait::ready(&s.api, "c", TIMEOUT).await.unwrap();
    let before = client_of(&s, "c").await;

    let secrets: Api<Secret> = Api::namespaced(s.api.clone().into_client(), &s.ns.name);
    secrets
        .delete("c-sign-in", &Default::default())
        .await
        .unwrap();
    // Any change of the Tester starts a full pass.
    applied(s.ns.kubectl(&["annotate", "tester", "c", "example.org/touched=1"]));
    wait::object_until(&secrets, "c-sign-in", TIMEOUT, "the Secret again", |sec| {
        sec.data
            .as_ref()
            .is_some_and(|d| d.contains_key("client_secret"))
    })
    .await
    .unwrap();
    let after = client_of(&s, "c").await;
    assert_eq!(after.application, before.application, "another application");
    assert_eq!(after.id, before.id);
    assert_ne!(after.secret, before.secret, "the secret is renewed");

    let name = format!("sandbox {}/c {}", s.ns.name, t.metadata.uid.unwrap());
    let mut same_name = 0;
    for page in 1.. {
        let (status, apps) = forge_get(
            s.forge,
            &format!("user/applications/oauth2?page={page}&limit=50"),
        )
        .await;
        assert_eq!(status, 200, "{apps}");
        let apps = apps.as_array().cloned().unwrap_or_default();
        same_name += apps.iter().filter(|a| a["name"] == name.as_str()).count();
        if apps.len() < 50 {
            break;
        }
    }
    assert_eq!(same_name, 1, "applications named {name:?} at the Forge");
    wait::ready(&s.api, "c", TIMEOUT).await.unwrap();
}
