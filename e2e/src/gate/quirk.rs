//! A small OIDC provider in Rust whose answers the tests bend on purpose: the quirks real
//! providers have (`aud` as a string or a list, a numeric `sub`, claims only in userinfo, an
//! issuer with or without a trailing slash) and the forgeries a gate must refuse (foreign
//! `aud`, wrong `nonce`, expired token, unknown `kid`, `alg: none`, a userinfo `sub` that
//! differs).
//!
//! It signs every visitor in at once as the configured account (no form): the flow is the
//! gate's, not the provider's, under test here.

use super::app::{RunningGate, start_gate};
use super::browser::{Browser, Page};
use super::keys;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::sha2::{Digest as _, Sha256};
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::traits::PublicKeyParts as _;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// The client id the quirk provider knows.
pub const CLIENT_ID: &str = "gate";
/// Its secret.
pub const CLIENT_SECRET: &str = "quirk-secret";

/// How the provider bends its answers. [`Quirks::default`] is Forgejo-like and valid.
#[derive(Debug, Clone)]
pub struct Quirks {
    /// Publish the issuer with a trailing slash (Forgejo does).
    pub issuer_slash: bool,
    /// The ID token's `aud` (default: the client id as a plain string).
    pub aud: Value,
    /// The ID token's `azp`, if any.
    pub azp: Option<String>,
    /// Put this `nonce` in the ID token instead of the one asked for.
    pub nonce: Option<String>,
    /// `exp` relative to now, in seconds (default 300).
    pub exp_in: i64,
    /// `iat` relative to now, in seconds (default 0).
    pub iat_in: i64,
    /// Put this `iss` in the ID token instead of the issuer.
    pub iss: Option<String>,
    /// Sign with key B (kid "b") instead of key A.
    pub sign_with_b: bool,
    /// Publish key B in the JWKS (a key rotation).
    pub publish_b: bool,
    /// Send an unsigned token (`alg: none`).
    pub alg_none: bool,
    /// The account id in `sub` (Forgejo: a number).
    pub sub: String,
    /// Userinfo answers with this `sub` instead.
    pub userinfo_sub: Option<String>,
    /// `preferred_username` in userinfo.
    pub username: String,
    /// `email` in userinfo.
    pub email: String,
    /// Extra claims put in the ID token (e.g. a `preferred_username` that must be ignored).
    pub id_token_extra: serde_json::Map<String, Value>,
}

impl Default for Quirks {
    fn default() -> Self {
        Self {
            issuer_slash: false,
            aud: Value::String(CLIENT_ID.into()),
            azp: None,
            nonce: None,
            exp_in: 300,
            iat_in: 0,
            iss: None,
            sign_with_b: false,
            publish_b: false,
            alg_none: false,
            sub: "1001".into(),
            userinfo_sub: None,
            username: "alice".into(),
            email: "alice@example.test".into(),
            id_token_extra: serde_json::Map::new(),
        }
    }
}

struct Pending {
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

struct Inner {
    issuer: String,
    quirks: Mutex<Quirks>,
    codes: Mutex<HashMap<String, Pending>>,
    tokens: Mutex<HashMap<String, ()>>,
    key_a: RsaPrivateKey,
    key_b: RsaPrivateKey,
    /// Every authorization request's query, for the tests to inspect.
    authorize_requests: Mutex<Vec<HashMap<String, String>>>,
    jwks_fetches: Mutex<usize>,
}

/// A running quirk provider, stopped when dropped.
pub struct QuirkProvider {
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Drop for QuirkProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// An unguessable-enough value for codes and access tokens (a test provider: std's randomly
/// seeded hasher is plenty).
fn random_token() -> String {
    use std::hash::BuildHasher as _;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let state = std::collections::hash_map::RandomState::new();
    format!("{:016x}{:016x}", state.hash_one(n), state.hash_one(n + 1))
}

impl QuirkProvider {
    /// Starts the provider on a free port of 127.0.0.1 with `quirks`.
    pub async fn start(quirks: Quirks) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let issuer = if quirks.issuer_slash {
            format!("{base}/")
        } else {
            base
        };
        let inner = Arc::new(Inner {
            issuer,
            quirks: Mutex::new(quirks),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            key_a: RsaPrivateKey::from_pkcs8_pem(keys::KEY_A).expect("key A"),
            key_b: RsaPrivateKey::from_pkcs8_pem(keys::KEY_B).expect("key B"),
            authorize_requests: Mutex::new(Vec::new()),
            jwks_fetches: Mutex::new(0),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { inner, task }
    }

    /// The issuer as published (with a trailing slash when so configured).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Changes the quirks for the next answers.
    pub fn set(&self, change: impl FnOnce(&mut Quirks)) {
        change(&mut self.inner.quirks.lock().unwrap());
    }

    /// The query of every authorization request so far.
    pub fn authorize_requests(&self) -> Vec<HashMap<String, String>> {
        self.inner.authorize_requests.lock().unwrap().clone()
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        *self.inner.jwks_fetches.lock().unwrap()
    }
}

fn base(inner: &Inner) -> &str {
    inner.issuer.trim_end_matches('/')
}

async fn discovery(State(inner): State<Arc<Inner>>) -> Json<Value> {
    let base = base(&inner);
    Json(json!({
        "issuer": inner.issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

fn jwk(key: &RsaPrivateKey, kid: &str) -> Value {
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    })
}

async fn jwks(State(inner): State<Arc<Inner>>) -> Json<Value> {
    *inner.jwks_fetches.lock().unwrap() += 1;
    let mut keys = vec![jwk(&inner.key_a, "a")];
    if inner.quirks.lock().unwrap().publish_b {
        keys.push(jwk(&inner.key_b, "b"));
    }
    Json(json!({ "keys": keys }))
}

async fn authorize(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    inner.authorize_requests.lock().unwrap().push(query.clone());
    let (Some(redirect_uri), Some(state)) = (query.get("redirect_uri"), query.get("state")) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri and state required").into_response();
    };
    let mut target = url::Url::parse(redirect_uri).expect("redirect_uri is a URL");
    let valid = query.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && query.get("response_type").map(String::as_str) == Some("code")
        && query.get("code_challenge_method").map(String::as_str) == Some("S256")
        && query.contains_key("code_challenge")
        && query.contains_key("nonce");
    if !valid {
        target
            .query_pairs_mut()
            .append_pair("error", "invalid_request")
            .append_pair("state", state);
        return Redirect::to(target.as_str()).into_response();
    }
    let code = random_token();
    inner.codes.lock().unwrap().insert(
        code.clone(),
        Pending {
            nonce: query["nonce"].clone(),
            challenge: query["code_challenge"].clone(),
            redirect_uri: redirect_uri.clone(),
        },
    );
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    Redirect::to(target.as_str()).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    code_verifier: Option<String>,
}

fn oauth_error(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}

async fn token(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    if form.grant_type != "authorization_code" {
        return oauth_error("unsupported_grant_type");
    }
    let Some(pending) = inner.codes.lock().unwrap().remove(&form.code) else {
        return oauth_error("invalid_grant");
    };
    let verifier = form.code_verifier.unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if challenge != pending.challenge || form.redirect_uri != pending.redirect_uri {
        return oauth_error("invalid_grant");
    }
    let quirks = inner.quirks.lock().unwrap().clone();
    let now = now();
    let mut claims = json!({
        "iss": quirks.iss.clone().unwrap_or_else(|| inner.issuer.clone()),
        "sub": quirks.sub,
        "aud": quirks.aud,
        "exp": now + quirks.exp_in,
        "iat": now + quirks.iat_in,
        "nonce": quirks.nonce.clone().unwrap_or(pending.nonce),
    });
    if let Some(azp) = &quirks.azp {
        claims["azp"] = Value::String(azp.clone());
    }
    for (k, v) in &quirks.id_token_extra {
        claims[k] = v.clone();
    }
    let id_token = sign(&inner, &quirks, &claims);
    let access_token = random_token();
    inner
        .tokens
        .lock()
        .unwrap()
        .insert(access_token.clone(), ());
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
        "scope": "openid profile email",
    }))
    .into_response()
}

fn sign(inner: &Inner, quirks: &Quirks, claims: &Value) -> String {
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    if quirks.alg_none {
        let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "JWT" }).to_string());
        return format!("{header}.{payload}.");
    }
    let (key, kid) = if quirks.sign_with_b {
        (&inner.key_b, "b")
    } else {
        (&inner.key_a, "a")
    };
    let header =
        URL_SAFE_NO_PAD.encode(json!({ "alg": "RS256", "typ": "JWT", "kid": kid }).to_string());
    let input = format!("{header}.{payload}");
    let signature = SigningKey::<Sha256>::new(key.clone()).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

async fn userinfo(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !inner.tokens.lock().unwrap().contains_key(token) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_token" })),
        )
            .into_response();
    }
    let quirks = inner.quirks.lock().unwrap().clone();
    Json(json!({
        "sub": quirks.userinfo_sub.unwrap_or(quirks.sub),
        "preferred_username": quirks.username,
        "email": quirks.email,
        "email_verified": true,
    }))
    .into_response()
}

/// A gate in front of the app, signing in at `issuer` as the quirk provider's client, allowing
/// `alice` (administrator `admin`).
pub async fn gate_for(issuer: &str) -> RunningGate {
    start_gate(
        issuer,
        (CLIENT_ID, CLIENT_SECRET),
        &["alice"],
        &["admin"],
        None,
    )
    .await
}

/// A quirk provider answering with `quirks`, and a gate signing in at it.
pub async fn setup(quirks: Quirks) -> (QuirkProvider, RunningGate) {
    let provider = QuirkProvider::start(quirks).await;
    let gate = gate_for(provider.issuer()).await;
    (provider, gate)
}

/// Signs in through the quirk provider (it approves at once) and returns the final page.
pub async fn sign_in(gate: &RunningGate) -> (Browser, Page) {
    let browser = Browser::new();
    let page = browser
        .follow(&format!("{}/apps/x", gate.public))
        .await
        .unwrap();
    (browser, page)
}
