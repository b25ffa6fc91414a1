//! Per-machine trust between the controller and the agents: every agent request is signed with
//! the controller's ed25519 key, and an agent accepts only requests signed by the one public key
//! in its environment and addressed to its own machine id.
//!
//! Nothing secret is in a VM's deployment env (the node stores it in plain text): only
//! [`CONTROLLER_KEY_ENV`] (the controller's **public** key) and [`MACHINE_ID_ENV`] (the
//! machine's own identity). A request carries four headers:
//!
//! | header | value |
//! |---|---|
//! | [`MACHINE_HEADER`] | the machine id it is for |
//! | [`TIMESTAMP_HEADER`] | seconds since the epoch when it was signed |
//! | [`NONCE_HEADER`] | 16 random bytes, hex |
//! | [`SIGNATURE_HEADER`] | base64 ed25519 signature of [`message`] |
//!
//! The signed message covers the machine id, the method, the path with its query, the SHA-256
//! of the body, the timestamp and the nonce, so a request cannot be replayed (the agent keeps
//! the nonces it saw), aged ([`MAX_SKEW`]), moved to another path or machine, or have its body
//! changed.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, Verifier as _};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// Environment variable of a VM holding the controller's public key (base64, 32 bytes).
pub const CONTROLLER_KEY_ENV: &str = "HERO_CONTROLLER_KEY";
/// Environment variable of a VM holding its machine id.
pub const MACHINE_ID_ENV: &str = "HERO_MACHINE_ID";
/// Header: the machine a request is for.
pub const MACHINE_HEADER: &str = "x-hero-machine";
/// Header: when the request was signed (seconds since the epoch).
pub const TIMESTAMP_HEADER: &str = "x-hero-timestamp";
/// Header: the request's nonce (hex).
pub const NONCE_HEADER: &str = "x-hero-nonce";
/// Header: the signature (base64).
pub const SIGNATURE_HEADER: &str = "x-hero-signature";
/// How far a request's timestamp may be from the agent's clock, in seconds.
pub const MAX_SKEW: u64 = 60;
/// Domain separation: what the signature is for and the scheme's version.
const DOMAIN: &str = "hero-agent-request-v1";

/// The bytes a request's signature covers.
pub fn message(
    machine: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp: u64,
    nonce: &str,
) -> Vec<u8> {
    let body_hash = hex::encode(Sha256::digest(body));
    format!(
        "{DOMAIN}\n{machine}\n{}\n{path_and_query}\n{body_hash}\n{timestamp}\n{nonce}",
        method.to_ascii_uppercase()
    )
    .into_bytes()
}

/// The four headers of a signed request.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// [`MACHINE_HEADER`].
    pub machine: String,
    /// [`TIMESTAMP_HEADER`].
    pub timestamp: u64,
    /// [`NONCE_HEADER`].
    pub nonce: String,
    /// [`SIGNATURE_HEADER`].
    pub signature: String,
}

impl SignedHeaders {
    /// As (name, value) pairs.
    pub fn pairs(&self) -> [(&'static str, String); 4] {
        [
            (MACHINE_HEADER, self.machine.clone()),
            (TIMESTAMP_HEADER, self.timestamp.to_string()),
            (NONCE_HEADER, self.nonce.clone()),
            (SIGNATURE_HEADER, self.signature.clone()),
        ]
    }
}

impl fmt::Debug for SignedHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedHeaders")
            .field("machine", &self.machine)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// A key that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not base64 of 32 bytes.
    #[error("{what} is not base64 of 32 bytes: put the value the controller generated")]
    Malformed {
        /// Which key.
        what: &'static str,
    },
    /// 32 bytes, but not a point of the curve.
    #[error("{what} is not a valid ed25519 public key")]
    NotAPoint {
        /// Which key.
        what: &'static str,
    },
}

/// The controller's signing key. Its `Debug` shows only the public half.
#[derive(Clone)]
pub struct ControllerKey(ed25519_dalek::SigningKey);

impl ControllerKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        ControllerKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The key from its 32-byte seed, base64 (as kept in the controller's Secret).
    pub fn from_base64(seed: &str) -> Result<Self, KeyError> {
        let bytes = decode32(seed, "the controller's signing key")?;
        Ok(ControllerKey(ed25519_dalek::SigningKey::from_bytes(&bytes)))
    }

    /// The 32-byte seed, base64: the Secret's value. Never log it.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0.to_bytes())
    }

    /// The public half, for the VMs' env.
    pub fn public(&self) -> ControllerPublicKey {
        ControllerPublicKey(self.0.verifying_key())
    }

    /// Signs a request for `machine` now, with a fresh nonce.
    pub fn sign(&self, machine: &str, method: &str, path: &str, body: &[u8]) -> SignedHeaders {
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        self.sign_at(machine, method, path, body, now_secs(), &hex::encode(nonce))
    }

    /// Signs a request with a given timestamp and nonce (tests; [`Self::sign`] otherwise).
    pub fn sign_at(
        &self,
        machine: &str,
        method: &str,
        path: &str,
        body: &[u8],
        timestamp: u64,
        nonce: &str,
    ) -> SignedHeaders {
        let m = message(machine, method, path, body, timestamp, nonce);
        SignedHeaders {
            machine: machine.to_string(),
            timestamp,
            nonce: nonce.to_string(),
            signature: B64.encode(self.0.sign(&m).to_bytes()),
        }
    }
}

impl fmt::Debug for ControllerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ControllerKey")
            .field(&self.public().to_base64())
            .finish()
    }
}

/// The controller's public key, as a VM gets it in [`CONTROLLER_KEY_ENV`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerPublicKey(ed25519_dalek::VerifyingKey);

impl ControllerPublicKey {
    /// Reads the env's value.
    pub fn from_base64(key: &str) -> Result<Self, KeyError> {
        let what = "the controller's public key";
        let bytes = decode32(key, what)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(ControllerPublicKey)
            .map_err(|_| KeyError::NotAPoint { what })
    }

    /// The env's value.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_bytes())
    }

    /// Whether `signature` (base64) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(bytes) = B64.decode(signature.trim()) else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&bytes) else {
            return false;
        };
        self.0.verify(message, &sig).is_ok()
    }
}

fn decode32(value: &str, what: &'static str) -> Result<[u8; 32], KeyError> {
    B64.decode(value.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or(KeyError::Malformed { what })
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_the_exact_request() {
        let k = ControllerKey::generate();
        let p = k.public();
        let h = k.sign_at("m-1", "put", "/v1/gate", b"{}", 100, "ab");
        assert!(p.verifies(
            &message("m-1", "PUT", "/v1/gate", b"{}", 100, "ab"),
            &h.signature
        ));
        for other in [
            message("m-2", "PUT", "/v1/gate", b"{}", 100, "ab"),
            message("m-1", "POST", "/v1/gate", b"{}", 100, "ab"),
            message("m-1", "PUT", "/v1/engines", b"{}", 100, "ab"),
            message("m-1", "PUT", "/v1/gate", b"{ }", 100, "ab"),
            message("m-1", "PUT", "/v1/gate", b"{}", 101, "ab"),
            message("m-1", "PUT", "/v1/gate", b"{}", 100, "ac"),
        ] {
            assert!(!p.verifies(&other, &h.signature));
        }
        assert!(!ControllerKey::generate().public().verifies(
            &message("m-1", "PUT", "/v1/gate", b"{}", 100, "ab"),
            &h.signature
        ));
    }

    #[test]
    fn keys_round_trip_and_debug_shows_only_the_public_half() {
        let k = ControllerKey::generate();
        let again = ControllerKey::from_base64(&k.to_base64()).unwrap();
        assert_eq!(again.public(), k.public());
        let p = ControllerPublicKey::from_base64(&k.public().to_base64()).unwrap();
        assert_eq!(p, k.public());
        assert!(!format!("{k:?}").contains(&k.to_base64()));
        assert!(ControllerKey::from_base64("c2hvcnQ=").is_err());
        assert!(ControllerPublicKey::from_base64("not base64!").is_err());
    }
}
