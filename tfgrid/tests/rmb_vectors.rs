//! RMB against values computed by rmb-sdk-go's own code (`vectors/rmb.json`, see
//! `vectors/README.md`): the envelope's protobuf bytes and MD5 challenge, end-to-end
//! decryption of ciphertexts the Go peer produced, and the relay token's signing string.

use prost::Message as _;
use serde_json::Value;
use tfgrid::rmb::{
    crypto::E2eKey,
    envelope::{self, Address, Envelope, Message, Payload},
    jwt,
};

fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/rmb.json"))
        .expect("vectors/rmb.json");
    serde_json::from_str(&text).expect("JSON")
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn address(v: &Value) -> Option<Address> {
    (!v.is_null()).then(|| Address {
        twin: v["twin"].as_u64().unwrap() as u32,
        connection: s(&v["connection"]),
    })
}

/// The envelope the Go program was given, built from the JSON inputs.
fn envelope(input: &Value) -> Envelope {
    let m = &input["message"];
    let message = match m["kind"].as_str().unwrap() {
        "request" => Message::Request(envelope::Request {
            command: s(&m["command"]).unwrap(),
        }),
        "response" => Message::Response(envelope::Response {}),
        "error" => Message::Error(envelope::Error {
            code: m["code"].as_u64().unwrap() as u32,
            message: s(&m["message"]).unwrap(),
        }),
        other => panic!("kind {other}"),
    };
    let p = &input["payload"];
    let payload = match p["kind"].as_str().unwrap() {
        "plain" => Payload::Plain(bytes(&p["hex"])),
        "cipher" => Payload::Cipher(bytes(&p["hex"])),
        other => panic!("payload {other}"),
    };
    Envelope {
        uid: s(&input["uid"]).unwrap(),
        tags: s(&input["tags"]),
        timestamp: input["timestamp"].as_u64().unwrap(),
        expiration: input["expiration"].as_u64().unwrap(),
        source: address(&input["source"]),
        destination: address(&input["destination"]),
        message: Some(message),
        signature: (!input["signature"].is_null()).then(|| bytes(&input["signature"])),
        schema: s(&input["schema"]),
        federation: s(&input["federation"]),
        payload: Some(payload),
        relays: input["relays"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| s(r).unwrap())
            .collect(),
    }
}

#[test]
fn envelopes_decode_and_challenge_as_the_go_peer_computes_them() {
    let v = vectors();
    let cases = v["envelopes"].as_array().unwrap();
    assert!(cases.len() >= 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let want = envelope(&case["input"]);
        let go = Envelope::decode(bytes(&case["protobuf_hex"]).as_slice()).unwrap();
        assert_eq!(go, want, "{name}: Go's bytes decode to the inputs");
        let ours = Envelope::decode(want.encode_to_vec().as_slice()).unwrap();
        assert_eq!(ours, want, "{name}: our bytes decode to the inputs");
        let sorted = bytes(&case["protobuf_field_number_order_hex"]);
        assert_eq!(
            Envelope::decode(sorted.as_slice()).unwrap(),
            want,
            "{name}: fields in number order"
        );
        assert_eq!(
            hex::encode(want.challenge()),
            case["challenge_hex"].as_str().unwrap(),
            "{name}: challenge"
        );
    }
}

#[test]
fn ciphertexts_of_the_go_peer_decrypt_and_keys_agree() {
    let v = vectors();
    let e = &v["e2e"];
    let key =
        |k: &Value| E2eKey::from_bytes(&bytes(&k["private_hex"]).try_into().unwrap()).unwrap();
    let (a, b) = (key(&e["a"]), key(&e["b"]));
    assert_eq!(
        hex::encode(a.public()),
        e["a"]["public_compressed_hex"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(b.public()),
        e["b"]["public_compressed_hex"].as_str().unwrap()
    );
    let cases = e["ciphertexts"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let plain = b
            .decrypt(&a.public(), &bytes(&c["ciphertext_hex"]))
            .unwrap();
        assert_eq!(plain, bytes(&c["plaintext_hex"]));
        // And what we seal, the other side opens.
        let sealed = b.encrypt(&a.public(), &plain).unwrap();
        assert_eq!(a.decrypt(&b.public(), &sealed).unwrap(), plain);
    }
}

#[test]
fn the_relay_token_signs_the_same_string_as_the_go_peer() {
    let v = vectors();
    for case in v["jwt"].as_array().unwrap() {
        let claims = jwt::Claims {
            exp: case["exp"].as_u64().unwrap(),
            iat: case["iat"].as_u64().unwrap(),
            sid: s(&case["sid"]),
            sub: case["sub"].as_u64().unwrap() as u32,
        };
        assert_eq!(
            jwt::signing_string(&claims),
            case["signing_string"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
}
