//! Nodes coming and going, against the real parts: a machine on a dead node is moved and keeps
//! its name, address and sign-in; a grid-wide outage trips the breaker instead; a pool's gateway
//! nodes are discovered in its gateway farms.

use std::time::Duration;

use controller::resources::HostPool;
use e2e::{
    fixtures::{remediating_pool, tester},
    stack::{Stack, TestNode},
    wait::{self, condition_of, node_of},
};
use gridshim::wire::NodeCondition;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread")]
async fn a_machine_on_a_dead_node_is_moved_and_keeps_its_address_and_sign_in() {
    // Three capacity nodes without a gateway domain, and one gateway node.
    let mut nodes: Vec<TestNode> = (1..=3)
        .map(|i| TestNode {
            domain: None,
            ..TestNode::new(i, 500, 64)
        })
        .collect();
    nodes.push(TestNode::new(4, 100, 16));
    let mut s = Stack::start("remedy", &nodes, "", &[("RESYNC", "2s")]).await;
    s.apply(&remediating_pool(&[1, 2, 3], &[4], "3s"));
    for i in 0..3 {
        s.apply(&tester(&format!("r{i}"), &format!("rem{i}"), "pool").build());
    }
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(
            wait::ready(&s.api, &format!("r{i}"), TIMEOUT)
                .await
                .unwrap(),
        );
    }
    let mut used: Vec<u32> = before.iter().filter_map(node_of).collect();
    used.sort();
    used.dedup();
    assert_eq!(used.len(), 3, "spread: one tester per node");
    let victim = &before[0];
    let dead = node_of(victim).unwrap();
    let old_vm = victim.status.as_ref().unwrap().machine.clone().unwrap();

    s.grid
        .admin
        .set_node(dead, &NodeCondition::down())
        .await
        .unwrap();
    let moved = wait::tester_until(&s.api, "r0", TIMEOUT, "Ready on another node", |t| {
        condition_of(t, "Ready").0 == "True" && node_of(t).is_some_and(|n| n != dead)
    })
    .await
    .unwrap();
    let (was, now) = (
        victim.status.clone().unwrap(),
        moved.status.clone().unwrap(),
    );
    // The name is the tester's for life; the domain is the gateway node's, and today the
    // gateway runs on the VM's own node, so it follows the machine.
    assert_eq!(now.gateway_name, was.gateway_name, "same name");
    let name = now.gateway_name.clone().unwrap();
    assert!(
        now.url
            .as_deref()
            .unwrap()
            .starts_with(&format!("http://{name}.")),
        "{:?}",
        now.url
    );
    assert_eq!(now.engine_identity, was.engine_identity, "same identity");
    assert_eq!(now.machine.as_ref().unwrap().remediations, 1);
    assert_ne!(
        now.machine.as_ref().unwrap().private_address,
        old_vm.private_address,
        "a new machine"
    );
    let ns = s.ns.name.clone();
    assert_eq!(
        s.controller()
            .metric(&format!(
                r#"sandbox_remediations_total{{hostpool="pool",namespace="{ns}"}}"#
            ))
            .await,
        1.0
    );
    // Sign-in at its address: a stranger is sent to the identity provider, /health answers.
    e2e::probe::gate_sends_strangers_to(now.url.as_deref().unwrap(), &s.forge.url).await;

    // The node comes back: nothing of the old machine is left.
    s.grid
        .admin
        .set_node(dead, &NodeCondition::up())
        .await
        .unwrap();
    let left = wait::grid_until(&s.grid.admin, TIMEOUT, "the old machine gone", |i| {
        i.vms.len() == 3
            && i.contracts.len() == 9
            && i.gateways.iter().all(|g| g.node_id == 4)
            && !i.contracts.iter().any(|c| {
                Some(c.contract_id) == old_vm.contract_id
                    || Some(c.contract_id) == old_vm.gateway_contract_id
            })
    })
    .await
    .unwrap();
    assert!(
        left.vms
            .iter()
            .all(|v| v.node_id != dead || v.contract_id != old_vm.contract_id.unwrap())
    );
    let t = s.api.get("r0").await.unwrap();
    assert!(
        t.status
            .unwrap()
            .machine
            .unwrap()
            .retired_contracts
            .is_empty(),
        "retired contracts all cancelled"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_of_five_nodes_down_trips_the_breaker_and_nothing_is_moved() {
    let nodes: Vec<TestNode> = (1..=5).map(|i| TestNode::new(i, 500, 64)).collect();
    let mut s = Stack::start("breaker", &nodes, "", &[("RESYNC", "1s")]).await;
    s.apply(&remediating_pool(&[1, 2, 3, 4, 5], &[], "2s"));
    for i in 0..5 {
        s.apply(&tester(&format!("b{i}"), &format!("brk{i}"), "pool").build());
    }
    let mut placed = Vec::new();
    for i in 0..5 {
        let t = wait::ready(&s.api, &format!("b{i}"), TIMEOUT)
            .await
            .unwrap();
        placed.push(node_of(&t).unwrap());
    }
    for node in [1, 2, 3] {
        s.grid
            .admin
            .set_node(node, &NodeCondition::down())
            .await
            .unwrap();
    }
    let pools: kube::Api<HostPool> = kube::Api::namespaced(s.api.clone().into_client(), &s.ns.name);
    let hp = wait::object_until(&pools, "pool", TIMEOUT, "reporting the breaker", |hp| {
        hp.status.as_ref().is_some_and(|st| {
            st.conditions
                .iter()
                .any(|c| c.type_ == "Remediation" && c.reason == "TooManyUnhealthy")
        })
    })
    .await
    .unwrap();
    let c = hp
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Remediation")
        .unwrap()
        .clone();
    assert_eq!(c.status, "False");
    assert!(
        c.message.starts_with("3 of 5 testers (60%) unhealthy"),
        "{}",
        c.message
    );
    assert_eq!(hp.status.unwrap().unhealthy, 3);
    // Well past unhealthyAfter, many passes later: nothing moved.
    let series = r#"sandbox_reconcile_total{controller="tester"}"#;
    let start = s.controller().metric(series).await;
    s.controller()
        .metric_reaches(series, start + 30.0, TIMEOUT)
        .await
        .unwrap();
    for (i, node) in placed.iter().enumerate() {
        let t = s.api.get(&format!("b{i}")).await.unwrap();
        assert_eq!(node_of(&t), Some(*node), "b{i} was not moved");
    }
    assert_eq!(s.grid.admin.inspect().await.unwrap().vms.len(), 5);
}

/// A HostPool that names no gateway node but a gateway farm: the controller finds the farm's
/// gateways in the proxy's `/gateways` listing (only the up and healthy ones), puts the machine
/// on a capacity node without a domain and its name proxy on a discovered gateway.
#[tokio::test(flavor = "multi_thread")]
async fn gateway_nodes_are_discovered_in_the_pools_gateway_farms() {
    let capacity = TestNode {
        domain: None,
        ..TestNode::new(1, 500, 64)
    };
    let gateway = TestNode {
        farm_id: 2,
        ..TestNode::new(7, 100, 16)
    };
    let down_gateway = TestNode {
        farm_id: 2,
        ..TestNode::new(8, 100, 16)
    };
    let other_farm = TestNode {
        farm_id: 3,
        ..TestNode::new(9, 100, 16)
    };
    let s = Stack::start(
        "gwfarm",
        &[capacity, gateway, down_gateway, other_farm],
        "",
        &[],
    )
    .await;
    s.grid
        .admin
        .set_node(8, &NodeCondition::down())
        .await
        .unwrap();
    s.apply(
        &json!({
            "apiVersion": "sandbox.hero.dev/v1alpha1",
            "kind": "HostPool",
            "metadata": {"name": "pool"},
            "spec": {
                "nodes": [1],
                "gatewayFarms": [2],
                "perTester": {"cpu": 1, "memoryGiB": 1, "diskGiB": 10},
            },
        })
        .to_string(),
    );
    s.apply(&tester("g", "gus", "pool").build());
    let t = wait::ready(&s.api, "g", TIMEOUT).await.unwrap();
    assert_eq!(node_of(&t), Some(1), "on the capacity node");
    let status = t.status.unwrap();
    assert_eq!(
        status.machine.as_ref().unwrap().gateway_node_id,
        Some(7),
        "the farm's only up gateway"
    );
    assert!(status.url.unwrap().contains(".n7.grid.localhost"));
    let inspect = s.grid.admin.inspect().await.unwrap();
    assert_eq!(inspect.gateways.len(), 1);
    assert_eq!(inspect.gateways[0].node_id, 7);
    let pools: kube::Api<HostPool> = kube::Api::namespaced(s.api.clone().into_client(), &s.ns.name);
    let pool = wait::object_until(
        &pools,
        "pool",
        TIMEOUT,
        "gateway nodes in status",
        |p: &HostPool| {
            p.status
                .as_ref()
                .is_some_and(|st| st.gateway_nodes == vec![7])
        },
    )
    .await;
    assert!(pool.is_ok(), "{pool:?}");
}
