//! The warm pool (`HostPool.spec.warmPool`): machines built ahead of any tester, gate closed; a
//! matching Tester claims one and only its person-specific steps run; the pool refills, rolls to
//! a newer release without emptying, shrinks and goes away leaving nothing on the grid; a
//! controller killed mid-claim never gives a machine to two testers.

use std::{collections::BTreeSet, time::Duration};

use controller::resources::{HostPool, Tester, WarmMachine, WarmPhase, find_condition};
use e2e::{
    fixtures::{self, tester},
    stack::{Stack, TestNode},
    wait,
};
use kube::{Api, ResourceExt};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);

/// A HostPool over `nodes` keeping `size` machines warm, built `max_building` at a time.
fn warm_pool(name: &str, nodes: &[u32], size: u32, max_building: u32) -> String {
    fixtures::warm_pool(name, nodes, (20, 2), (size, max_building), None)
}

async fn apis(s: &Stack) -> (Api<WarmMachine>, Api<HostPool>) {
    let client = e2e::cluster::cluster().client().await;
    (
        Api::namespaced(client.clone(), &s.ns.name),
        Api::namespaced(client, &s.ns.name),
    )
}

fn ready(m: &WarmMachine) -> bool {
    m.spec.claim.is_none()
        && m.metadata.deletion_timestamp.is_none()
        && m.status
            .as_ref()
            .is_some_and(|s| s.phase == WarmPhase::Ready)
}

/// Waits until exactly `n` machines exist and every one is Ready and unclaimed.
async fn warm_ready(warm: &Api<WarmMachine>, n: usize) -> Vec<WarmMachine> {
    wait::all_until(warm, TIMEOUT, &format!("{n} warm machines ready"), |all| {
        all.len() == n && all.iter().all(ready)
    })
    .await
    .unwrap()
}

/// Live node contracts on the grid.
async fn contracts(s: &Stack) -> BTreeSet<u64> {
    s.grid
        .admin
        .inspect()
        .await
        .unwrap()
        .contracts
        .iter()
        .map(|c| c.contract_id)
        .collect()
}

/// Waits until the grid holds exactly `want` contracts.
async fn grid_holds(s: &Stack, want: &BTreeSet<u64>) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let now = contracts(s).await;
        if now == *want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the grid holds contracts {now:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The controller's `family` series for pool `pool` of the test's namespace (`more`: further
/// labels, e.g. `,reason="Channel"`).
async fn metric(s: &Stack, family: &str, more: &str) -> f64 {
    let series = format!(
        "{family}{{hostpool=\"pool\",namespace=\"{}\"{more}}}",
        s.ns.name
    );
    s.controller.as_ref().unwrap().metric(&series).await
}

/// Waits until nothing is left: no contract on the grid, no WarmMachine.
async fn nothing_left(s: &Stack, warm: &Api<WarmMachine>) {
    grid_holds(s, &BTreeSet::new()).await;
    wait::all_until(warm, TIMEOUT, "no warm machine left", |all| all.is_empty())
        .await
        .unwrap();
}

/// A stack on one node with a HostPool `pool` keeping `size` warm (`names` when given), once
/// they are all Ready: the stack, the WarmMachine API, the machines.
async fn one_node_pool(
    prefix: &str,
    size: u32,
    max_building: u32,
    names: Option<&str>,
) -> (Stack, Api<WarmMachine>, Vec<WarmMachine>) {
    let s = Stack::start(prefix, &[TestNode::new(1, 1000, 64)], "", &[]).await;
    let (warm, _) = apis(&s).await;
    s.apply(&fixtures::warm_pool(
        "pool",
        &[1],
        (20, 2),
        (size, max_building),
        names,
    ));
    let built = warm_ready(&warm, size as usize).await;
    (s, warm, built)
}

fn contract_of(m: &WarmMachine) -> u64 {
    m.status
        .as_ref()
        .and_then(|s| s.contract_id)
        .expect("a warm machine's contract")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_tester_claims_a_warm_machine_whose_gate_was_closed_until_then() {
    let s = Stack::start("warm", &[TestNode::new(1, 1000, 64)], "", &[]).await;
    let (warm, pools) = apis(&s).await;
    s.apply(&warm_pool("pool", &[1], 2, 2));
    let built = warm_ready(&warm, 2).await;
    let warm_contracts: BTreeSet<u64> = built.iter().map(contract_of).collect();

    // Before its claim a warm machine serves nothing but /health: no gate, no apps.
    let inspection = s.grid.admin.inspect().await.unwrap();
    let http = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(s.grid.private_proxy()).unwrap())
        .build()
        .unwrap();
    for vm in inspection.vms.iter().filter(|v| v.name == "vm") {
        assert!(warm_contracts.contains(&vm.contract_id));
        assert!(!vm.gate_configured, "a warm machine has no gate yet");
        let base = format!("http://[{}]:8080", vm.mycelium_ip);
        let root = http.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(root.status(), 503, "a warm machine serves no app");
        let health = http.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        assert!(
            vm.components.contains_key("cockpit"),
            "its apps are installed: {:?}",
            vm.components
        );
    }

    s.apply(&tester("w", "wendy", "pool").build());
    let t = wait::ready(&s.api, "w", TIMEOUT).await.unwrap();
    let status = t.status.clone().unwrap();
    let took = status.warm_start.clone().expect("a warm start");
    assert!(built.iter().any(|m| m.name_any() == took.machine));
    let contract = status.machine.as_ref().and_then(|m| m.contract_id).unwrap();
    assert!(
        warm_contracts.contains(&contract),
        "the tester runs on the warm machine's contract"
    );
    let scheduled = find_condition(&status.conditions, "Scheduled").unwrap();
    assert_eq!(scheduled.reason, "ClaimedWarmMachine");
    assert!(status.installed.is_some(), "its versions are recorded");
    e2e::probe::gate_sends_strangers_to(status.url.as_deref().unwrap(), &s.forge.url).await;
    let events = s.ns.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=w,reason=ClaimedWarmMachine",
        "-o",
        "name",
    ]);
    assert!(!events.stdout.is_empty(), "an Event says which machine");
    let claims = metric(&s, "sandbox_warm_claims_total", "").await;
    assert_eq!(claims, 1.0);

    // The claimed WarmMachine is gone and the pool is back to two ready machines.
    let refilled = warm_ready(&warm, 2).await;
    assert!(refilled.iter().all(|m| m.name_any() != took.machine));
    let pool = wait::object_until(&pools, "pool", TIMEOUT, "showing 2 warm", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.warm.as_ref())
            .is_some_and(|w| w.ready == 2 && w.desired == 2)
    })
    .await
    .unwrap();
    assert_eq!(pool.status.unwrap().warm.unwrap().warming, 0);

    // Deleting the tester cancels its (formerly warm) machine; the pool's stay.
    let want: BTreeSet<u64> = refilled.iter().map(contract_of).collect();
    assert!(contracts(&s).await.contains(&contract));
    assert!(s.ns.kubectl(&["delete", "tester", "w"]).status.success());
    wait::gone(&s.api, "w", TIMEOUT).await.unwrap();
    grid_holds(&s, &want).await;

    // Deleting the pool cancels its warm machines: nothing is left on the grid.
    assert!(
        s.ns.kubectl(&["delete", "hostpool", "pool"])
            .status
            .success()
    );
    nothing_left(&s, &warm).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tester_that_does_not_match_starts_cold_and_says_why() {
    let (s, warm, built) = one_node_pool("warmcold", 1, 1, None).await;
    s.apply(
        &tester("c", "carla", "pool")
            .with("channel", json!("prerelease"))
            .build(),
    );
    let t = wait::ready(&s.api, "c", TIMEOUT).await.unwrap();
    let status = t.status.unwrap();
    assert!(status.warm_start.is_none());
    let scheduled = find_condition(&status.conditions, "Scheduled").unwrap();
    assert!(
        scheduled
            .message
            .contains("started cold: its channel differs from the warm pool's (stable)"),
        "{}",
        scheduled.message
    );
    let cold = metric(&s, "sandbox_cold_starts_total", ",reason=\"Channel\"").await;
    assert_eq!(cold, 1.0);
    // The warm machine is untouched, still there for a matching tester.
    let still = warm_ready(&warm, 1).await;
    assert_eq!(still[0].name_any(), built[0].name_any());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_rolls_the_pool_one_by_one_without_emptying_it_and_a_shrink_cancels_the_rest() {
    let (s, warm, old) = one_node_pool("warmroll", 2, 1, None).await;
    let old_names: BTreeSet<String> = old.iter().map(|m| m.name_any()).collect();
    let old_version = old[0].status.as_ref().unwrap().versions["cockpit"].clone();

    s.grid
        .admin
        .publish(gridapi::catalog::Channel::Stable, "cockpit", "9.9.9")
        .await
        .unwrap();
    // Every state the watch shows during the roll has a machine to claim.
    let fewest = std::cell::Cell::new(usize::MAX);
    let rolled = wait::all_until(&warm, Duration::from_secs(180), "rolled to 9.9.9", |all| {
        let claimable = all.iter().filter(|m| ready(m)).count();
        fewest.set(fewest.get().min(claimable));
        all.len() == 2
            && all.iter().all(|m| {
                ready(m)
                    && !old_names.contains(&m.name_any())
                    && m.status.as_ref().unwrap().versions["cockpit"] == "9.9.9"
            })
    })
    .await
    .unwrap();
    assert_ne!(old_version, "9.9.9");
    assert!(
        fewest.get() >= 2,
        "the roll left fewer than 2 machines to claim (fewest seen: {})",
        fewest.get()
    );
    let want: BTreeSet<u64> = rolled.iter().map(contract_of).collect();
    grid_holds(&s, &want).await;

    // Shrinking to one cancels the other's contract.
    assert!(
        s.ns.kubectl(&[
            "patch",
            "hostpool",
            "pool",
            "--type=merge",
            "-p",
            r#"{"spec":{"warmPool":{"size":1}}}"#,
        ])
        .status
        .success()
    );
    let left = warm_ready(&warm, 1).await;
    grid_holds(&s, &BTreeSet::from([contract_of(&left[0])])).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_controller_killed_mid_claim_gives_no_machine_twice_and_leaks_nothing() {
    let (mut s, warm, built) = one_node_pool("warmkill", 3, 3, None).await;
    let warm_contracts: BTreeSet<u64> = built.iter().map(contract_of).collect();

    let names = ["k1", "k2", "k3"];
    let docs: Vec<String> = names
        .iter()
        .zip(["kim", "kai", "kit"])
        .map(|(n, a)| tester(n, a, "pool").build())
        .collect();
    s.apply(&docs.join("\n---\n"));
    // The moment a claim is written, the controller dies without any clean-up.
    wait::all_until(&warm, TIMEOUT, "claimed", |all| {
        all.iter().any(|m| m.spec.claim.is_some())
    })
    .await
    .unwrap();
    s.controller().kill_and_restart().unwrap();

    let mut taken = BTreeSet::new();
    for n in names {
        let t: Tester = wait::ready(&s.api, n, TIMEOUT).await.unwrap();
        let contract = t
            .status
            .as_ref()
            .and_then(|s| s.machine.as_ref())
            .and_then(|m| m.contract_id)
            .unwrap();
        assert!(taken.insert(contract), "contract {contract} given twice");
    }
    // Whatever each tester got (warm or, once the pool ran dry, cold), no two share a machine,
    // and every warm machine claimed is held by exactly one tester.
    let claimed: BTreeSet<u64> = warm_contracts.intersection(&taken).copied().collect();
    assert!(
        !claimed.is_empty(),
        "at least one tester took a warm machine"
    );

    // Deleting the testers and the pool leaves nothing on the grid.
    for n in names {
        assert!(s.ns.kubectl(&["delete", "tester", n]).status.success());
    }
    assert!(
        s.ns.kubectl(&["delete", "hostpool", "pool"])
            .status
            .success()
    );
    for n in names {
        wait::gone(&s.api, n, TIMEOUT).await.unwrap();
    }
    nothing_left(&s, &warm).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_neutral_names_the_tester_answers_at_the_name_its_warm_machine_registered() {
    let (s, warm, built) = one_node_pool("warmname", 1, 1, Some("neutral")).await;
    let w = built[0].status.clone().unwrap();
    let (name, url) = (w.gateway_name.clone().unwrap(), w.url.clone().unwrap());
    assert!(name.starts_with('w') && !name.contains("nora"), "{name}");
    // Its three contracts: the VM, the name, the gateway.
    let machine_contracts: BTreeSet<u64> =
        [w.contract_id, w.name_contract_id, w.gateway_contract_id]
            .into_iter()
            .map(Option::unwrap)
            .collect();
    assert_eq!(contracts(&s).await, machine_contracts);

    s.apply(&tester("n", "nora", "pool").build());
    let t = wait::ready(&s.api, "n", TIMEOUT).await.unwrap();
    let status = t.status.clone().unwrap();
    assert_eq!(status.gateway_name.as_deref(), Some(name.as_str()));
    assert_eq!(status.url.as_deref(), Some(url.as_str()));
    let m = status.machine.clone().unwrap();
    assert_eq!(
        [m.contract_id, m.name_contract_id, m.gateway_contract_id]
            .into_iter()
            .map(Option::unwrap)
            .collect::<BTreeSet<_>>(),
        machine_contracts,
        "the tester runs on the warm machine's VM, name and gateway: nothing was remade"
    );
    e2e::probe::gate_sends_strangers_to(&url, &s.forge.url).await;

    // A tester asking for its own name starts cold here, and says why.
    s.apply(
        &tester("c", "cole", "pool")
            .with("gatewayName", json!("colecustom"))
            .build(),
    );
    let c = wait::ready(&s.api, "c", TIMEOUT).await.unwrap();
    let cs = c.status.unwrap();
    assert!(cs.warm_start.is_none());
    assert_eq!(cs.gateway_name.as_deref(), Some("colecustom"));
    let scheduled = find_condition(&cs.conditions, "Scheduled").unwrap();
    assert!(
        scheduled.message.contains("asks for its own gatewayName"),
        "{}",
        scheduled.message
    );

    // Deleting both testers and the pool leaves nothing on the grid.
    for n in ["n", "c"] {
        assert!(s.ns.kubectl(&["delete", "tester", n]).status.success());
    }
    assert!(
        s.ns.kubectl(&["delete", "hostpool", "pool"])
            .status
            .success()
    );
    for n in ["n", "c"] {
        wait::gone(&s.api, n, TIMEOUT).await.unwrap();
    }
    nothing_left(&s, &warm).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_machine_that_fails_its_health_check_is_replaced() {
    use gridshim::wire::NodeCondition;
    let nodes = [TestNode::new(1, 1000, 64), TestNode::new(2, 1000, 64)];
    let s = Stack::start("warmsick", &nodes, "", &[("APP_HEALTH_INTERVAL", "1s")]).await;
    let (warm, _) = apis(&s).await;
    s.apply(&warm_pool("pool", &[1, 2], 1, 1));
    let sick = warm_ready(&warm, 1).await.remove(0);
    let node = sick
        .status
        .as_ref()
        .unwrap()
        .placement
        .as_ref()
        .unwrap()
        .node_id;

    s.grid
        .admin
        .set_node(node, &NodeCondition::down())
        .await
        .unwrap();
    // Replaced by a machine on the other node; the sick one's contract is cancelled.
    let replaced = match wait::all_until(&warm, TIMEOUT, "replaced", |all| {
        all.len() == 1 && ready(&all[0]) && all[0].name_any() != sick.name_any()
    })
    .await
    {
        Ok(r) => r,
        Err(e) => panic!(
            "{e}\n{}\n{}",
            serde_yaml::to_string(&warm.list(&Default::default()).await.unwrap().items).unwrap(),
            s.controller.as_ref().unwrap().output()
        ),
    };
    let on = replaced[0]
        .status
        .as_ref()
        .unwrap()
        .placement
        .as_ref()
        .unwrap()
        .node_id;
    assert_ne!(on, node);
    grid_holds(&s, &BTreeSet::from([contract_of(&replaced[0])])).await;
}
