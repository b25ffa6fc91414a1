//! The sign-in gate against a provider written in Rust whose answers the tests bend: the
//! quirks of real providers must be accepted, and forgeries (tokens, cookies, state) refused.
//! Tricks of the request line and headers are in `gate_requests.rs`.

#[path = "../src/gate/mod.rs"]
mod harness;

use harness::quirk::{CLIENT_SECRET, gate_for, setup, sign_in};
use harness::{Browser, QuirkProvider, Quirks, RunningGate, app_saw, host};
use serde_json::json;

// ---- quirks that must be accepted ----

async fn accepted(quirks: Quirks) {
    let (_provider, gate) = setup(quirks).await;
    let (_, page) = sign_in(&gate).await;
    let saw = app_saw(&page);
    assert_eq!(saw.user.as_deref(), Some("alice"));
    assert_eq!(saw.sub.as_deref(), Some("1001"));
    assert_eq!(saw.email.as_deref(), Some("alice@example.test"));
}

#[tokio::test(flavor = "multi_thread")]
async fn numeric_sub_with_claims_only_in_userinfo() {
    accepted(Quirks::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aud_as_a_string_or_a_list() {
    accepted(Quirks {
        aud: json!("gate"),
        ..Quirks::default()
    })
    .await;
    accepted(Quirks {
        aud: json!(["gate"]),
        ..Quirks::default()
    })
    .await;
    accepted(Quirks {
        aud: json!(["gate", "another-client"]),
        azp: Some("gate".into()),
        ..Quirks::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_username_comes_from_userinfo_not_the_id_token() {
    let mut extra = serde_json::Map::new();
    extra.insert("preferred_username".into(), json!("admin"));
    extra.insert("email".into(), json!("admin@example.test"));
    accepted(Quirks {
        id_token_extra: extra,
        ..Quirks::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn issuer_with_and_without_a_trailing_slash() {
    // Forgejo publishes "https://host/"; operators write "https://host". And the reverse.
    for (published_slash, configured_slash) in [(true, false), (false, true), (true, true)] {
        let provider = QuirkProvider::start(Quirks {
            issuer_slash: published_slash,
            ..Quirks::default()
        })
        .await;
        let base = provider.issuer().trim_end_matches('/').to_string();
        let configured = if configured_slash {
            format!("{base}/")
        } else {
            base
        };
        let gate = gate_for(&configured).await;
        let (_, page) = sign_in(&gate).await;
        assert_eq!(
            app_saw(&page).user.as_deref(),
            Some("alice"),
            "published slash {published_slash}, configured slash {configured_slash}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_is_fetched_once() {
    let (provider, gate) = setup(Quirks::default()).await;
    let (browser, page) = sign_in(&gate).await;
    assert_eq!(app_saw(&page).user.as_deref(), Some("alice"));
    let fetches = provider.jwks_fetches();

    provider.set(|q| {
        q.publish_b = true;
        q.sign_with_b = true;
    });
    browser.set_cookie(&host(&gate.public), "gate_session", None);
    let page = browser.follow(&format!("{}/", gate.public)).await.unwrap();
    assert_eq!(
        app_saw(&page).user.as_deref(),
        Some("alice"),
        "the new key was fetched"
    );
    assert_eq!(provider.jwks_fetches(), fetches + 1, "exactly one refetch");
}

// ---- forgeries that must be refused ----

async fn refused(quirks: Quirks, reason: &str) {
    let (_provider, gate) = setup(quirks).await;
    let (browser, page) = sign_in(&gate).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.url.path().starts_with("/oauth2/callback"),
        "{}",
        page.url
    );
    assert!(page.body.contains("Sign-in failed"), "{}", page.body);
    assert!(
        page.body.contains(reason),
        "expected {reason:?} in {}",
        page.body
    );
    assert!(
        browser
            .cookie(&host(&gate.public), "gate_session")
            .is_none()
    );
    assert_eq!(gate.hits(), 0);
    // And no secret in the page: no code, no token, no client secret.
    assert!(!page.body.contains(CLIENT_SECRET));
    assert!(!page.body.contains("code="));
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_foreign_aud() {
    refused(
        Quirks {
            aud: json!("another-client"),
            ..Quirks::default()
        },
        "audience",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_several_aud_without_azp_or_with_a_foreign_azp() {
    refused(
        Quirks {
            aud: json!(["gate", "another-client"]),
            ..Quirks::default()
        },
        "authorized party",
    )
    .await;
    refused(
        Quirks {
            aud: json!(["gate", "another-client"]),
            azp: Some("another-client".into()),
            ..Quirks::default()
        },
        "authorized party",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_wrong_nonce() {
    refused(
        Quirks {
            nonce: Some("not-the-nonce-we-sent".into()),
            ..Quirks::default()
        },
        "nonce",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_an_expired_token() {
    // Beyond the 60 s allowed for clock skew.
    refused(
        Quirks {
            exp_in: -120,
            iat_in: -400,
            ..Quirks::default()
        },
        "expired",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_token_issued_in_the_future() {
    refused(
        Quirks {
            iat_in: 600,
            exp_in: 900,
            ..Quirks::default()
        },
        "future",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_an_unknown_kid_after_one_refetch() {
    let (provider, gate) = setup(Quirks {
        sign_with_b: true,
        ..Quirks::default()
    })
    .await;
    let (browser, page) = sign_in(&gate).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("key"), "{}", page.body);
    assert_eq!(
        provider.jwks_fetches(),
        2,
        "discovery, then one refetch for the unknown kid"
    );
    assert!(
        browser
            .cookie(&host(&gate.public), "gate_session")
            .is_none()
    );
    // A second try within the rate limit does not fetch again.
    let page = browser.follow(&format!("{}/", gate.public)).await.unwrap();
    assert_eq!(page.status, 400);
    assert_eq!(provider.jwks_fetches(), 2);
    assert_eq!(gate.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_an_unsigned_token() {
    refused(
        Quirks {
            alg_none: true,
            ..Quirks::default()
        },
        "ID token was refused",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_foreign_issuer_in_the_token() {
    refused(
        Quirks {
            iss: Some("http://evil.example".into()),
            ..Quirks::default()
        },
        "issuer",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_userinfo_for_another_subject() {
    refused(
        Quirks {
            userinfo_sub: Some("1000".into()),
            ..Quirks::default()
        },
        "userinfo",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_tampered_or_foreign_session_cookie() {
    let (provider, gate) = setup(Quirks::default()).await;
    let (browser, page) = sign_in(&gate).await;
    app_saw(&page);
    let host = host(&gate.public);
    let good = browser.cookie(&host, "gate_session").unwrap();
    let hits = gate.hits();

    let mut bytes = good.clone().into_bytes();
    for i in [0, bytes.len() / 2, bytes.len() - 1] {
        let original = bytes[i];
        bytes[i] = if original == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes.clone()).unwrap();
        browser.set_cookie(&host, "gate_session", Some(&tampered));
        let page = browser
            .get(&format!("{}/apps/x", gate.public))
            .await
            .unwrap();
        assert!(
            page.is_redirect(),
            "tampered at {i}: {} {}",
            page.status,
            page.body
        );
        bytes[i] = original;
    }
    for junk in ["", "x", "e30", &good[..good.len() / 2]] {
        browser.set_cookie(&host, "gate_session", Some(junk));
        let page = browser
            .get(&format!("{}/apps/x", gate.public))
            .await
            .unwrap();
        assert!(page.is_redirect(), "{junk:?}");
    }
    // A valid cookie from another gate (same provider and client) does not open here.
    let other = gate_for(provider.issuer()).await;
    browser.set_cookie(&host, "gate_session", Some(&good));
    let page = browser
        .get(&format!("{}/apps/x", other.public))
        .await
        .unwrap();
    assert!(page.is_redirect(), "{} {}", page.status, page.body);
    assert_eq!(gate.hits(), hits);
    assert_eq!(other.hits(), 0);
    // The untouched cookie still works.
    let page = browser
        .get(&format!("{}/apps/x", gate.public))
        .await
        .unwrap();
    app_saw(&page);
}

/// Runs the sign-in up to the provider's redirect back, and returns the callback URL unvisited.
async fn callback_url(browser: &Browser, gate: &RunningGate) -> url::Url {
    let to_provider = browser.get(&format!("{}/", gate.public)).await.unwrap();
    let back = browser
        .get(to_provider.location.unwrap().as_str())
        .await
        .unwrap();
    let callback = back.location.unwrap();
    assert_eq!(callback.path(), "/oauth2/callback");
    callback
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_replayed_state() {
    let (_provider, gate) = setup(Quirks::default()).await;
    let browser = Browser::new();
    let host = host(&gate.public);
    let callback = callback_url(&browser, &gate).await;
    let pending = browser
        .cookie(&host, "gate_login")
        .expect("pending sign-in cookie");
    let page = browser.follow(callback.as_str()).await.unwrap();
    app_saw(&page);

    // Replay the same callback with the same pending-sign-in cookie, from a fresh browser.
    let attacker = Browser::new();
    attacker.set_cookie(&host, "gate_login", Some(&pending));
    let page = attacker.get(callback.as_str()).await.unwrap();
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("already used"), "{}", page.body);
    assert!(attacker.cookie(&host, "gate_session").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_callback_whose_state_is_not_this_browsers() {
    let (_provider, gate) = setup(Quirks::default()).await;
    let host = host(&gate.public);

    // Login CSRF: the victim's browser receives the attacker's callback.
    let attacker = Browser::new();
    let callback = callback_url(&attacker, &gate).await;
    let victim = Browser::new();
    victim.get(&format!("{}/", gate.public)).await.unwrap(); // the victim's own pending sign-in
    let page = victim.get(callback.as_str()).await.unwrap();
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("does not match"), "{}", page.body);

    // No pending sign-in at all.
    let stranger = Browser::new();
    let page = stranger.get(callback.as_str()).await.unwrap();
    assert_eq!(page.status, 400);
    assert!(page.body.contains("no pending sign-in"), "{}", page.body);
    let page = stranger
        .get(&format!("{}/oauth2/callback", gate.public))
        .await
        .unwrap();
    assert_eq!(page.status, 400);
    assert!(victim.cookie(&host, "gate_session").is_none());
    assert!(stranger.cookie(&host, "gate_session").is_none());
    assert_eq!(gate.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_callback_from_another_issuer() {
    // RFC 9207: the provider names itself in the callback (the npm provider does); a callback
    // naming another issuer is a mix-up attack.
    let (provider, gate) = setup(Quirks::default()).await;
    let browser = Browser::new();
    let mut callback = callback_url(&browser, &gate).await;
    callback
        .query_pairs_mut()
        .append_pair("iss", "http://evil.example");
    let page = browser.get(callback.as_str()).await.unwrap();
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("names issuer"), "{}", page.body);

    let browser = Browser::new();
    let mut callback = callback_url(&browser, &gate).await;
    callback
        .query_pairs_mut()
        .append_pair("iss", provider.issuer());
    let page = browser.follow(callback.as_str()).await.unwrap();
    assert_eq!(app_saw(&page).user.as_deref(), Some("alice"));
}
