//! A person's sign-in, in a real browser, through machines the controller built: headless
//! Debian Chromium opens a tester's address, the machine's gate sends it to the Forge (a real
//! Gitea) with that tester's own OAuth2 client, the person signs in there (a new account with
//! the one-time password from the welcome email, then the new password Gitea insists on) and
//! lands on the tester's app; an account that is not allowed gets the gate's friendly page.
//!
//! Chromium comes from `hack/chromium.sh` (apt-get, skipped when installed); it is driven over
//! the DevTools protocol by `hack/browser/chromium-forge-sign-in.mjs` (playwright-core from the npm
//! cache that `hack/browser/install.sh` fills; no browser download).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use controller::resources::Tester;
use e2e::{
    fixtures::{host_pool, tester},
    procs::repo_root,
    smtp::SmtpSink,
    stack::{Stack, TestNode},
    wait,
};
use serde_json::{Value, json};
use tokio::process::Command;

const TIMEOUT: Duration = Duration::from_secs(180);

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

/// Signs in at `start` as `login` in a fresh headless Chromium; `new_password` answers Gitea's
/// demand for a new one. Returns the driver's JSON result.
async fn sign_in(start: &str, login: &str, password: &str, new_password: Option<&str>) -> Value {
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
    let driver = Command::new("node")
        .arg(repo_root().join("hack/browser/chromium-forge-sign-in.mjs"))
        .arg(format!("http://127.0.0.1:{port}"))
        .args([start, login, password, new_password.unwrap_or("-")])
        .arg(profile.0.join("landed.png"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(TIMEOUT, driver)
        .await
        .expect("the browser run finished")
        .expect("running node");
    let _ = chromium.kill().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser run as {login} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON result ({e}): {stdout}"))
}

/// An app page of the tester's machine: its address and the first app installed there.
fn app_page(t: &Tester) -> (String, String) {
    let status = t.status.as_ref().unwrap();
    let url = status.url.clone().unwrap();
    let app = status
        .installed
        .as_ref()
        .and_then(|i| i.versions.keys().next().cloned())
        .expect("an installed app");
    (format!("{}/apps/{app}", url.trim_end_matches('/')), app)
}

#[tokio::test(flavor = "multi_thread")]
async fn testers_sign_in_at_the_forge_with_headless_chromium_and_others_are_kept_out() {
    let status = std::process::Command::new("bash")
        .arg(repo_root().join("hack/chromium.sh"))
        .status()
        .expect("running hack/chromium.sh");
    assert!(status.success(), "hack/chromium.sh failed");
    let install = std::process::Command::new("bash")
        .arg(repo_root().join("hack/browser/install.sh"))
        .status()
        .expect("running hack/browser/install.sh");
    assert!(install.success(), "hack/browser/install.sh failed");

    let smtp = SmtpSink::start().await;
    let s = Stack::start(
        "chromium",
        &[TestNode::new(1, 1000, 64)],
        "",
        &[("SMTP_URL", smtp.url.as_str())],
    )
    .await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    let pid = std::process::id();
    let (chris, dana) = (format!("Chris{pid}"), format!("dana{pid}"));
    s.apply(
        &tester("c", &chris, "pool")
            .with("accountType", json!("New"))
            .with("accountDeletionPolicy", json!("Delete"))
            .with("welcomeEmail", json!(true))
            .build(),
    );
    s.apply(&tester("d", &dana, "pool").build());
    let tc = wait::condition(&s.api, "c", "WelcomeEmailSent", "True", TIMEOUT)
        .await
        .unwrap();
    let td = wait::ready(&s.api, "d", TIMEOUT).await.unwrap();
    let mails = smtp.mails();
    let otp = mails[0]
        .data
        .lines()
        .find_map(|l| l.strip_prefix("Your one-time password is: "))
        .expect("the one-time password in the welcome email")
        .trim()
        .to_string();

    // A new tester: the emailed one-time password, the new password Gitea insists on, the app.
    let (start, app) = app_page(&tc);
    let new_password = format!("{chris}-Chosen-9");
    let landed = sign_in(&start, &chris, &otp, Some(&new_password)).await;
    assert_eq!(landed["changedPassword"], true, "{landed}");
    assert_eq!(
        landed["authorized"], true,
        "Gitea asks once per person and application"
    );
    assert_eq!(landed["url"], start.as_str(), "{landed}");
    assert_eq!(landed["status"], 200, "{landed}");
    assert!(landed["body"].as_str().unwrap().contains(&app), "{landed}");
    // The account now opens with the password the person chose, and nothing else to change.
    let me = reqwest::Client::new()
        .get(s.forge.at("api/v1/user"))
        .basic_auth(&chris, Some(&new_password))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // An existing account on its own machine.
    let (start_d, app_d) = app_page(&td);
    let password = e2e::forge::password_of(&dana);
    let landed = sign_in(&start_d, &dana, &password, None).await;
    assert_eq!(landed["changedPassword"], false, "{landed}");
    assert_eq!(landed["status"], 200, "{landed}");
    assert!(
        landed["body"].as_str().unwrap().contains(&app_d),
        "{landed}"
    );

    // The same person at another tester's machine: signed in, yet kept out, kindly.
    let refused = sign_in(&start, &dana, &password, None).await;
    assert_eq!(refused["status"], 403, "{refused}");
    let body = refused["body"].as_str().unwrap();
    assert!(
        body.contains(&dana) && body.contains("no access"),
        "{refused}"
    );
    assert!(!body.contains(&app), "{refused}");
}
