//! The OpenID Connect side of the gate: discovery, the authorization request, and the checks
//! on the provider's answer (token exchange, ID token, userinfo).
//!
//! Discovery is lazy: nothing is fetched until the first visitor needs to sign in, so a gate
//! that starts before its provider still comes up, and a thousand gates in one process cost
//! nothing until they are used.

mod error;

pub use error::{CallbackError, ProviderError};

use crate::access::Identity;
use chrono::{DateTime, TimeDelta, Utc};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreIdTokenVerifier,
    CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse as _,
};
use openidconnect::{ClaimsVerificationError, SignatureVerificationError};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Allowed difference between the provider's clock and ours for `exp` and `iat`.
const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(60);
/// A failed discovery is not retried sooner than this, so a provider that is down is not
/// hammered by every visitor.
const DISCOVERY_RETRY: Duration = Duration::from_secs(2);
/// The JWKS is refetched (on an unknown `kid`) at most this often.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Longest time a sign-in may take between the redirect to the provider and the callback.
pub(crate) const LOGIN_TTL: Duration = Duration::from_secs(600);

/// One HTTP client for every gate in the process: building one loads TLS roots, which a
/// thousand gates should not each do. It never follows redirects (the OIDC endpoints must
/// answer themselves).
pub(crate) static HTTP: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build()
        .expect("the HTTP client builds with static settings")
});

/// What the gate remembers (in a sealed cookie) between the redirect to the provider and the
/// callback.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct PendingLogin {
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) pkce_verifier: String,
    /// Path and query to return to after sign-in (always a path on this gate).
    pub(crate) return_to: String,
    /// Unix seconds when the sign-in started.
    pub(crate) started: i64,
}

struct Discovered {
    metadata: CoreProviderMetadata,
    jwks: CoreJsonWebKeySet,
    jwks_refetched: Option<Instant>,
}

#[derive(Default)]
struct State {
    discovered: Option<Arc<Discovered>>,
    failed_at: Option<Instant>,
}

/// One gate's view of its provider: configured settings plus what discovery found.
pub(crate) struct Provider {
    issuer: String,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect_url: RedirectUrl,
    allow_hmac: bool,
    state: Mutex<State>,
}

impl Provider {
    pub(crate) fn new(
        issuer: String,
        client_id: String,
        client_secret: String,
        redirect_url: RedirectUrl,
        allow_hmac: bool,
    ) -> Self {
        Self {
            issuer,
            client_id: ClientId::new(client_id),
            client_secret: ClientSecret::new(client_secret),
            redirect_url,
            allow_hmac,
            state: Mutex::new(State::default()),
        }
    }

    /// The discovered metadata and keys, discovering them first when needed.
    async fn discovered(&self) -> Result<Arc<Discovered>, ProviderError> {
        let mut state = self.state.lock().await;
        if let Some(d) = &state.discovered {
            return Ok(d.clone());
        }
        if let Some(at) = state.failed_at
            && at.elapsed() < DISCOVERY_RETRY
        {
            return Err(ProviderError::RecentlyFailed);
        }
        match discover(&self.issuer).await {
            Ok(d) => {
                let d = Arc::new(d);
                state.discovered = Some(d.clone());
                state.failed_at = None;
                Ok(d)
            }
            Err(e) => {
                state.failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// Refetches the JWKS after an unknown `kid`, at most once per [`JWKS_REFETCH_INTERVAL`].
    /// Returns the new keys, or `None` when a refetch is not allowed yet.
    async fn refetch_jwks(&self) -> Result<Option<Arc<Discovered>>, ProviderError> {
        let mut state = self.state.lock().await;
        let Some(current) = state.discovered.clone() else {
            return Ok(None);
        };
        if let Some(at) = current.jwks_refetched
            && at.elapsed() < JWKS_REFETCH_INTERVAL
        {
            return Ok(None);
        }
        let jwks = fetch_jwks(&self.issuer, &current.metadata).await?;
        let updated = Arc::new(Discovered {
            metadata: current.metadata.clone(),
            jwks,
            jwks_refetched: Some(Instant::now()),
        });
        state.discovered = Some(updated.clone());
        Ok(Some(updated))
    }

    fn client(
        &self,
        d: &Discovered,
    ) -> CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        let supported = d.metadata.token_endpoint_auth_methods_supported();
        let post_only = supported.is_some_and(|m| {
            !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
                && m.contains(&CoreClientAuthMethod::ClientSecretPost)
        });
        CoreClient::from_provider_metadata(
            d.metadata.clone(),
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        .set_redirect_uri(self.redirect_url.clone())
        .set_auth_type(if post_only {
            AuthType::RequestBody
        } else {
            AuthType::BasicAuth
        })
    }

    /// Starts a sign-in: the URL to send the browser to, and what to remember until the
    /// callback.
    pub(crate) async fn authorize(
        &self,
        return_to: String,
    ) -> Result<(url::Url, PendingLogin), ProviderError> {
        let d = self.discovered().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self.client(&d);
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        let pending = PendingLogin {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to,
            started: Utc::now().timestamp(),
        };
        Ok((url, pending))
    }

    /// Finishes a sign-in whose `state` was already matched against `pending`: exchanges the
    /// code, checks the ID token, and asks userinfo who signed in.
    pub(crate) async fn finish(
        &self,
        pending: &PendingLogin,
        code: String,
        iss: Option<&str>,
    ) -> Result<Identity, CallbackError> {
        let d = self.discovered().await?;
        // RFC 9207: a provider that names itself in the callback must be the one we asked
        // (defends against mix-up between providers).
        if let Some(iss) = iss
            && iss != d.metadata.issuer().as_str()
        {
            return Err(CallbackError::IdToken(format!(
                "the callback names issuer {iss}, not this gate's provider"
            )));
        }
        let client = self.client(&d);
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| CallbackError::TokenExchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&*HTTP)
            .await
            .map_err(|e| CallbackError::TokenExchange(describe_token_error(&e)))?;
        let id_token = tokens.id_token().ok_or(CallbackError::MissingIdToken)?;
        let nonce = Nonce::new(pending.nonce.clone());
        let started = DateTime::from_timestamp(pending.started, 0).unwrap_or_else(Utc::now);

        let mut keys = d.clone();
        let claims = loop {
            let verifier = self.verifier(&keys, started);
            match id_token.claims(&verifier, &nonce) {
                Ok(claims) => break claims.clone(),
                Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                )) => match self.refetch_jwks().await? {
                    Some(fresh) => {
                        tracing::info!(issuer = %self.issuer, "unknown signing key; refetched the provider's JWKS");
                        keys = fresh;
                        // Only one refetch per callback: the next NoMatchingKey is final
                        // because refetch_jwks is rate-limited.
                        continue;
                    }
                    None => {
                        return Err(CallbackError::IdToken(
                            "signed with a key the provider does not publish".into(),
                        ));
                    }
                },
                Err(e) => return Err(CallbackError::IdToken(e.to_string())),
            }
        };
        check_authorized_party(&claims, &self.client_id)?;

        let userinfo: CoreUserInfoClaims = client
            .user_info(
                tokens.access_token().clone(),
                Some(claims.subject().clone()),
            )
            .map_err(|e| CallbackError::UserInfo(e.to_string()))?
            .request_async(&*HTTP)
            .await
            .map_err(|e| CallbackError::UserInfo(describe_userinfo_error(&e)))?;
        Ok(Identity {
            sub: claims.subject().to_string(),
            username: userinfo.preferred_username().map(|u| u.to_string()),
            email: userinfo.email().map(|e| e.to_string()),
            email_verified: userinfo.email_verified(),
        })
    }

    fn verifier(&self, d: &Discovered, started: DateTime<Utc>) -> CoreIdTokenVerifier<'static> {
        let mut algs = vec![
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
            CoreJwsSigningAlgorithm::RsaSsaPssSha256,
            CoreJwsSigningAlgorithm::RsaSsaPssSha384,
            CoreJwsSigningAlgorithm::RsaSsaPssSha512,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            CoreJwsSigningAlgorithm::EcdsaP384Sha384,
            CoreJwsSigningAlgorithm::EdDsa,
        ];
        if self.allow_hmac {
            algs.extend([
                CoreJwsSigningAlgorithm::HmacSha256,
                CoreJwsSigningAlgorithm::HmacSha384,
                CoreJwsSigningAlgorithm::HmacSha512,
            ]);
        }
        CoreIdTokenVerifier::new_confidential_client(
            self.client_id.clone(),
            self.client_secret.clone(),
            d.metadata.issuer().clone(),
            d.jwks.clone(),
        )
        .set_allowed_algs(algs)
        // Several audiences are fine when `azp` names this client (checked after).
        .set_other_audience_verifier_fn(|_| true)
        .set_time_fn(|| Utc::now() - CLOCK_SKEW)
        .set_issue_time_verifier_fn(move |iat| {
            let now = Utc::now();
            if iat > now + CLOCK_SKEW {
                Err(format!("issued in the future ({iat})"))
            } else if iat < started - CLOCK_SKEW {
                Err(format!("issued before this sign-in started ({iat})"))
            } else {
                Ok(())
            }
        })
    }
}

/// With several audiences, `azp` must be present and name this client; when present it must
/// name this client in any case.
fn check_authorized_party(
    claims: &openidconnect::core::CoreIdTokenClaims,
    client_id: &ClientId,
) -> Result<(), CallbackError> {
    match claims.authorized_party() {
        Some(azp) if **azp != **client_id => Err(CallbackError::IdToken(format!(
            "the authorized party is {}, not this gate",
            **azp
        ))),
        None if claims.audiences().len() > 1 => Err(CallbackError::IdToken(
            "several audiences but no authorized party".into(),
        )),
        _ => Ok(()),
    }
}

fn describe_token_error<RE: std::error::Error + 'static>(
    e: &openidconnect::RequestTokenError<
        RE,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> String {
    use openidconnect::RequestTokenError as E;
    match e {
        // The provider's error code only: descriptions may echo request values.
        E::ServerResponse(r) => format!("provider answered {}", r.error()),
        E::Request(_) => "request failed".into(),
        E::Parse(_, _) => "unreadable response".into(),
        E::Other(_) => "unexpected response".into(),
    }
}

fn describe_userinfo_error<RE: std::error::Error + 'static>(
    e: &openidconnect::UserInfoError<RE>,
) -> String {
    use openidconnect::UserInfoError as E;
    match e {
        E::ClaimsVerification(c) => c.to_string(),
        E::Parse(_) => "unreadable response".into(),
        E::Request(_) => "request failed".into(),
        E::Response(status, _, _) => format!("HTTP {status}"),
        E::Other(m) => m.clone(),
        _ => "unexpected error".into(),
    }
}

/// Two issuer URLs name the same issuer when they differ at most by a trailing slash
/// (Forgejo publishes its issuer with one, and operators often write it without).
pub(crate) fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

async fn discover(issuer: &str) -> Result<Discovered, ProviderError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let body = get_text(issuer, &url).await?;
    let metadata: CoreProviderMetadata =
        serde_json::from_str(&body).map_err(|e| ProviderError::Invalid {
            document: "discovery document",
            reason: e.to_string(),
        })?;
    if !same_issuer(metadata.issuer().as_str(), issuer) {
        return Err(ProviderError::IssuerMismatch {
            expected: issuer.to_string(),
            found: metadata.issuer().to_string(),
        });
    }
    let jwks = fetch_jwks(issuer, &metadata).await?;
    tracing::info!(issuer, "discovered the OIDC provider");
    Ok(Discovered {
        metadata,
        jwks,
        jwks_refetched: None,
    })
}

async fn fetch_jwks(
    issuer: &str,
    metadata: &CoreProviderMetadata,
) -> Result<CoreJsonWebKeySet, ProviderError> {
    let body = get_text(issuer, metadata.jwks_uri().as_str()).await?;
    serde_json::from_str(&body).map_err(|e| ProviderError::Invalid {
        document: "JWKS",
        reason: e.to_string(),
    })
}

async fn get_text(issuer: &str, url: &str) -> Result<String, ProviderError> {
    let unreachable = |reason: String| ProviderError::Unreachable {
        issuer: issuer.to_string(),
        reason,
    };
    let response = HTTP
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| unreachable(e.without_url().to_string()))?;
    if !response.status().is_success() {
        return Err(unreachable(format!("{url} answered {}", response.status())));
    }
    response
        .text()
        .await
        .map_err(|e| unreachable(e.without_url().to_string()))
}

/// Checks the configured issuer is a URL openidconnect accepts.
pub(crate) fn parse_issuer(issuer: &str) -> Result<IssuerUrl, url::ParseError> {
    IssuerUrl::new(issuer.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_match_modulo_trailing_slash() {
        assert!(same_issuer("https://git.example", "https://git.example/"));
        assert!(same_issuer("https://git.example/", "https://git.example"));
        assert!(!same_issuer("https://git.example", "https://evil.example"));
        assert!(!same_issuer("https://git.example/a", "https://git.example"));
    }

    fn claims(aud: serde_json::Value, azp: Option<&str>) -> openidconnect::core::CoreIdTokenClaims {
        let mut v = serde_json::json!({
            "iss": "https://p", "sub": "1001", "aud": aud, "exp": 2_000_000_000, "iat": 1_700_000_000,
        });
        if let Some(azp) = azp {
            v["azp"] = azp.into();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn audience_string_or_list() {
        let me = ClientId::new("gate".into());
        // A string and a one-element list are the same thing.
        assert_eq!(claims("gate".into(), None).audiences().len(), 1);
        assert!(check_authorized_party(&claims("gate".into(), None), &me).is_ok());
        assert!(check_authorized_party(&claims(serde_json::json!(["gate"]), None), &me).is_ok());
        // Several audiences need azp naming this client.
        let several = serde_json::json!(["gate", "other"]);
        assert!(check_authorized_party(&claims(several.clone(), None), &me).is_err());
        assert!(check_authorized_party(&claims(several.clone(), Some("other")), &me).is_err());
        assert!(check_authorized_party(&claims(several, Some("gate")), &me).is_ok());
        // azp naming someone else is refused even with one audience.
        assert!(check_authorized_party(&claims("gate".into(), Some("other")), &me).is_err());
    }
}
