//! The standalone `gate` binary against the Forge (a real Gitea, started by `hack/forge.sh`):
//! started from its configuration file, it gates an upstream on every listener with the same
//! rules as the gate the tests start in-process (`gate_flow.rs`).

#[path = "../src/gate/mod.rs"]
mod harness;

use e2e::forge::Forge;
use harness::app::app;
use harness::forge::{ADMIN, client_for, sign_in};
use harness::{Browser, app_saw};
use std::time::Duration;

/// Starts the standalone `gate` binary (built by `cargo build --bins`, as `make test` does)
/// with `config`, logging to `log`; waits until it answers `/health`.
async fn start_binary(
    config: &std::path::Path,
    log: &std::path::Path,
    health: &str,
) -> tokio::process::Child {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| harness::repo_root().join("target"));
    let binary = target.join("debug/gate");
    assert!(
        binary.exists(),
        "{} is not built; run `cargo build -p gate` first",
        binary.display()
    );
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = tokio::process::Command::new(binary)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("starting the gate binary");
    let browser = Browser::new();
    for _ in 0..300 {
        if let Ok(page) = browser.get(health).await
            && page.status == 200
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gate binary did not answer {health}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_standalone_binary_gates_an_upstream_on_every_listener() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let forge = Forge::shared();
    let hits = Arc::new(AtomicUsize::new(0));
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_url = format!("http://{}", upstream.local_addr().unwrap());
    let upstream_app = app(hits.clone());
    tokio::spawn(async move { axum::serve(upstream, upstream_app).await });

    let public_port = harness::free_port();
    let private_port = std::net::TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let public = format!("http://127.0.0.1:{public_port}");
    let private = format!("http://127.0.0.2:{private_port}");

    // The settings as the VM agent keeps them on the machine: a JSON file and a secret file.
    let dir =
        std::env::temp_dir().join(format!("gate-binary-{}-{public_port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let client = client_for(forge, &public).await;
    std::fs::write(dir.join("client-secret"), &client.secret).unwrap();
    let config_path = dir.join("gate.json");
    std::fs::write(
        &config_path,
        serde_json::json!({
            "issuer": forge.url,
            "client_id": client.id,
            "client_secret_file": dir.join("client-secret"),
            "allowed_accounts": ["alice"],
            "admins": [ADMIN],
            "public_url": public,
            "upstream": upstream_url,
            "listen": [format!("127.0.0.1:{public_port}"), format!("127.0.0.2:{private_port}")],
            "session_key_file": dir.join("session.key"),
            "contact": "ops@example.test",
        })
        .to_string(),
    )
    .unwrap();
    let log = dir.join("gate.log");
    let mut child = start_binary(&config_path, &log, &format!("{public}/health")).await;

    let alice = Browser::new();
    let page = sign_in(
        &alice,
        &format!("{public}/apps/books?q=1"),
        "alice",
        "alice-password",
    )
    .await
    .unwrap();
    let saw = app_saw(&page);
    assert_eq!(saw.user.as_deref(), Some("alice"));
    assert_eq!(
        (saw.path.as_str(), saw.query.as_deref()),
        ("/apps/books", Some("q=1"))
    );

    let bob = Browser::new();
    let page = sign_in(&bob, &format!("{public}/"), "bob", "bob-password")
        .await
        .unwrap();
    assert_eq!(page.status, 403);
    assert!(page.body.contains("ops@example.test"));

    // The private listener: gated alike.
    let anonymous = Browser::new();
    let page = anonymous
        .get(&format!("{private}/apps/books"))
        .await
        .unwrap();
    assert!(page.is_redirect(), "{} {}", page.status, page.body);
    assert_eq!(
        anonymous
            .get(&format!("{private}/health"))
            .await
            .unwrap()
            .status,
        200
    );
    let session = alice.cookie("127.0.0.1", "gate_session").unwrap();
    alice.set_cookie("127.0.0.2", "gate_session", Some(&session));
    assert_eq!(
        app_saw(&alice.get(&format!("{private}/x")).await.unwrap())
            .user
            .as_deref(),
        Some("alice")
    );
    let hits_before_restart = hits.load(Ordering::SeqCst);

    // A restart with the same files keeps the session.
    child.kill().await.unwrap();
    let _child = start_binary(&config_path, &log, &format!("{public}/health")).await;
    let page = alice.get(&format!("{public}/after-restart")).await.unwrap();
    assert_eq!(app_saw(&page).user.as_deref(), Some("alice"));
    assert_eq!(hits.load(Ordering::SeqCst), hits_before_restart + 1);

    // No secret in the gate's log, even at debug level.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("signed in"), "{log}");
    assert!(
        !log.contains(&client.secret),
        "the client secret leaked into the log"
    );
    assert!(
        !log.contains(&session),
        "the session cookie leaked into the log"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
