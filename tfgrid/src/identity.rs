//! The operator's identity on the grid, from its mnemonic, as tfchain's clients derive it.
//!
//! * The mnemonic (BIP-39, English) gives a 32-byte seed the substrate way: PBKDF2-HMAC-SHA512 of
//!   the phrase's *entropy* with the salt `mnemonic` (`substrate-bip39`), first 32 bytes. That
//!   seed is the sr25519 mini secret (expanded ed25519-style, as `sp_core` does), or the ed25519
//!   secret key; tfchain-client-go's `NewIdentityFromSr25519Phrase`/`…Ed25519Phrase` and rmb-rs
//!   do the same.
//! * sr25519 signs with the signing context `substrate`; RMB prefixes a signature with one byte
//!   naming the scheme (`s` or `e`), so a verifier that only has the account (32 bytes) knows how
//!   to read it.
//! * The account is the public key; it prints in SS58 with tfchain's prefix 42.
//!
//! Nothing here prints a secret: `Debug` shows the scheme and the account only.

use std::{fmt, str::FromStr};

use blake2::{Blake2b512, Digest};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// The SS58 prefix of tfchain's addresses (the generic substrate one).
pub const SS58_PREFIX: u8 = 42;
/// First byte of an RMB signature made with sr25519 (`s`).
pub const SR_PREFIX: u8 = b's';
/// First byte of an RMB signature made with ed25519 (`e`).
pub const ED_PREFIX: u8 = b'e';
/// sr25519's signing context in substrate.
const SIGNING_CONTEXT: &[u8] = b"substrate";

/// Why a mnemonic gives no identity. Never carries the phrase.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// Not a BIP-39 English phrase (unknown word, wrong length or checksum).
    #[error(
        "the grid mnemonic is not a valid BIP-39 English phrase ({0}): check the Secret it comes from"
    )]
    Mnemonic(String),
    /// The key type is neither sr25519 nor ed25519.
    #[error("unknown key type {0:?}: use sr25519 or ed25519")]
    KeyType(String),
}

/// Why a signature does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// Not 65 bytes (a prefix and 64 bytes).
    #[error("invalid signature length, expected 65, found {0}")]
    Length(usize),
    /// The first byte is neither `s` nor `e`.
    #[error("invalid signature type (expected sr25519 or ed25519)")]
    Prefix,
    /// The signature is not the account's over the message.
    #[error("{0} signature verification failed")]
    Mismatch(KeyType),
}

/// The signature scheme of an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyType {
    /// Schnorr on Ristretto25519, substrate's default.
    #[default]
    Sr25519,
    /// Ed25519.
    Ed25519,
}

impl FromStr for KeyType {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sr25519" => Ok(KeyType::Sr25519),
            "ed25519" => Ok(KeyType::Ed25519),
            _ => Err(IdentityError::KeyType(s.to_string())),
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Sr25519 => "sr25519",
            KeyType::Ed25519 => "ed25519",
        })
    }
}

/// A chain account: the 32 bytes of a public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountId(pub [u8; 32]);

impl AccountId {
    /// The SS58 address (prefix 42), as the proxy and the chain's explorers print it.
    pub fn ss58(&self) -> String {
        let mut body = Vec::with_capacity(35);
        body.push(SS58_PREFIX);
        body.extend_from_slice(&self.0);
        let sum = ss58_checksum(&body);
        body.extend_from_slice(&sum[..2]);
        bs58::encode(body).into_string()
    }

    /// Reads an SS58 address (any one-byte prefix) or `0x` + 64 hex digits.
    pub fn parse(s: &str) -> Option<AccountId> {
        if let Some(h) = s.strip_prefix("0x") {
            return hex::decode(h).ok()?.try_into().ok().map(AccountId);
        }
        let raw = bs58::decode(s).into_vec().ok()?;
        if raw.len() != 35 || raw[0] >= 64 {
            return None;
        }
        let sum = ss58_checksum(&raw[..33]);
        (raw[33..] == sum[..2]).then(|| AccountId(raw[1..33].try_into().expect("32 bytes")))
    }

    /// Whether `signature` (65 bytes, `s`/`e` prefixed) is this account's over `message`.
    pub fn verify(&self, signature: &[u8], message: &[u8]) -> Result<(), VerifyError> {
        if signature.len() != 65 {
            return Err(VerifyError::Length(signature.len()));
        }
        let (kind, raw) = (signature[0], &signature[1..]);
        match kind {
            SR_PREFIX => {
                let ok = schnorrkel::PublicKey::from_bytes(&self.0)
                    .and_then(|pk| {
                        let sig = schnorrkel::Signature::from_bytes(raw)?;
                        pk.verify_simple(SIGNING_CONTEXT, message, &sig)
                    })
                    .is_ok();
                ok.then_some(())
                    .ok_or(VerifyError::Mismatch(KeyType::Sr25519))
            }
            ED_PREFIX => {
                let ok = ed25519_dalek::VerifyingKey::from_bytes(&self.0)
                    .and_then(|pk| {
                        let sig = ed25519_dalek::Signature::from_slice(raw)?;
                        pk.verify_strict(message, &sig)
                    })
                    .is_ok();
                ok.then_some(())
                    .ok_or(VerifyError::Mismatch(KeyType::Ed25519))
            }
            _ => Err(VerifyError::Prefix),
        }
    }
}

fn ss58_checksum(body: &[u8]) -> [u8; 64] {
    let mut h = Blake2b512::new();
    h.update(b"SS58PRE");
    h.update(body);
    h.finalize().into()
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ss58())
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", self.ss58())
    }
}

enum Keys {
    Sr25519(schnorrkel::Keypair),
    Ed25519(ed25519_dalek::SigningKey),
}

/// The operator's keys: signs chain extrinsics, RMB envelopes and the relay's JWT.
pub struct Identity {
    keys: Keys,
    seed: Zeroizing<[u8; 32]>,
    account: AccountId,
}

impl Identity {
    /// The identity of a BIP-39 phrase (no password, no derivation path), as tfchain's clients
    /// derive it.
    pub fn from_mnemonic(phrase: &SecretString, kind: KeyType) -> Result<Identity, IdentityError> {
        let m = bip39::Mnemonic::parse_in_normalized(
            bip39::Language::English,
            phrase.expose_secret().trim(),
        )
        .map_err(|e| IdentityError::Mnemonic(describe(&e)))?;
        let entropy = Zeroizing::new(m.to_entropy());
        let full = substrate_bip39::seed_from_entropy(&entropy, "")
            .map_err(|_| IdentityError::Mnemonic("entropy of an unusual length".into()))?;
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&full[..32]);
        drop(Zeroizing::new(full));
        Ok(Identity::from_seed(seed, kind))
    }

    /// The identity of a 32-byte seed (the "secret seed" `subkey` prints).
    pub fn from_seed(seed: Zeroizing<[u8; 32]>, kind: KeyType) -> Identity {
        let keys = match kind {
            KeyType::Sr25519 => Keys::Sr25519(
                schnorrkel::MiniSecretKey::from_bytes(&seed[..])
                    .expect("32 bytes are a mini secret")
                    .expand_to_keypair(schnorrkel::ExpansionMode::Ed25519),
            ),
            KeyType::Ed25519 => Keys::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed)),
        };
        let account = AccountId(match &keys {
            Keys::Sr25519(k) => k.public.to_bytes(),
            Keys::Ed25519(k) => k.verifying_key().to_bytes(),
        });
        Identity {
            keys,
            seed,
            account,
        }
    }

    /// The signature scheme.
    pub fn key_type(&self) -> KeyType {
        match self.keys {
            Keys::Sr25519(_) => KeyType::Sr25519,
            Keys::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// The chain account (the public key).
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// A plain 64-byte signature of `message` (sr25519 in the `substrate` context).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        match &self.keys {
            Keys::Sr25519(k) => k.sign_simple(SIGNING_CONTEXT, message).to_bytes(),
            Keys::Ed25519(k) => {
                use ed25519_dalek::Signer as _;
                k.sign(message).to_bytes()
            }
        }
    }

    /// RMB's signature: one byte naming the scheme (`s`/`e`), then the 64 bytes.
    pub fn sign_prefixed(&self, message: &[u8]) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = match self.key_type() {
            KeyType::Sr25519 => SR_PREFIX,
            KeyType::Ed25519 => ED_PREFIX,
        };
        out[1..].copy_from_slice(&self.sign(message));
        out
    }

    /// The 32-byte seed: RMB's end-to-end key is the secp256k1 key of this same seed.
    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("key_type", &self.key_type())
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// The kind of a BIP-39 error, without the words themselves.
fn describe(e: &bip39::Error) -> String {
    match e {
        bip39::Error::BadWordCount(n) => format!("{n} words; expected 12, 15, 18, 21 or 24"),
        bip39::Error::UnknownWord(i) => format!("word {} is not in the English list", i + 1),
        bip39::Error::InvalidChecksum => "the checksum does not match".into(),
        _ => "not a phrase".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Substrate's development phrase (public knowledge, holds nothing).
    const DEV: &str = "bottom drive obey lake curtain smoke basket hold race lonely fit walk";

    fn id(kind: KeyType) -> Identity {
        Identity::from_mnemonic(&SecretString::from(DEV), kind).unwrap()
    }

    #[test]
    fn signatures_verify_against_the_account_only() {
        for kind in [KeyType::Sr25519, KeyType::Ed25519] {
            let me = id(kind);
            let sig = me.sign_prefixed(b"challenge");
            me.account().verify(&sig, b"challenge").unwrap();
            assert_eq!(
                me.account().verify(&sig, b"other"),
                Err(VerifyError::Mismatch(kind))
            );
            let other = Identity::from_seed(Zeroizing::new([7; 32]), kind);
            assert!(other.account().verify(&sig, b"challenge").is_err());
        }
    }

    #[test]
    fn ss58_round_trips_and_rejects_a_bad_checksum() {
        let a = id(KeyType::Sr25519).account();
        assert_eq!(AccountId::parse(&a.ss58()), Some(a));
        assert_eq!(
            AccountId::parse(&format!("0x{}", hex::encode(a.0))),
            Some(a)
        );
        let mut s = a.ss58();
        let last = s.pop().unwrap();
        s.push(if last == 'a' { 'b' } else { 'a' });
        assert_eq!(AccountId::parse(&s), None);
    }

    #[test]
    fn a_bad_phrase_is_refused_without_repeating_it() {
        let e = Identity::from_mnemonic(
            &SecretString::from(
                "bottom drive obey lake curtain smoke basket hold race lonely fit fit",
            ),
            KeyType::Sr25519,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("bottom"), "{e}");
        let e = Identity::from_mnemonic(&SecretString::from("zzzz drive"), KeyType::Sr25519)
            .unwrap_err();
        assert!(!e.to_string().contains("zzzz"), "{e}");
    }

    #[test]
    fn debug_shows_no_secret() {
        let me = id(KeyType::Ed25519);
        let dbg = format!("{me:?}");
        assert!(!dbg.contains(&hex::encode(me.seed())), "{dbg}");
        assert!(dbg.contains(&me.account().ss58()));
    }
}
