//! RMB's wire message, field for field as rmb-rs's `proto/types.proto` defines it, and its
//! challenge: the MD5 digest the sender signs (rmb-sdk-go `peer/hashes.go`, rmb-rs
//! `types::Challengeable`).

use std::io::Write;

use md5::{Digest, Md5};

use crate::identity::{AccountId, Identity, VerifyError};

/// The schema of a JSON payload (`rmb.DefaultSchema`).
pub const SCHEMA_JSON: &str = "application/json";

/// A request: the command the destination runs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// e.g. `zos.deployment.deploy`.
    #[prost(string, tag = "1")]
    pub command: String,
}

/// A response (its payload is the answer).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {}

/// An error answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Error {
    /// Application code (zos sends 0).
    #[prost(uint32, tag = "1")]
    pub code: u32,
    /// The error's text.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// A twin, and optionally one of its sessions.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Address {
    /// Twin id.
    #[prost(uint32, tag = "1")]
    pub twin: u32,
    /// Session (connection) id, when a twin has several.
    #[prost(string, optional, tag = "2")]
    pub connection: Option<String>,
}

/// An application-level ping (the relay answers with a [`Pong`]).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ping {}

/// The relay's answer to a [`Ping`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Pong {}

/// Everything that travels between a peer and its relay.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    /// Unique id; a response carries its request's.
    #[prost(string, tag = "1")]
    pub uid: String,
    /// Client-specific tags.
    #[prost(string, optional, tag = "2")]
    pub tags: Option<String>,
    /// Seconds since the epoch when sent.
    #[prost(uint64, tag = "3")]
    pub timestamp: u64,
    /// Time to live from `timestamp`, in seconds.
    #[prost(uint64, tag = "4")]
    pub expiration: u64,
    /// Sender.
    #[prost(message, optional, tag = "5")]
    pub source: Option<Address>,
    /// Destination.
    #[prost(message, optional, tag = "6")]
    pub destination: Option<Address>,
    /// What kind of message this is.
    #[prost(oneof = "Message", tags = "7, 8, 12, 15, 16")]
    pub message: Option<Message>,
    /// The sender's signature of the challenge (`s`/`e` + 64 bytes).
    #[prost(bytes = "vec", optional, tag = "9")]
    pub signature: Option<Vec<u8>>,
    /// Schema of the payload.
    #[prost(string, optional, tag = "10")]
    pub schema: Option<String>,
    /// Deprecated: the destination's relay (still part of the challenge).
    #[prost(string, optional, tag = "11")]
    pub federation: Option<String>,
    /// The payload, plain or encrypted to the destination.
    #[prost(oneof = "Payload", tags = "13, 14")]
    pub payload: Option<Payload>,
    /// Deprecated: the sender's relays (still part of the challenge).
    #[prost(string, repeated, tag = "17")]
    pub relays: Vec<String>,
}

/// The kind of an [`Envelope`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Message {
    /// A request.
    #[prost(message, tag = "7")]
    Request(Request),
    /// A response.
    #[prost(message, tag = "8")]
    Response(Response),
    /// An error.
    #[prost(message, tag = "12")]
    Error(Error),
    /// A ping.
    #[prost(message, tag = "15")]
    Ping(Ping),
    /// A pong.
    #[prost(message, tag = "16")]
    Pong(Pong),
}

/// The payload of an [`Envelope`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Payload {
    /// Readable by anyone on the way.
    #[prost(bytes, tag = "13")]
    Plain(Vec<u8>),
    /// Encrypted to the destination twin's key (see [`super::crypto`]).
    #[prost(bytes, tag = "14")]
    Cipher(Vec<u8>),
}

impl Envelope {
    /// The MD5 digest the sender signs: every field but the signature, in order, numbers in
    /// decimal, payload bytes raw.
    pub fn challenge(&self) -> [u8; 16] {
        let mut h = Md5Writer(Md5::new());
        self.write_challenge(&mut h)
            .expect("writing into a hash cannot fail");
        h.0.finalize().into()
    }

    fn write_challenge<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        write!(w, "{}", self.uid)?;
        if let Some(tags) = &self.tags {
            write!(w, "{tags}")?;
        }
        write!(w, "{}{}", self.timestamp, self.expiration)?;
        for a in [&self.source, &self.destination].into_iter().flatten() {
            write!(w, "{}", a.twin)?;
            if let Some(c) = &a.connection {
                write!(w, "{c}")?;
            }
        }
        match &self.message {
            Some(Message::Request(r)) => write!(w, "{}", r.command)?,
            Some(Message::Error(e)) => write!(w, "{}{}", e.code, e.message)?,
            _ => {}
        }
        if let Some(s) = &self.schema {
            write!(w, "{s}")?;
        }
        if let Some(f) = &self.federation {
            write!(w, "{f}")?;
        }
        match &self.payload {
            Some(Payload::Plain(d)) | Some(Payload::Cipher(d)) => w.write_all(d)?,
            None => {}
        }
        for r in &self.relays {
            write!(w, "{r}")?;
        }
        Ok(())
    }

    /// Signs the challenge as `identity`.
    pub fn sign(&mut self, identity: &Identity) {
        self.signature = Some(identity.sign_prefixed(&self.challenge()).to_vec());
    }

    /// Whether the signature is `account`'s over the challenge.
    pub fn verify(&self, account: &AccountId) -> Result<(), VerifyError> {
        let sig = self.signature.as_deref().unwrap_or_default();
        account.verify(sig, &self.challenge())
    }

    /// The source twin (0 when missing).
    pub fn source_twin(&self) -> u32 {
        self.source.as_ref().map(|a| a.twin).unwrap_or_default()
    }

    /// Whether the message has outlived `timestamp + expiration` at `now` (seconds).
    pub fn expired(&self, now: u64) -> bool {
        self.timestamp.saturating_add(self.expiration) <= now
    }
}

struct Md5Writer(Md5);

impl Write for Md5Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::KeyType;
    use prost::Message as _;
    use secrecy::SecretString;

    fn request() -> Envelope {
        Envelope {
            uid: "7b3c".into(),
            timestamp: 1_700_000_000,
            expiration: 300,
            source: Some(Address {
                twin: 7,
                connection: None,
            }),
            destination: Some(Address {
                twin: 1011,
                connection: None,
            }),
            message: Some(Message::Request(Request {
                command: "zos.deployment.get".into(),
            })),
            schema: Some(SCHEMA_JSON.into()),
            payload: Some(Payload::Plain(br#"{"contract_id":5}"#.to_vec())),
            ..Default::default()
        }
    }

    #[test]
    fn a_signed_envelope_verifies_and_any_change_breaks_it() {
        let me = crate::identity::Identity::from_mnemonic(
            &SecretString::from(
                "bottom drive obey lake curtain smoke basket hold race lonely fit walk",
            ),
            KeyType::Sr25519,
        )
        .unwrap();
        let mut env = request();
        env.sign(&me);
        env.verify(&me.account()).unwrap();
        let decoded = Envelope::decode(env.encode_to_vec().as_slice()).unwrap();
        decoded.verify(&me.account()).unwrap();
        let mut changed = decoded.clone();
        changed.payload = Some(Payload::Plain(br#"{"contract_id":6}"#.to_vec()));
        assert!(changed.verify(&me.account()).is_err());
        let mut retargeted = decoded;
        retargeted.destination = Some(Address {
            twin: 1012,
            connection: None,
        });
        assert!(retargeted.verify(&me.account()).is_err());
    }

    #[test]
    fn expiry_counts_from_the_timestamp() {
        let env = request();
        assert!(!env.expired(1_700_000_299));
        assert!(env.expired(1_700_000_300));
    }
}
