//! A gate in front of an app that reports what reached it, served on a public and a private
//! listener (two loopback addresses standing in for the two networks).

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Json};
use gate::{Gate, GateConfig, SessionKey};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the app behind the gate saw of a request (its JSON answer).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppSaw {
    /// `X-Gate-User`.
    pub user: Option<String>,
    /// `X-Gate-Email`.
    pub email: Option<String>,
    /// `X-Gate-Sub`.
    pub sub: Option<String>,
    /// Path as received.
    pub path: String,
    /// Query as received.
    pub query: Option<String>,
    /// The `Cookie` header as received.
    pub cookie: Option<String>,
    /// `X-Forwarded-Host` as received.
    pub forwarded_host: Option<String>,
}

/// The app: answers every request with [`AppSaw`] and counts the requests that reached it.
pub fn app(hits: Arc<AtomicUsize>) -> Router {
    Router::new().fallback(move |request: Request| {
        let hits = hits.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            let header = |name: &str| {
                request
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            Json(AppSaw {
                user: header("x-gate-user"),
                email: header("x-gate-email"),
                sub: header("x-gate-sub"),
                path: request.uri().path().to_string(),
                query: request.uri().query().map(str::to_owned),
                cookie: header("cookie"),
                forwarded_host: header("x-forwarded-host"),
            })
            .into_response()
        }
    })
}

/// A gate serving in-process, stopped when dropped.
pub struct RunningGate {
    /// The public listener's base URL (also the gate's public URL).
    pub public: String,
    /// The private listener's base URL (another loopback address).
    pub private: String,
    /// How many requests reached the app.
    pub app_hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl RunningGate {
    /// How many requests reached the app so far.
    pub fn hits(&self) -> usize {
        self.app_hits.load(Ordering::SeqCst)
    }
}

impl Drop for RunningGate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A configuration for a gate at `public_url` in front of the test provider's client.
pub fn config(
    issuer: &str,
    client_id: &str,
    client_secret: &str,
    public_url: &str,
    allowed: &[&str],
    admins: &[&str],
) -> GateConfig {
    let mut config = GateConfig::new(
        issuer,
        client_id,
        client_secret,
        public_url.parse().expect("public URL"),
    );
    config.allowed_accounts = allowed.iter().map(|s| s.to_string()).collect();
    config.admins = admins.iter().map(|s| s.to_string()).collect();
    config.contact = "the operator (ops@example.test)".into();
    config
}

/// Binds the two listeners, then serves `make(public_url)` on both. The public listener is on
/// `public_host` (127.0.0.1 or a `*.localhost` name resolving there), the private one on
/// 127.0.0.2.
pub async fn serve_gate(
    public_host: &str,
    make: impl FnOnce(String, Arc<AtomicUsize>) -> Router,
) -> RunningGate {
    let public = TcpListener::bind("127.0.0.1:0").await.expect("bind public");
    let private = TcpListener::bind("127.0.0.2:0")
        .await
        .expect("bind private");
    let public_url = format!(
        "http://{public_host}:{}",
        public.local_addr().unwrap().port()
    );
    let private_url = format!("http://{}", private.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let router = make(public_url.clone(), hits.clone());
    let task = tokio::spawn(async move {
        let _ = gate::serve(router, vec![public, private]).await;
    });
    RunningGate {
        public: public_url,
        private: private_url,
        app_hits: hits,
        task,
    }
}

/// A gate for `issuer` (client `client_id`/`client_secret`) in front of the reporting app,
/// allowing `allowed` and `admins`, with `key` as its session key (random when `None`).
pub async fn start_gate(
    issuer: &str,
    client: (&str, &str),
    allowed: &[&str],
    admins: &[&str],
    key: Option<SessionKey>,
) -> RunningGate {
    let issuer = issuer.to_string();
    let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
    let admins: Vec<String> = admins.iter().map(|s| s.to_string()).collect();
    let (id, secret) = (client.0.to_string(), client.1.to_string());
    serve_gate("127.0.0.1", move |public_url, hits| {
        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
        let admins: Vec<&str> = admins.iter().map(String::as_str).collect();
        let mut config = config(&issuer, &id, &secret, &public_url, &allowed, &admins);
        if let Some(key) = key {
            config.session_key = key;
        }
        Gate::new(config).expect("gate config").wrap(app(hits))
    })
    .await
}
