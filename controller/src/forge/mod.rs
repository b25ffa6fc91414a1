//! The Forge (Gitea or Forgejo): the testers' identity provider. The controller creates
//! accounts there through the admin API and one OAuth2 application per tester, whose client the
//! tester's sign-in gate uses.
//!
//! Calls (Gitea's API v1, the admin token as `Authorization: token …`):
//! `GET /api/v1/users/{name}`, `POST /api/v1/admin/users`, `DELETE /api/v1/admin/users/{name}`,
//! `GET|POST /api/v1/user/applications/oauth2`, `GET|PATCH|DELETE
//! /api/v1/user/applications/oauth2/{id}` (the applications belong to the token's user, the
//! Forge's administrator, so a tester can neither see nor change them). Gitea generates a new
//! client secret on every `PATCH`: that is how a secret is rotated.

mod http;

use futures::future::BoxFuture;
use secrecy::SecretString;
use serde::Deserialize;

pub use http::HttpForge;

/// An error talking to the Forge. Never carries a token, password or client secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgeError {
    /// The Forge did not answer (connection refused, timeout): retry later.
    #[error("the Forge at {url} did not answer: {reason}")]
    Unreachable {
        /// The Forge's URL.
        url: String,
        /// Why (the transport's words).
        reason: String,
    },
    /// The Forge refused the controller's admin token (HTTP 401, or 403 for a token that is
    /// not an administrator's).
    #[error("the Forge refused the controller's admin token (HTTP {status})")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// The Forge refused the request (HTTP 4xx): its own words say why.
    #[error("the Forge refused {call} (HTTP {status}): {message}")]
    Refused {
        /// What was asked, e.g. `creating the account`.
        call: &'static str,
        /// The HTTP status.
        status: u16,
        /// The Forge's message.
        message: String,
    },
    /// The Forge failed (HTTP 5xx, 429 or an answer that does not parse): retry later.
    #[error("the Forge failed {call} (HTTP {status}): {message}")]
    Failed {
        /// What was asked.
        call: &'static str,
        /// The HTTP status.
        status: u16,
        /// The Forge's message.
        message: String,
    },
}

impl ForgeError {
    /// Whether retrying later may help (the call may even have landed).
    pub fn is_retry_later(&self) -> bool {
        matches!(
            self,
            ForgeError::Unreachable { .. } | ForgeError::Failed { .. }
        )
    }
}

/// An account at the Forge.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ForgeUser {
    /// Its numeric id.
    pub id: i64,
    /// Its login name.
    pub login: String,
}

/// An account to create.
pub struct NewAccount<'a> {
    /// Login name.
    pub name: &'a str,
    /// Email address.
    pub email: &'a str,
    /// One-time password; the Forge makes the person choose their own at first sign-in.
    pub password: &'a SecretString,
}

/// One OAuth2 application at the Forge.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    /// The Forge's id for it (used to update and delete it).
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its client id.
    pub client_id: String,
    /// Its client secret: only in the answer that made it (create, or update, which makes a
    /// new one).
    pub client_secret: Option<SecretString>,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
}

/// What the controller asks of the Forge.
pub trait Forge: Send + Sync {
    /// The Forge's base URL, with a trailing slash: also its OIDC issuer.
    fn url(&self) -> &str;
    /// The account `name`, if it exists.
    fn user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<ForgeUser>, ForgeError>>;
    /// Creates an account that must change its password at first sign-in. An existing name or
    /// email is `Refused` (422).
    fn create_user<'a>(&'a self, new: &'a NewAccount<'a>) -> BoxFuture<'a, Result<(), ForgeError>>;
    /// Whether `password` is the account's password (also while it must still be changed).
    fn password_matches<'a>(
        &'a self,
        name: &'a str,
        password: &'a SecretString,
    ) -> BoxFuture<'a, Result<bool, ForgeError>>;
    /// Deletes the account and what it owns; an absent account is fine.
    fn delete_user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ForgeError>>;
    /// The application with this id, if it exists (no secret).
    fn app<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<OAuthApp>, ForgeError>>;
    /// The first application named `name` (no secret).
    fn app_by_name<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<OAuthApp>, ForgeError>>;
    /// Creates a confidential application with exactly one redirect URI; the answer carries
    /// its secret.
    fn create_app<'a>(
        &'a self,
        name: &'a str,
        redirect_uri: &'a str,
    ) -> BoxFuture<'a, Result<OAuthApp, ForgeError>>;
    /// Sets the application's name and only redirect URI; the Forge makes a new secret (the
    /// old one stops working), which the answer carries.
    fn update_app<'a>(
        &'a self,
        id: i64,
        name: &'a str,
        redirect_uri: &'a str,
    ) -> BoxFuture<'a, Result<OAuthApp, ForgeError>>;
    /// Deletes the application; an absent one is fine.
    fn delete_app<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<(), ForgeError>>;
}
