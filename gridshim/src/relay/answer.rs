//! The envelopes the relay sends back: a node's answer (signed by the node's twin, encrypted to
//! the caller), the relay's own error (no source, unsigned, as rmb-rs sends it) and a pong.

use tfgrid::rmb::envelope::{
    Address, Envelope, Error, Message, Payload, Pong, Response, SCHEMA_JSON,
};

use crate::state::rmb::RmbTwin;

/// Seconds an answer lives.
const TTL: u64 = 300;

/// The answer of node twin `node_twin` to `req`: the JSON answer, or the node's error text
/// (zos sends code 0 and only the text), encrypted to `caller_e2e` and signed by the node.
pub fn node_answer(
    req: &Envelope,
    node_twin: u32,
    node: &RmbTwin,
    caller_e2e: &[u8],
    result: Result<Vec<u8>, String>,
    now: u64,
) -> Envelope {
    let mut env = Envelope {
        uid: req.uid.clone(),
        timestamp: now,
        expiration: TTL,
        source: Some(Address {
            twin: node_twin,
            connection: None,
        }),
        destination: req.source.clone(),
        schema: Some(SCHEMA_JSON.into()),
        ..Default::default()
    };
    let sealed = result.and_then(|body| {
        node.e2e
            .encrypt(caller_e2e, &body)
            .map_err(|e| e.to_string())
    });
    match sealed {
        Ok(cipher) => {
            env.message = Some(Message::Response(Response {}));
            env.payload = Some(Payload::Cipher(cipher));
        }
        Err(message) => env.message = Some(Message::Error(Error { code: 0, message })),
    }
    env.sign(&node.identity);
    env
}

/// The relay's own error about `req`: same uid, no source, back to the sender.
pub fn relay_error(req: &Envelope, message: impl Into<String>, now: u64) -> Envelope {
    Envelope {
        uid: req.uid.clone(),
        timestamp: now,
        expiration: TTL,
        source: None,
        destination: req.source.clone(),
        message: Some(Message::Error(Error {
            code: 0,
            message: message.into(),
        })),
        ..Default::default()
    }
}

/// The relay's answer to an envelope ping, as rmb-rs makes it: source and destination swapped.
pub fn pong(req: &Envelope) -> Envelope {
    Envelope {
        message: Some(Message::Pong(Pong {})),
        source: req.destination.clone(),
        destination: req.source.clone(),
        payload: Some(Payload::Plain(b"hello world".to_vec())),
        signature: None,
        ..req.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tfgrid::identity::{Identity, KeyType};
    use tfgrid::rmb::crypto::E2eKey;
    use tfgrid::rmb::envelope::Request;
    use zeroize::Zeroizing;

    fn twin(seed: u8) -> RmbTwin {
        let identity = Identity::from_seed(Zeroizing::new([seed; 32]), KeyType::Sr25519);
        RmbTwin {
            e2e: E2eKey::of(&identity).unwrap(),
            identity: Arc::new(identity),
            node: None,
        }
    }

    fn request() -> Envelope {
        Envelope {
            uid: "u1".into(),
            timestamp: 1_700_000_000,
            expiration: 60,
            source: Some(Address {
                twin: 7,
                connection: Some("s".into()),
            }),
            destination: Some(Address {
                twin: 1011,
                connection: None,
            }),
            message: Some(Message::Request(Request {
                command: "zos.deployment.get".into(),
            })),
            ..Default::default()
        }
    }

    #[test]
    fn a_node_answer_is_signed_by_the_node_and_only_the_caller_reads_it() {
        let (node, caller) = (twin(1), twin(2));
        let env = node_answer(
            &request(),
            1011,
            &node,
            &caller.e2e.public(),
            Ok(b"{}".to_vec()),
            1_700_000_001,
        );
        env.verify(&node.identity.account()).unwrap();
        assert_eq!(env.uid, "u1");
        assert_eq!(env.source_twin(), 1011);
        assert_eq!(env.destination, request().source);
        let Some(Payload::Cipher(c)) = &env.payload else {
            panic!("encrypted payload")
        };
        assert_eq!(caller.e2e.decrypt(&node.e2e.public(), c).unwrap(), b"{}");
        assert!(twin(3).e2e.decrypt(&node.e2e.public(), c).is_err());

        let err = node_answer(
            &request(),
            1011,
            &node,
            &[],
            Err("contract 5 not found".into()),
            0,
        );
        err.verify(&node.identity.account()).unwrap();
        assert_eq!(
            err.message,
            Some(Message::Error(Error {
                code: 0,
                message: "contract 5 not found".into()
            }))
        );
    }

    #[test]
    fn relay_errors_have_no_source_and_pongs_swap_addresses() {
        let e = relay_error(&request(), "message has expired", 5);
        assert_eq!((e.source.clone(), e.uid.as_str()), (None, "u1"));
        assert_eq!(e.destination, request().source);
        let p = pong(&request());
        assert_eq!(p.source_twin(), 1011);
        assert_eq!(p.destination, request().source);
        assert!(matches!(p.message, Some(Message::Pong(_))));
    }
}
