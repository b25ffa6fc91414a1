//! The agent as it runs in a VM: the real `hero-agent` binary over real HTTP, with a machine root
//! in a temporary directory, a release server of the test's own, and a `zinit` stand-in script
//! that records what the agent asks of it (the services themselves are not the agent's code).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gridapi::agent::signing::{self, ControllerKey};
use gridapi::agent::{AgentConfigView, InstallState, InstallStatus, digest};
use sha2::{Digest as _, Sha256};

struct Agent {
    child: Child,
    api: String,
    web: String,
    root: tempfile::TempDir,
    key: ControllerKey,
    http: reqwest::Client,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const MACHINE: &str = "m-0123456789abcdef";

async fn start() -> Agent {
    let root = tempfile::tempdir().unwrap();
    let zinit = root.path().join("zinit-stand-in");
    std::fs::write(
        &zinit,
        format!(
            "#!/bin/sh\necho \"$@\" >> {log}\ncase \"$1\" in status) grep -q \"^monitor $2$\" {log} && echo 'state: Running' || exit 1;; esac\n",
            log = root.path().join("zinit.log").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&zinit, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The image makes the apps' user; here it is whoever runs the test.
    let (uid, gid) = {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(root.path()).unwrap();
        (m.uid(), m.gid())
    };
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(
        root.path().join("etc/passwd"),
        format!("root:x:0:0::/root:/bin/sh\napps:x:{uid}:{gid}::/home/apps:/usr/sbin/nologin\n"),
    )
    .unwrap();
    let key = ControllerKey::generate();
    let (api, web) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_hero-agent"))
        .env_clear()
        .env(signing::CONTROLLER_KEY_ENV, key.public().to_base64())
        .env(signing::MACHINE_ID_ENV, MACHINE)
        .args([
            format!("--api-listen=127.0.0.1:{api}"),
            format!("--web-listen=127.0.0.1:{web}"),
            format!("--root={}", root.path().display()),
            format!("--zinit={}", zinit.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hero-agent");
    let agent = Agent {
        child,
        api: format!("http://127.0.0.1:{api}"),
        web: format!("http://127.0.0.1:{web}"),
        root,
        key,
        http: reqwest::Client::new(),
    };
    for _ in 0..200 {
        if let Ok(r) = agent.http.get(format!("{}/health", agent.api)).send().await
            && r.status().is_success()
        {
            return agent;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("hero-agent did not answer");
}

impl Agent {
    fn file(&self, path: &str) -> PathBuf {
        self.root.path().join(path.trim_start_matches('/'))
    }

    /// A request signed as the controller signs it, sent as is.
    async fn signed(&self, method: &str, path: &str, body: &[u8]) -> reqwest::Response {
        let h = self.key.sign(MACHINE, method, path, body);
        self.send(method, path, body, &h).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        h: &signing::SignedHeaders,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.api))
            .body(body.to_vec());
        for (k, v) in h.pairs() {
            req = req.header(k, v);
        }
        req.send().await.unwrap()
    }

    async fn config(&self) -> AgentConfigView {
        self.signed("GET", "/v1/config", b"")
            .await
            .json()
            .await
            .unwrap()
    }

    async fn refused(&self, reason: &str) -> u64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.api))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let series = format!("hero_agent_requests_refused_total{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series)?.parse().ok())
            .unwrap_or(0)
    }
}

/// Serves a release index: `cockpit` whose artifact matches its SHA-256, `books` whose
/// artifact does not.
async fn release_server() -> String {
    use axum::routing::get;
    // A real archive with the app's `run` in it, as a release carries.
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("run"), "#!/bin/sh\necho cockpit\n").unwrap();
    let tar = src.path().join("cockpit.tar");
    assert!(
        Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(src.path())
            .arg("run")
            .status()
            .unwrap()
            .success()
    );
    let good = std::fs::read(&tar).unwrap();
    let sha = hex::encode(Sha256::digest(&good));
    let index = serde_json::json!({ "channels": { "stable": {
        "cockpit": { "version": "2.0.0", "url": "files/cockpit-2.0.0", "sha256": sha },
        "books": { "version": "1.1.0", "url": "files/books-1.1.0", "sha256": "00".repeat(32) },
    }}});
    let app = axum::Router::new()
        .route(
            "/r/index.json",
            get(move || async move { axum::Json(index) }),
        )
        .route("/r/files/cockpit-2.0.0", get(move || async move { good }))
        .route(
            "/r/files/books-1.1.0",
            get(|| async { b"tampered".to_vec() }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/r/index.json", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn signed_settings_reach_the_machine_and_the_install_checks_every_artifact() {
    let a = start().await;
    // Before a gate is set, the web side answers only /health.
    assert_eq!(
        a.http
            .get(format!("{}/health", a.web))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        a.http
            .get(format!("{}/", a.web))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );

    let ssh = br#"{"keys":["ssh-ed25519 AAAA support","ssh-ed25519 AAAA alice"]}"#;
    assert!(
        a.signed("PUT", "/v1/ssh-keys", ssh)
            .await
            .status()
            .is_success()
    );
    assert_eq!(
        std::fs::read_to_string(a.file("/root/.ssh/authorized_keys")).unwrap(),
        "ssh-ed25519 AAAA support\nssh-ed25519 AAAA alice\n"
    );
    let ai = br#"{"keys":{"openai":"sk-agent-test-1"}}"#;
    assert!(
        a.signed("PUT", "/v1/ai-keys", ai)
            .await
            .status()
            .is_success()
    );
    let env = a.file("/etc/hero/ai-keys.env");
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "OPENAI_API_KEY=sk-agent-test-1\n"
    );
    assert_eq!(mode(&env), 0o600, "readable by its owner only");
    let view = a.config().await;
    assert_eq!(view.ai_key_digests["openai"], digest("sk-agent-test-1"));
    assert!(
        !serde_json::to_string(&view)
            .unwrap()
            .contains("sk-agent-test-1")
    );

    // A rotated key replaces the old one on the machine.
    let ai2 = br#"{"keys":{"openai":"sk-agent-test-2"}}"#;
    assert!(
        a.signed("PUT", "/v1/ai-keys", ai2)
            .await
            .status()
            .is_success()
    );
    assert!(
        !std::fs::read_to_string(&env)
            .unwrap()
            .contains("sk-agent-test-1")
    );
    assert_eq!(
        a.config().await.ai_key_digests["openai"],
        digest("sk-agent-test-2")
    );

    let index = release_server().await;
    let req = serde_json::json!({ "channel": "stable", "apps": ["cockpit", "books"], "index_url": index });
    let r = a
        .signed("POST", "/v1/install", &serde_json::to_vec(&req).unwrap())
        .await;
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let mut status = InstallStatus::default();
    for _ in 0..400 {
        status = a
            .signed("GET", "/v1/install", b"")
            .await
            .json()
            .await
            .unwrap();
        if !matches!(status.state, InstallState::Running | InstallState::Pending) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status.state, InstallState::Failed, "{status:?}");
    assert_eq!(
        status.components.get("cockpit").map(String::as_str),
        Some("2.0.0")
    );
    assert!(a.file("/opt/apps/cockpit/2.0.0/cockpit.tar").exists());
    let books = status.steps.iter().find(|s| s.app == "books").unwrap();
    assert_eq!(books.state, InstallState::Failed);
    assert!(books.log.last().unwrap().contains("SHA-256"), "{books:?}");
    assert!(
        !a.file("/opt/apps/books/1.1.0/books.tar").exists(),
        "a bad artifact is never written"
    );
    let zinit = std::fs::read_to_string(a.root.path().join("zinit.log")).unwrap();
    assert!(zinit.lines().any(|l| l == "monitor cockpit"), "{zinit}");
    assert!(!zinit.contains("books"));
    assert!(a.file("/opt/apps/cockpit/2.0.0/run").exists(), "unpacked");
    let unit = std::fs::read_to_string(a.file("/etc/zinit/cockpit.yaml")).unwrap();
    assert!(
        unit.contains(
            "exec: setpriv --reuid=apps --regid=apps --init-groups -- /opt/apps/cockpit/2.0.0/run"
        ),
        "{unit}"
    );
}

#[tokio::test]
async fn bad_requests_are_refused_counted_and_change_nothing() {
    let a = start().await;
    let body = br#"{"keys":["ssh-ed25519 AAAA mallory"]}"#;
    let path = "/v1/ssh-keys";
    let now = signing::now_secs();
    let nonce = |n: u8| format!("{n:02x}{}", "5a".repeat(15));
    let status = |r: reqwest::Response| r.status().as_u16();

    // 1. unsigned
    let r = a
        .http
        .put(format!("{}{path}", a.api))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 401);
    // 2. signed with another key
    let stranger = ControllerKey::generate().sign(MACHINE, "PUT", path, body);
    assert_eq!(status(a.send("PUT", path, body, &stranger).await), 401);
    // 3. another machine's credentials
    let other = a.key.sign("m-another-machine", "PUT", path, body);
    assert_eq!(status(a.send("PUT", path, body, &other).await), 403);
    // 4. a replayed nonce: the first is obeyed, the replay refused
    let once = a.key.sign(MACHINE, "GET", "/v1/config", b"");
    assert_eq!(status(a.send("GET", "/v1/config", b"", &once).await), 200);
    assert_eq!(status(a.send("GET", "/v1/config", b"", &once).await), 401);
    // 5. a stale timestamp
    let old = a
        .key
        .sign_at(MACHINE, "PUT", path, body, now - 600, &nonce(5));
    assert_eq!(status(a.send("PUT", path, body, &old).await), 401);
    // 6. the body changed after signing
    let signed = a.key.sign_at(MACHINE, "PUT", path, body, now, &nonce(6));
    assert_eq!(
        status(a.send("PUT", path, br#"{"keys":[]}"#, &signed).await),
        401
    );
    // 7. the path changed after signing
    let signed = a.key.sign_at(MACHINE, "PUT", path, body, now, &nonce(7));
    assert_eq!(
        status(a.send("PUT", "/v1/ai-keys", body, &signed).await),
        401
    );
    // 8. the method changed after signing
    let signed = a.key.sign_at(MACHINE, "GET", path, body, now, &nonce(8));
    assert_eq!(status(a.send("PUT", path, body, &signed).await), 401);
    // 9. an oversized body
    let big = vec![b' '; 100 * 1024];
    assert_eq!(status(a.signed("PUT", path, &big).await), 413);
    // 10. a malformed settings document
    assert_eq!(status(a.signed("PUT", path, b"{\"keys\": ").await), 400);
    // 11. a downgrade of the gate to "no gate"
    assert_eq!(status(a.signed("PUT", "/v1/gate", b"null").await), 422);
    // 12. ... or to a gate without a provider
    let open = br#"{"issuer":"","client_id":"","client_secret":"","allowed_accounts":["everyone"],"public_url":"http://x"}"#;
    assert_eq!(status(a.signed("PUT", "/v1/gate", open).await), 422);

    for (reason, n) in [
        ("unsigned", 1),
        ("bad_signature", 4),
        ("wrong_machine", 1),
        ("replayed", 1),
        ("stale", 1),
        ("oversized", 1),
        ("malformed", 1),
        ("downgrade", 2),
    ] {
        assert_eq!(a.refused(reason).await, n, "refusals for {reason}");
    }
    // Nothing reached the machine.
    assert!(!a.file("/root/.ssh/authorized_keys").exists());
    let view = a.config().await;
    assert_eq!((view.ssh_keys, view.gate), (0, None));
    assert_eq!(
        a.http
            .get(format!("{}/", a.web))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
}
