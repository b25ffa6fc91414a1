//! Sealed cookies: the session and the pending sign-in, encrypted and authenticated with
//! XChaCha20-Poly1305 so that the browser can hold them but neither read nor change them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::fmt;
use thiserror::Error;

/// The secret that seals the gate's cookies. At least 32 bytes; a gate that must keep its
/// sessions across a restart must be given the same key again.
#[derive(Clone)]
pub struct SessionKey(Vec<u8>);

/// Why a session key was refused.
#[derive(Debug, Error)]
#[error("a session key needs at least 32 bytes, got {0}")]
pub struct ShortKey(pub usize);

impl SessionKey {
    /// Wraps raw key material (32 bytes or more).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ShortKey> {
        let bytes = bytes.into();
        if bytes.len() < 32 {
            return Err(ShortKey(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// A fresh random key: sessions end when the gate stops.
    pub fn random() -> Self {
        let mut bytes = vec![0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Reads a key from its hex or base64 text form (as kept in a file or an environment
    /// variable).
    pub fn from_text(text: &str) -> Result<Self, ShortKey> {
        let text = text.trim();
        let bytes = decode_hex(text)
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .or_else(|| URL_SAFE_NO_PAD.decode(text).ok())
            .unwrap_or_else(|| text.as_bytes().to_vec());
        Self::new(bytes)
    }

    /// The key as hex text, for writing to a file.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Seals and opens cookie values for one gate. The cookie's name and the gate's identity
/// (client id and public URL) are bound in as associated data, so a value sealed for one
/// cookie or one gate does not open as another.
#[derive(Clone)]
pub(crate) struct Sealer {
    cipher: XChaCha20Poly1305,
    context: String,
}

impl Sealer {
    pub(crate) fn new(key: &SessionKey, context: String) -> Self {
        // Derive the cipher key so that key material of any length (and any origin) yields a
        // uniform 256-bit key used for nothing else.
        let derived = Sha256::new()
            .chain_update(b"gate cookie key v1\0")
            .chain_update(&key.0)
            .finalize();
        Self {
            cipher: XChaCha20Poly1305::new(&derived),
            context,
        }
    }

    fn aad(&self, name: &str) -> Vec<u8> {
        format!("{name}\0{}", self.context).into_bytes()
    }

    /// Encrypts `value` for the cookie `name`.
    pub(crate) fn seal<T: Serialize>(&self, name: &str, value: &T) -> String {
        let plaintext = serde_json::to_vec(value).expect("cookie payloads always serialize");
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let aad = self.aad(name);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption does not fail on short inputs");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Decrypts a cookie value; `None` when it was not sealed by this gate for `name`, or was
    /// changed in any way.
    pub(crate) fn open<T: DeserializeOwned>(&self, name: &str, sealed: &str) -> Option<T> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < 24 + 16 {
            return None;
        }
        let (nonce, ciphertext) = raw.split_at(24);
        let aad = self.aad(name);
        let plaintext = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()?;
        serde_json::from_slice(&plaintext).ok()
    }
}

/// The values of every cookie called `name` in the request's `Cookie` headers.
pub(crate) fn cookie_values<'a>(
    headers: &'a axum::http::HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

/// Removes the gate's own cookies from the `Cookie` headers, so the app behind the gate never
/// sees the session.
pub(crate) fn strip_gate_cookies(headers: &mut axum::http::HeaderMap, prefix: &str) {
    let kept: Vec<String> = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && !pair.starts_with(prefix))
        .map(str::to_owned)
        .collect();
    headers.remove(axum::http::header::COOKIE);
    if !kept.is_empty()
        && let Ok(value) = kept.join("; ").parse()
    {
        headers.insert(axum::http::header::COOKIE, value);
    }
}

/// A `Set-Cookie` value with the gate's fixed attributes.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
    secure: bool,
) -> String {
    let mut out = format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax");
    if secure {
        out.push_str("; Secure");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Payload {
        user: String,
    }

    fn sealer(key: &SessionKey) -> Sealer {
        Sealer::new(key, "gate|http://a.localhost".into())
    }

    #[test]
    fn round_trips() {
        let s = sealer(&SessionKey::random());
        let sealed = s.seal(
            "gate_session",
            &Payload {
                user: "alice".into(),
            },
        );
        assert!(!sealed.contains("alice"), "the payload is encrypted");
        let opened: Payload = s.open("gate_session", &sealed).unwrap();
        assert_eq!(opened.user, "alice");
    }

    #[test]
    fn refuses_any_tampering() {
        let s = sealer(&SessionKey::random());
        let sealed = s.seal(
            "gate_session",
            &Payload {
                user: "alice".into(),
            },
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in [0, 24, raw.len() / 2, raw.len() - 1] {
            raw[i] ^= 1;
            let tampered = URL_SAFE_NO_PAD.encode(&raw);
            assert!(
                s.open::<Payload>("gate_session", &tampered).is_none(),
                "byte {i}"
            );
            raw[i] ^= 1;
        }
        assert!(s.open::<Payload>("gate_session", "").is_none());
        assert!(s.open::<Payload>("gate_session", "not base64!").is_none());
        assert!(
            s.open::<Payload>("gate_session", &sealed[..sealed.len() - 2])
                .is_none()
        );
    }

    #[test]
    fn binds_cookie_name_gate_and_key() {
        let key = SessionKey::random();
        let s = sealer(&key);
        let sealed = s.seal(
            "gate_login",
            &Payload {
                user: "alice".into(),
            },
        );
        assert!(s.open::<Payload>("gate_session", &sealed).is_none());
        let other_gate = Sealer::new(&key, "gate|http://b.localhost".into());
        assert!(other_gate.open::<Payload>("gate_login", &sealed).is_none());
        let other_key = sealer(&SessionKey::random());
        assert!(other_key.open::<Payload>("gate_login", &sealed).is_none());
    }

    #[test]
    fn keys_need_32_bytes_and_read_text_forms() {
        assert!(SessionKey::new(vec![0u8; 31]).is_err());
        let key = SessionKey::random();
        let again = SessionKey::from_text(&key.to_hex()).unwrap();
        assert_eq!(key.0, again.0);
        assert!(SessionKey::from_text("short").is_err());
        assert_eq!(format!("{key:?}"), "SessionKey(..)");
    }

    #[test]
    fn reads_and_strips_cookies() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append("cookie", "a=1; gate_session=xyz".parse().unwrap());
        headers.append("cookie", "gate_login=q; b=2".parse().unwrap());
        assert_eq!(
            cookie_values(&headers, "gate_session").collect::<Vec<_>>(),
            ["xyz"]
        );
        strip_gate_cookies(&mut headers, "gate_");
        assert_eq!(headers.get("cookie").unwrap(), "a=1; b=2");
        let mut only_gate = axum::http::HeaderMap::new();
        only_gate.append("cookie", "gate_session=xyz".parse().unwrap());
        strip_gate_cookies(&mut only_gate, "gate_");
        assert!(only_gate.get("cookie").is_none());
    }
}
