//! The sign-in gate: an OIDC reverse proxy in front of a tester's whole address.
//!
//! Every request must carry a session, except [`HEALTH_PATH`] (answered by the gate itself)
//! and [`CALLBACK_PATH`] (the end of the sign-in). Without a session the visitor is sent to
//! the provider (authorization code flow, PKCE S256, single-use `state` and `nonce`). After
//! sign-in the gate asks the provider's userinfo endpoint for the username and email (the ID
//! token may carry only `sub`, as Forgejo's does), checks the allow-list, and keeps the
//! identity in an encrypted, authenticated cookie. The app behind the gate learns who is
//! there from [`USER_HEADER`] and [`EMAIL_HEADER`], which the gate always sets itself.
//!
//! Two ways to put an app behind a gate:
//! - [`Gate::wrap`] an in-process [`axum::Router`] (gridshim's simulated machines), or
//! - [`Gate::proxy`] to an upstream URL (the standalone `gate` binary on a real machine).
//!
//! Serve the result on every listener the machine has (public and private): the rules are the
//! same on each, because they are one router. See [`serve`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = gate::GateConfig::new(
//!     "https://git.example",
//!     "gate",
//!     "client-secret",
//!     "https://alice-x1.gw.example".parse()?,
//! );
//! config.allowed_accounts = vec!["alice".into()];
//! config.admins = vec!["admin".into()];
//! let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
//! let router = gate::Gate::new(config)?.wrap(app);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! gate::serve(router, vec![listener]).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod access;
mod config;
mod cookie;
mod oidc;
mod pages;
mod path;
mod proxy;
mod signin;

pub use access::{AllowList, Identity};
pub use config::{ConfigError, GateConfig};
pub use cookie::{SessionKey, ShortKey};
pub use oidc::{CallbackError, ProviderError};
pub use path::{PathError, check_path};

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::Sealer;
use oidc::{LOGIN_TTL, PendingLogin, Provider};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tower::ServiceExt as _;
use url::Url;

/// The public health path, answered by the gate itself with `200 ok`.
pub const HEALTH_PATH: &str = "/health";
/// The public path the provider sends the browser back to after sign-in.
pub const CALLBACK_PATH: &str = "/oauth2/callback";
/// Clears this gate's session cookie.
pub const SIGN_OUT_PATH: &str = "/oauth2/sign_out";
/// The header that tells the app the signed-in account's username (or, lacking one, the email
/// or the subject).
pub const USER_HEADER: &str = "x-gate-user";
/// The header that tells the app the signed-in account's email, when the provider gave one.
pub const EMAIL_HEADER: &str = "x-gate-email";
/// The header that tells the app the provider's subject for the account.
pub const SUBJECT_HEADER: &str = "x-gate-sub";

const SESSION_COOKIE: &str = "gate_session";
const LOGIN_COOKIE: &str = "gate_login";
const COOKIE_PREFIX: &str = "gate_";
/// Most `state` values remembered as used, per gate.
const MAX_USED_STATES: usize = 10_000;

/// The session kept in the sealed cookie.
#[derive(Serialize, Deserialize)]
struct Session {
    who: Identity,
    /// Unix seconds of sign-in.
    at: i64,
}

/// A sign-in gate. Cheap to construct (no I/O, no task, no thread) and cheap to clone; the
/// provider is discovered on the first sign-in.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Provider,
    allowed: AllowList,
    sealer: Sealer,
    secure_cookies: bool,
    public_origin: String,
    session_max_age: Duration,
    contact: String,
    trusted_proxies: Vec<IpAddr>,
    used_states: Mutex<HashMap<String, Instant>>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("public_url", &self.inner.public_origin)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// Checks the configuration and builds the gate. Does not contact the provider.
    pub fn new(config: GateConfig) -> Result<Self, ConfigError> {
        oidc::parse_issuer(&config.issuer).map_err(ConfigError::Issuer)?;
        if config.client_id.trim().is_empty() {
            return Err(ConfigError::ClientId);
        }
        let url = &config.public_url;
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str().is_none()
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
            || !matches!(url.path(), "" | "/")
        {
            return Err(ConfigError::PublicUrl(url.to_string()));
        }
        let public_origin = url.as_str().trim_end_matches('/').to_string();
        let redirect = openidconnect::RedirectUrl::new(format!("{public_origin}{CALLBACK_PATH}"))
            .map_err(|e| ConfigError::PublicUrl(e.to_string()))?;
        let allowed = AllowList::new(config.allowed_accounts.iter().chain(&config.admins));
        let sealer = Sealer::new(
            &config.session_key,
            format!("{}\0{public_origin}", config.client_id),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                provider: Provider::new(
                    config.issuer,
                    config.client_id,
                    config.client_secret,
                    redirect,
                    config.allow_hmac_id_tokens,
                ),
                allowed,
                sealer,
                secure_cookies: url.scheme() == "https",
                public_origin,
                session_max_age: config.session_max_age,
                contact: config.contact,
                trusted_proxies: config.trusted_proxies,
                used_states: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The redirect URI this gate uses (the public URL plus [`CALLBACK_PATH`]).
    pub fn redirect_uri(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.inner.public_origin)
    }

    /// Puts the gate in front of an in-process app: every request to the returned router goes
    /// through the gate, and only allowed, signed-in requests reach `app`.
    pub fn wrap(&self, app: Router) -> Router {
        let gate = self.clone();
        Router::new().fallback_service(tower::service_fn(move |request: Request| {
            let gate = gate.clone();
            let app = app.clone();
            async move { Ok::<_, Infallible>(gate.handle(request, app).await) }
        }))
    }

    /// Puts the gate in front of an app listening at `upstream` (e.g. `http://127.0.0.1:3000`):
    /// allowed requests are forwarded there, bodies streamed both ways.
    pub fn proxy(&self, upstream: Url) -> Router {
        self.wrap(proxy::upstream(upstream))
    }

    async fn handle(&self, mut request: Request, app: Router) -> Response {
        let path = match check_path(request.uri().path()) {
            Ok(path) => path.to_string(),
            Err(e) => {
                tracing::debug!(error = %e, "refused a request path");
                return pages::bad_path();
            }
        };
        match path.as_str() {
            HEALTH_PATH => return (StatusCode::OK, "ok\n").into_response(),
            CALLBACK_PATH => return self.callback(request.uri(), request.headers()).await,
            SIGN_OUT_PATH => {
                let mut response = pages::signed_out();
                self.set_cookie(&mut response, SESSION_COOKIE, "", "/", 0);
                return response;
            }
            _ => {}
        }
        let Some(session) = self.session(request.headers()) else {
            return self.start_sign_in(request.method(), request.uri()).await;
        };
        if !self.inner.allowed.allows(&session.who) {
            return pages::no_access(
                session.who.display_name(),
                session.who.email.as_deref(),
                &self.inner.contact,
            );
        }
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if self
            .prepare_for_app(request.headers_mut(), &session.who, peer)
            .is_err()
        {
            return pages::sign_in_failed(
                StatusCode::BAD_REQUEST,
                "This account's name cannot be passed on to the app.",
            );
        }
        match app.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// The session from the request's cookies, if one opens, is young enough, and is whole.
    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let now = chrono::Utc::now().timestamp();
        let max_age = self.inner.session_max_age.as_secs() as i64;
        cookie::cookie_values(headers, SESSION_COOKIE)
            .filter_map(|v| self.inner.sealer.open::<Session>(SESSION_COOKIE, v))
            .find(|s| s.at <= now + 60 && now - s.at < max_age)
    }

    /// Removes what the app must not trust from the request and tells it who is there.
    fn prepare_for_app(
        &self,
        headers: &mut HeaderMap,
        who: &Identity,
        peer: Option<IpAddr>,
    ) -> Result<(), axum::http::header::InvalidHeaderValue> {
        let trusted_peer = peer.is_some_and(|ip| self.inner.trusted_proxies.contains(&ip));
        let names: Vec<HeaderName> = headers.keys().cloned().collect();
        for name in names {
            let n = name.as_str();
            let identity = n.starts_with("x-gate-")
                || n.starts_with("x-auth-request-")
                || matches!(
                    n,
                    "remote-user"
                        | "x-remote-user"
                        | "x-forwarded-user"
                        | "x-forwarded-email"
                        | "x-forwarded-preferred-username"
                );
            let forwarding =
                n.starts_with("x-forwarded-") || matches!(n, "forwarded" | "x-real-ip");
            if identity || (forwarding && !trusted_peer) {
                headers.remove(&name);
            }
        }
        if !trusted_peer {
            let public = Url::parse(&self.inner.public_origin).ok();
            if let Some(public) = public {
                if let Some(host) = public.host_str() {
                    let host = match public.port() {
                        Some(port) => format!("{host}:{port}"),
                        None => host.to_string(),
                    };
                    headers.insert("x-forwarded-host", HeaderValue::from_str(&host)?);
                }
                headers.insert("x-forwarded-proto", HeaderValue::from_str(public.scheme())?);
            }
            if let Some(ip) = peer {
                headers.insert("x-forwarded-for", HeaderValue::from_str(&ip.to_string())?);
            }
        }
        cookie::strip_gate_cookies(headers, COOKIE_PREFIX);
        headers.insert(
            USER_HEADER,
            HeaderValue::from_bytes(who.display_name().as_bytes())?,
        );
        headers.insert(SUBJECT_HEADER, HeaderValue::from_bytes(who.sub.as_bytes())?);
        if let Some(email) = &who.email {
            headers.insert(EMAIL_HEADER, HeaderValue::from_bytes(email.as_bytes())?);
        }
        Ok(())
    }

    fn set_cookie(
        &self,
        response: &mut Response,
        name: &str,
        value: &str,
        path: &str,
        max_age: u64,
    ) {
        let cookie = cookie::set_cookie(name, value, path, max_age, self.inner.secure_cookies);
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}

/// Serves `router` on every listener until one fails, with the peer address available to the
/// gate (for [`GateConfig::trusted_proxies`]). Use one call for all of a machine's listeners,
/// so the public and the private network get the very same rules.
pub async fn serve(router: Router, listeners: Vec<tokio::net::TcpListener>) -> std::io::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        let service = router
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>();
        tasks.spawn(async move { axum::serve(listener, service).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.map_err(std::io::Error::other)??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(public_url: &str) -> Result<Gate, ConfigError> {
        Gate::new(GateConfig::new(
            "http://127.0.0.1:1",
            "gate",
            "s3cret",
            public_url.parse().unwrap(),
        ))
    }

    #[test]
    fn public_url_must_be_an_origin() {
        assert!(gate("http://alice.localhost:8080").is_ok());
        assert!(gate("https://alice.gw.example/").is_ok());
        assert!(gate("https://alice.gw.example/app").is_err());
        assert!(gate("https://alice.gw.example/?x=1").is_err());
        assert!(gate("ftp://alice.gw.example").is_err());
        assert_eq!(
            gate("https://alice.gw.example/").unwrap().redirect_uri(),
            "https://alice.gw.example/oauth2/callback"
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let config = GateConfig::new("http://i", "gate", "s3cret", "http://a".parse().unwrap());
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn states_are_single_use() {
        let gate = gate("http://a.localhost").unwrap();
        assert!(gate.consume_state("abc").is_ok());
        assert!(matches!(
            gate.consume_state("abc"),
            Err(CallbackError::StateReplayed)
        ));
        assert!(gate.consume_state("abd").is_ok());
    }

    #[test]
    fn sessions_expire_and_do_not_cross_gates() {
        let key = SessionKey::random();
        let mut config = GateConfig::new(
            "http://i",
            "gate",
            "s",
            "http://a.localhost".parse().unwrap(),
        );
        config.session_key = key.clone();
        config.session_max_age = Duration::from_secs(60);
        let a = Gate::new(config.clone()).unwrap();
        let who = Identity {
            sub: "1".into(),
            username: Some("alice".into()),
            email: None,
            email_verified: None,
        };
        let cookie_header = |s: &Session| {
            let mut h = HeaderMap::new();
            let v = a.inner.sealer.seal(SESSION_COOKIE, s);
            h.insert(
                header::COOKIE,
                format!("{SESSION_COOKIE}={v}").parse().unwrap(),
            );
            h
        };
        let now = chrono::Utc::now().timestamp();
        assert!(
            a.session(&cookie_header(&Session {
                who: who.clone(),
                at: now
            }))
            .is_some()
        );
        assert!(
            a.session(&cookie_header(&Session {
                who: who.clone(),
                at: now - 61
            }))
            .is_none()
        );
        config.public_url = "http://b.localhost".parse().unwrap();
        let b = Gate::new(config).unwrap();
        assert!(
            b.session(&cookie_header(&Session { who, at: now }))
                .is_none()
        );
    }

    #[test]
    fn identity_headers_are_the_gates_own() {
        let gate = gate("https://alice.gw.example").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-gate-user", "admin".parse().unwrap());
        headers.insert("X-Gate-Email", "admin@x".parse().unwrap());
        headers.insert("x-forwarded-host", "evil.example".parse().unwrap());
        headers.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        headers.insert("forwarded", "for=1.2.3.4".parse().unwrap());
        headers.insert("x-auth-request-user", "admin".parse().unwrap());
        headers.insert(header::COOKIE, "gate_session=abc; app=1".parse().unwrap());
        let who = Identity {
            sub: "1001".into(),
            username: Some("alice".into()),
            email: None,
            email_verified: None,
        };
        gate.prepare_for_app(&mut headers, &who, Some("10.0.0.9".parse().unwrap()))
            .unwrap();
        assert_eq!(headers.get(USER_HEADER).unwrap(), "alice");
        assert!(headers.get(EMAIL_HEADER).is_none());
        assert_eq!(headers.get(SUBJECT_HEADER).unwrap(), "1001");
        assert_eq!(headers.get("x-forwarded-host").unwrap(), "alice.gw.example");
        assert_eq!(headers.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(headers.get("x-forwarded-for").unwrap(), "10.0.0.9");
        assert!(headers.get("forwarded").is_none());
        assert!(headers.get("x-auth-request-user").is_none());
        assert_eq!(headers.get(header::COOKIE).unwrap(), "app=1");
    }

    #[test]
    fn trusted_proxies_keep_forwarding_headers() {
        let mut config = GateConfig::new(
            "http://i",
            "gate",
            "s",
            "http://a.localhost".parse().unwrap(),
        );
        config.trusted_proxies = vec!["10.0.0.1".parse().unwrap()];
        let gate = Gate::new(config).unwrap();
        let who = Identity {
            sub: "1".into(),
            username: Some("alice".into()),
            email: None,
            email_verified: None,
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        headers.insert("x-gate-user", "admin".parse().unwrap());
        gate.prepare_for_app(&mut headers, &who, Some("10.0.0.1".parse().unwrap()))
            .unwrap();
        assert_eq!(headers.get("x-forwarded-for").unwrap(), "1.2.3.4");
        assert_eq!(headers.get(USER_HEADER).unwrap(), "alice");
    }
}
