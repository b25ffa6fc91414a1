//! The seam's proxy types decode the real grid proxy's JSON. The bodies are the real ones,
//! copied verbatim from threefoldtech/tfgrid-sdk-go (commit 10e7b390):
//!
//! * `NODE` and `FARM`: `grid-proxy/pkg/client/grid_client_test.go` (`NodeExampleStr`,
//!   `FarmExampleStr`, the first public IP only);
//! * `CONTRACT`: `grid-cli/docs/contracts.md` (`tfcmd get contract 50977`);
//! * `NODE_NESTED`: `NODE` with its capacity nested as `GET /nodes/{id}` answers it
//!   (`types.NodeWithNestedCapacity` in `grid-proxy/docs/swagger.json`; the repository's own
//!   example string for it carries the flat shape by mistake).

use gridapi::proxy::{
    Contract, ContractDetails, ContractState, Farm, Node, NodeStatus, NodeWithNestedCapacity,
};

const NODE: &str = r#"{"id":"0000000510-000001-782e1","nodeId":1,"farmId":1,"twinId":9,"country":"Belgium","gridVersion":3,"city":"Unknown","uptime":1297882,"created":1649252220,"farmingPolicyId":1,"updatedAt":1650550422,"total_resources":{"cru":24,"sru":512110190592,"hru":9001778946048,"mru":202802933760},"used_resources":{"cru":52,"sru":793419710464,"hru":0,"mru":119957094400},"location":{"country":"Belgium","city":"Unknown"},"publicConfig":{"domain":"","gw4":"","gw6":"","ipv4":"","ipv6":""},"status":"up","certificationType":"Diy"}"#;

const NODE_NESTED: &str = r#"{"id":"0000000510-000001-782e1","nodeId":1,"farmId":1,"twinId":9,"country":"Belgium","gridVersion":3,"city":"Unknown","uptime":1297882,"created":1649252220,"farmingPolicyId":1,"updatedAt":1650550422,"capacity":{"total_resources":{"cru":24,"sru":512110190592,"hru":9001778946048,"mru":202802933760},"used_resources":{"cru":52,"sru":793419710464,"hru":0,"mru":119957094400}},"location":{"country":"Belgium","city":"Unknown"},"publicConfig":{"domain":"","gw4":"","gw6":"","ipv4":"","ipv6":""},"status":"up","certificationType":"Diy"}"#;

const FARM: &str = r#"{"name":"Freefarm","farmId":1,"twinId":2,"pricingPolicyId":1,"stellarAddress":"","publicIps":[{"id":"0000001006-000001-f899f","ip":"185.206.122.35/24","farmId":"","contractId":142,"gateway":"185.206.122.1"}]}"#;

const CONTRACT: &str = r#"{
        "contract_id": 50977,
        "twin_id": 81,
        "state": "Created",
        "created_at": 1702480020,
        "type": "node",
        "details": {
                "nodeId": 21,
                "deployment_data": "{\"type\":\"network\",\"name\":\"vm1network\",\"projectName\":\"vm1\"}",
                "deployment_hash": "21adc91ef6cdc915d5580b3f12732ac9",
                "number_of_public_ips": 0
        }
}"#;

#[test]
fn a_listed_node_decodes_with_an_empty_domain_meaning_none() {
    let nodes: Vec<Node> = serde_json::from_str(&format!("[{NODE}]")).unwrap();
    let n = &nodes[0];
    assert_eq!(n.info.node_id, 1);
    assert_eq!(n.info.twin_id, 9);
    assert_eq!(n.info.status, NodeStatus::Up);
    assert_eq!(n.info.public_config.domain(), None);
    assert_eq!(n.total_resources.sru, 512_110_190_592);
    assert_eq!(n.used_resources.mru, 119_957_094_400);
    assert_eq!(n.free().cru, 0, "used above total never goes below zero");
}

#[test]
fn a_single_node_decodes_with_its_capacity_nested() {
    let n: NodeWithNestedCapacity = serde_json::from_str(NODE_NESTED).unwrap();
    assert_eq!(n.capacity.total_resources.cru, 24);
    let flat = Node::from(n);
    let listed: Node = serde_json::from_str(NODE).unwrap();
    assert_eq!(flat, listed, "the two shapes carry the same node");
}

#[test]
fn a_farm_decodes() {
    let farms: Vec<Farm> = serde_json::from_str(&format!("[{FARM}]")).unwrap();
    assert_eq!(farms[0].farm_id, 1);
    assert_eq!(farms[0].public_ips[0].contract_id, 142);
}

#[test]
fn a_node_contract_decodes_with_its_details() {
    let c: Contract = serde_json::from_str(CONTRACT).unwrap();
    assert_eq!(c.state, ContractState::Created);
    let ContractDetails::Node(d) = &c.details else {
        panic!("a node contract: {c:?}")
    };
    assert_eq!(d.node_id, 21);
    assert_eq!(d.deployment_hash.len(), 32, "zos's MD5 challenge hash");
    // What we write reads back the same.
    let again: Contract = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(again, c);
}
