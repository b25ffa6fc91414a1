//! What can go wrong with the provider, and with a callback.

use thiserror::Error;

/// Why the provider could not be used.
#[derive(Debug, Clone, Error)]
pub enum ProviderError {
    /// The discovery document or the JWKS could not be fetched.
    #[error("the OIDC provider at {issuer} is unreachable: {reason}")]
    Unreachable {
        /// The configured issuer.
        issuer: String,
        /// What went wrong, without any secret.
        reason: String,
    },
    /// The discovery document names another issuer.
    #[error("the OIDC provider says its issuer is {found}, not {expected}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer in the discovery document.
        found: String,
    },
    /// The discovery document or the JWKS is not valid.
    #[error("the OIDC provider's {document} is not valid: {reason}")]
    Invalid {
        /// Which document.
        document: &'static str,
        /// The parse error.
        reason: String,
    },
    /// A recent discovery failed; the gate waits a moment before trying again.
    #[error("the OIDC provider was unreachable a moment ago; retrying shortly")]
    RecentlyFailed,
}

/// Why a callback from the provider was refused. The messages carry no secret: no code, token,
/// state or cookie value.
#[derive(Debug, Error)]
pub enum CallbackError {
    /// The provider reported an error instead of a code (e.g. the user cancelled).
    #[error("the provider refused the sign-in: {0}")]
    ProviderRefused(String),
    /// The callback has no `code` or no `state`.
    #[error("the callback lacks the code or the state")]
    MissingParameters,
    /// No pending sign-in cookie, or one that does not open or has expired.
    #[error("no pending sign-in in this browser (or it expired)")]
    NoPendingLogin,
    /// The `state` does not match the pending sign-in.
    #[error("the state does not match the pending sign-in")]
    StateMismatch,
    /// The `state` was already used once.
    #[error("the state was already used")]
    StateReplayed,
    /// The provider could not be reached or is misconfigured.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The code could not be exchanged for tokens.
    #[error("the token exchange failed: {0}")]
    TokenExchange(String),
    /// The token response has no ID token.
    #[error("the token response has no ID token")]
    MissingIdToken,
    /// The ID token failed a check (signature, issuer, audience, expiry, nonce...).
    #[error("the ID token was refused: {0}")]
    IdToken(String),
    /// The userinfo call failed, or its `sub` differs from the ID token's.
    #[error("the userinfo answer was refused: {0}")]
    UserInfo(String),
}
