//! Integration tests over real HTTP, one per face: proxy, chain, node, VM agent and install,
//! data plane, engines, catalog, inspection, and a restart over the same database.

mod common;

use std::collections::BTreeMap;

use common::*;

#[tokio::test]
async fn proxy_lists_filters_and_pages_nodes() {
    let s = shim("").await;
    let all = s.us.list_nodes(&NodeFilter::default()).await.unwrap();
    assert_eq!(all.items.len(), 4);
    let gw =
        s.us.list_nodes(&NodeFilter {
            domain: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        gw.items.iter().map(|n| n.info.node_id).collect::<Vec<_>>(),
        vec![11, 13]
    );
    let farm2 =
        s.us.list_nodes(&NodeFilter {
            farm_ids: vec![2],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(farm2.items.iter().all(|n| n.info.farm_id == 2));
    // 250 GiB SSD less the 20 GiB reserve leaves 230 GiB on node 13.
    let big =
        s.us.list_nodes(&NodeFilter {
            free_sru: Some(231 * GIB),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!big.items.iter().any(|n| n.info.node_id == 13));
    let up =
        s.us.list_nodes(&NodeFilter {
            status: vec![NodeStatus::Up],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!up.items.iter().any(|n| n.info.node_id == 14));
    let page =
        s.us.list_nodes_page(&NodeFilter::default(), Limit::page(2, 3))
            .await
            .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.count, Some(4));
    let n = s.us.get_node(13).await.unwrap();
    assert_eq!(
        n.free().mru,
        14 * GIB,
        "16 GiB less the 2 GiB floor reserve"
    );
    let e = s.us.get_node(999).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::NotFound);
}

#[tokio::test]
async fn chain_contracts_names_and_errors() {
    let s = shim("").await;
    for (name, code) in [
        ("ab", ErrorCode::NameContractNameTooShort),
        ("Alice", ErrorCode::NameNotValid),
        ("alice.smith", ErrorCode::NameNotValid),
    ] {
        let e = s.us.create_name_contract(name).await.unwrap_err();
        assert_eq!(e.code(), code, "{name}");
        assert_eq!(e.category(), ErrorCategory::Fatal);
    }
    let long = "a".repeat(65);
    assert_eq!(
        s.us.create_name_contract(&long).await.unwrap_err().code(),
        ErrorCode::NameContractNameTooLong
    );

    let c = s.us.create_name_contract("alice-x1").await.unwrap();
    assert_eq!(c.twin_id, US);
    // Names are global: another twin cannot take it, and learns who holds it.
    match s.other.create_name_contract("alice-x1").await.unwrap_err() {
        GridError::NameExists {
            name,
            owner_twin,
            contract_id,
            message,
        } => {
            assert_eq!(name, "alice-x1");
            assert_eq!(owner_twin, US);
            assert_eq!(contract_id, c.contract_id);
            assert!(message.contains("NameExists"));
        }
        e => panic!("want NameExists, got {e:?}"),
    }
    let owner = s.us.name_owner("alice-x1").await.unwrap().unwrap();
    assert_eq!((owner.contract_id, owner.twin_id), (c.contract_id, US));
    assert_eq!(s.us.name_owner("nobody-here").await.unwrap(), None);

    // Only the owner may cancel; cancelling frees the name at once.
    let e = s.other.cancel_contract(c.contract_id).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::TwinNotAuthorizedToCancelContract);
    s.us.cancel_contract(c.contract_id).await.unwrap();
    let e = s.us.cancel_contract(c.contract_id).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ContractNotExists);
    assert_eq!(e.category(), ErrorCategory::NotFound);
    s.other.create_name_contract("alice-x1").await.unwrap();

    // Node contracts: metadata limit and uniqueness of (node, hash).
    let req = NodeContractRequest {
        node_id: 12,
        deployment_hash: "h1".into(),
        metadata: "x".repeat(513),
    };
    let e = s.us.create_node_contract(&req).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ContractMetadataTooLong);
    let req = NodeContractRequest {
        metadata: "tester=uid-123".into(),
        ..req
    };
    let nc = s.us.create_node_contract(&req).await.unwrap();
    let e = s.us.create_node_contract(&req).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ContractIsNotUnique);
    assert_eq!(e.category(), ErrorCategory::Conflict);

    // Adoption after a controller restart: find our contracts by metadata.
    let mine = s.us.list_my_contracts().await.unwrap();
    assert!(
        mine.iter()
            .any(|c| c.contract_id == nc.contract_id && data_of(c) == Some("tester=uid-123"))
    );
    assert!(mine.iter().all(|c| c.twin_id == US));
    // ... or one tester's only, by the proxy's exact `deployment_data` filter.
    let theirs = NodeContractRequest {
        node_id: 12,
        deployment_hash: "h2".into(),
        metadata: "tester=uid-456".into(),
    };
    let other = s.us.create_node_contract(&theirs).await.unwrap();
    for (data, id) in [
        ("tester=uid-123", nc.contract_id),
        ("tester=uid-456", other.contract_id),
    ] {
        let only = s.us.list_my_contracts_with(Some(data)).await.unwrap();
        assert_eq!(only.iter().map(|c| c.contract_id).collect::<Vec<_>>(), [id]);
    }
    assert!(
        s.us.list_my_contracts_with(Some("tester=uid"))
            .await
            .unwrap()
            .is_empty(),
        "exact, not a prefix"
    );
    assert_eq!(
        s.us.get_contract(nc.contract_id).await.unwrap().state,
        gridapi::chain::ContractState::Created
    );
}

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
async fn engines_accept_only_the_testers_own_token() {
    let s = shim("").await;
    let body = serde_json::json!({ "input": "hello" });
    s.admin
        .register_engine_token("embedder", "alice", "alice-token-0123456789")
        .await
        .unwrap();
    s.admin
        .register_engine_token("embedder", "bob", "bob-token-0123456789")
        .await
        .unwrap();
    let ok = s
        .admin
        .call_engine("embedder", "alice", "alice-token-0123456789", &body)
        .await
        .unwrap();
    assert_eq!(ok["tester"], "alice");
    let no = s
        .admin
        .call_engine("embedder", "alice", "", &body)
        .await
        .unwrap_err();
    assert_eq!(no.code(), ErrorCode::Unauthenticated);
    assert_eq!(no.message(), "missing bearer token");
    let wrong = s
        .admin
        .call_engine("embedder", "alice", "guessed-token-000000", &body)
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), ErrorCode::Unauthenticated);
    assert_eq!(wrong.message(), "invalid token");
    let theirs = s
        .admin
        .call_engine("embedder", "alice", "bob-token-0123456789", &body)
        .await
        .unwrap_err();
    assert_eq!(theirs.code(), ErrorCode::Unauthorized);
    assert_eq!(theirs.message(), "token belongs to another tester");
    // A token is bound to its engine too.
    let other_engine = s
        .admin
        .call_engine("voice", "alice", "alice-token-0123456789", &body)
        .await
        .unwrap_err();
    assert_eq!(other_engine.code(), ErrorCode::Unauthenticated);

    s.admin
        .revoke_engine_token("embedder", "alice")
        .await
        .unwrap();
    s.admin
        .revoke_engine_token("embedder", "alice")
        .await
        .unwrap();
    let revoked = s
        .admin
        .call_engine("embedder", "alice", "alice-token-0123456789", &body)
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), ErrorCode::Unauthenticated);
    let inspection = s.admin.inspect().await.unwrap();
    assert_eq!(inspection.tokens.len(), 1);
    let raw = serde_json::to_string(&inspection).unwrap();
    assert!(!raw.contains("bob-token"), "inspection prints a token");
}

#[tokio::test]
async fn engine_without_token_store_refuses_to_listen() {
    let (mut cfg, _) = config("");
    cfg.engines.token_store_unavailable = vec!["voice".into()];
    let s = shim_cfg(cfg, None, false).await;
    let engines = s.admin.engines().await.unwrap();
    let voice = engines.iter().find(|e| e.name == "voice").unwrap();
    assert!(!voice.listening && !voice.token_store_available);
    assert!(
        engines
            .iter()
            .find(|e| e.name == "embedder")
            .unwrap()
            .listening
    );
    // Nothing answers on its address, and its registry refuses for now.
    assert!(
        s.http
            .post(format!("{}{}", voice.url, voice.call_path))
            .send()
            .await
            .is_err()
    );
    let e = s
        .admin
        .register_engine_token("voice", "alice", "alice-token-0123456789")
        .await
        .unwrap_err();
    assert!(e.is_retry_later(), "{e:?}");

    // The store comes back: the engine opens; it goes away again: the engine closes.
    s.admin.set_token_store("voice", true).await.unwrap();
    s.admin
        .register_engine_token("voice", "alice", "alice-token-0123456789")
        .await
        .unwrap();
    let ok = s
        .admin
        .call_engine(
            "voice",
            "alice",
            "alice-token-0123456789",
            &serde_json::json!({}),
        )
        .await
        .unwrap();
    assert_eq!(ok["tester"], "alice");
    s.admin.set_token_store("voice", false).await.unwrap();
    let e = eventually(|| async {
        match s
            .admin
            .call_engine(
                "voice",
                "alice",
                "alice-token-0123456789",
                &serde_json::json!({}),
            )
            .await
        {
            Err(e) if e.is_retry_later() => Ok(e),
            Ok(_) => Err(GridError::Fatal {
                code: ErrorCode::Internal,
                message: "still open".into(),
            }),
            Err(e) => panic!("{e:?}"),
        }
    })
    .await;
    assert_eq!(e.code(), ErrorCode::NodeUnreachable);
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

/// gridshim's proxy answers as grid-proxy does, read as raw JSON: the paths, the array bodies,
/// the `count` header, repeated list keys as tfgrid-sdk-go's client writes them, the field
/// names, `publicConfig.domain` of `""`, nested capacity on `/nodes/{id}`, `{"error": ...}`.
#[tokio::test]
async fn proxy_answers_in_grid_proxys_own_shapes() {
    let s = shim("").await;
    let get = |path: String| {
        let http = s.http.clone();
        let url = format!("{}{path}", s.url());
        async move { http.get(url).send().await.unwrap() }
    };
    let r = get("/nodes?farm_ids=1&farm_ids=2&ret_count=true&size=2&page=1".into()).await;
    assert_eq!(r.headers()["count"], "4");
    assert_eq!(r.headers()["size"], "2");
    assert_eq!(r.headers()["pages"], "2");
    let page: serde_json::Value = r.json().await.unwrap();
    assert_eq!(page.as_array().unwrap().len(), 2);
    let n12 = &get("/nodes?node_ids=12".into())
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()[0];
    assert_eq!(n12["nodeId"], 12);
    assert_eq!(n12["twinId"], 1012);
    assert_eq!(
        n12["publicConfig"]["domain"], "",
        "no domain is an empty string"
    );
    assert!(n12["total_resources"]["sru"].is_u64());
    assert_eq!(n12["status"], "up");
    let one: serde_json::Value = get("/nodes/12".into()).await.json().await.unwrap();
    assert!(one["capacity"]["total_resources"]["mru"].is_u64());
    assert!(one.get("total_resources").is_none(), "nested only");
    let gws: serde_json::Value = get("/gateways".into()).await.json().await.unwrap();
    let ids: Vec<u64> = gws
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["nodeId"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [11, 13]);
    let missing = get("/nodes/999".into()).await;
    assert_eq!(missing.status().as_u16(), 404);
    let e: serde_json::Value = missing.json().await.unwrap();
    assert!(e["error"].is_string(), "{e}");

    let mut d = vm_deployment(US, "k", &seed(), 2);
    let cid = submit(&s.us, 12, &mut d, "tester=uid-9").await.unwrap();
    let contracts: serde_json::Value =
        get(format!("/contracts?twin_id={US}&state=Created&type=node"))
            .await
            .json()
            .await
            .unwrap();
    let c = contracts
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["contract_id"] == cid)
        .expect("listed");
    assert_eq!(c["type"], "node");
    assert_eq!(c["state"], "Created");
    assert_eq!(c["details"]["nodeId"], 12);
    assert_eq!(c["details"]["deployment_data"], "tester=uid-9");
    assert_eq!(c["details"]["deployment_hash"].as_str().unwrap().len(), 32);
    let others: serde_json::Value = get(format!("/contracts?twin_id={OTHER}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(others, serde_json::json!([]));
    let farms: serde_json::Value = get("/farms".into()).await.json().await.unwrap();
    assert_eq!(farms.as_array().unwrap().len(), 2);
    assert!(farms[0]["farmId"].is_u64());
}

/// The chain face answers with the pallet's types and its exact look-ups see a contract at
/// once, by name and by node and hash.
#[tokio::test]
async fn chain_storage_look_ups_are_exact() {
    let s = shim("").await;
    let mut d = vm_deployment(US, "k", &seed(), 2);
    let hash = d.challenge_hash();
    let cid = submit(&s.us, 12, &mut d, "x").await.unwrap();
    let chain = &s.us.grid.chain;
    assert_eq!(
        chain.contract_id_by_node_hash(12, &hash).await.unwrap(),
        Some(cid)
    );
    assert_eq!(
        chain.contract_id_by_node_hash(11, &hash).await.unwrap(),
        None
    );
    let c = chain.contract(cid).await.unwrap().unwrap();
    assert_eq!(c.node_contract().unwrap().deployment_hash, hash);
    assert_eq!(c.state, gridapi::chain::ContractState::Created);
    let name = s.us.create_name_contract("kim-01").await.unwrap();
    assert_eq!(
        chain.contract_id_by_name("kim-01").await.unwrap(),
        Some(name.contract_id)
    );
    s.us.cancel_contract(cid).await.unwrap();
    assert_eq!(chain.contract(cid).await.unwrap(), None);
    assert_eq!(
        chain.contract_id_by_node_hash(12, &hash).await.unwrap(),
        None
    );
}

/// The gateway listing filters by farm, status and health as the controller asks it.
#[tokio::test]
async fn gateways_of_a_farm_that_are_up_and_healthy() {
    let s = shim("").await;
    let f = NodeFilter {
        farm_ids: vec![2],
        status: vec![NodeStatus::Up],
        healthy: Some(true),
        ..Default::default()
    };
    let page =
        s.us.grid
            .proxy
            .gateways(&f, Limit::page(1, 1000))
            .await
            .unwrap();
    let ids: Vec<u32> = page.items.iter().map(|n| n.info.node_id).collect();
    assert_eq!(ids, [13]);
}
