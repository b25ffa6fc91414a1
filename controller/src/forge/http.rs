//! [`Forge`] over Gitea's (and Forgejo's) HTTP API with the administrator's token.

use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::{Forge, ForgeError, ForgeUser, NewAccount, OAuthApp};

/// The Forge over HTTP, with the administrator's API token.
pub struct HttpForge {
    url: String,
    token: SecretString,
    http: reqwest::Client,
    timer: Option<prometheus::Histogram>,
}

/// An application as the Forge's API spells it.
#[derive(Deserialize)]
struct RawApp {
    id: i64,
    name: String,
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    redirect_uris: Vec<String>,
}

impl From<RawApp> for OAuthApp {
    fn from(raw: RawApp) -> Self {
        OAuthApp {
            id: raw.id,
            name: raw.name,
            client_id: raw.client_id,
            client_secret: (!raw.client_secret.is_empty()).then(|| raw.client_secret.into()),
            redirect_uris: raw.redirect_uris,
        }
    }
}

/// Applications asked for per page when searching by name.
const PAGE: usize = 50;

impl HttpForge {
    /// A client for the Forge at `url` acting with the administrator's `token`.
    pub fn new(url: &str, token: SecretString) -> Result<Self, reqwest::Error> {
        // Few idle connections kept (each holds its buffers): a burst of passes opens more.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .pool_max_idle_per_host(8)
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            url: format!("{}/", url.trim_end_matches('/')),
            token,
            http,
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

    fn unreachable(&self, e: reqwest::Error) -> ForgeError {
        ForgeError::Unreachable {
            url: self.url.clone(),
            // Without the URL: it is in `url` already and never carries a credential.
            reason: e.without_url().to_string(),
        }
    }

    /// Sends one admin API call; `Ok(None)` for a 404. A Gitea on SQLite answers a call under
    /// load with "database is locked"; a call that is safe to repeat (anything but a POST,
    /// which may have made part of what it makes before the refusal) is tried again at once a
    /// few times, tens of milliseconds apart, rather than turned into `ForgeUnavailable` and
    /// its seconds of backoff. A refused POST is looked for by the next pass (by name).
    async fn call(
        &self,
        call: &'static str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Option<Vec<u8>>, ForgeError> {
        use backon::{ExponentialBuilder, Retryable};
        (|| self.call_once(call, method.clone(), path, body.clone()))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(std::time::Duration::from_millis(20))
                    .with_max_delay(std::time::Duration::from_millis(500))
                    .with_max_times(5)
                    .with_jitter(),
            )
            .when(|e| method != Method::POST && is_locked(e))
            .await
    }

    async fn call_once(
        &self,
        call: &'static str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Option<Vec<u8>>, ForgeError> {
        let mut req = self
            .http
            .request(method, format!("{}api/v1/{path}", self.url))
            .header(
                "Authorization",
                format!("token {}", self.token.expose_secret()),
            );
        if let Some(body) = body {
            req = req.json(&body);
        }
        let timer = self.timer.as_ref().map(|t| t.start_timer());
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.unreachable(e))?
            .to_vec();
        drop(timer);
        match status {
            s if s.is_success() => Ok(Some(bytes)),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(ForgeError::Unauthorized {
                status: status.as_u16(),
            }),
            s if s.is_client_error() && s != StatusCode::TOO_MANY_REQUESTS => {
                Err(ForgeError::Refused {
                    call,
                    status: s.as_u16(),
                    message: message(&bytes),
                })
            }
            s => Err(ForgeError::Failed {
                call,
                status: s.as_u16(),
                message: message(&bytes),
            }),
        }
    }

    async fn parse<T: for<'de> Deserialize<'de>>(
        &self,
        call: &'static str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Option<T>, ForgeError> {
        let Some(bytes) = self.call(call, method, path, body).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ForgeError::Failed {
                call,
                status: 200,
                message: format!("the answer does not parse: {e}"),
            })
    }
}

/// Gitea's answer when its SQLite database was busy: the request changed nothing.
fn is_locked(e: &ForgeError) -> bool {
    matches!(e, ForgeError::Failed { status: 500, message, .. } if message.contains("database is locked"))
}

/// The Forge's `{"message": …}`, or the start of the body.
fn message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Msg {
        message: String,
    }
    match serde_json::from_slice::<Msg>(body) {
        Ok(m) => m.message,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// A path segment as the URL needs it (account names are letters, digits, `.-_`, but a
/// Tester's spec is not trusted to be).
fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Forge for HttpForge {
    fn url(&self) -> &str {
        &self.url
    }

    fn user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<ForgeUser>, ForgeError>> {
        Box::pin(async move {
            self.parse(
                "reading the account",
                Method::GET,
                &format!("users/{}", segment(name)),
                None,
            )
            .await
        })
    }

    fn create_user<'a>(&'a self, new: &'a NewAccount<'a>) -> BoxFuture<'a, Result<(), ForgeError>> {
        Box::pin(async move {
            let body = json!({
                "username": new.name,
                "email": new.email,
                "password": new.password.expose_secret(),
                "must_change_password": true,
                "send_notify": false,
                "visibility": "private",
            });
            self.call(
                "creating the account",
                Method::POST,
                "admin/users",
                Some(body),
            )
            .await?
            .ok_or(ForgeError::Refused {
                call: "creating the account",
                status: 404,
                message: "the admin API is not there: is this a Gitea or Forgejo URL?".into(),
            })?;
            Ok(())
        })
    }

    fn password_matches<'a>(
        &'a self,
        name: &'a str,
        password: &'a SecretString,
    ) -> BoxFuture<'a, Result<bool, ForgeError>> {
        Box::pin(async move {
            let resp = self
                .http
                .get(format!("{}api/v1/user", self.url))
                .basic_auth(name, Some(password.expose_secret()))
                .send()
                .await
                .map_err(|e| self.unreachable(e))?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| self.unreachable(e))?;
            Ok(match status {
                StatusCode::OK => true,
                // The password is right, but must be changed before the API may be used.
                StatusCode::FORBIDDEN => message(&body).contains("change your password"),
                s if s.is_server_error() => {
                    return Err(ForgeError::Failed {
                        call: "checking the one-time password",
                        status: s.as_u16(),
                        message: message(&body),
                    });
                }
                _ => false,
            })
        })
    }

    fn delete_user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ForgeError>> {
        Box::pin(async move {
            self.call(
                "deleting the account",
                Method::DELETE,
                &format!("admin/users/{}?purge=true", segment(name)),
                None,
            )
            .await?;
            Ok(())
        })
    }

    fn app<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<OAuthApp>, ForgeError>> {
        Box::pin(async move {
            let raw: Option<RawApp> = self
                .parse(
                    "reading the sign-in application",
                    Method::GET,
                    &format!("user/applications/oauth2/{id}"),
                    None,
                )
                .await?;
            Ok(raw.map(Into::into))
        })
    }

    fn app_by_name<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<OAuthApp>, ForgeError>> {
        Box::pin(async move {
            for page in 1.. {
                let apps: Vec<RawApp> = self
                    .parse(
                        "listing the sign-in applications",
                        Method::GET,
                        &format!("user/applications/oauth2?page={page}&limit={PAGE}"),
                        None,
                    )
                    .await?
                    .unwrap_or_default();
                let last = apps.len() < PAGE;
                if let Some(app) = apps.into_iter().find(|a| a.name == name) {
                    return Ok(Some(app.into()));
                }
                if last {
                    break;
                }
            }
            Ok(None)
        })
    }

    fn create_app<'a>(
        &'a self,
        name: &'a str,
        redirect_uri: &'a str,
    ) -> BoxFuture<'a, Result<OAuthApp, ForgeError>> {
        Box::pin(async move {
            let raw: Option<RawApp> = self
                .parse(
                    "creating the sign-in application",
                    Method::POST,
                    "user/applications/oauth2",
                    Some(app_body(name, redirect_uri)),
                )
                .await?;
            with_secret(raw, "creating the sign-in application")
        })
    }

    fn update_app<'a>(
        &'a self,
        id: i64,
        name: &'a str,
        redirect_uri: &'a str,
    ) -> BoxFuture<'a, Result<OAuthApp, ForgeError>> {
        Box::pin(async move {
            let raw: Option<RawApp> = self
                .parse(
                    "renewing the sign-in application",
                    Method::PATCH,
                    &format!("user/applications/oauth2/{id}"),
                    Some(app_body(name, redirect_uri)),
                )
                .await?;
            with_secret(raw, "renewing the sign-in application")
        })
    }

    fn delete_app<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<(), ForgeError>> {
        Box::pin(async move {
            self.call(
                "deleting the sign-in application",
                Method::DELETE,
                &format!("user/applications/oauth2/{id}"),
                None,
            )
            .await?;
            Ok(())
        })
    }
}

/// A confidential client with one redirect URI, marked first-party
/// (`skip_secondary_authorization`); Gitea 1.27 still shows its consent page once per person
/// and application (it skips it only once a grant exists).
fn app_body(name: &str, redirect_uri: &str) -> serde_json::Value {
    json!({
        "name": name,
        "redirect_uris": [redirect_uri],
        "confidential_client": true,
        "skip_secondary_authorization": true,
    })
}

fn with_secret(raw: Option<RawApp>, call: &'static str) -> Result<OAuthApp, ForgeError> {
    let app: OAuthApp = raw
        .ok_or(ForgeError::Refused {
            call,
            status: 404,
            message: "the application is gone".into(),
        })?
        .into();
    if app.client_secret.is_none() {
        return Err(ForgeError::Failed {
            call,
            status: 200,
            message: "the answer carries no client secret".into(),
        });
    }
    Ok(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_whether_to_retry_and_carry_no_secret() {
        let down = ForgeError::Unreachable {
            url: "http://forge/".into(),
            reason: "connection refused".into(),
        };
        assert!(down.is_retry_later());
        assert!(!ForgeError::Unauthorized { status: 401 }.is_retry_later());
        let refused = ForgeError::Refused {
            call: "creating the account",
            status: 422,
            message: message(br#"{"message":"name is reserved [name: admin]","url":"x"}"#),
        };
        assert!(!refused.is_retry_later());
        assert_eq!(
            refused.to_string(),
            "the Forge refused creating the account (HTTP 422): name is reserved [name: admin]"
        );
    }

    #[test]
    fn only_a_busy_sqlite_answer_is_tried_again_at_once() {
        let failed = |status, body: &[u8]| ForgeError::Failed {
            call: "creating the sign-in client",
            status,
            message: message(body),
        };
        assert!(is_locked(&failed(
            500,
            br#"{"message":"database is locked (5) (SQLITE_BUSY)","url":"x"}"#
        )));
        assert!(!is_locked(&failed(500, br#"{"message":"nil pointer"}"#)));
        assert!(!is_locked(&failed(502, b"bad gateway")));
    }

    #[test]
    fn an_app_without_a_secret_is_not_taken_as_new() {
        let raw = RawApp {
            id: 3,
            name: "n".into(),
            client_id: "c".into(),
            client_secret: String::new(),
            redirect_uris: vec![],
        };
        assert!(with_secret(Some(raw), "creating").is_err());
        let printed = format!(
            "{:?}",
            OAuthApp::from(RawApp {
                id: 3,
                name: "n".into(),
                client_id: "c".into(),
                client_secret: "secret-31337".into(),
                redirect_uris: vec![],
            })
        );
        assert!(!printed.contains("secret-31337"), "{printed}");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("alice"), "alice");
        assert_eq!(segment("a/../b"), "a%2F..%2Fb");
    }
}
