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

/// The two listeners of a gate, bound before its configuration is made (the Forge registers
/// the public URL's callback first).
pub struct Listeners {
    public: TcpListener,
    private: TcpListener,
    /// The public URL (`http://<public_host>:<port>`).
    pub public_url: String,
    /// The private listener's base URL.
    pub private_url: String,
}

impl Listeners {
    /// Binds the public listener on 127.0.0.1 (named `public_host`: 127.0.0.1 or a
    /// `*.localhost` name resolving there) and the private one on 127.0.0.2.
    pub async fn bind(public_host: &str) -> Self {
        let public = TcpListener::bind("127.0.0.1:0").await.expect("bind public");
        let private = TcpListener::bind("127.0.0.2:0")
            .await
            .expect("bind private");
        let public_url = format!(
            "http://{public_host}:{}",
            public.local_addr().unwrap().port()
        );
        let private_url = format!("http://{}", private.local_addr().unwrap());
        Self {
            public,
            private,
            public_url,
            private_url,
        }
    }

    /// Serves `make(public_url)` on both listeners.
    pub fn serve(self, make: impl FnOnce(String, Arc<AtomicUsize>) -> Router) -> RunningGate {
        let hits = Arc::new(AtomicUsize::new(0));
        let router = make(self.public_url.clone(), hits.clone());
        let listeners = vec![self.public, self.private];
        let task = tokio::spawn(async move {
            let _ = gate::serve(router, listeners).await;
        });
        RunningGate {
            public: self.public_url,
            private: self.private_url,
            app_hits: hits,
            task,
        }
    }
}

/// Binds the two listeners, then serves `make(public_url)` on both (see [`Listeners`]).
pub async fn serve_gate(
    public_host: &str,
    make: impl FnOnce(String, Arc<AtomicUsize>) -> Router,
) -> RunningGate {
    Listeners::bind(public_host).await.serve(make)
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
    gate_on(
        Listeners::bind("127.0.0.1").await,
        issuer,
        client,
        allowed,
        admins,
        key,
    )
}

/// A gate signing in at the Forge with an application of its own (see [`super::forge`]).
pub async fn start_forge_gate(
    forge: &e2e::forge::Forge,
    allowed: &[&str],
    admins: &[&str],
    key: Option<SessionKey>,
) -> (RunningGate, super::forge::Client) {
    let listeners = Listeners::bind("127.0.0.1").await;
    let client = super::forge::client_for(forge, &listeners.public_url).await;
    let gate = gate_on(
        listeners,
        &forge.url,
        (&client.id, &client.secret),
        allowed,
        admins,
        key,
    );
    (gate, client)
}

fn gate_on(
    listeners: Listeners,
    issuer: &str,
    client: (&str, &str),
    allowed: &[&str],
    admins: &[&str],
    key: Option<SessionKey>,
) -> RunningGate {
    listeners.serve(|public_url, hits| {
        let mut config = config(issuer, client.0, client.1, &public_url, allowed, admins);
        if let Some(key) = key {
            config.session_key = key;
        }
        Gate::new(config).expect("gate config").wrap(app(hits))
    })
}
