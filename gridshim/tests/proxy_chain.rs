//! The proxy and the chain over real HTTP: node listings, filters and pages in grid-proxy's own
//! shapes, gateway discovery, contracts and names and their errors, exact storage look-ups.

mod common;

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
