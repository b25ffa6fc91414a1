//! The session of the HTTP transport: it stands for the real client's long-lived connection
//! (substrate's websocket, RMB's relay). When it goes stale ("background task closed, restart
//! required") a call opens a new one and is retried once, so callers see that error only when
//! reconnecting fails too.

use std::{fmt, sync::Mutex};

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{read, transport};
use crate::{ErrorCode, GridError};

/// Header carrying the session token on every chain and node call.
pub const SESSION_HEADER: &str = "x-grid-session";

/// Body of `POST /session`.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionRequest {
    /// The twin the calls are made as.
    pub twin_id: u32,
    /// The twin's secret (stands for its mnemonic).
    pub secret: String,
}

impl fmt::Debug for SessionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRequest")
            .field("twin_id", &self.twin_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Answer of `POST /session`: the token to send in [`SESSION_HEADER`].
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionGrant {
    /// Opaque token.
    pub session: String,
    /// The twin the session acts as.
    pub twin_id: u32,
}

impl fmt::Debug for SessionGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionGrant")
            .field("twin_id", &self.twin_id)
            .finish_non_exhaustive()
    }
}

/// A twin's connection to the chain and node transport at one base URL.
pub struct Session {
    base: String,
    twin_id: u32,
    secret: SecretString,
    http: reqwest::Client,
    token: Mutex<Option<String>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("base", &self.base)
            .field("twin_id", &self.twin_id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session (opened on first use) of `twin_id` at `base` (e.g. `http://127.0.0.1:8800`).
    pub fn new(base: &str, twin_id: u32, secret: SecretString, http: reqwest::Client) -> Self {
        Session {
            base: base.trim_end_matches('/').to_string(),
            twin_id,
            secret,
            http,
            token: Mutex::new(None),
        }
    }

    /// The twin the calls are made as.
    pub fn twin_id(&self) -> u32 {
        self.twin_id
    }

    /// Opens a new session (drops the old one).
    pub async fn connect(&self) -> Result<String, GridError> {
        let resp = self
            .http
            .post(format!("{}/session", self.base))
            .json(&SessionRequest {
                twin_id: self.twin_id,
                secret: self.secret.expose_secret().to_string(),
            })
            .send()
            .await
            .map_err(|e| transport(e, "open session"))?;
        let s: SessionGrant = read(resp, "open session").await?;
        *self.token.lock().expect("session lock") = Some(s.session.clone());
        Ok(s.session)
    }

    async fn token(&self) -> Result<String, GridError> {
        let current = self.token.lock().expect("session lock").clone();
        match current {
            Some(s) => Ok(s),
            None => self.connect().await,
        }
    }

    /// A call with the session; reconnects and retries once on a stale session.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        what: &str,
    ) -> Result<T, GridError> {
        let mut retried = false;
        loop {
            let session = self.token().await?;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{}", self.base, path))
                .header(SESSION_HEADER, &session);
            if let Some(b) = &body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.clone());
            }
            let resp = req.send().await.map_err(|e| transport(e, what))?;
            match read::<T>(resp, what).await {
                Err(e)
                    if !retried
                        && matches!(
                            e.code(),
                            ErrorCode::StaleConnection | ErrorCode::Unauthenticated
                        ) =>
                {
                    // The connection's background task died (or the server restarted and forgot
                    // the session): the real client must be rebuilt; do it once, then retry.
                    tracing::info!(what, error = %e, "grid session stale, reconnecting");
                    retried = true;
                    self.token.lock().expect("session lock").take();
                }
                other => return other,
            }
        }
    }
}
