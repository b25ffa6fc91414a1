//! The sign-in gate against a provider written in Rust: no trick of the request line or its
//! headers (encoded and dotted paths, forged forwarding headers) reaches the app without a
//! valid session, nor changes who the app is told signed in.

#[path = "../src/gate/mod.rs"]
mod harness;

use harness::quirk::{setup, sign_in};
use harness::{Quirks, app_saw};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Sends one raw HTTP/1.1 request (the path exactly as given, no client-side normalizing)
/// and returns the status code and the whole response.
async fn raw(base: &str, target: &str, extra_headers: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\n{extra_headers}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).to_string();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

#[tokio::test(flavor = "multi_thread")]
async fn path_tricks_never_reach_the_app() {
    let (_provider, gate) = setup(Quirks::default()).await;
    let tricks = [
        "/health/../apps/x",
        "/health/..%2Fapps/x",
        "/health%2F..%2Fapps%2Fx",
        "/health%2f",
        "/health/%2e%2e/apps/x",
        "/health/.%2E/apps/x",
        "/%2e%2e/apps/x",
        "//health/../apps/x",
        "//apps/x",
        "/health;/../apps/x",
        "/health;x",
        "/apps/x;health",
        "/health%23/../apps/x",
        "/health%3F/../apps/x",
        "/oauth2/callback/../../apps/x",
        "/oauth2/callback%2F..%2F..%2Fapps",
        "/health%00",
        "/health\\..\\apps",
    ];
    for base in [&gate.public, &gate.private] {
        for trick in tricks {
            let (status, response) = raw(base, trick, "").await;
            assert_eq!(status, 400, "{base}{trick}: {response}");
        }
        // Absolute-form request targets are judged on their path too.
        let (status, _) = raw(base, &format!("{base}/health/../apps/x"), "").await;
        assert_eq!(status, 400);
        // Near-misses of the public paths are ordinary private paths: sign in first.
        for near in [
            "/health/",
            "/HEALTH",
            "/health/x",
            "/oauth2/callbackx",
            "/apps/x?/health",
        ] {
            let (status, response) = raw(base, near, "").await;
            assert_eq!(status, 303, "{base}{near}: {response}");
        }
        // The query never makes a path public, and /health never reaches the app.
        let (status, _) = raw(base, "/health?../apps/x", "").await;
        assert_eq!(status, 200);
    }
    assert_eq!(gate.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_forwarding_headers_change_nothing() {
    let (provider, gate) = setup(Quirks::default()).await;
    let headers = "X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 10.0.0.1\r\nForwarded: host=evil.example;proto=https\r\nX-Original-URL: /health\r\nX-Rewrite-URL: /health\r\nX-Gate-User: admin\r\n";
    let (status, response) = raw(&gate.public, "/apps/x", headers).await;
    assert_eq!(status, 303, "{response}");
    assert!(!response.contains("evil.example"), "{response}");
    let redirect = format!("{}/oauth2/callback", gate.public);
    let encoded: String = url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect();
    assert!(
        response.contains(&encoded),
        "the redirect URI is the configured one: {response}"
    );
    assert_eq!(gate.hits(), 0);

    // Signed in, the app sees the gate's forwarding headers, not the forged ones.
    let (browser, _) = sign_in(&gate).await;
    let page = browser
        .get_with(
            &format!("{}/apps/x", gate.public),
            &[("X-Forwarded-Host", "evil.example")],
        )
        .await
        .unwrap();
    let saw = app_saw(&page);
    let public_host = url::Url::parse(&gate.public).unwrap();
    let public_host = format!(
        "{}:{}",
        public_host.host_str().unwrap(),
        public_host.port().unwrap()
    );
    assert_eq!(saw.forwarded_host, Some(public_host));
    let requests = provider.authorize_requests();
    assert!(requests.iter().all(|q| q["redirect_uri"] == redirect));
}
