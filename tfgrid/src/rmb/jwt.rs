//! The relay's admission token: a JWT whose signature is the twin's own (`s`/`e` prefixed),
//! with the header rmb-sdk-go writes (`{"alg":"RS512","typ":"JWT"}`, a fixed type the relay
//! ignores) and claims `sub` (twin), `iat`, `exp` and an optional `sid` (session). The peer
//! sends it as the whole query string of the relay URL.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::identity::{AccountId, Identity};

/// The header every RMB token carries.
const HEADER: &str = r#"{"alg":"RS512","typ":"JWT"}"#;

/// The claims of a relay token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Session id, when the twin keeps several connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The twin.
    pub sub: u32,
}

/// Why a token is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url segments with JSON in the first two.
    #[error("malformed token")]
    Malformed,
    /// `exp` is in the past.
    #[error("token has expired")]
    Expired,
    /// Not signed by the twin's key.
    #[error("token signature is not the twin's: {0}")]
    Signature(String),
}

/// A token for `twin`, valid `ttl` seconds from `now`.
pub fn token(identity: &Identity, twin: u32, session: Option<&str>, now: u64, ttl: u64) -> String {
    let claims = Claims {
        exp: now + ttl,
        iat: now,
        sid: session.map(str::to_string),
        sub: twin,
    };
    let signing = signing_string(&claims);
    let sig = identity.sign_prefixed(signing.as_bytes());
    format!("{signing}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// `header.claims`, each base64url without padding: what the twin signs.
pub fn signing_string(claims: &Claims) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"))
    )
}

/// The claims of `token`, unverified: the relay reads `sub` to find the twin's key first.
pub fn claims(token: &str, now: u64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(_), Some(c), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let raw = URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&raw).map_err(|_| TokenError::Malformed)?;
    if claims.exp < now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Checks that `token` is signed by `account` (call [`claims`] first).
pub fn verify(token: &str, account: &AccountId) -> Result<(), TokenError> {
    let (signing, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed)?;
    account
        .verify(&sig, signing.as_bytes())
        .map_err(|e| TokenError::Signature(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::KeyType;
    use secrecy::SecretString;

    #[test]
    fn a_token_carries_its_twin_and_only_its_key_verifies_it() {
        let me = Identity::from_mnemonic(
            &SecretString::from(
                "bottom drive obey lake curtain smoke basket hold race lonely fit walk",
            ),
            KeyType::Ed25519,
        )
        .unwrap();
        let t = token(&me, 7, Some("sandbox"), 1_700_000_000, 60);
        let c = claims(&t, 1_700_000_010).unwrap();
        assert_eq!((c.sub, c.sid.as_deref()), (7, Some("sandbox")));
        verify(&t, &me.account()).unwrap();
        assert!(verify(&t, &AccountId([9; 32])).is_err());
        assert_eq!(claims(&t, 1_700_000_061), Err(TokenError::Expired));
        assert_eq!(claims("a.b", 0), Err(TokenError::Malformed));
    }
}
