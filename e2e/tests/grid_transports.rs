//! The real grid's transports, end to end against gridshim: the controller's node calls go over
//! RMB (every e2e test does; see `stack.rs`), and what goes wrong with its identity or its relay
//! is a clear condition on the Tester and on `/readyz`, creates nothing on the grid, and shows
//! no secret.

use std::time::Duration;

use controller::resources::Tester;
use e2e::{
    fixtures::{host_pool, tester},
    stack::{Stack, TWIN_MNEMONIC, TestNode, free_port},
    wait,
};

const TIMEOUT: Duration = Duration::from_secs(180);

/// Every condition's message, one per line.
fn messages(t: &Tester) -> String {
    t.status
        .as_ref()
        .map(|s| {
            s.conditions
                .iter()
                .map(|c| format!("{}={}/{}: {}", c.type_, c.status, c.reason, c.message))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// Applies a pool and a Tester, waits until one of its conditions says `text`, and checks that
/// `/readyz` says it too, that nothing was created on the grid, and that `secret` shows nowhere.
async fn refused_with(s: &Stack, text: &str, readyz: &str, secret: &str) {
    s.apply(&host_pool("pool", &[1], 50, 4));
    s.apply(&tester("t", "tess", "pool").build());
    let t = wait::tester_until(&s.api, "t", TIMEOUT, text, |t| messages(t).contains(text))
        .await
        .unwrap();
    let said = messages(&t);
    assert!(!said.contains(secret), "{said}");
    let metrics = &s.controller.as_ref().unwrap().metrics_url;
    let answer = reqwest::get(format!("{metrics}/readyz")).await.unwrap();
    assert_eq!(answer.status(), 503);
    let body = answer.text().await.unwrap();
    assert!(body.contains(readyz), "/readyz: {body}");
    assert!(!body.contains(secret), "/readyz: {body}");
    let grid = s.grid.admin.inspect().await.unwrap();
    assert!(
        grid.contracts.is_empty() && grid.vms.is_empty(),
        "nothing on the grid: {:?}",
        grid.contracts
    );
    let events = s.ns.kubectl(&["get", "events", "-o", "yaml"]);
    assert!(!String::from_utf8_lossy(&events.stdout).contains(secret));
    assert!(!s.controller.as_ref().unwrap().output().contains(secret));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_without_a_twin_is_refused_and_nothing_is_created() {
    // A valid phrase (BIP-39's own test vector) whose account gridshim's chain does not know.
    let phrase = "legal winner thank year wave sausage worth useful legal winner thank yellow";
    let s = Stack::start(
        "notwin",
        &[TestNode::new(1, 1000, 64)],
        "",
        &[("GRID_MNEMONIC", phrase)],
    )
    .await;
    refused_with(&s, "has no twin on this grid", "has no twin", phrase).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_phrase_that_is_not_a_mnemonic_is_refused_without_repeating_it() {
    let phrase = "legal winner thank year wave sausage worth useful legal winner thank thank";
    let s = Stack::start(
        "badphrase",
        &[TestNode::new(1, 1000, 64)],
        "",
        &[("GRID_MNEMONIC", phrase)],
    )
    .await;
    refused_with(&s, "not a valid BIP-39", "checksum", phrase).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_relay_waits_and_the_tester_goes_ready_once_it_answers() {
    // First a relay nobody serves: the Tester waits, says why, nothing is created.
    let nowhere = format!("ws://127.0.0.1:{}/relay", free_port());
    let mut s = Stack::start(
        "relay",
        &[TestNode::new(1, 1000, 64)],
        "",
        &[("GRID_RELAY_URL", &nowhere)],
    )
    .await;
    refused_with(&s, "unreachable", "relay", TWIN_MNEMONIC).await;
    // Then the right relay: the same Tester goes Ready, its node calls over RMB.
    let relay = format!("{}/relay", s.grid.url.replacen("http", "ws", 1));
    drop(s.controller.take());
    s.start_controller(&[("GRID_RELAY_URL", &relay)]);
    wait::ready(&s.api, "t", TIMEOUT).await.unwrap();
    let grid = s.grid.admin.inspect().await.unwrap();
    assert_eq!(grid.vms.len(), 1);
    assert!(s.ns.kubectl(&["delete", "tester", "t"]).status.success());
    wait::gone(&s.api, "t", TIMEOUT).await.unwrap();
}
