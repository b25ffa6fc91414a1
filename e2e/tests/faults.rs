//! The controller under faults: every grid fault of GRID.md, SIGKILLs at random moments, a gate
//! that disappears and a node that goes down. Each test has its own namespace, gridshim and
//! controller process; the Forge (Gitea) is shared.

use std::time::Duration;

use controller::resources::{HostPool, condition_status};
use e2e::{
    fixtures::{host_pool, shared_engine, tester},
    stack::{Stack, TestNode},
    wait::{self, condition_of},
};
use gridapi::proxy::NodeStatus;
use gridshim::wire::{FaultKind, FaultMode, FaultScope, FaultSpec, NodeCondition};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(180);

fn fault(kind: FaultKind, mode: FaultMode, scope: FaultScope) -> FaultSpec {
    FaultSpec { kind, mode, scope }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_grid_fault_once_and_the_controller_converges_without_leaks() {
    let leftovers =
        "leftover_names:\n  - {name: ourleftover1, twin_id: 7}\n  - {name: theirs1, twin_id: 99}\n";
    let s = Stack::start(
        "faults",
        &[TestNode::new(1, 2000, 128), TestNode::new(2, 1000, 128)],
        leftovers,
        &[],
    )
    .await;
    let any = FaultScope::default;
    let once = FaultMode::Once;
    for spec in [
        fault(FaultKind::GatewayFailedButCreated, once, any()),
        fault(FaultKind::DeployTimeoutButCreated, once, any()),
        fault(
            FaultKind::ResultWithoutAddress,
            FaultMode::Count { count: 2 },
            any(),
        ),
        fault(
            FaultKind::CapacityRefusal,
            once,
            FaultScope {
                node_id: Some(1),
                ..any()
            },
        ),
        fault(FaultKind::NodeUnreachable, once, any()),
        // One chain timeout on each kind of create; cancel gets its own during deletion (below),
        // so which fault meets the capacity refusal is not left to chance.
        fault(
            FaultKind::ChainTimeoutAfterLanded,
            once,
            FaultScope {
                call: Some("create_node_contract".into()),
                ..any()
            },
        ),
        fault(
            FaultKind::ChainTimeoutAfterLanded,
            once,
            FaultScope {
                call: Some("create_name_contract".into()),
                ..any()
            },
        ),
        fault(FaultKind::StaleConnection, once, any()),
        fault(FaultKind::SlowReachability { delay_ms: 1500 }, once, any()),
        fault(FaultKind::ServiceStartRace, once, any()),
    ] {
        s.grid.admin.inject(&spec).await.unwrap();
    }
    s.apply(&host_pool("pool", &[1, 2], 50, 4));
    s.apply(&shared_engine("embedder", &s.grid.engine_url("embedder")));
    s.apply(
        &tester("gen", "gen", "pool")
            .with("sharedEngines", json!(["embedder"]))
            .build(),
    );
    s.apply(
        &tester("ours", "ours", "pool")
            .with("gatewayName", json!("ourleftover1"))
            .build(),
    );
    s.apply(
        &tester("theirs", "theirs", "pool")
            .with("gatewayName", json!("theirs1"))
            .build(),
    );

    let gen_ = wait::ready(&s.api, "gen", TIMEOUT).await.unwrap();
    let ours = wait::ready(&s.api, "ours", TIMEOUT).await.unwrap();
    assert_eq!(
        ours.status.as_ref().unwrap().gateway_name.as_deref(),
        Some("ourleftover1"),
        "our leftover name is adopted"
    );
    let theirs = wait::condition(&s.api, "theirs", "GatewayReady", "False", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(condition_of(&theirs, "GatewayReady").1, "NameTaken");
    assert_eq!(condition_of(&theirs, "Ready").0, "False");
    for t in [&gen_, &ours] {
        assert!(t.status.as_ref().unwrap().url.is_some());
    }
    let fired: Vec<_> = s.grid.admin.faults().await.unwrap();
    assert!(
        fired.is_empty(),
        "every one-shot fault fired and was consumed: left {fired:?}"
    );
    let events = String::from_utf8_lossy(
        &s.ns
            .kubectl(&["get", "events", "-o", "jsonpath={.items[*].reason}"])
            .stdout,
    )
    .into_owned();
    for reason in ["AdoptedExistingName", "NodeRefused"] {
        assert!(events.contains(reason), "no {reason} event in {events}");
    }
    let inspect = s.grid.admin.inspect().await.unwrap();
    assert_eq!(
        inspect.vms.len(),
        3,
        "one VM per tester, no duplicate: {:?}",
        inspect.vms
    );

    // Deletion with the relay failing cancels twice: retried until nothing is left.
    s.grid
        .admin
        .inject(&fault(
            FaultKind::Cancel502,
            FaultMode::Count { count: 2 },
            any(),
        ))
        .await
        .unwrap();
    s.grid
        .admin
        .inject(&fault(FaultKind::StaleConnection, once, any()))
        .await
        .unwrap();
    let cancel = FaultScope {
        call: Some("cancel_contract".into()),
        ..any()
    };
    s.grid
        .admin
        .inject(&fault(FaultKind::ChainTimeoutAfterLanded, once, cancel))
        .await
        .unwrap();
    assert!(
        s.ns.kubectl(&["delete", "testers", "--all", "--wait=false"])
            .status
            .success()
    );
    for name in ["gen", "ours", "theirs"] {
        wait::gone(&s.api, name, TIMEOUT).await.unwrap();
    }
    let inspect = s.grid.admin.inspect().await.unwrap();
    assert!(
        inspect.contracts.iter().all(|c| c.twin_id != 7),
        "our contracts left: {:?}",
        inspect.contracts
    );
    assert_eq!(
        inspect
            .names
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        ["theirs1"],
        "only the other twin's name stays"
    );
    assert!(
        inspect.vms.is_empty() && inspect.gateways.is_empty() && inspect.tokens.is_empty(),
        "{inspect:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_during_ten_onboardings_leaves_no_duplicates() {
    let mut s = Stack::start(
        "sigkill",
        &[TestNode::new(1, 2000, 256), TestNode::new(2, 2000, 256)],
        "",
        &[],
    )
    .await;
    // A slower grid, so the kills land mid-onboarding.
    s.grid
        .admin
        .inject(&fault(
            FaultKind::SlowReachability { delay_ms: 400 },
            FaultMode::Always,
            FaultScope::default(),
        ))
        .await
        .unwrap();
    s.apply(&host_pool("pool", &[1, 2], 20, 2));
    let docs: Vec<String> = (0..10)
        .map(|i| tester(&format!("k{i}"), &format!("k{i}"), "pool").build())
        .collect();
    s.apply(&format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{}]}}",
        docs.join(",")
    ));
    for i in 0..6u64 {
        let pause = 150 + (rand::random::<u64>() % 500) + i * 50;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        s.controller().kill_and_restart().unwrap();
    }
    s.grid.admin.clear_faults().await.unwrap();
    for i in 0..10 {
        wait::ready(&s.api, &format!("k{i}"), TIMEOUT)
            .await
            .unwrap();
    }
    let inspect = s.grid.admin.inspect().await.unwrap();
    assert_eq!(inspect.vms.len(), 10, "no duplicate VM: {:?}", inspect.vms);
    assert_eq!(
        inspect.names.len(),
        10,
        "no duplicate name: {:?}",
        inspect.names
    );
    assert_eq!(inspect.gateways.len(), 10, "no duplicate gateway");
    assert_eq!(
        inspect.contracts.len(),
        30,
        "VM, gateway and name contract per tester, nothing more"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gate_that_disappears_flips_ready_and_is_repaired() {
    let s = Stack::start(
        "drift",
        &[TestNode::new(1, 1000, 64)],
        "",
        &[("RESYNC", "2s")],
    )
    .await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    s.apply(&tester("g", "gina", "pool").build());
    let t = wait::ready(&s.api, "g", TIMEOUT).await.unwrap();
    let vm = s.grid.admin.inspect().await.unwrap().vms.remove(0);
    let grid = s.controller_faces().await;
    let target = Stack::target(&vm);
    let open = gridapi::agent::GateSettings {
        issuer: "http://127.0.0.1:9".into(),
        client_id: "x".into(),
        client_secret: "y".into(),
        allowed_accounts: vec!["everyone".into()],
        public_url: t.status.unwrap().url.unwrap(),
    };
    // The gate failures the Tester has been told about so far (by Event name).
    let failures = || {
        let out = s.ns.kubectl(&[
            "get",
            "events",
            "-o",
            r#"jsonpath={range .items[?(@.reason=="GateDrifted")]}{.metadata.name} {end}{range .items[?(@.reason=="GateNotWorking")]}{.metadata.name} {end}"#,
        ]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let before = failures();
    grid.agents.configure_gate(&target, &open).await.unwrap();
    // Either the agent's view shows the drift (`GateDrifted`) or a pass already past that read
    // finds the gate failing from outside (`GateNotWorking`); both flip GateSecured and Ready,
    // and the next pass repairs it. Events have no watch here: poll until both hold.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let t = s.api.get("g").await.unwrap();
        let ready = condition_status(&t.status.as_ref().unwrap().conditions, "Ready") == "True";
        if ready && failures().difference(&before).next().is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "g: not repaired after a gate failure event in {TIMEOUT:?}: ready {ready}, events {:?}",
            failures()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let view = grid.agents.config(&target).await.unwrap();
    assert_eq!(view.gate.unwrap().allowed_accounts, ["gina", "ops"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_going_down_with_a_tester_on_it_flips_ready_until_it_is_back() {
    let s = Stack::start(
        "nodedown",
        &[TestNode::new(1, 1000, 64)],
        "",
        &[("RESYNC", "2s")],
    )
    .await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    s.apply(&tester("n", "nora", "pool").build());
    wait::ready(&s.api, "n", TIMEOUT).await.unwrap();

    let down = NodeCondition {
        status: Some(NodeStatus::Down),
        healthy: Some(false),
    };
    s.grid.admin.set_node(1, &down).await.unwrap();
    let t = wait::condition(&s.api, "n", "Ready", "False", TIMEOUT)
        .await
        .unwrap();
    // The node's calls time out: the grid asks to retry, or the VM does not answer.
    let (status, reason, _) = condition_of(&t, "MachineReady");
    assert_eq!(status, "False");
    assert!(
        ["Unreachable", "GridRetrying"].contains(&reason.as_str()),
        "{reason}"
    );
    assert_eq!(
        t.status.as_ref().unwrap().phase.as_deref(),
        Some("Provisioning")
    );
    let pools: kube::Api<HostPool> = kube::Api::namespaced(s.api.clone().into_client(), &s.ns.name);
    wait::object_until(
        &pools,
        "pool",
        TIMEOUT,
        "reporting the node offline and no room",
        |hp| {
            hp.status
                .as_ref()
                .is_some_and(|st| st.online_count == 0 && st.fit == 0)
        },
    )
    .await
    .unwrap();

    let up = NodeCondition {
        status: Some(NodeStatus::Up),
        healthy: Some(true),
    };
    s.grid.admin.set_node(1, &up).await.unwrap();
    wait::ready(&s.api, "n", TIMEOUT).await.unwrap();
    assert_eq!(
        s.grid.admin.inspect().await.unwrap().vms.len(),
        1,
        "the same machine, nothing duplicated"
    );
}
