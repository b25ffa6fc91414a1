//! The shared engines' token stores, reached where each SharedEngine says
//! (`spec.tokenStore.url`), not through the grid: a tester's token is registered there, proven
//! by one call to the engine (`spec.url` + the path the store names), and revoked there.
//!
//! The token store's API (served by every engine; gridshim's engines serve it too):
//! `GET {store}` → [`TokenStoreInfo`], `PUT {store}/tokens/{identity}` with
//! `{"token": …}`, `DELETE {store}/tokens/{identity}` (absent is fine). When the SharedEngine
//! names a credential, it is sent as a bearer token.

use std::time::Duration;

use futures::future::BoxFuture;
use gridapi::engines::TokenRegistration;
pub use gridapi::engines::TokenStoreInfo;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

/// A token store to talk to: its URL and, when it needs one, its credential.
#[derive(Debug, Clone)]
pub struct TokenStore {
    /// Base URL of the store (`spec.tokenStore.url`).
    pub url: String,
    /// Bearer credential for the store, from the Secret the SharedEngine names.
    pub credential: Option<SecretString>,
}

/// An error talking to an engine or its token store. Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The store or engine did not answer (connection refused, timeout): retry later.
    #[error("{url} did not answer: {reason}")]
    Unreachable {
        /// What was called.
        url: String,
        /// Why (the transport's words).
        reason: String,
    },
    /// The engine refused the tester's token (HTTP 401 or 403).
    #[error("{url} refused the token (HTTP {status})")]
    TokenRefused {
        /// What was called.
        url: String,
        /// 401 (unknown token) or 403 (another tester's).
        status: u16,
    },
    /// The store or engine answered with an error: check the SharedEngine's URLs and
    /// credential.
    #[error("{url} answered HTTP {status}: {message}")]
    Refused {
        /// What was called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        message: String,
    },
}

impl EngineError {
    /// Whether retrying later may help (the call may even have landed).
    pub fn is_retry_later(&self) -> bool {
        match self {
            EngineError::Unreachable { .. } => true,
            EngineError::Refused { status, .. } => *status >= 500 || *status == 429,
            EngineError::TokenRefused { .. } => false,
        }
    }
}

/// What the controller asks of the shared engines.
pub trait Engines: Send + Sync {
    /// What the store says of itself; also proves it answers.
    fn info<'a>(
        &'a self,
        store: &'a TokenStore,
    ) -> BoxFuture<'a, Result<TokenStoreInfo, EngineError>>;
    /// Registers (or replaces) the token of `identity`.
    fn register<'a>(
        &'a self,
        store: &'a TokenStore,
        identity: &'a str,
        token: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), EngineError>>;
    /// Revokes the token of `identity`; revoking an absent token is `Ok`.
    fn revoke<'a>(
        &'a self,
        store: &'a TokenStore,
        identity: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>>;
    /// Calls the engine at `url` + `call_path` as `identity` with `token`.
    fn call<'a>(
        &'a self,
        url: &'a str,
        call_path: &'a str,
        identity: &'a str,
        token: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), EngineError>>;
}

/// The header that names the tester calling an engine.
pub const TESTER_HEADER: &str = "x-tester";

/// [`Engines`] over HTTP.
#[derive(Clone)]
pub struct HttpEngines {
    http: reqwest::Client,
    timer: Option<prometheus::Histogram>,
}

impl HttpEngines {
    /// A client with short time-outs: engines answer on the private network or not at all.
    pub fn new() -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(30))
                .build()?,
            timer: None,
        })
    }

    /// Times every request in `timer`.
    pub fn timed(self, timer: prometheus::Histogram) -> Self {
        Self {
            timer: Some(timer),
            ..self
        }
    }

    /// Sends `req`, timed.
    async fn send(&self, req: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
        let _timer = self.timer.as_ref().map(|t| t.start_timer());
        req.send().await
    }
}

fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

fn unreachable(url: &str, e: reqwest::Error) -> EngineError {
    // reqwest's text names the URL it was given; ours never holds a secret.
    EngineError::Unreachable {
        url: url.to_string(),
        reason: e.without_url().to_string(),
    }
}

async fn check(url: &str, resp: reqwest::Response) -> Result<reqwest::Response, EngineError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    Err(EngineError::Refused {
        url: url.to_string(),
        status: status.as_u16(),
        message: body.chars().take(200).collect(),
    })
}

impl HttpEngines {
    fn authorized(
        &self,
        req: reqwest::RequestBuilder,
        store: &TokenStore,
    ) -> reqwest::RequestBuilder {
        match &store.credential {
            Some(c) => req.bearer_auth(c.expose_secret()),
            None => req,
        }
    }
}

impl Engines for HttpEngines {
    fn info<'a>(
        &'a self,
        store: &'a TokenStore,
    ) -> BoxFuture<'a, Result<TokenStoreInfo, EngineError>> {
        Box::pin(async move {
            let url = store.url.trim_end_matches('/').to_string();
            let resp = self
                .send(self.authorized(self.http.get(&url), store))
                .await
                .map_err(|e| unreachable(&url, e))?;
            check(&url, resp)
                .await?
                .json()
                .await
                .map_err(|e| EngineError::Refused {
                    url: url.clone(),
                    status: 200,
                    message: format!("not a token store answer: {}", e.without_url()),
                })
        })
    }

    fn register<'a>(
        &'a self,
        store: &'a TokenStore,
        identity: &'a str,
        token: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let url = join(&store.url, &format!("tokens/{}", encode(identity)));
            let body = TokenRegistration {
                token: token.expose_secret().to_string(),
            };
            let resp = self
                .send(self.authorized(self.http.put(&url), store).json(&body))
                .await
                .map_err(|e| unreachable(&url, e))?;
            check(&url, resp).await.map(drop)
        })
    }

    fn revoke<'a>(
        &'a self,
        store: &'a TokenStore,
        identity: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let url = join(&store.url, &format!("tokens/{}", encode(identity)));
            let resp = self
                .send(self.authorized(self.http.delete(&url), store))
                .await
                .map_err(|e| unreachable(&url, e))?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(());
            }
            check(&url, resp).await.map(drop)
        })
    }

    fn call<'a>(
        &'a self,
        url: &'a str,
        call_path: &'a str,
        identity: &'a str,
        token: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let url = join(url, call_path);
            let resp = self
                .send(
                    self.http
                        .post(&url)
                        .bearer_auth(token.expose_secret())
                        .header(TESTER_HEADER, identity)
                        .json(&serde_json::json!({"input": "sandbox controller token check"})),
                )
                .await
                .map_err(|e| unreachable(&url, e))?;
            match resp.status() {
                s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                    Err(EngineError::TokenRefused {
                        url,
                        status: s.as_u16(),
                    })
                }
                _ => check(&url, resp).await.map(drop),
            }
        })
    }
}

/// Percent-encodes a path segment.
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_whatever_the_slashes() {
        assert_eq!(
            join("http://e:1/admin/", "/tokens/a"),
            "http://e:1/admin/tokens/a"
        );
        assert_eq!(
            join("http://e:1/admin", "tokens/a"),
            "http://e:1/admin/tokens/a"
        );
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let u = || "http://e".to_string();
        assert!(
            EngineError::Unreachable {
                url: u(),
                reason: "refused".into()
            }
            .is_retry_later()
        );
        assert!(
            EngineError::Refused {
                url: u(),
                status: 503,
                message: String::new()
            }
            .is_retry_later()
        );
        assert!(
            !EngineError::Refused {
                url: u(),
                status: 404,
                message: String::new()
            }
            .is_retry_later()
        );
        assert!(
            !EngineError::TokenRefused {
                url: u(),
                status: 403
            }
            .is_retry_later()
        );
    }
}
