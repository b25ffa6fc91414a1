//! Integration tests over real HTTP, one per face: node, VM agent and install, data plane,
//! inspection, a restart over the same database, and the realistic and scale profiles. The proxy
//! and chain are in `proxy_chain.rs`, the engines in `engines.rs`.

mod common;

use std::collections::BTreeMap;

use common::*;

#[tokio::test]
async fn node_deploys_reports_changes_and_refuses_deletion() {
    let s = shim("").await;
    let mut d = vm_deployment(US, "k1", &seed(), 2);
    let cid = submit(&s.us, 12, &mut d, "uid").await.unwrap();
    let got = settled(&s.us, 12, cid).await;
    assert!(got.all_ok(), "{:?}", got.errors());
    let r = got.workload("vm").unwrap().zmachine_result().unwrap();
    assert!(r.mycelium_ip.contains(":ff0f:"), "{}", r.mycelium_ip);
    assert_eq!(
        Some(r.mycelium_ip.clone()),
        mycelium_ip(
            NET_KEY,
            &got.workload("vm")
                .map(|w| match &w.data {
                    WorkloadData::ZmachineLight(z) => z.network.mycelium.seed.clone(),
                    _ => unreachable!(),
                })
                .unwrap()
        )
    );
    let changes = s.us.deployment_changes(12, cid).await.unwrap();
    let vm_states: Vec<_> = changes
        .iter()
        .filter(|c| c.name == "vm")
        .map(|c| c.result.state)
        .collect();
    assert_eq!(vm_states, vec![WorkloadState::Init, WorkloadState::Ok]);

    // The proxy shows the used capacity (no lag on instant), reserves included as the real
    // proxy counts them: memory max(10 %, 2 GiB), SSD 20 GiB.
    let n = s.us.get_node(12).await.unwrap();
    assert_eq!(n.used_resources.mru, 2 * GIB + 64 * GIB / 10);
    assert_eq!(n.used_resources.sru, 30 * GIB + 20 * GIB);

    // Deleting through the node is refused.
    let sess = s.us.connect().await.unwrap();
    let r = s
        .http
        .post(format!("{}/rmb/1012/zos.deployment.delete", s.url()))
        .header(SESSION_HEADER, sess)
        .json(&serde_json::json!({ "contract_id": cid }))
        .send()
        .await
        .unwrap();
    let body: ErrorBody = r.json().await.unwrap();
    assert_eq!(
        body.message,
        "deletion over the api is disabled, please cancel your contract instead"
    );

    // Validation and hash checks.
    let mut bad = vm_deployment(US, "k", &seed(), 2);
    bad.workloads[0].name = "bad-name".into();
    let e = submit(&s.us, 12, &mut bad, "").await.unwrap_err();
    assert!(e.message().contains("invalid workload name"), "{e}");
    let mut small = vm_deployment(US, "k", &seed(), 2);
    if let WorkloadData::ZmachineLight(z) = &mut small.workloads[2].data {
        z.compute_capacity.memory = 100 * gridapi::MIB;
    }
    let e = submit(&s.us, 12, &mut small, "").await.unwrap_err();
    assert!(e.message().contains("250M"), "{e}");
    let mut other = vm_deployment(US, "k", &seed(), 3);
    let c =
        s.us.create_node_contract(&NodeContractRequest {
            node_id: 12,
            deployment_hash: "not-the-hash".into(),
            metadata: String::new(),
        })
        .await
        .unwrap();
    other.contract_id = c.contract_id;
    let e = s.us.deploy(12, &other).await.unwrap_err();
    assert!(e.message().contains("hash"), "{e}");

    // Cancel: the node removes the workloads and frees the capacity.
    s.us.cancel_contract(cid).await.unwrap();
    let e = s.us.get_deployment(12, cid).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::NotFound);
    assert_eq!(
        s.us.get_node(12).await.unwrap().used_resources.mru,
        64 * GIB / 10,
        "only the reserve is left"
    );
}

#[tokio::test]
async fn node_enforces_capacity_even_when_the_listing_said_free() {
    let s = shim("").await;
    // Both placements come from the same listing: 14 GiB usable memory on node 13.
    let listing = s.us.get_node(SMALL_NODE).await.unwrap();
    assert!(listing.free().mru >= 8 * GIB);
    let mut a = vm_deployment(US, "a", &seed(), 8);
    let mut b = vm_deployment(US, "b", &seed(), 8);
    let ca = submit(&s.us, SMALL_NODE, &mut a, "a").await.unwrap();
    let cb = submit(&s.us, SMALL_NODE, &mut b, "b").await.unwrap();
    let da = settled(&s.us, SMALL_NODE, ca).await;
    let db = settled(&s.us, SMALL_NODE, cb).await;
    assert!(da.all_ok());
    let errs = db.errors();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0]
            .1
            .starts_with("cannot fulfil required memory size 8589934592 bytes out of usable"),
        "{errs:?}"
    );
    assert_eq!(
        GridError::from_workload_message(errs[0].1).category(),
        ErrorCategory::Capacity
    );
}

#[tokio::test]
async fn agent_gate_settings_install_and_health() {
    let s = shim("").await;
    let (_, vm) = vm(&s.us, 12, "agent-key-1").await;
    let wrong = AgentTarget {
        machine_id: "nope".into(),
        ..vm.clone()
    };
    let e = s.us.agent_install_status(&wrong).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unauthorized);

    let gate = GateSettings {
        issuer: "http://127.0.0.1:5556/dex".into(),
        client_id: "tester-vm".into(),
        client_secret: "very-secret".into(),
        allowed_accounts: vec!["admin".into(), "alice".into()],
        public_url: "http://alice-x1.gent01.grid.localhost:8880".into(),
    };
    s.us.agent_configure_gate(&vm, &gate).await.unwrap();
    s.us.agent_set_engines(
        &vm,
        &[EngineCredential {
            engine: "embedder".into(),
            url: "http://127.77.0.1:7801".into(),
            token: "tok-secret-1234567".into(),
        }],
    )
    .await
    .unwrap();
    s.us.agent_set_ssh_keys(&vm, &["ssh-ed25519 AAAA alice".into()])
        .await
        .unwrap();
    let ai: BTreeMap<String, String> = [("openai".to_string(), "sk-live-1".to_string())].into();
    s.us.agent_set_ai_keys(&vm, &ai).await.unwrap();
    let view = s.us.agent_config(&vm).await.unwrap();
    assert_eq!(view.gate.unwrap().allowed_accounts, vec!["admin", "alice"]);
    assert_eq!(view.ssh_keys, 1);
    assert_eq!(view.ai_providers, vec!["openai"]);
    let raw = serde_json::to_string(&s.us.agent_config(&vm).await.unwrap()).unwrap();
    for secret in ["very-secret", "tok-secret", "sk-live-1"] {
        assert!(!raw.contains(secret), "config view leaks {secret}");
    }

    let apps: Vec<String> = ["gateway", "cockpit", "planner"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let st =
        s.us.agent_start_install(
            &vm,
            &InstallRequest {
                channel: Channel::Stable,
                apps: apps.clone(),
                index_url: s.index_url(),
            },
        )
        .await
        .unwrap();
    assert_eq!(st.attempt, 1);
    let done = eventually(|| async {
        let st = s.us.agent_install_status(&vm).await?;
        if st.state == InstallState::Running {
            Err(GridError::RetryLater {
                code: ErrorCode::Busy,
                message: "running".into(),
            })
        } else {
            Ok(st)
        }
    })
    .await;
    assert_eq!(done.state, InstallState::Succeeded, "{done:?}");
    assert_eq!(done.components["cockpit"], "2.0.0");
    assert_eq!(done.component_channels["cockpit"], Channel::Stable);
    assert!(done.steps.iter().all(|st| !st.log.is_empty()));
    let health = s.us.agent_app_health(&vm).await.unwrap();
    assert!(health.apps.iter().all(|a| a.healthy), "{health:?}");

    // Update available: publish a newer cockpit, reinstall; the others are skipped.
    s.admin
        .publish(Channel::Stable, "cockpit", "2.0.1")
        .await
        .unwrap();
    let cat = s.us.catalog().await.unwrap();
    assert_eq!(cat.version(Channel::Stable, "cockpit"), Some("2.0.1"));
    s.us.agent_start_install(
        &vm,
        &InstallRequest {
            channel: Channel::Stable,
            apps,
            index_url: s.index_url(),
        },
    )
    .await
    .unwrap();
    let done = eventually(|| async {
        let st = s.us.agent_install_status(&vm).await?;
        match st.state {
            InstallState::Succeeded => Ok(st),
            _ => Err(GridError::RetryLater {
                code: ErrorCode::Busy,
                message: "running".into(),
            }),
        }
    })
    .await;
    assert_eq!(done.components["cockpit"], "2.0.1");
    let gw_step = done.steps.iter().find(|s| s.app == "gateway").unwrap();
    assert!(gw_step.log.iter().any(|l| l.contains("skipped")));

    // Unknown app in the channel: the step fails with a clear line.
    s.us.agent_start_install(
        &vm,
        &InstallRequest {
            channel: Channel::Prerelease,
            apps: vec!["nonexistent".into()],
            index_url: s.index_url(),
        },
    )
    .await
    .unwrap();
    let failed = eventually(|| async {
        let st = s.us.agent_install_status(&vm).await?;
        match st.state {
            InstallState::Failed => Ok(st),
            _ => Err(GridError::RetryLater {
                code: ErrorCode::Busy,
                message: "running".into(),
            }),
        }
    })
    .await;
    assert!(failed.steps[0].log.iter().any(|l| l.contains("no release")));
}

#[tokio::test]
async fn gateway_routes_by_host_and_the_web_side_is_gated() {
    let s = shim("").await;
    let (_, vm) = vm(&s.us, 12, "k").await;
    s.us.create_name_contract("bob-web1").await.unwrap();
    let mut gw = gw_deployment(US, "bob-web1", &format!("http://[{}]:8080", vm.mycelium_ip));
    let gcid = submit(&s.us, GW_NODE, &mut gw, "").await.unwrap();
    let d = settled(&s.us, GW_NODE, gcid).await;
    assert!(d.all_ok(), "{:?}", d.errors());
    let fqdn = d.workloads[0].gateway_result().unwrap().fqdn;
    assert_eq!(fqdn, "bob-web1.gent01.grid.localhost");

    let info = s.admin.info().await.unwrap();
    assert_eq!(info.gateway_port, s.running.gateway_addr.port());
    let (st, _) = via_gateway(&s, &format!("{fqdn}:{}", info.gateway_port), "/health").await;
    assert_eq!(st, 200);
    let (st, body) = via_gateway(&s, &fqdn, "/apps/cockpit").await;
    assert_eq!(st, 503);
    assert!(body.contains("gate not configured"), "{body}");
    let (st, _) = via_gateway(&s, "nobody.gent01.grid.localhost", "/").await;
    assert_eq!(st, 404);

    // The private listener is gated too.
    let route = s.admin.resolve_private(&vm.mycelium_ip).await.unwrap();
    let r = s
        .http
        .get(format!("{}/", route.web_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);

    // A gateway needs the name contract of the same twin.
    s.other.create_name_contract("carol-web").await.unwrap();
    let mut stolen = gw_deployment(US, "carol-web", "http://127.0.0.1:9/");
    let c = submit(&s.us, GW_NODE, &mut stolen, "").await.unwrap();
    let d = settled(&s.us, GW_NODE, c).await;
    assert_eq!(d.errors()[0].1, "twin id mismatch");
    // And a node with a domain.
    let mut nodomain = gw_deployment(US, "bob-web1", "http://127.0.0.1:9/");
    let c = submit(&s.us, 12, &mut nodomain, "").await.unwrap();
    let d = settled(&s.us, 12, c).await;
    assert!(d.errors()[0].1.contains("no domain"));
}

#[tokio::test]
async fn nothing_leaks_after_cleanup() {
    let s = shim("").await;
    let (vm_cid, vm) = vm(&s.us, 12, "k").await;
    let name = s.us.create_name_contract("dave-01").await.unwrap();
    let mut gw = gw_deployment(US, "dave-01", &format!("http://[{}]:8080", vm.mycelium_ip));
    let gcid = submit(&s.us, GW_NODE, &mut gw, "").await.unwrap();
    settled(&s.us, GW_NODE, gcid).await;
    s.admin
        .register_engine_token("voice", "dave", "dave-token-0123456789")
        .await
        .unwrap();
    let before = s.admin.inspect().await.unwrap();
    assert!(before.contracts.len() >= 3 && before.vms.len() == 1 && before.gateways.len() == 1);

    s.admin.revoke_engine_token("voice", "dave").await.unwrap();
    s.us.cancel_contract(name.contract_id).await.unwrap();
    s.us.cancel_contract(gcid).await.unwrap();
    s.us.cancel_contract(vm_cid).await.unwrap();
    let after = s.admin.inspect().await.unwrap();
    assert!(after.contracts.is_empty(), "{:?}", after.contracts);
    assert!(after.names.is_empty());
    assert!(after.vms.is_empty());
    assert!(after.gateways.is_empty());
    assert!(after.tokens.is_empty());
    let e = s.us.agent_install_status(&vm).await.unwrap_err();
    assert!(
        e.is_retry_later() || e.category() == ErrorCategory::NotFound,
        "{e:?}"
    );
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("gridshim-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("state.db");
    let _ = std::fs::remove_file(&db);
    let (cfg, _) = config("");
    let s = shim_cfg(cfg.clone(), Some(&db), true).await;
    let (cid, vm) = vm(&s.us, 12, "restart-key").await;
    s.us.create_name_contract("erin-01").await.unwrap();
    let gate = GateSettings {
        issuer: "http://issuer".into(),
        client_id: "cid".into(),
        client_secret: "cs".into(),
        allowed_accounts: vec!["erin".into()],
        public_url: "http://erin-01.gent01.grid.localhost:8880".into(),
    };
    s.us.agent_configure_gate(&vm, &gate).await.unwrap();
    s.admin
        .register_engine_token("embedder", "erin", "erin-token-0123456789")
        .await
        .unwrap();
    let before = s.admin.inspect().await.unwrap();
    let old_client = s.us;
    let mut cfg2 = cfg.clone();
    cfg2.listen = s.running.addr.to_string();
    s.running.shutdown().await;

    let s2 = shim_cfg(cfg2, Some(&db), false).await;
    let after = s2.admin.inspect().await.unwrap();
    assert_eq!(after.contracts, before.contracts);
    assert_eq!(after.names.len(), before.names.len());
    assert_eq!(after.tokens, before.tokens);
    assert_eq!(after.vms.len(), 1);
    // The old client's session died with the old process: it reconnects by itself.
    let d = old_client.get_deployment(12, cid).await.unwrap();
    assert!(d.all_ok());
    let view = eventually(|| s2.us.agent_config(&vm)).await;
    assert_eq!(view.gate.unwrap().allowed_accounts, vec!["erin"]);
    let ok = s2
        .admin
        .call_engine(
            "embedder",
            "erin",
            "erin-token-0123456789",
            &serde_json::json!({"input": "x"}),
        )
        .await
        .unwrap();
    assert_eq!(ok["tester"], "erin");
    // New contracts do not reuse ids.
    let c = s2.us.create_name_contract("erin-02").await.unwrap();
    assert!(
        before
            .contracts
            .iter()
            .all(|x| x.contract_id < c.contract_id)
    );
    s2.running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn realistic_profile_replays_the_same_flow_scaled() {
    // 6000× faster than the real grid: a block is 1 ms, a first image pull about 60 ms.
    let (mut cfg, _) = config("");
    cfg.profile = gridshim::timing::Profile::Realistic;
    cfg.time_scale = 6000.0;
    let s = shim_cfg(cfg, None, false).await;
    let (_, vm) = vm(&s.us, 12, "k").await;
    // The route appears some time after the node says ok: wait for it like a controller.
    eventually(|| s.us.agent_config(&vm)).await;
    s.us.agent_start_install(
        &vm,
        &InstallRequest {
            channel: Channel::Stable,
            apps: vec!["gateway".into(), "cockpit".into()],
            index_url: s.index_url(),
        },
    )
    .await
    .unwrap();
    let st = eventually(|| async {
        let st = s.us.agent_install_status(&vm).await?;
        match st.state {
            InstallState::Succeeded | InstallState::Failed => Ok(st),
            _ => Err(GridError::RetryLater {
                code: ErrorCode::Busy,
                message: "running".into(),
            }),
        }
    })
    .await;
    assert_eq!(st.state, InstallState::Succeeded);
}

/// Scale check in every `make test`: 200 VMs with gateways, at once, in one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_testers_at_once_on_instant() {
    scale_check(200).await;
}

/// The full scale check (run with `--ignored`; `make bench` also onboards 1,000 testers through
/// the controller): 1,000 VMs with gateways on the instant profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale check, takes a while on 2 cores"]
async fn a_thousand_testers_on_instant() {
    scale_check(1000).await;
}

/// `n` testers at once on one big node: VM, name, gateway and an agent call each.
async fn scale_check(n: u32) {
    let (mut cfg, _) = config("");
    let mut big = cfg.nodes[0].clone();
    big.id = 50;
    big.mru_gib = 4096;
    big.sru_gib = 100_000;
    big.cru = 4096;
    cfg.nodes.push(big);
    let s = std::sync::Arc::new(shim_cfg(cfg, None, false).await);
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let (_, vm) = vm(&s.us, 50, "k").await;
            let name = format!("t{i:04}");
            s.us.create_name_contract(&name).await.unwrap();
            let mut gw = gw_deployment(US, &name, &format!("http://[{}]:8080", vm.mycelium_ip));
            let c = submit(&s.us, 50, &mut gw, "").await.unwrap();
            assert!(settled(&s.us, 50, c).await.all_ok());
            s.us.agent_config(&vm).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let insp = s.admin.inspect().await.unwrap();
    assert_eq!(insp.vms.len(), n as usize);
    assert_eq!(insp.gateways.len(), n as usize);
    eprintln!("{n} testers in {:?}", started.elapsed());
}
