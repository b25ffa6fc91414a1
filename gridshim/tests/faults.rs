//! Every failure of GRID.md's last section, injected over the admin API (or config) and
//! asserted through the client or raw HTTP as the real grid would answer.

mod common;

use common::*;

fn fault(kind: FaultKind, scope: FaultScope) -> FaultSpec {
    FaultSpec {
        kind,
        mode: FaultMode::Once,
        scope,
    }
}

fn on_node(n: u32) -> FaultScope {
    FaultScope {
        node_id: Some(n),
        ..Default::default()
    }
}

fn on_name(n: &str) -> FaultScope {
    FaultScope {
        name: Some(n.into()),
        ..Default::default()
    }
}

fn on_call(c: &str) -> FaultScope {
    FaultScope {
        call: Some(c.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn leftover_name_owned_by_us_or_by_another_twin() {
    let s = shim("leftover_names: [{ name: from-config, twin_id: 99 }]").await;
    let ours = s.admin.leftover_name("leftover-ours", US).await.unwrap();
    s.admin
        .leftover_name("leftover-theirs", OTHER)
        .await
        .unwrap();
    for (name, owner) in [
        ("leftover-ours", US),
        ("leftover-theirs", OTHER),
        ("from-config", OTHER),
    ] {
        match s.us.create_name_contract(name).await.unwrap_err() {
            GridError::NameExists { owner_twin, .. } => assert_eq!(owner_twin, owner, "{name}"),
            e => panic!("{name}: want NameExists, got {e:?}"),
        }
    }
    // Ours can be cleaned up by us; theirs cannot.
    s.us.cancel_contract(ours.contract_id).await.unwrap();
    let held = s.us.name_owner("leftover-theirs").await.unwrap().unwrap();
    let e = s.us.cancel_contract(held.contract_id).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::TwinNotAuthorizedToCancelContract);
}

#[tokio::test]
async fn gateway_reported_failed_but_created() {
    let s = shim("").await;
    let (_, vm) = vm(&s.us, 12, "k").await;
    s.admin
        .inject(&fault(
            FaultKind::GatewayFailedButCreated,
            on_name("frank-01"),
        ))
        .await
        .unwrap();
    s.us.create_name_contract("frank-01").await.unwrap();
    let mut gw = gw_deployment(US, "frank-01", &format!("http://[{}]:8080", vm.mycelium_ip));
    let c = submit(&s.us, GW_NODE, &mut gw, "").await.unwrap();
    let d = settled(&s.us, GW_NODE, c).await;
    let errs = d.errors();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].1.contains("failed to deploy gateway"), "{errs:?}");
    // Yet the name routes.
    let (st, _) = via_gateway(&s, "frank-01.gent01.grid.localhost", "/health").await;
    assert_eq!(st, 200);
    let insp = s.admin.inspect().await.unwrap();
    assert!(
        insp.gateways
            .iter()
            .any(|g| g.fqdn == "frank-01.gent01.grid.localhost")
    );
}

#[tokio::test]
async fn deployment_times_out_but_is_created() {
    let s = shim("").await;
    s.admin
        .inject(&fault(FaultKind::DeployTimeoutButCreated, on_node(12)))
        .await
        .unwrap();
    let mut d = vm_deployment(US, "k", &seed(), 2);
    let e = submit(&s.us, 12, &mut d, "uid").await.unwrap_err();
    assert!(e.is_retry_later());
    assert_eq!(e.code(), ErrorCode::Timeout);
    assert_eq!(e.message(), "context deadline exceeded");
    let got = settled(&s.us, 12, d.contract_id).await;
    assert!(got.all_ok(), "the deployment was created after all");
}

#[tokio::test]
async fn result_without_an_address() {
    let s = shim("").await;
    s.admin
        .inject(&fault(FaultKind::ResultWithoutAddress, on_name("vm")))
        .await
        .unwrap();
    let sd = seed();
    let mut d = vm_deployment(US, "k", &sd, 2);
    let c = submit(&s.us, 12, &mut d, "").await.unwrap();
    let got = settled(&s.us, 12, c).await;
    assert!(got.all_ok());
    let r = got.workload("vm").unwrap().zmachine_result().unwrap();
    assert!(r.mycelium_ip.is_empty() && r.ip.is_empty(), "{r:?}");
    // The address can be computed from the network key and the seed.
    let computed = mycelium_ip(NET_KEY, &sd).unwrap();
    let vm = AgentTarget {
        mycelium_ip: computed.clone(),
        machine_id: "k".into(),
    };
    s.us.agent_config(&vm).await.unwrap();

    // A gateway without its fqdn: compute it from the name and the node's domain.
    s.admin
        .inject(&fault(FaultKind::ResultWithoutAddress, on_name("gina-01")))
        .await
        .unwrap();
    s.us.create_name_contract("gina-01").await.unwrap();
    let mut gw = gw_deployment(US, "gina-01", &format!("http://[{computed}]:8080"));
    let gc = submit(&s.us, GW_NODE, &mut gw, "").await.unwrap();
    let got = settled(&s.us, GW_NODE, gc).await;
    assert!(got.all_ok());
    assert_eq!(got.workloads[0].gateway_result().unwrap().fqdn, "");
    let domain =
        s.us.get_node(GW_NODE)
            .await
            .unwrap()
            .info
            .public_config
            .domain;
    let (st, _) = via_gateway(&s, &format!("gina-01.{domain}"), "/health").await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn node_refuses_for_capacity_although_the_proxy_shows_free() {
    let s = shim("").await;
    s.admin
        .inject(&fault(FaultKind::CapacityRefusal, on_node(12)))
        .await
        .unwrap();
    let listing = s.us.get_node(12).await.unwrap();
    assert!(listing.free().sru > 100 * GIB);
    let mut d = vm_deployment(US, "k", &seed(), 2);
    let c = submit(&s.us, 12, &mut d, "").await.unwrap();
    let got = settled(&s.us, 12, c).await;
    let errs = got.errors();
    assert_eq!(errs[0].1, "not enough space left in pools of this type ssd");
    assert_eq!(
        GridError::from_workload_message(errs[0].1).category(),
        ErrorCategory::Capacity
    );
}

#[tokio::test]
async fn node_up_in_the_proxy_but_unreachable() {
    let s = shim("").await;
    let mut d = vm_deployment(US, "k", &seed(), 2);
    let c = submit(&s.us, 12, &mut d, "").await.unwrap();
    settled(&s.us, 12, c).await;
    let f = s
        .admin
        .inject(&FaultSpec {
            kind: FaultKind::NodeUnreachable,
            mode: FaultMode::Always,
            scope: on_node(12),
        })
        .await
        .unwrap();
    assert_eq!(s.us.get_node(12).await.unwrap().info.status, NodeStatus::Up);
    let e = s.us.get_deployment(12, c).await.unwrap_err();
    assert!(e.is_retry_later());
    assert_eq!(e.code(), ErrorCode::NodeUnreachable);
    assert!(e.message().contains("context deadline exceeded"));
    let mut d2 = vm_deployment(US, "k", &seed(), 2);
    assert!(
        submit(&s.us, 12, &mut d2, "")
            .await
            .unwrap_err()
            .is_retry_later()
    );
    // Every node call to it fails, changes included.
    s.us.deployment_changes(12, c).await.unwrap_err();
    s.admin.remove_fault(f.id).await.unwrap();
    s.us.get_deployment(12, c).await.unwrap();
}

#[tokio::test]
async fn chain_call_times_out_after_it_landed() {
    let s = shim("").await;
    s.admin
        .inject(&fault(
            FaultKind::ChainTimeoutAfterLanded,
            on_call("create_name_contract"),
        ))
        .await
        .unwrap();
    let e = s.us.create_name_contract("hank-01").await.unwrap_err();
    assert!(e.is_retry_later());
    assert_eq!(e.message(), "extrinsic timeout waiting for block");
    let owner = s.us.name_owner("hank-01").await.unwrap().unwrap();
    assert_eq!(owner.twin_id, US, "the name landed");

    s.admin
        .inject(&fault(
            FaultKind::ChainTimeoutAfterLanded,
            on_call("create_node_contract"),
        ))
        .await
        .unwrap();
    let req = NodeContractRequest {
        node_id: 12,
        deployment_hash: "hash-h".into(),
        metadata: "uid-h".into(),
    };
    assert!(
        s.us.create_node_contract(&req)
            .await
            .unwrap_err()
            .is_retry_later()
    );
    let mine = s.us.list_my_contracts().await.unwrap();
    assert!(mine.iter().any(|c| data_of(c) == Some("uid-h")));
    // Creating it again is a conflict, not a second contract.
    assert_eq!(
        s.us.create_node_contract(&req).await.unwrap_err().code(),
        ErrorCode::ContractIsNotUnique
    );

    s.admin
        .inject(&fault(
            FaultKind::ChainTimeoutAfterLanded,
            on_call("cancel_contract"),
        ))
        .await
        .unwrap();
    assert!(
        s.us.cancel_contract(owner.contract_id)
            .await
            .unwrap_err()
            .is_retry_later()
    );
    assert_eq!(
        s.us.name_owner("hank-01").await.unwrap(),
        None,
        "the cancel landed"
    );
}

#[tokio::test]
async fn cancel_rejected_with_502_while_listing_works() {
    let s = shim("").await;
    let c = s.us.create_name_contract("ivy-01").await.unwrap();
    s.admin
        .inject(&fault(FaultKind::Cancel502, FaultScope::default()))
        .await
        .unwrap();
    let e = s.us.cancel_contract(c.contract_id).await.unwrap_err();
    assert!(e.is_retry_later());
    assert_eq!(e.code(), ErrorCode::BadGateway);
    assert!(e.message().contains("502"));
    assert!(
        s.us.list_my_contracts()
            .await
            .unwrap()
            .iter()
            .any(|x| x.contract_id == c.contract_id)
    );
    s.us.cancel_contract(c.contract_id).await.unwrap();
}

#[tokio::test]
async fn stale_connection_until_the_client_reconnects() {
    let s = shim("").await;
    // Raw: a stale session fails every call until a new one is opened.
    let stale = s.other.connect().await.unwrap();
    s.admin
        .inject(&fault(FaultKind::StaleConnection, FaultScope::default()))
        .await
        .unwrap();
    for _ in 0..3 {
        let r = s
            .http
            .get(format!("{}/chain/storage/Contracts/1", s.url()))
            .header(SESSION_HEADER, &stale)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 503);
        let b: ErrorBody = r.json().await.unwrap();
        assert_eq!(b.code, ErrorCode::StaleConnection);
        assert_eq!(b.message, "background task closed, restart required");
    }
    // The client reconnects and retries once, so the caller never sees it.
    s.us.name_owner("nobody").await.unwrap();
    s.admin
        .inject(&fault(FaultKind::StaleConnection, FaultScope::default()))
        .await
        .unwrap();
    s.us.create_name_contract("jack-01").await.unwrap();
    assert!(
        s.admin.faults().await.unwrap().is_empty(),
        "the fault fired"
    );
    assert!(s.us.name_owner("jack-01").await.unwrap().is_some());
}

#[tokio::test]
async fn slow_private_network_reachability() {
    let s = shim("").await;
    s.admin
        .inject(&fault(
            FaultKind::SlowReachability { delay_ms: 3000 },
            on_name("vm"),
        ))
        .await
        .unwrap();
    let sd = seed();
    let mut d = vm_deployment(US, "k", &sd, 2);
    let c = submit(&s.us, 12, &mut d, "").await.unwrap();
    let got = settled(&s.us, 12, c).await;
    assert!(got.all_ok(), "the node says ok");
    let vm = AgentTarget {
        mycelium_ip: got
            .workload("vm")
            .unwrap()
            .zmachine_result()
            .unwrap()
            .mycelium_ip,
        machine_id: "k".into(),
    };
    s.us.create_name_contract("kim-01").await.unwrap();
    let mut gw = gw_deployment(US, "kim-01", &format!("http://[{}]:8080", vm.mycelium_ip));
    let gc = submit(&s.us, GW_NODE, &mut gw, "").await.unwrap();
    assert!(settled(&s.us, GW_NODE, gc).await.all_ok());
    // Not reachable yet: the agent is refused, the gateway answers 502.
    let e = s.us.agent_config(&vm).await.unwrap_err();
    assert!(e.is_retry_later(), "{e:?}");
    let (st, _) = via_gateway(&s, "kim-01.gent01.grid.localhost", "/health").await;
    assert_eq!(st, 502);
    // Later it is.
    eventually(|| s.us.agent_config(&vm)).await;
    let (st, _) = via_gateway(&s, "kim-01.gent01.grid.localhost", "/health").await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn node_goes_down_with_testers_on_it() {
    let s = shim("").await;
    let (cid, vm) = vm(&s.us, 12, "k").await;
    s.us.create_name_contract("lou-01").await.unwrap();
    let mut gw = gw_deployment(US, "lou-01", &format!("http://[{}]:8080", vm.mycelium_ip));
    let gc = submit(&s.us, GW_NODE, &mut gw, "").await.unwrap();
    settled(&s.us, GW_NODE, gc).await;
    s.us.agent_config(&vm).await.unwrap();

    s.admin
        .set_node(
            12,
            &NodeCondition {
                status: Some(NodeStatus::Down),
                healthy: None,
            },
        )
        .await
        .unwrap();
    let e = eventually(|| async {
        match s.us.agent_config(&vm).await {
            Err(e) if e.is_retry_later() => Ok(e),
            other => Err(GridError::Fatal {
                code: ErrorCode::Internal,
                message: format!("still answering: {other:?}"),
            }),
        }
    })
    .await;
    assert!(e.is_retry_later());
    let (st, _) = via_gateway(&s, "lou-01.gent01.grid.localhost", "/health").await;
    assert_eq!(st, 502);
    assert_eq!(
        s.us.get_deployment(12, cid).await.unwrap_err().code(),
        ErrorCode::NodeUnreachable
    );
    // On instant the proxy's grace time is zero.
    let n = s.us.get_node(12).await.unwrap();
    assert_eq!((n.info.status, n.info.healthy), (NodeStatus::Down, false));

    s.admin
        .set_node(
            12,
            &NodeCondition {
                status: Some(NodeStatus::Up),
                healthy: Some(true),
            },
        )
        .await
        .unwrap();
    eventually(|| s.us.agent_config(&vm)).await;
}

#[tokio::test]
async fn service_start_loses_its_race_and_a_retry_succeeds() {
    let s = shim("").await;
    let (_, vm) = vm(&s.us, 12, "k").await;
    let req = InstallRequest {
        channel: Channel::Prerelease,
        apps: vec!["gateway".into(), "planner".into(), "books".into()],
        index_url: s.index_url(),
    };
    // A start that loses its race once: the agent tries again and the install succeeds.
    s.admin
        .inject(&fault(FaultKind::ServiceStartRace, on_name("planner")))
        .await
        .unwrap();
    s.us.agent_start_install(&vm, &req).await.unwrap();
    let st = wait_install(&s, &vm).await;
    assert_eq!(st.state, InstallState::Succeeded, "{st:?}");
    let planner = st.steps.iter().find(|x| x.app == "planner").unwrap();
    assert!(
        planner
            .log
            .iter()
            .any(|l| l.contains("lost the start-up race") && l.contains("attempt 1 of 3")),
        "{planner:?}"
    );
    assert_eq!(st.components["planner"], "1.3.0-rc.1");

    // A start that keeps losing: the step fails after the agent's tries, the others succeed.
    s.admin
        .inject(&FaultSpec {
            kind: FaultKind::ServiceStartRace,
            mode: FaultMode::Always,
            scope: on_name("books"),
        })
        .await
        .unwrap();
    let stable = InstallRequest {
        channel: Channel::Stable,
        ..req.clone()
    };
    s.us.agent_start_install(&vm, &stable).await.unwrap();
    let st = wait_install(&s, &vm).await;
    assert_eq!(st.state, InstallState::Failed);
    let books = st.steps.iter().find(|x| x.app == "books").unwrap();
    assert_eq!(books.state, InstallState::Failed);
    assert!(
        books
            .log
            .last()
            .unwrap()
            .contains("did not start after 3 attempts"),
        "{books:?}"
    );
    assert_eq!(
        st.components["books"], "1.2.0-rc.1",
        "the old version stays"
    );
    assert_eq!(st.components["planner"], "1.2.0");
    let health = s.us.agent_app_health(&vm).await.unwrap();
    assert!(
        !health
            .apps
            .iter()
            .find(|a| a.app == "books")
            .unwrap()
            .healthy
    );

    s.admin.clear_faults().await.unwrap();
    s.us.agent_start_install(&vm, &stable).await.unwrap();
    let st = wait_install(&s, &vm).await;
    assert_eq!(st.state, InstallState::Succeeded, "{st:?}");
    assert_eq!(st.components["books"], "1.1.0");
    assert_eq!(st.component_channels["books"], Channel::Stable);

    // An app that stops answering shows in the per-app health.
    s.admin
        .inject(&fault(FaultKind::AppUnhealthy, on_name("books")))
        .await
        .unwrap();
    let health = s.us.agent_app_health(&vm).await.unwrap();
    let books = health.apps.iter().find(|a| a.app == "books").unwrap();
    assert!(!books.healthy && !books.detail.is_empty());
}

#[tokio::test]
async fn start_race_probability_from_config() {
    let s = shim("install: { start_race_probability: 1.0 }").await;
    let (_, vm) = vm(&s.us, 12, "k").await;
    s.us.agent_start_install(
        &vm,
        &InstallRequest {
            channel: Channel::Stable,
            apps: vec!["cockpit".into()],
            index_url: s.index_url(),
        },
    )
    .await
    .unwrap();
    assert_eq!(wait_install(&s, &vm).await.state, InstallState::Failed);
}

#[tokio::test]
async fn fault_admin_api_modes_and_config() {
    let s = shim(
        "faults: [{ kind: cancel502, mode: { mode: count, count: 2 }, scope: { call: cancel_contract } }]",
    )
    .await;
    let listed = s.admin.faults().await.unwrap();
    assert_eq!(listed.len(), 1);
    let c = s.us.create_name_contract("max-01").await.unwrap();
    assert!(s.us.cancel_contract(c.contract_id).await.is_err());
    assert!(s.us.cancel_contract(c.contract_id).await.is_err());
    s.us.cancel_contract(c.contract_id).await.unwrap();
    assert!(s.admin.faults().await.unwrap().is_empty());

    let never = s
        .admin
        .inject(&FaultSpec {
            kind: FaultKind::Cancel502,
            mode: FaultMode::Probability { p: 0.0 },
            scope: FaultScope::default(),
        })
        .await
        .unwrap();
    let c = s.us.create_name_contract("max-02").await.unwrap();
    s.us.cancel_contract(c.contract_id).await.unwrap();
    assert_eq!(s.admin.faults().await.unwrap()[0].id, never.id);
    s.admin.clear_faults().await.unwrap();
    assert!(s.admin.faults().await.unwrap().is_empty());
    assert_eq!(
        s.admin.remove_fault(12345).await.unwrap_err().category(),
        ErrorCategory::NotFound
    );
}

async fn wait_install(s: &Shim, vm: &AgentTarget) -> InstallStatus {
    eventually(|| async {
        let st = s.us.agent_install_status(vm).await?;
        match st.state {
            InstallState::Succeeded | InstallState::Failed => Ok(st),
            _ => Err(GridError::RetryLater {
                code: ErrorCode::Busy,
                message: "running".into(),
            }),
        }
    })
    .await
}
