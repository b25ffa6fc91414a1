//! The chain client's bytes, offline, against Python substrate-interface 1.7.11's
//! (`tfgrid/vectors/chain.json`, made by `tfgrid/vectors/chain_vectors.py` from the same vendored
//! metadata): call data, storage keys, and signed extrinsics.

use std::sync::Arc;

use gridapi::chain::CreateNodeContract;
use secrecy::SecretString;
use serde_json::Value;
use subxt::{
    Metadata, OfflineClient,
    config::{
        DefaultExtrinsicParamsBuilder,
        substrate::{H256, SpecVersionForRange, SubstrateConfig},
    },
    utils::AccountId32,
};
use tfgrid::{
    chain::{
        cancel_contract_call, create_name_contract_call, create_node_contract_call, hex_hash,
        name_key,
        runtime::{METADATA, tfchain},
        signer::TfConfig,
    },
    identity::{Identity, KeyType},
};

fn vectors() -> Value {
    serde_json::from_str(include_str!("../vectors/chain.json")).expect("chain.json")
}

fn hex(v: &Value) -> Vec<u8> {
    let s = v.as_str().expect("a hex string");
    hex::decode(s.trim_start_matches("0x")).expect("hex")
}

fn offline(v: &Value) -> OfflineClient<TfConfig> {
    let metadata = Arc::new(Metadata::decode_from(METADATA).expect("metadata"));
    let spec = v["spec_version"].as_u64().unwrap() as u32;
    let txv = v["transaction_version"].as_u64().unwrap() as u32;
    let genesis: [u8; 32] = hex(&v["genesis_hash"]).try_into().unwrap();
    let config = SubstrateConfig::builder()
        .set_genesis_hash(H256(genesis))
        .set_metadata_for_spec_versions([(spec, metadata)])
        .set_spec_version_for_block_ranges([SpecVersionForRange {
            block_range: 0..u64::MAX,
            spec_version: spec,
            transaction_version: txv,
        }])
        .build();
    OfflineClient::new_with_config(config)
}

fn identity(v: &Value, kind: KeyType) -> Identity {
    let phrase = v["dev_phrase"].as_str().unwrap().to_string();
    Identity::from_mnemonic(&SecretString::from(phrase), kind).unwrap()
}

#[test]
fn the_runtime_version_is_the_metadatas() {
    // The vectors' spec/transaction versions are the metadata's own System::Version constant.
    let v = vectors();
    let client = offline(&v);
    let at = client.at_block(0u64).unwrap();
    let version = at
        .constants()
        .entry(tfchain::constants().system().version())
        .unwrap();
    assert_eq!(
        version.spec_version as u64,
        v["spec_version"].as_u64().unwrap()
    );
    assert_eq!(
        version.transaction_version as u64,
        v["transaction_version"].as_u64().unwrap()
    );
    assert_eq!(at.spec_version(), version.spec_version);
}

#[test]
fn keys_are_the_dev_phrases() {
    let v = vectors();
    let sr = identity(&v, KeyType::Sr25519);
    let ed = identity(&v, KeyType::Ed25519);
    assert_eq!(sr.account().0.to_vec(), hex(&v["accounts"]["sr25519"]));
    assert_eq!(ed.account().0.to_vec(), hex(&v["accounts"]["ed25519"]));
    assert_eq!(sr.account().ss58(), v["accounts"]["sr25519_ss58"]);
}

#[test]
fn call_data() {
    let v = vectors();
    let client = offline(&v);
    let at = client.at_block(0u64).unwrap();
    let tx = at.tx();

    let node = create_node_contract_call(&CreateNodeContract {
        node_id: 11,
        deployment_hash: v["hash"].as_str().unwrap().into(),
        deployment_data: v["deployment_data"].as_str().unwrap().into(),
        public_ips: 0,
        solution_provider_id: None,
    })
    .unwrap();
    assert_eq!(
        tx.call_data(&node).unwrap(),
        hex(&v["calls"]["create_node_contract"])
    );

    let name = create_name_contract_call(v["name"].as_str().unwrap()).unwrap();
    assert_eq!(
        tx.call_data(&name).unwrap(),
        hex(&v["calls"]["create_name_contract"])
    );

    assert_eq!(
        tx.call_data(&cancel_contract_call(42)).unwrap(),
        hex(&v["calls"]["cancel_contract"])
    );

    // The validated (hash-checked) payloads agree with the vendored metadata too.
    let validated = tfchain::transactions()
        .smart_contract_module()
        .cancel_contract(42);
    tx.validate(&validated).unwrap();
    assert_eq!(
        tx.call_data(&validated).unwrap(),
        hex(&v["calls"]["cancel_contract"])
    );
}

#[test]
fn storage_keys() {
    let v = vectors();
    let client = offline(&v);
    let at = client.at_block(0u64).unwrap();
    let storage = at.storage();
    let scm = tfchain::storage().smart_contract_module();

    let contracts = storage.entry(scm.contracts()).unwrap();
    assert_eq!(
        contracts.fetch_key((42u64,)).unwrap(),
        hex(&v["storage"]["contracts_42"])
    );

    let by_name = storage
        .entry(scm.contract_id_by_name_registration())
        .unwrap();
    assert_eq!(
        by_name
            .fetch_key((name_key(v["name"].as_str().unwrap()),))
            .unwrap(),
        hex(&v["storage"]["contract_id_by_name"])
    );

    let by_hash = storage
        .entry(scm.contract_id_by_node_id_and_hash())
        .unwrap();
    let hash = hex_hash(v["hash"].as_str().unwrap()).unwrap();
    assert_eq!(
        by_hash.fetch_key((11u32, hash)).unwrap(),
        hex(&v["storage"]["contract_id_by_node_hash"])
    );

    let sr = identity(&v, KeyType::Sr25519);
    let twin = storage
        .entry(tfchain::storage().tfgrid_module().twin_id_by_account_id())
        .unwrap();
    assert_eq!(
        twin.fetch_key((AccountId32(sr.account().0),)).unwrap(),
        hex(&v["storage"]["twin_id_by_account_sr25519"])
    );
}

#[test]
fn signed_ed25519_extrinsic_is_byte_exact() {
    let v = vectors();
    let client = offline(&v);
    let at = client.at_block(0u64).unwrap();
    let ed = identity(&v, KeyType::Ed25519);
    let call = cancel_contract_call(42);
    let p = DefaultExtrinsicParamsBuilder::<TfConfig>::new()
        .immortal()
        .nonce(v["nonce"].as_u64().unwrap())
        .tip(v["tip"].as_u64().unwrap() as u128)
        .build();
    let mut signable = at.tx().create_v4_signable_offline(&call, p).unwrap();
    assert_eq!(
        signable.signer_payload().unwrap(),
        hex(&v["signed"]["ed25519_payload"])
    );
    let signed = signable.sign(&ed).unwrap();
    assert_eq!(
        signed.encoded(),
        hex(&v["signed"]["ed25519_extrinsic"]).as_slice()
    );
}

#[test]
fn signed_sr25519_extrinsic_verifies() {
    let v = vectors();
    let client = offline(&v);
    let at = client.at_block(0u64).unwrap();
    let sr = identity(&v, KeyType::Sr25519);
    let call = cancel_contract_call(42);
    let p = DefaultExtrinsicParamsBuilder::<TfConfig>::new()
        .immortal()
        .nonce(v["nonce"].as_u64().unwrap())
        .tip(v["tip"].as_u64().unwrap() as u128)
        .build();
    let mut signable = at.tx().create_v4_signable_offline(&call, p).unwrap();
    let payload = signable.signer_payload().unwrap();
    assert_eq!(payload, hex(&v["signed"]["sr25519_payload"]));
    let signed = signable.sign(&sr).unwrap();
    let ours = signed.encoded().to_vec();
    let theirs = hex(&v["signed"]["sr25519_extrinsic_example"]);
    // Same shape as substrate-interface's: length, version, MultiAddress::Id(account),
    // MultiSignature::Sr25519 (tag 1) and 64 random-signature bytes, then extra and call.
    assert_eq!(ours.len(), theirs.len());
    // Prefix: compact length (2 bytes), 0x84, 0x00 (MultiAddress::Id), 32-byte account, 0x01.
    let head = 2 + 1 + 1 + 32 + 1;
    assert_eq!(ours[..head], theirs[..head]);
    assert_eq!(ours[head + 64..], theirs[head + 64..]);
    // Both signatures verify over the payload.
    let pk = schnorrkel::PublicKey::from_bytes(&sr.account().0).unwrap();
    for sig in [&ours[head..head + 64], &theirs[head..head + 64]] {
        let sig = schnorrkel::Signature::from_bytes(sig).unwrap();
        pk.verify_simple(b"substrate", &payload, &sig).unwrap();
    }
}
