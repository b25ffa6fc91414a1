//! Keys from a mnemonic against values computed by Python substrate-interface
//! (`vectors/identity.json`, see `vectors/identity_vectors.py`).

use secrecy::SecretString;
use serde_json::Value;
use tfgrid::identity::{AccountId, Identity, KeyType};

#[test]
fn keys_addresses_and_signatures_match_substrate_interface() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/vectors/identity.json"
    ))
    .expect("vectors/identity.json");
    let v: Value = serde_json::from_str(&text).unwrap();
    let message = hex::decode(v["message_hex"].as_str().unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for c in cases {
        let kind: KeyType = c["key_type"].as_str().unwrap().parse().unwrap();
        let phrase = SecretString::from(c["phrase"].as_str().unwrap());
        let me = Identity::from_mnemonic(&phrase, kind).unwrap();
        let what = format!("{} {kind}", c["ss58"]);
        assert_eq!(
            hex::encode(me.account().0),
            c["public_hex"].as_str().unwrap(),
            "{what}"
        );
        assert_eq!(me.account().ss58(), c["ss58"].as_str().unwrap(), "{what}");
        assert_eq!(
            AccountId::parse(c["ss58"].as_str().unwrap()),
            Some(me.account())
        );
        let theirs = hex::decode(c["signature_hex"].as_str().unwrap()).unwrap();
        let prefix = if kind == KeyType::Sr25519 { b's' } else { b'e' };
        let prefixed = [&[prefix][..], &theirs].concat();
        me.account().verify(&prefixed, &message).unwrap();
        if kind == KeyType::Ed25519 {
            assert_eq!(
                me.sign(&message).to_vec(),
                theirs,
                "{what}: ed25519 is deterministic"
            );
        }
    }
}
