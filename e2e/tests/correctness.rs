//! Defects a review of the controller found, each guarded end to end against the real parts
//! (API server, gridshim, the Forge, SMTP conversation, controller process): a tester being
//! deleted is never Ready, accounts that look alike never share an engine identity, tokens go
//! to each SharedEngine's own token store, mail is never sent in plaintext across the network,
//! an interrupted send is never repeated, and a lagging proxy never over-commits a node.

use std::{process::Command, time::Duration};

use controller::resources::Tester;
use e2e::{
    fixtures::{host_pool, shared_engine, shared_engine_with_store, tester},
    procs::{Process, target_bin},
    smtp::SmtpSink,
    stack::{Stack, TestNode, free_port},
    wait::{self, condition_of},
};
use gridshim::wire::{FaultKind, FaultMode, FaultScope, FaultSpec};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(180);

/// Calls an engine as `identity` with `token`; the HTTP status.
async fn call_engine(url: &str, identity: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/v1/embeddings"))
        .bearer_auth(token)
        .header("x-tester", identity)
        .json(&json!({"input": "hello"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn token_of(s: &Stack, tester: &str) -> String {
    let out = s.ns.kubectl(&[
        "get",
        "secret",
        &format!("{tester}-engine-token"),
        "-o",
        "jsonpath={.data.token}",
    ]);
    assert!(out.status.success());
    let bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        out.stdout.trim_ascii(),
    )
    .unwrap();
    String::from_utf8(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tester_being_deleted_is_never_ready_and_says_what_deletion_waits_for() {
    let mut s = Stack::start("deleting", &[TestNode::new(1, 1000, 64)], "", &[]).await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    s.apply(&tester("d", "dora", "pool").build());
    wait::ready(&s.api, "d", TIMEOUT).await.unwrap();

    // The relay refuses every cancel: deletion must wait, and say so.
    s.grid
        .admin
        .inject(&FaultSpec {
            kind: FaultKind::Cancel502,
            mode: FaultMode::Always,
            scope: FaultScope::default(),
        })
        .await
        .unwrap();
    assert!(
        s.ns.kubectl(&["delete", "tester", "d", "--wait=false"])
            .status
            .success()
    );
    let t = wait::tester_until(
        &s.api,
        "d",
        TIMEOUT,
        "saying what deletion waits for",
        |t| {
            condition_of(t, "Ready")
                .2
                .contains("deletion is waiting for")
        },
    )
    .await
    .unwrap();
    let (status, reason, message) = condition_of(&t, "Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Deleting"));
    assert!(message.contains("contract"), "{message}");
    assert_eq!(t.status.unwrap().phase.as_deref(), Some("Deleting"));

    // A later pass (another refused cancel) keeps it so: Ready never flips back to True.
    s.controller()
        .metric_reaches(
            r#"sandbox_reconcile_errors_total{controller="tester",error="deletion_pending",step="reconcile"}"#,
            3.0,
            TIMEOUT,
        )
        .await
        .unwrap();
    let t = s.api.get("d").await.unwrap();
    assert_eq!(
        condition_of(&t, "Ready").0,
        "False",
        "{:?}",
        condition_of(&t, "Ready")
    );

    s.grid.admin.clear_faults().await.unwrap();
    wait::gone(&s.api, "d", TIMEOUT).await.unwrap();
    assert!(s.grid.admin.inspect().await.unwrap().contracts.is_empty());
    // Time to Ready was observed once, for the one time it became Ready.
    s.controller()
        .metric_reaches("sandbox_time_to_ready_seconds_count", 1.0, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        s.controller()
            .metric("sandbox_time_to_ready_seconds_count")
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_that_look_alike_never_share_an_engine_identity() {
    let s = Stack::start("alike", &[TestNode::new(1, 1000, 64)], "", &[]).await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    let engine = s.grid.engine_url("embedder");
    s.apply(&shared_engine("embedder", &engine));
    for (name, account) in [("dot", "Bob.Smith"), ("under", "bob_smith")] {
        s.apply(
            &tester(name, account, "pool")
                .with("sharedEngines", json!(["embedder"]))
                .build(),
        );
    }
    let dot = wait::ready(&s.api, "dot", TIMEOUT).await.unwrap();
    let under = wait::ready(&s.api, "under", TIMEOUT).await.unwrap();
    let id = |t: &Tester| t.status.as_ref().unwrap().engine_identity.clone().unwrap();
    assert_ne!(id(&dot), id(&under), "one identity each");
    let (dot_token, under_token) = (token_of(&s, "dot"), token_of(&s, "under"));
    assert_eq!(call_engine(&engine, &id(&dot), &dot_token).await, 200);
    assert_eq!(call_engine(&engine, &id(&under), &under_token).await, 200);
    assert_eq!(s.grid.admin.inspect().await.unwrap().tokens.len(), 2);

    // Deleting one revokes its token only.
    assert!(s.ns.kubectl(&["delete", "tester", "dot"]).status.success());
    wait::gone(&s.api, "dot", TIMEOUT).await.unwrap();
    assert_eq!(call_engine(&engine, &id(&dot), &dot_token).await, 401);
    assert_eq!(call_engine(&engine, &id(&under), &under_token).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_go_to_each_shared_engines_own_token_store() {
    let s = Stack::start("stores", &[TestNode::new(1, 1000, 64)], "", &[]).await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    let engine = s.grid.engine_url("embedder");
    // The SharedEngine names a token store nobody serves: nothing may be registered elsewhere.
    let nowhere = format!("http://127.0.0.1:{}/admin", free_port());
    s.apply(&shared_engine_with_store(
        "embedder", "embedder", &engine, &nowhere,
    ));
    s.apply(
        &tester("e", "erin", "pool")
            .with("sharedEngines", json!(["embedder"]))
            .build(),
    );
    let t = wait::tester_until(&s.api, "e", TIMEOUT, "waiting for its token store", |t| {
        condition_of(t, "TokensRegistered").1 == "EngineRetrying"
    })
    .await
    .unwrap();
    let (status, _, message) = condition_of(&t, "TokensRegistered");
    assert_eq!(status, "False");
    assert!(message.contains(&nowhere), "{message}");
    assert!(s.grid.admin.inspect().await.unwrap().tokens.is_empty());

    // Pointed at the engine's real store, the token is registered there and proven.
    s.apply(&shared_engine("embedder", &engine));
    let ready = wait::ready(&s.api, "e", TIMEOUT).await.unwrap();
    let status = ready.status.unwrap();
    assert_eq!(s.grid.admin.inspect().await.unwrap().tokens.len(), 1);
    let identity = status.engine_identity.unwrap();
    assert_eq!(
        call_engine(&engine, &identity, &token_of(&s, "e")).await,
        200
    );
    assert!(
        status
            .registered_engines
            .iter()
            .any(|r| r.token_store_url == format!("{engine}/admin")),
        "{:?}",
        status.registered_engines
    );

    // The SharedEngine object goes, the engine does not: deletion still revokes the token at
    // the store recorded in the status.
    assert!(
        s.ns.kubectl(&["delete", "sharedengine", "embedder"])
            .status
            .success()
    );
    assert!(s.ns.kubectl(&["delete", "tester", "e"]).status.success());
    wait::gone(&s.api, "e", TIMEOUT).await.unwrap();
    assert!(
        s.grid.admin.inspect().await.unwrap().tokens.is_empty(),
        "the token was revoked"
    );
}

#[test]
fn a_plaintext_smtp_url_across_the_network_stops_the_controller_at_start() {
    let mut cmd = Command::new(target_bin("controller"));
    cmd.env_clear()
        .env("KUBECONFIG", "/nonexistent")
        .env("GRID_URL", "http://127.0.0.1:9")
        .env("GRID_TWIN_ID", "7")
        .env("GRID_TWIN_SECRET", "twin-secret-e2e-4410")
        .env("FORGE_URL", "http://127.0.0.1:9/")
        .env("FORGE_TOKEN", "forge-token-e2e-4410")
        .env("SMTP_URL", "smtp://mail.example.org:587")
        .env("SMTP_USERNAME", "sandbox")
        .env("SMTP_PASSWORD", "smtp-password-e2e-4410")
        .env("METRICS_ADDR", format!("127.0.0.1:{}", free_port()));
    let mut p = Process::spawn(cmd).unwrap();
    let status = p.wait_exit(Duration::from_secs(30)).unwrap();
    let out = p.output();
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("smtp://mail.example.org:587?tls=required")
            && out.contains("smtps://mail.example.org:465"),
        "says what to write instead: {out}"
    );
    for secret in [
        "smtp-password-e2e-4410",
        "twin-secret-e2e-4410",
        "forge-token-e2e-4410",
    ] {
        assert!(!out.contains(secret), "no secret in the output: {out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_required_is_never_downgraded_to_plaintext() {
    // The sink offers no STARTTLS; the URL requires it: nothing may be sent.
    let smtp = SmtpSink::start().await;
    let url = format!("{}?tls=required", smtp.url);
    let env = [("SMTP_URL", url.as_str())];
    let s = Stack::start("starttls", &[TestNode::new(1, 1000, 64)], "", &env).await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    s.apply(
        &tester("m", "mia", "pool")
            .with("welcomeEmail", json!(true))
            .build(),
    );
    let t = wait::tester_until(&s.api, "m", TIMEOUT, "refusing to send", |t| {
        condition_of(t, "WelcomeEmailSent").1 == "SendFailed"
    })
    .await
    .unwrap();
    assert_eq!(
        condition_of(&t, "Ready").0,
        "True",
        "mail does not hold the tester back"
    );
    assert_eq!(smtp.data_started(), 0, "nothing sent in plaintext");
    assert!(smtp.mails().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_send_interrupted_by_a_crash_is_reported_and_never_repeated() {
    // The server takes the message and never answers: the controller is killed while it waits.
    let smtp = SmtpSink::stalling().await;
    let env = [("SMTP_URL", smtp.url.as_str())];
    let mut s = Stack::start("interrupted", &[TestNode::new(1, 1000, 64)], "", &env).await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    s.apply(
        &tester("i", "ida", "pool")
            .with("welcomeEmail", json!(true))
            .build(),
    );
    wait::tester_until(&s.api, "i", TIMEOUT, "sending", |t| {
        condition_of(t, "WelcomeEmailSent").1 == "Sending"
    })
    .await
    .unwrap();
    // The status says "Sending" before the SMTP conversation reaches DATA: wait until the
    // message has been taken, so the kill lands while the controller waits for the answer.
    smtp.wait_data_started(1, TIMEOUT).await.unwrap();
    s.controller().kill_and_restart().unwrap();
    let t = wait::tester_until(&s.api, "i", TIMEOUT, "interrupted", |t| {
        condition_of(t, "WelcomeEmailSent").1 == "Interrupted"
    })
    .await
    .unwrap();
    assert_eq!(condition_of(&t, "WelcomeEmailSent").0, "False");
    assert_eq!(
        smtp.data_started(),
        1,
        "the restarted controller sent nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lagging_proxy_never_over_commits_a_node() {
    // The proxy counts a new deployment only 3 s after it lands (the instant profile otherwise
    // counts it at once); five testers arrive together on room for three.
    let mut s = Stack::start(
        "lag",
        &[TestNode::new(1, 55, 256)],
        "proxy_lag_ms: 3000\n",
        &[("PROXY_LAG", "5s")],
    )
    .await;
    s.apply(&host_pool("pool", &[1], 10, 1));
    let docs: Vec<String> = (0..5)
        .map(|i| tester(&format!("l{i}"), &format!("lag{i}"), "pool").build())
        .collect();
    s.apply(&format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{}]}}",
        docs.join(",")
    ));
    let settled = wait::all_until(&s.api, TIMEOUT, "3 Ready and 2 unschedulable", |ts| {
        let ready = ts
            .iter()
            .filter(|t| condition_of(t, "Ready").0 == "True")
            .count();
        let waiting = ts
            .iter()
            .filter(|t| condition_of(t, "Scheduled").1 == "InsufficientDisk")
            .count();
        (ready, waiting) == (3, 2)
    })
    .await
    .unwrap();
    assert_eq!(settled.len(), 5);
    // The stale listing showed room for five: only the ledger kept the node from refusing.
    let refused = s
        .controller()
        .metric(r#"sandbox_grid_errors_total{call="deploy",kind="Capacity"}"#)
        .await
        + s.controller()
            .metric(r#"sandbox_grid_errors_total{call="create_node_contract",kind="Capacity"}"#)
            .await;
    assert_eq!(refused, 0.0, "no placement beyond the node's real room");
    let inspect = s.grid.admin.inspect().await.unwrap();
    assert_eq!(inspect.vms.len(), 3);
    let node = s.grid.admin_node(1).await;
    assert!(node.used_resources.sru <= node.total_resources.sru);
}
