//! The sign-in gate against the Forge (a real Gitea, started by `hack/forge.sh`), driven by a
//! scripted browser: who gets in, who gets the friendly refusal, and that every listener keeps
//! the same rules. Each gate has an OAuth2 application of its own at the Forge, whose only
//! redirect is that gate's callback, as on the testers' machines.

#[path = "../src/gate/mod.rs"]
mod harness;

use e2e::forge::Forge;
use harness::app::{app, config, serve_gate};
use harness::forge::{ADMIN, Client, account_id, sign_in, to_callback};
use harness::{Browser, RunningGate, app_saw, host, start_forge_gate};
use std::collections::HashMap;
use std::time::Duration;

/// The shared Forge and a gate allowing `alice` (administrator [`ADMIN`]) with its client.
async fn forge_and_gate() -> (&'static Forge, RunningGate, Client) {
    let forge = Forge::shared();
    let (gate, client) = start_forge_gate(forge, &["alice"], &[ADMIN], None).await;
    (forge, gate, client)
}

fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unauthenticated_request_is_sent_to_the_provider() {
    let (forge, gate, client) = forge_and_gate().await;
    let browser = Browser::new();
    let page = browser
        .get(&format!("{}/apps/planner?board=1", gate.public))
        .await
        .unwrap();
    assert!(page.is_redirect(), "{} {}", page.status, page.body);
    let to = page.location.clone().unwrap();
    assert!(
        to.as_str()
            .starts_with(&format!("{}login/oauth/authorize?", forge.url)),
        "{to}"
    );
    let q = query(&to);
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    for scope in ["openid", "profile", "email"] {
        assert!(scopes.contains(&scope), "scope {scope} missing: {scopes:?}");
    }
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], client.id);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/oauth2/callback", gate.public)
    );
    assert!(q["state"].len() >= 16 && q["nonce"].len() >= 16);
    let login = page
        .set_cookie("gate_login")
        .expect("a pending sign-in cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/oauth2/callback"] {
        assert!(login.contains(attr), "{login}");
    }
    assert!(
        !login.contains(&q["state"]),
        "the state is sealed, not stored in clear"
    );
    assert_eq!(gate.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_public_on_both_listeners() {
    let (_forge, gate, _client) = forge_and_gate().await;
    let browser = Browser::new();
    for base in [&gate.public, &gate.private] {
        let page = browser.get(&format!("{base}/health")).await.unwrap();
        assert_eq!((page.status, page.body.as_str()), (200, "ok\n"), "{base}");
        let page = browser
            .get(&format!("{base}/health?probe=1"))
            .await
            .unwrap();
        assert_eq!(page.status, 200, "{base}");
    }
    assert_eq!(gate.hits(), 0, "the gate answers /health itself");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tester_signs_in_and_the_app_sees_the_username() {
    let (_forge, gate, _client) = forge_and_gate().await;
    let browser = Browser::new();
    let page = sign_in(
        &browser,
        &format!("{}/apps/planner?board=1", gate.public),
        "alice",
        "alice-password",
    )
    .await
    .unwrap();
    let saw = app_saw(&page);
    assert_eq!(saw.user.as_deref(), Some("alice"));
    assert_eq!(saw.email.as_deref(), Some("alice@accounts.forge.test"));
    let id = account_id(Forge::shared(), "alice").await;
    assert_eq!(
        saw.sub.as_deref(),
        Some(id.as_str()),
        "Gitea's numeric account id"
    );
    assert_eq!(
        (saw.path.as_str(), saw.query.as_deref()),
        ("/apps/planner", Some("board=1"))
    );
    assert!(
        !saw.cookie.unwrap_or_default().contains("gate_"),
        "the app never sees the gate's cookies"
    );

    // The session holds: no more trips to the provider, and forged identity headers are
    // replaced by the gate's own.
    let page = browser
        .get_with(
            &format!("{}/", gate.public),
            &[
                ("X-Gate-User", "admin"),
                ("X-Gate-Email", "admin@example.test"),
                ("X-Forwarded-Host", "evil.example"),
            ],
        )
        .await
        .unwrap();
    let saw = app_saw(&page);
    assert_eq!(saw.user.as_deref(), Some("alice"));
    assert_eq!(saw.email.as_deref(), Some("alice@accounts.forge.test"));
    assert_ne!(saw.forwarded_host.as_deref(), Some("evil.example"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_session_cookie_is_sealed_http_only_and_lax() {
    let (_forge, gate, _client) = forge_and_gate().await;
    let browser = Browser::new();
    let answer = to_callback(
        &browser,
        &format!("{}/", gate.public),
        "alice",
        "alice-password",
    )
    .await
    .unwrap();
    // Follow by hand up to the gate's callback answer, to read its Set-Cookie.
    let mut page = answer;
    while page.is_redirect() && !page.url.path().starts_with("/oauth2/callback") {
        page = browser
            .get(page.location.clone().unwrap().as_str())
            .await
            .unwrap();
    }
    assert!(
        page.url.path().starts_with("/oauth2/callback"),
        "{}",
        page.url
    );
    let session = page.set_cookie("gate_session").expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(
        !session.contains("Secure"),
        "plain http here; Secure only under https"
    );
    assert!(!session.contains("alice"), "the identity is encrypted");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_not_allowed_gets_the_friendly_refusal() {
    let (_forge, gate, _client) = forge_and_gate().await;
    let browser = Browser::new();
    let page = sign_in(
        &browser,
        &format!("{}/", gate.public),
        "bob",
        "bob-password",
    )
    .await
    .unwrap();
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("No access"), "{}", page.body);
    assert!(
        page.body.contains("<strong id=\"account\">bob</strong>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("ops@example.test"),
        "says whom to ask: {}",
        page.body
    );
    assert_eq!(gate.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_gets_in() {
    let (_forge, gate, _client) = forge_and_gate().await;
    let browser = Browser::new();
    let page = sign_in(
        &browser,
        &format!("{}/cockpit", gate.public),
        ADMIN,
        &format!("{ADMIN}-password"),
    )
    .await
    .unwrap();
    let saw = app_saw(&page);
    assert_eq!(saw.user.as_deref(), Some(ADMIN));
    assert_eq!(saw.path, "/cockpit");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_gets_nobody_in() {
    let (_forge, gate, _client) = forge_and_gate().await;
    let browser = Browser::new();
    let page = to_callback(
        &browser,
        &format!("{}/", gate.public),
        "alice",
        "bob-password",
    )
    .await
    .unwrap();
    assert_eq!(page.status, 200);
    assert!(page.url.path().ends_with("/user/login"), "{}", page.url);
    assert!(
        page.body.contains("Username or password is incorrect."),
        "{}",
        page.body
    );
    assert!(
        browser
            .cookie(&host(&gate.public), "gate_session")
            .is_none()
    );
    assert_eq!(gate.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_private_listener_keeps_the_same_rules() {
    let (forge, gate, _client) = forge_and_gate().await;
    let anonymous = Browser::new();
    let page = anonymous
        .get(&format!("{}/apps", gate.private))
        .await
        .unwrap();
    assert!(page.is_redirect(), "{} {}", page.status, page.body);
    assert!(
        page.location
            .unwrap()
            .as_str()
            .starts_with(forge.url.trim_end_matches('/'))
    );
    let page = anonymous
        .get_with(
            &format!("{}/apps", gate.private),
            &[("X-Gate-User", "alice")],
        )
        .await
        .unwrap();
    assert!(page.is_redirect(), "a forged identity header is no session");
    let page = anonymous
        .get(&format!("{}/health", gate.private))
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    let page = anonymous
        .get(&format!("{}/health/..%2Fapps", gate.private))
        .await
        .unwrap();
    assert_eq!(page.status, 400);
    assert_eq!(gate.hits(), 0);

    // A session from the public side works on the private side, with the same allow-list.
    let private_host = host(&gate.private);
    for (login, password, status) in [
        ("alice", "alice-password", 200),
        ("bob", "bob-password", 403),
    ] {
        let browser = Browser::new();
        sign_in(&browser, &format!("{}/", gate.public), login, password)
            .await
            .unwrap();
        let session = browser
            .cookie(&host(&gate.public), "gate_session")
            .expect("signed in");
        browser.set_cookie(&private_host, "gate_session", Some(&session));
        let page = browser
            .get(&format!("{}/apps", gate.private))
            .await
            .unwrap();
        assert_eq!(page.status, status, "{login}: {}", page.body);
        if status == 200 {
            assert_eq!(app_saw(&page).user.as_deref(), Some(login));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gate_that_starts_before_its_provider_comes_up_with_it() {
    // A Forge of this test's own, stopped once the gate's application is registered.
    let forge = Forge::start().expect("a Forge of this test");
    let (gate, _client) = start_forge_gate(&forge, &["alice"], &[], None).await;
    let down = forge.down();
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let browser = Browser::new();
    let page = browser.get(&format!("{}/", gate.public)).await.unwrap();
    assert_eq!(page.status, 503, "no provider yet: {}", page.body);
    assert!(page.body.contains("try again"), "{}", page.body);
    assert_eq!(
        browser
            .get(&format!("{}/health", gate.public))
            .await
            .unwrap()
            .status,
        200
    );

    let up = forge.up(None);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    // The gate retries discovery on later requests (after a short pause between tries).
    let mut page = browser.get(&format!("{}/", gate.public)).await.unwrap();
    for _ in 0..60 {
        if page.status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        page = browser.get(&format!("{}/", gate.public)).await.unwrap();
    }
    assert!(page.is_redirect(), "{} {}", page.status, page.body);
    let page = sign_in(
        &browser,
        &format!("{}/", gate.public),
        "alice",
        "alice-password",
    )
    .await
    .unwrap();
    assert_eq!(app_saw(&page).user.as_deref(), Some("alice"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_sessions_and_the_requested_scopes() {
    let forge = Forge::shared();
    let key = gate::SessionKey::random();
    let (first, client) = start_forge_gate(forge, &["alice"], &[], Some(key.clone())).await;
    let browser = Browser::new();
    sign_in(
        &browser,
        &format!("{}/", first.public),
        "alice",
        "alice-password",
    )
    .await
    .unwrap();
    let public_url = first.public.clone();
    drop(first);

    // The same configuration again (as the VM agent keeps it), on a fresh process-equivalent.
    let issuer = forge.url.clone();
    let url = public_url.clone();
    let second = serve_gate("127.0.0.1", move |_, hits| {
        let mut config = config(&issuer, &client.id, &client.secret, &url, &["alice"], &[]);
        config.session_key = key;
        gate::Gate::new(config).unwrap().wrap(app(hits))
    })
    .await;
    let page = browser
        .get(&format!("{}/after-restart", second.public))
        .await
        .unwrap();
    let saw = app_saw(&page);
    assert_eq!(
        saw.user.as_deref(),
        Some("alice"),
        "the session survived the restart"
    );

    let page = Browser::new()
        .get(&format!("{}/", second.public))
        .await
        .unwrap();
    let q = query(page.location.as_ref().expect("a redirect to the provider"));
    assert_eq!(q["scope"], "openid profile email");
    assert_eq!(q["redirect_uri"], format!("{public_url}/oauth2/callback"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_issued_for_another_gates_client_is_refused() {
    // Two testers' gates, each with its own application at the Forge.
    let (forge, mine, _) = forge_and_gate().await;
    let (theirs, _) = start_forge_gate(forge, &["alice"], &[ADMIN], None).await;

    // A browser starts signing in at my gate: it holds my gate's pending sign-in for `state`.
    let victim = Browser::new();
    let page = victim.get(&format!("{}/", mine.public)).await.unwrap();
    let state = query(page.location.as_ref().expect("sent to the Forge"))["state"].clone();

    // Someone signs in at the other gate and keeps the code the Forge issued for its client.
    let other = Browser::new();
    let answer = to_callback(
        &other,
        &format!("{}/", theirs.public),
        "alice",
        "alice-password",
    )
    .await
    .unwrap();
    let callback = answer.location.expect("the Forge sends a code back");
    assert!(callback.as_str().starts_with(&theirs.public), "{callback}");
    let code = query(&callback)["code"].clone();

    // That code, brought to my gate's callback with my browser's own state: my gate redeems
    // it with its own client, the Forge refuses, and nobody is signed in.
    let forged = format!("{}/oauth2/callback?code={code}&state={state}", mine.public);
    let page = victim.get(&forged).await.unwrap();
    assert!(
        page.status >= 400,
        "a forged callback was accepted: {} {}",
        page.status,
        page.body
    );
    assert!(page.set_cookie("gate_session").is_none());
    assert!(victim.cookie(&host(&mine.public), "gate_session").is_none());
    assert_eq!(mine.hits(), 0);
}
