//! RMB's end-to-end encryption, as rmb-sdk-go's peer and rmb-rs do it: each twin publishes a
//! secp256k1 public key (compressed, 33 bytes; on chain it is the twin's `pk`), derived from the
//! same 32-byte seed as its signing key. Two twins agree on a key by ECDH: SHA-256 of the shared
//! point's x coordinate. A payload is AES-256-GCM under that key, the 12-byte nonce first.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, AeadCore, OsRng},
};
use k256::{PublicKey, SecretKey, ecdh::diffie_hellman};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::identity::Identity;

/// Length of the nonce in front of every ciphertext.
pub const NONCE_LEN: usize = 12;

/// Why a payload cannot be encrypted or decrypted. Never carries key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The other twin's published key is not a secp256k1 point.
    #[error("the twin's end-to-end key is not a secp256k1 public key")]
    BadPublicKey,
    /// The seed is not a usable secp256k1 scalar (zero or past the group order).
    #[error("the seed gives no secp256k1 key")]
    BadSeed,
    /// Wrong key, or the ciphertext was altered or cut.
    #[error("could not decrypt the payload (wrong key or altered data)")]
    Decrypt,
}

/// A twin's end-to-end key pair.
#[derive(Clone)]
pub struct E2eKey(SecretKey);

impl E2eKey {
    /// The key of an identity: secp256k1 over its seed, as `generateSecureKey` does.
    pub fn of(identity: &Identity) -> Result<E2eKey, CryptoError> {
        E2eKey::from_bytes(identity.seed())
    }

    /// The key of 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<E2eKey, CryptoError> {
        SecretKey::from_bytes(bytes.into())
            .map(E2eKey)
            .map_err(|_| CryptoError::BadSeed)
    }

    /// The public key to publish: compressed SEC1, 33 bytes.
    pub fn public(&self) -> Vec<u8> {
        self.0.public_key().to_sec1_bytes().to_vec()
    }

    fn shared(&self, peer: &[u8]) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        let pk = PublicKey::from_sec1_bytes(peer).map_err(|_| CryptoError::BadPublicKey)?;
        let point = diffie_hellman(self.0.to_nonzero_scalar(), pk.as_affine());
        Ok(Zeroizing::new(
            Sha256::digest(point.raw_secret_bytes()).into(),
        ))
    }

    /// Encrypts `data` for the twin whose public key is `peer`.
    pub fn encrypt(&self, peer: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = self.shared(peer)?;
        let aes = Aes256Gcm::new_from_slice(&key[..]).expect("32-byte key");
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = aes
            .encrypt(&nonce, data)
            .map_err(|_| CryptoError::Decrypt)?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend(sealed);
        Ok(out)
    }

    /// Decrypts `data` sent by the twin whose public key is `peer`.
    pub fn decrypt(&self, peer: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if data.len() < NONCE_LEN {
            return Err(CryptoError::Decrypt);
        }
        let key = self.shared(peer)?;
        let aes = Aes256Gcm::new_from_slice(&key[..]).expect("32-byte key");
        aes.decrypt(Nonce::from_slice(&data[..NONCE_LEN]), &data[NONCE_LEN..])
            .map_err(|_| CryptoError::Decrypt)
    }
}

impl std::fmt::Debug for E2eKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "E2eKey(public {})", hex::encode(self.public()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_twins_agree_and_a_third_cannot_read() {
        let a = E2eKey::from_bytes(&[1; 32]).unwrap();
        let b = E2eKey::from_bytes(&[2; 32]).unwrap();
        let c = E2eKey::from_bytes(&[3; 32]).unwrap();
        let sealed = a.encrypt(&b.public(), b"hello world").unwrap();
        assert_eq!(b.decrypt(&a.public(), &sealed).unwrap(), b"hello world");
        assert_eq!(c.decrypt(&a.public(), &sealed), Err(CryptoError::Decrypt));
        let mut cut = sealed.clone();
        cut.truncate(NONCE_LEN + 3);
        assert_eq!(b.decrypt(&a.public(), &cut), Err(CryptoError::Decrypt));
        assert_eq!(a.public().len(), 33);
        assert_eq!(
            a.encrypt(b"not a key", b"x"),
            Err(CryptoError::BadPublicKey)
        );
    }
}
