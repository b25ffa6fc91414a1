//! The operator's world after onboarding, against the real parts: a machine on a dead node is
//! moved (and a grid-wide outage trips the breaker instead), pause stops every grid call,
//! `ObserveOnly` adopts a machine made by hand and never writes, `OrphanOnDelete` leaves the
//! machine and name, and an app that stops answering shows in the condition and the printer
//! column.

use std::time::Duration;

use controller::resources::{HostPool, Tester, find_condition};
use e2e::{
    fixtures::tester,
    stack::{Stack, TWIN, TestNode},
    wait::{self, condition_of},
};
use gridapi::{
    Grid,
    agent::signing::{CONTROLLER_KEY_ENV, ControllerKey, MACHINE_ID_ENV},
    chain::CreateNodeContract,
    proxy::NodeStatus,
    zos::*,
};
use gridshim::wire::*;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(180);
const GIB: u64 = 1 << 30;

fn node_of(t: &Tester) -> Option<u32> {
    t.status.as_ref()?.placement.as_ref().map(|p| p.node_id)
}

/// A HostPool over `nodes` (10 GiB disk, 1 GiB memory per tester) that moves a machine
/// unreachable for longer than `after`.
fn pool(nodes: &[u32], after: &str) -> String {
    pool_with_gateways(nodes, &[], after)
}

/// [`pool`] whose name proxies run on `gateways`.
fn pool_with_gateways(nodes: &[u32], gateways: &[u32], after: &str) -> String {
    json!({
        "apiVersion": "sandbox.hero.dev/v1alpha1",
        "kind": "HostPool",
        "metadata": {"name": "pool"},
        "spec": {
            "nodes": nodes,
            "gatewayNodes": gateways,
            "perTester": {"cpu": 1, "memoryGiB": 1, "diskGiB": 10},
            "remediation": {"unhealthyAfter": after, "maxUnhealthy": 40},
        },
    })
    .to_string()
}

fn set_down(down: bool) -> NodeCondition {
    NodeCondition {
        status: Some(if down {
            NodeStatus::Down
        } else {
            NodeStatus::Up
        }),
        healthy: Some(!down),
    }
}

fn grid(s: &Stack) -> Grid {
    s.grid.faces()
}

/// Polls gridshim's inspection until `check` holds (gridshim has no watch; bounded).
async fn grid_until(s: &Stack, what: &str, check: impl Fn(&Inspection) -> bool) -> Inspection {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let i = s.grid.admin.inspect().await.unwrap();
        if check(&i) {
            return i;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {i:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

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
    s.apply(&pool_with_gateways(&[1, 2, 3], &[4], "3s"));
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

    s.grid.admin.set_node(dead, &set_down(true)).await.unwrap();
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
    s.grid.admin.set_node(dead, &set_down(false)).await.unwrap();
    let left = grid_until(&s, "the old machine gone", |i| {
        i.vms.len() == 3
            && i.contracts.len() == 9
            && i.gateways.iter().all(|g| g.node_id == 4)
            && !i.contracts.iter().any(|c| {
                Some(c.contract_id) == old_vm.contract_id
                    || Some(c.contract_id) == old_vm.gateway_contract_id
            })
    })
    .await;
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
    s.apply(&pool(&[1, 2, 3, 4, 5], "2s"));
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
        s.grid.admin.set_node(node, &set_down(true)).await.unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn pause_stops_every_grid_call_and_resume_continues() {
    let mut s = Stack::start(
        "pause",
        &[TestNode::new(1, 500, 64)],
        "",
        &[("RESYNC", "1s")],
    )
    .await;
    s.apply(&pool(&[1], "10m"));
    s.apply(&tester("p", "paula", "pool").build());
    wait::ready(&s.api, "p", TIMEOUT).await.unwrap();

    assert!(
        s.ns.kubectl(&["annotate", "tester", "p", "sandbox.hero.dev/paused=true"])
            .status
            .success()
    );
    let t = wait::tester_until(&s.api, "p", TIMEOUT, "paused", |t| {
        condition_of(t, "Paused").0 == "True"
    })
    .await
    .unwrap();
    assert_eq!(t.status.unwrap().phase.as_deref(), Some("Paused"));
    let served = s.grid.admin.requests().await.unwrap().served;
    // A spec change while paused is seen (the Paused condition records its generation) and
    // not acted on; passes go by; the grid hears nothing.
    assert!(
        s.ns.kubectl(&[
            "patch",
            "tester",
            "p",
            "--type=merge",
            "-p",
            r#"{"spec":{"allowedAccounts":["carol"]}}"#
        ])
        .status
        .success()
    );
    wait::tester_until(&s.api, "p", TIMEOUT, "seen while paused", |t| {
        t.status
            .as_ref()
            .and_then(|s| find_condition(&s.conditions, "Paused"))
            .is_some_and(|c| c.observed_generation == t.metadata.generation)
    })
    .await
    .unwrap();
    assert_eq!(
        s.grid.admin.requests().await.unwrap().served,
        served,
        "no grid call while paused"
    );

    assert!(
        s.ns.kubectl(&["annotate", "tester", "p", "sandbox.hero.dev/paused-"])
            .status
            .success()
    );
    let t = wait::tester_until(&s.api, "p", TIMEOUT, "resumed and reconfigured", |t| {
        condition_of(t, "Paused").1 == "Resumed"
            && condition_of(t, "Ready").0 == "True"
            && t.status
                .as_ref()
                .and_then(|s| find_condition(&s.conditions, "GateSecured"))
                .is_some_and(|c| c.observed_generation == t.metadata.generation)
    })
    .await
    .unwrap();
    assert_eq!(t.status.unwrap().phase.as_deref(), Some("Ready"));
    assert!(s.grid.admin.requests().await.unwrap().served > served);

    // Pausing the HostPool pauses the pool (no node listing) and its testers.
    assert!(
        s.ns.kubectl(&[
            "annotate",
            "hostpool",
            "pool",
            "sandbox.hero.dev/paused=true"
        ])
        .status
        .success()
    );
    let pools: kube::Api<HostPool> = kube::Api::namespaced(s.api.clone().into_client(), &s.ns.name);
    wait::object_until(&pools, "pool", TIMEOUT, "paused", |hp| {
        hp.status.as_ref().is_some_and(|st| {
            st.conditions
                .iter()
                .any(|c| c.type_ == "Paused" && c.status == "True")
        })
    })
    .await
    .unwrap();
    wait::tester_until(&s.api, "p", TIMEOUT, "paused by its pool", |t| {
        condition_of(t, "Paused").1 == "HostPoolPaused"
    })
    .await
    .unwrap();
    let served = s.grid.admin.requests().await.unwrap().served;
    let series = r#"sandbox_reconcile_total{controller="tester"}"#;
    let start = s.controller().metric(series).await;
    // A change to the tester makes a pass run now.
    assert!(
        s.ns.kubectl(&["annotate", "tester", "p", "poke=1"])
            .status
            .success()
    );
    s.controller()
        .metric_reaches(series, start + 1.0, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        s.grid.admin.requests().await.unwrap().served,
        served,
        "no grid call while the pool is paused"
    );
    assert!(
        s.ns.kubectl(&["annotate", "hostpool", "pool", "sandbox.hero.dev/paused-"])
            .status
            .success()
    );
    wait::tester_until(&s.api, "p", TIMEOUT, "resumed", |t| {
        condition_of(t, "Paused").1 == "Resumed" && condition_of(t, "Ready").0 == "True"
    })
    .await
    .unwrap();
}

/// A VM made by hand on `node`, without the controller's tag, its agent obeying `key`; returns
/// its contract id.
async fn hand_made_vm(g: &Grid, node: u32, key: &ControllerKey) -> u64 {
    let mut d = Deployment {
        version: 0,
        twin_id: TWIN,
        contract_id: 0,
        metadata: String::new(),
        description: "made by hand".into(),
        expiration: 0,
        signature_requirement: SignatureRequirement::by(TWIN),
        workloads: vec![
            Workload::new("disk", WorkloadData::Zmount(Zmount { size: 10 * GIB })),
            Workload::new(
                "net",
                WorkloadData::NetworkLight(NetworkLight {
                    subnet: "10.20.2.0/24".into(),
                    mycelium: NetworkMycelium {
                        hex_key: "cd".repeat(32),
                        peers: vec![],
                    },
                }),
            ),
            Workload::new(
                "vm",
                WorkloadData::ZmachineLight(ZmachineLight {
                    flist: "https://hub.grid.tf/tester/machine.flist".into(),
                    network: ZmachineNetwork {
                        interfaces: vec![NetworkInterface {
                            network: "net".into(),
                            ip: "10.20.2.2".into(),
                        }],
                        mycelium: MyceliumAttachment {
                            network: "net".into(),
                            seed: "0b0000000042".into(),
                        },
                    },
                    size: 20 * GIB,
                    compute_capacity: ComputeCapacity {
                        cpu: 1,
                        memory: GIB,
                    },
                    mounts: vec![Mount {
                        name: "disk".into(),
                        mountpoint: "/data".into(),
                    }],
                    entrypoint: "/sbin/zinit init".into(),
                    env: [
                        (CONTROLLER_KEY_ENV.to_string(), key.public().to_base64()),
                        (MACHINE_ID_ENV.to_string(), "m-hand-made".to_string()),
                    ]
                    .into(),
                    corex: false,
                }),
            ),
        ],
    };
    let c = g
        .chain
        .create_node_contract(&CreateNodeContract {
            node_id: node,
            deployment_hash: d.challenge_hash(),
            deployment_data: String::new(),
            public_ips: 0,
            solution_provider_id: None,
        })
        .await
        .unwrap();
    d.contract_id = c.contract_id;
    let twin = g.proxy.node(node).await.unwrap().info.twin_id;
    g.nodes.deploy(twin, &d).await.unwrap();
    c.contract_id
}

#[tokio::test(flavor = "multi_thread")]
async fn observe_only_adopts_a_hand_made_machine_and_never_writes_to_the_grid() {
    let mut s = Stack::start(
        "observe",
        &[TestNode::new(1, 500, 64)],
        "",
        &[("RESYNC", "1s")],
    )
    .await;
    s.apply(&pool(&[1], "10m"));
    let id = hand_made_vm(&grid(&s), 1, &s.agent_key().await).await;
    // The node works its queue after deploy answers: wait for the VM before taking the picture.
    let before = grid_until(&s, "the hand-made VM deployed", |i| i.vms.len() == 1).await;
    s.apply(
        &tester("o", "otto", "pool")
            .with("managementPolicy", json!("ObserveOnly"))
            .with("contractId", json!(id))
            .build(),
    );
    let t = wait::tester_until(&s.api, "o", TIMEOUT, "observing the machine", |t| {
        condition_of(t, "MachineReady").1 == "Observed"
    })
    .await
    .unwrap();
    let st = t.status.clone().unwrap();
    assert_eq!(st.machine.as_ref().unwrap().contract_id, Some(id));
    assert!(st.machine.as_ref().unwrap().private_address.is_some());
    assert_eq!(st.phase.as_deref(), Some("Observed"));
    assert_eq!(condition_of(&t, "Ready").1, "ObserveOnly");

    // Changing it straight to Full is refused by the API server.
    let out = s.ns.kubectl(&[
        "patch",
        "tester",
        "o",
        "--type=merge",
        "-p",
        r#"{"spec":{"managementPolicy":"Full"}}"#,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("set OrphanOnDelete first"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Deleting it touches nothing on the grid.
    assert!(s.ns.kubectl(&["delete", "tester", "o"]).status.success());
    wait::gone(&s.api, "o", TIMEOUT).await.unwrap();
    let after = s.grid.admin.inspect().await.unwrap();
    assert_eq!(
        after.contracts, before.contracts,
        "nothing created or cancelled"
    );
    assert_eq!(after.vms.len(), before.vms.len());
    let m = s.controller().metrics().await;
    for write in [
        "create_node_contract",
        "create_name_contract",
        "deploy",
        "cancel_contract",
    ] {
        assert!(
            !m.contains(&format!("call=\"{write}\"")),
            "an ObserveOnly tester made a {write} call"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn orphan_on_delete_leaves_exactly_the_machine_and_its_name() {
    let s = Stack::start("orphan", &[TestNode::new(1, 500, 64)], "", &[]).await;
    s.apply(&pool(&[1], "10m"));
    s.apply(
        &tester("k", "kim", "pool")
            .with("managementPolicy", json!("OrphanOnDelete"))
            .build(),
    );
    let t = wait::ready(&s.api, "k", TIMEOUT).await.unwrap();
    let m = t.status.as_ref().unwrap().machine.clone().unwrap();
    assert!(s.ns.kubectl(&["delete", "tester", "k"]).status.success());
    wait::gone(&s.api, "k", TIMEOUT).await.unwrap();
    let left = s.grid.admin.inspect().await.unwrap();
    let mut ids: Vec<u64> = left.contracts.iter().map(|c| c.contract_id).collect();
    ids.sort();
    let mut expected: Vec<u64> = [m.contract_id, m.gateway_contract_id, m.name_contract_id]
        .into_iter()
        .flatten()
        .collect();
    expected.sort();
    assert_eq!(
        ids, expected,
        "exactly the machine, its gateway and its name"
    );
    assert_eq!(left.vms.len(), 1);
    let events = String::from_utf8_lossy(&s.ns.kubectl(&["get", "events"]).stdout).into_owned();
    assert!(events.contains("Orphaned"), "{events}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_that_stops_answering_shows_in_the_condition_and_the_printer_column() {
    let env = [("RESYNC", "1s"), ("APP_HEALTH_INTERVAL", "1s")];
    let s = Stack::start("apps", &[TestNode::new(1, 500, 64)], "", &env).await;
    s.apply(&pool(&[1], "10m"));
    s.apply(&tester("a", "ada", "pool").build());
    let t = wait::tester_until(&s.api, "a", TIMEOUT, "apps healthy", |t| {
        condition_of(t, "AppsHealthy").1 == "AllHealthy"
    })
    .await
    .unwrap();
    let apps = t.status.unwrap().apps;
    assert!(
        apps.len() >= 2 && apps.iter().all(|a| a.healthy),
        "{apps:?}"
    );
    let app = apps[0].app.clone();

    s.grid
        .admin
        .inject(&FaultSpec {
            kind: FaultKind::AppUnhealthy,
            mode: FaultMode::Always,
            scope: FaultScope {
                name: Some(app.clone()),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let t = wait::tester_until(&s.api, "a", TIMEOUT, "an app unhealthy", |t| {
        condition_of(t, "AppsHealthy").1 == "AppsUnhealthy"
    })
    .await
    .unwrap();
    assert!(
        condition_of(&t, "AppsHealthy").2.contains(&app),
        "{:?}",
        condition_of(&t, "AppsHealthy")
    );
    assert_eq!(
        condition_of(&t, "Ready").0,
        "True",
        "an app down does not un-Ready the tester"
    );
    let sick = t
        .status
        .unwrap()
        .apps
        .into_iter()
        .find(|a| a.app == app)
        .unwrap();
    assert!(!sick.healthy);
    let row = String::from_utf8_lossy(&s.ns.kubectl(&["get", "tester", "a"]).stdout).into_owned();
    assert!(
        row.contains("APPS") && row.contains("AppsUnhealthy"),
        "{row}"
    );

    s.grid.admin.clear_faults().await.unwrap();
    wait::tester_until(&s.api, "a", TIMEOUT, "healthy again", |t| {
        condition_of(t, "AppsHealthy").1 == "AllHealthy"
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_waits_for_an_unreachable_engine_but_not_for_a_deleted_one() {
    let s = Stack::start("revoke", &[TestNode::new(1, 500, 64)], "", &[]).await;
    s.apply(&pool(&[1], "10m"));
    s.apply(&e2e::fixtures::shared_engine(
        "voice",
        &s.grid.engine_url("voice"),
    ));
    let mut identities = Vec::new();
    for name in ["u", "g"] {
        s.apply(
            &tester(name, &format!("rev{name}"), "pool")
                .with("sharedEngines", json!(["voice"]))
                .build(),
        );
        let t = wait::ready(&s.api, name, TIMEOUT).await.unwrap();
        identities.push(t.status.unwrap().engine_identity.unwrap());
    }
    // The engine's token store stops answering: deletion waits, and says for what.
    s.grid.admin.set_token_store("voice", false).await.unwrap();
    assert!(
        s.ns.kubectl(&["delete", "tester", "u", "--wait=false"])
            .status
            .success()
    );
    let t = wait::tester_until(&s.api, "u", TIMEOUT, "waiting for the engine", |t| {
        condition_of(t, "Ready")
            .2
            .contains("revoking the token on SharedEngine voice")
    })
    .await
    .unwrap();
    assert_eq!(condition_of(&t, "Ready").1, "Deleting");
    // The SharedEngine is deleted (its tokens die with it): deletion no longer waits for it.
    assert!(
        s.ns.kubectl(&["delete", "sharedengine", "voice"])
            .status
            .success()
    );
    wait::gone(&s.api, "u", TIMEOUT).await.unwrap();
    let events = String::from_utf8_lossy(&s.ns.kubectl(&["get", "events"]).stdout).into_owned();
    assert!(events.contains("TokenStoreGone"), "{events}");
    // A tester deleted while the store is down but its SharedEngine still exists keeps waiting
    // until the store answers; then its token is revoked.
    s.apply(&e2e::fixtures::shared_engine(
        "voice",
        &s.grid.engine_url("voice"),
    ));
    assert!(
        s.ns.kubectl(&["delete", "tester", "g", "--wait=false"])
            .status
            .success()
    );
    wait::tester_until(&s.api, "g", TIMEOUT, "waiting for the engine", |t| {
        condition_of(t, "Ready")
            .2
            .contains("revoking the token on SharedEngine voice")
    })
    .await
    .unwrap();
    s.grid.admin.set_token_store("voice", true).await.unwrap();
    wait::gone(&s.api, "g", TIMEOUT).await.unwrap();
    // g's token was revoked; u's is left in a store the cluster no longer knows (gridshim's
    // engine outlives its SharedEngine object), which is what "died with it" means here.
    let tokens = s.grid.admin.inspect().await.unwrap().tokens;
    let holders: Vec<&str> = tokens.iter().map(|t| t.tester.as_str()).collect();
    assert_eq!(holders, [identities[0].as_str()], "{tokens:?}");
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
    s.grid.admin.set_node(8, &set_down(true)).await.unwrap();
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
