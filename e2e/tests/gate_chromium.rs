//! A person's sign-in, in a real browser: headless Debian Chromium opens the tester's address,
//! is sent to the npm OIDC provider, fills its form, and lands on the tester's app.
//!
//! Chromium comes from `hack/chromium.sh` (apt-get, skipped when installed); it is driven over
//! the DevTools protocol by `hack/oidc/chromium-sign-in.mjs` (playwright-core from the npm
//! cache that `hack/oidc/install.sh` fills; no browser download).

#[path = "../src/gate/mod.rs"]
mod harness;

use harness::app::{app, config, serve_gate};
use harness::npm::{CLIENT_ID, CLIENT_SECRET, install};
use harness::{NpmProvider, repo_root};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// A fresh, empty Chromium profile directory, removed when dropped.
struct Profile(PathBuf);

impl Profile {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("gate-chromium-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn devtools_port(profile: &Path, chromium: &mut tokio::process::Child) -> u16 {
    let file = profile.join("DevToolsActivePort");
    for _ in 0..600 {
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok())
        {
            return port;
        }
        if let Ok(Some(status)) = chromium.try_wait() {
            panic!("chromium exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromium did not open its DevTools port");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tester_signs_in_with_headless_chromium() {
    let status = std::process::Command::new("bash")
        .arg(repo_root().join("hack/chromium.sh"))
        .status()
        .expect("running hack/chromium.sh");
    assert!(status.success(), "hack/chromium.sh failed");
    install().expect("hack/oidc/install.sh");

    let provider = NpmProvider::start().await.unwrap();
    let issuer = provider.issuer.clone();
    // A `*.localhost` name, as a tester's gateway name would be: Chromium resolves it to the
    // loopback address by itself, and the provider accepts callbacks there.
    let gate = serve_gate("alice.localhost", move |public_url, hits| {
        let config = config(
            &issuer,
            CLIENT_ID,
            CLIENT_SECRET,
            &public_url,
            &["alice"],
            &["admin"],
        );
        gate::Gate::new(config).unwrap().wrap(app(hits))
    })
    .await;

    let profile = Profile::new();
    let mut chromium = Command::new("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting /usr/bin/chromium");
    let port = devtools_port(&profile.0, &mut chromium).await;

    let start = format!("{}/apps/planner?board=7", gate.public);
    let driver = Command::new("node")
        .arg(repo_root().join("hack/oidc/chromium-sign-in.mjs"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&start)
        .args(["alice", "alice-password"])
        .arg(profile.0.join("landed.png"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), driver)
        .await
        .expect("the browser run finished")
        .expect("running node");
    let _ = chromium.kill().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser run failed: {}\n{stdout}\n{}\nprovider:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        provider.output()
    );
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON result ({e}): {stdout}"));
    assert_eq!(result["url"], start, "landed on the app page asked for");
    assert_eq!(result["status"], 200);
    let saw: harness::AppSaw = serde_json::from_str(result["body"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("not the app's answer ({e}): {result}"));
    assert_eq!(saw.user.as_deref(), Some("alice"));
    assert_eq!(saw.path, "/apps/planner");
    assert_eq!(saw.query.as_deref(), Some("board=7"));
    assert!(gate.hits() >= 1);
}
