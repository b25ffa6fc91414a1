//! Every reference value in `tests/vectors/` (computed by the real zos and mycelium code) is
//! reproduced exactly: the deployment challenge text and its MD5 hash, the minimum root size of
//! a `zmachine-light` with zos's own refusal text, and the mycelium addresses of a network and
//! of a VM.

use gridapi::zos::{self, Deployment, WorkloadData};
use serde_json::Value;

fn vectors(file: &str) -> Vec<Value> {
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn deployment_challenges_and_hashes_match_zos() {
    let all = vectors("zos-vectors.json");
    assert!(all.len() >= 4);
    for v in all {
        let name = v["name"].as_str().unwrap();
        let d: Deployment = serde_json::from_value(v["deployment"].clone())
            .unwrap_or_else(|e| panic!("{name}: the real JSON decodes: {e}"));
        assert_eq!(
            zos::challenge(&d),
            v["challenge_text"].as_str().unwrap(),
            "{name}: challenge text"
        );
        assert_eq!(
            d.challenge_hash(),
            v["challenge_hash"].as_str().unwrap(),
            "{name}: challenge hash"
        );
    }
}

#[test]
fn root_size_rules_and_texts_match_zos() {
    for v in vectors("zos-vectors.json") {
        let name = v["name"].as_str().unwrap();
        let d: Deployment = serde_json::from_value(v["deployment"].clone()).unwrap();
        let z = d
            .workloads
            .iter()
            .find_map(|w| match &w.data {
                WorkloadData::ZmachineLight(z) => Some(z.clone()),
                _ => None,
            })
            .unwrap();
        let want = &v["zmachine_light_valid"];
        assert_eq!(
            zos::min_root_size(z.compute_capacity.cpu, z.compute_capacity.memory),
            want["min_root_size"].as_u64().unwrap(),
            "{name}: minimum"
        );
        match zos::root_size(&z) {
            Ok(size) => {
                assert!(want["valid"].as_bool().unwrap(), "{name}: zos refuses it");
                assert_eq!(
                    size,
                    want["root_size"].as_u64().unwrap(),
                    "{name}: root size"
                );
            }
            Err(text) => {
                assert!(!want["valid"].as_bool().unwrap(), "{name}: zos accepts it");
                assert_eq!(text, want["error"].as_str().unwrap(), "{name}: zos's text");
            }
        }
    }
}

#[test]
fn mycelium_addresses_match_mycelium_and_zos() {
    let all = vectors("mycelium-vectors.json");
    assert!(!all.is_empty());
    for v in all {
        let name = v["name"].as_str().unwrap();
        let key: [u8; 32] = hex::decode(v["network_hex_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            zos::mycelium_address(key).to_string(),
            v["mycelium_inspect"]["address"].as_str().unwrap(),
            "{name}: the network's node address"
        );
        let vm = zos::vm_mycelium_ip(
            v["network_hex_key"].as_str().unwrap(),
            v["hex_seed"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(
            vm.to_string(),
            v["vm_mycelium_ip"].as_str().unwrap(),
            "{name}: the VM's address"
        );
    }
    // The zos vectors name the VM address of each deployment too.
    for v in vectors("zos-vectors.json") {
        let d: Deployment = serde_json::from_value(v["deployment"].clone()).unwrap();
        let (key, seed) = d
            .workloads
            .iter()
            .fold((None, None), |(k, s), w| match &w.data {
                WorkloadData::NetworkLight(n) => (Some(n.mycelium.hex_key.clone()), s),
                WorkloadData::ZmachineLight(z) => (k, Some(z.network.mycelium.seed.clone())),
                _ => (k, s),
            });
        assert_eq!(
            zos::vm_mycelium_ip(&key.unwrap(), &seed.unwrap())
                .unwrap()
                .to_string(),
            v["vm_mycelium_ip"].as_str().unwrap(),
            "{}",
            v["name"]
        );
    }
}
