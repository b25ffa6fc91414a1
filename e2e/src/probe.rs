//! Looking at a tester's machine from outside, as a stranger on the internet would.

/// Proves the gate at `url` from outside: a stranger is sent to sign in at `issuer`, and
/// `/health` answers. The URL's host (`*.localhost`) is resolved to this machine.
pub async fn gate_sends_strangers_to(url: &str, issuer: &str) {
    let host = url::Url::parse(url)
        .expect("a tester URL")
        .host_str()
        .expect("with a host")
        .to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(&host, &["127.0.0.1:0".parse().expect("an address")])
        .build()
        .expect("an HTTP client");
    let resp = http.get(url).send().await.expect("the gate answers");
    assert!(resp.status().is_redirection(), "{}", resp.status());
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(issuer), "{location}");
    let health = http
        .get(format!("{}/health", url.trim_end_matches('/')))
        .send()
        .await
        .expect("/health answers");
    assert_eq!(health.status(), 200);
}
