//! The operator's world after onboarding, against the real parts: pause stops every grid call,
//! `ObserveOnly` adopts a machine made by hand and never writes, `OrphanOnDelete` leaves the
//! machine and name, an app that stops answering shows in the condition and the printer column,
//! and deletion waits for an engine that is unreachable but not for one that was deleted.

use std::time::Duration;

use controller::resources::{HostPool, find_condition};
use e2e::{
    fixtures::{remediating_pool, tester},
    stack::{Stack, TWIN, TestNode},
    wait::{self, condition_of},
};
use gridapi::{
    Grid,
    agent::signing::{CONTROLLER_KEY_ENV, ControllerKey, MACHINE_ID_ENV},
    chain::CreateNodeContract,
    zos::*,
};
use gridshim::wire::*;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(180);
const GIB: u64 = 1 << 30;

#[tokio::test(flavor = "multi_thread")]
async fn pause_stops_every_grid_call_and_resume_continues() {
    let mut s = Stack::start(
        "pause",
        &[TestNode::new(1, 500, 64)],
        "",
        &[("RESYNC", "1s")],
    )
    .await;
    s.apply(&remediating_pool(&[1], &[], "10m"));
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
    s.apply(&remediating_pool(&[1], &[], "10m"));
    let id = hand_made_vm(&s.grid.faces(), 1, &s.agent_key().await).await;
    // The node works its queue after deploy answers: wait for the VM before taking the picture.
    let before = wait::grid_until(&s.grid.admin, TIMEOUT, "the hand-made VM deployed", |i| {
        i.vms.len() == 1
    })
    .await
    .unwrap();
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
    s.apply(&remediating_pool(&[1], &[], "10m"));
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
    s.apply(&remediating_pool(&[1], &[], "10m"));
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
    s.apply(&remediating_pool(&[1], &[], "10m"));
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
