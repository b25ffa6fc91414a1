//! The controller under the conditions of the field: placement by real disk, a pool that fills,
//! rebuilds, the welcome email, and secrets hygiene. Each test has its own namespace, gridshim and
//! controller process; the Forge (Gitea) is shared. Grid faults, SIGKILLs and lost gates and nodes
//! are in `faults.rs`.

use std::time::Duration;

use controller::resources::{HostPool, Tester, find_condition};
use e2e::{
    fixtures::{ai_keys, host_pool, shared_engine, tester},
    smtp::SmtpSink,
    stack::{Stack, TWIN_MNEMONIC, TWIN_SECRET, TestNode},
    wait::{self, condition_of},
};
use gridshim::wire::NodeCondition;
use kube::api::ListParams;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread")]
async fn placement_follows_free_disk_and_a_full_pool_creates_nothing() {
    let nodes = [
        TestNode::new(1, 300, 64),
        TestNode::new(2, 1000, 64),
        TestNode::new(3, 60, 64),
        TestNode::new(4, 1000, 64),
    ];
    let s = Stack::start("placement", &nodes, "", &[]).await;
    s.grid
        .admin
        .set_node(4, &NodeCondition::down())
        .await
        .unwrap();
    s.apply(&host_pool("pool", &[1, 2], 50, 2));
    s.apply(&host_pool("tiny", &[3], 50, 2));
    s.apply(&host_pool("down", &[4], 50, 2));
    s.apply(&tester("a", "a", "pool").build());
    s.apply(&tester("b", "b", "tiny").build());
    s.apply(&tester("c", "c", "missing").build());
    s.apply(&tester("d", "d", "down").build());

    let a = wait::condition(&s.api, "a", "Scheduled", "True", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        a.status
            .as_ref()
            .unwrap()
            .placement
            .as_ref()
            .unwrap()
            .node_id,
        2,
        "spread takes the node with more free disk"
    );
    let b = wait::condition(&s.api, "b", "Scheduled", "False", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(condition_of(&b, "Scheduled").1, "InsufficientDisk");
    let c = wait::condition(&s.api, "c", "Scheduled", "False", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(condition_of(&c, "Scheduled").1, "HostPoolNotFound");
    let d = wait::condition(&s.api, "d", "Scheduled", "False", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(condition_of(&d, "Scheduled").1, "NoNodeOnline");
    for t in [&b, &c, &d] {
        let st = t.status.as_ref().unwrap();
        assert!(st.placement.is_none() && st.machine.is_none(), "{st:?}");
        assert_eq!(st.phase.as_deref(), Some("Pending"));
    }
    wait::ready(&s.api, "a", TIMEOUT).await.unwrap();
    // Nothing on the grid for the three that could not be placed.
    let inspect = s.grid.admin.inspect().await.unwrap();
    assert_eq!(inspect.vms.len(), 1, "{:?}", inspect.vms);
    assert_eq!(inspect.names.len(), 1, "{:?}", inspect.names);
    assert!(inspect.vms.iter().all(|v| v.node_id == 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_testers_on_room_for_fifteen_and_freed_room_is_used() {
    // 20 GiB SSD reserve + 15 × 10 GiB + 5 GiB spare: exactly 15 testers of 10 GiB fit.
    let s = Stack::start("fifteen", &[TestNode::new(1, 175, 256)], "", &[]).await;
    s.apply(&host_pool("pool", &[1], 10, 1));
    let docs: Vec<String> = (0..20)
        .map(|i| tester(&format!("t{i:02}"), &format!("user{i}"), "pool").build())
        .collect();
    let list = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{}]}}",
        docs.join(",")
    );
    s.apply(&list);

    let counts = |ts: &[Tester]| {
        let ready = ts
            .iter()
            .filter(|t| condition_of(t, "Ready").0 == "True")
            .count();
        let unschedulable = ts
            .iter()
            .filter(|t| {
                let (status, reason, _) = condition_of(t, "Scheduled");
                status == "False" && reason == "InsufficientDisk"
            })
            .count();
        (ready, unschedulable)
    };
    wait::all_until(&s.api, TIMEOUT, "15 Ready and 5 unschedulable", |ts| {
        counts(ts) == (15, 5)
    })
    .await
    .unwrap();
    let inspect = s.grid.admin.inspect().await.unwrap();
    assert_eq!(inspect.vms.len(), 15, "exactly 15 machines");
    let node = &s.grid.admin_node(1).await;
    assert!(
        node.used_resources.sru <= node.total_resources.sru,
        "node over-committed: {node:?}"
    );
    // The HostPool's counts are written at most every 2 s while they change (so they may be
    // that late): wait for them, then read them as an operator would.
    let pools: kube::Api<HostPool> =
        kube::Api::namespaced(e2e::cluster::cluster().client().await, &s.ns.name);
    wait::object_until(&pools, "pool", TIMEOUT, "counting 15 testers", |p| {
        p.status
            .as_ref()
            .is_some_and(|st| st.testers == 15 && st.fit == 0)
    })
    .await
    .unwrap();
    let pool = s.ns.kubectl(&[
        "get",
        "hostpool",
        "pool",
        "-o",
        "jsonpath={.status.fit}/{.status.testers}",
    ]);
    assert_eq!(String::from_utf8_lossy(&pool.stdout), "0/15");

    // Freeing five places lets the five waiting testers in, without any poke.
    let ready: Vec<String> = s
        .api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|t| condition_of(t, "Ready").0 == "True")
        .map(|t| t.metadata.name.unwrap())
        .collect();
    for name in &ready[..5] {
        assert!(
            s.ns.kubectl(&["delete", "tester", name, "--wait=false"])
                .status
                .success()
        );
    }
    wait::all_until(&s.api, TIMEOUT, "15 Ready after freeing 5", |ts| {
        ts.len() == 15 && counts(ts) == (15, 0)
    })
    .await
    .unwrap();
    assert_eq!(s.grid.admin.inspect().await.unwrap().vms.len(), 15);
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_keeps_address_and_account_and_a_channel_change_reinstalls() {
    let s = Stack::start("rebuild", &[TestNode::new(1, 1000, 64)], "", &[]).await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    s.apply(&ai_keys(&[("openai", "sk-1"), ("anthropic", "sk-2")]));
    s.apply(&shared_engine("embedder", &s.grid.engine_url("embedder")));
    s.apply(
        &tester("r", "Rita", "pool")
            .with("aiProviders", json!(["openai", "anthropic"]))
            .with("sharedEngines", json!(["embedder"]))
            .with(
                "sshKey",
                json!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRita rita@laptop"),
            )
            .build(),
    );
    let before = wait::ready(&s.api, "r", TIMEOUT)
        .await
        .unwrap()
        .status
        .unwrap();
    let old_contract = before.machine.as_ref().unwrap().contract_id;

    assert!(
        s.ns.kubectl(&["annotate", "tester", "r", "sandbox.hero.dev/rebuild=1"])
            .status
            .success()
    );
    let after = wait::tester_until(&s.api, "r", TIMEOUT, "rebuilt and Ready", |t| {
        let st = t.status.as_ref();
        st.and_then(|s| s.machine.as_ref()).is_some_and(|m| {
            m.build.as_deref() == Some("1")
                && m.contract_id.is_some()
                && m.contract_id != old_contract
        }) && condition_of(t, "Ready").0 == "True"
    })
    .await
    .unwrap()
    .status
    .unwrap();
    assert_eq!(after.url, before.url, "same address");
    assert_eq!(after.gateway_name, before.gateway_name, "same gateway name");
    let inspect = s.grid.admin.inspect().await.unwrap();
    assert_eq!(
        inspect.vms.len(),
        1,
        "the old VM is gone: {:?}",
        inspect.vms
    );
    assert!(inspect.vms[0].gate_configured);
    // The new machine holds the same token (by digest), the engine, both AI keys and both SSH
    // keys: the access settings followed the rebuild.
    let view = s.agent_view(&inspect.vms[0]).await;
    let token = s.ns.secret_value("r-engine-token", "token");
    assert_eq!(
        view.engine_token_digests.get("embedder"),
        Some(&hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&token))),
        "{view:?}"
    );
    assert_eq!(
        view.engines.get("embedder"),
        Some(&s.grid.engine_url("embedder"))
    );
    assert_eq!(view.ai_providers.len(), 2, "{view:?}");
    assert_eq!(view.ssh_keys, 2, "support key and the tester's own");

    // Channel change: reinstalled in place, recorded versions follow.
    assert!(
        s.ns.kubectl(&[
            "patch",
            "tester",
            "r",
            "--type=merge",
            "-p",
            r#"{"spec":{"channel":"prerelease"}}"#
        ])
        .status
        .success()
    );
    let t = wait::tester_until(&s.api, "r", TIMEOUT, "reinstalled from prerelease", |t| {
        t.status
            .as_ref()
            .and_then(|s| s.installed.as_ref())
            .is_some_and(|i| i.channel == controller::resources::Channel::Prerelease)
            && condition_of(t, "Ready").0 == "True"
    })
    .await
    .unwrap();
    assert_eq!(
        t.status.unwrap().machine.unwrap().contract_id,
        after.machine.unwrap().contract_id,
        "in place"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn welcome_email_goes_once_and_no_secret_shows_in_status_events_or_logs() {
    let smtp = SmtpSink::start().await;
    let env = [("SMTP_URL", smtp.url.as_str())];
    let mut s = Stack::start("email", &[TestNode::new(1, 1000, 64)], "", &env).await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    s.apply(&shared_engine("voice", &s.grid.engine_url("voice")));
    s.apply(&ai_keys(&[("openai", "sk-openai-e2e-secret-9931")]));
    // An account name of its own: the Forge outlives test runs.
    let nina = format!("Nina{}", std::process::id());
    let t = tester("new", &nina, "pool")
        .with("accountType", json!("New"))
        .with("accountDeletionPolicy", json!("Delete"))
        .with("welcomeEmail", json!(true))
        .with("sharedEngines", json!(["voice"]))
        .with("aiProviders", json!(["openai", "anthropic"]));
    s.apply(&t.build());
    // anthropic has no key: reported, not skipped.
    let missing = wait::condition(&s.api, "new", "TokensRegistered", "False", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(condition_of(&missing, "TokensRegistered").1, "AIKeyMissing");
    let msg = missing
        .status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, "TokensRegistered"))
        .unwrap()
        .message
        .clone();
    assert!(msg.contains("anthropic"), "{msg}");
    s.apply(&ai_keys(&[
        ("openai", "sk-openai-e2e-secret-9931"),
        ("anthropic", "sk-ant-e2e-secret-7120"),
    ]));
    let token_secret = s.ns.kubectl(&[
        "get",
        "secret",
        "new-engine-token",
        "-o",
        "jsonpath={.data.token}",
    ]);
    assert!(token_secret.status.success());

    wait::condition(&s.api, "new", "WelcomeEmailSent", "True", TIMEOUT)
        .await
        .unwrap();
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        mails[0].to,
        [format!("{}@example.com", nina.to_lowercase())]
    );
    assert!(
        mails[0].data.contains(&format!("Sign in as: {nina}"))
            && mails[0].data.contains("one-time password"),
        "{}",
        mails[0].data
    );
    let otp = mails[0]
        .data
        .lines()
        .find_map(|l| l.strip_prefix("Your one-time password is: "))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        !s.ns
            .kubectl(&["get", "secret", "new-welcome"])
            .status
            .success(),
        "the one-time password is erased once sent"
    );
    // The account is real: the Forge has it, and the one-time password in the email opens it
    // only to be changed.
    let (status, user) = s
        .forge
        .admin(reqwest::Method::GET, &format!("users/{nina}"), None)
        .await;
    assert_eq!(status, 200, "{user}");
    let me = reqwest::Client::new()
        .get(s.forge.at("api/v1/user"))
        .basic_auth(&nina, Some(&otp))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 403, "must change the one-time password first");
    let client_secret = String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            s.ns.kubectl(&[
                "get",
                "secret",
                "new-sign-in",
                "-o",
                "jsonpath={.data.client_secret}",
            ])
            .stdout
            .trim_ascii(),
        )
        .unwrap(),
    )
    .unwrap();

    // A restart never sends it again: the restarted controller runs the email step (its own
    // step metric says so) and sends nothing.
    let first_log = s.controller().kill_and_restart().unwrap();
    s.controller()
        .metric_reaches(
            r#"sandbox_step_duration_seconds_count{step="email"}"#,
            1.0,
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(smtp.mails().len(), 1);
    assert_eq!(smtp.data_started(), 1, "no second attempt either");

    // Secrets hygiene: none of them in any status, Event or log line.
    let token = String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            token_secret.stdout.trim_ascii(),
        )
        .unwrap(),
    )
    .unwrap();
    let statuses = String::from_utf8_lossy(
        &s.ns
            .kubectl(&["get", "testers,hostpools,sharedengines", "-o", "yaml"])
            .stdout,
    )
    .into_owned();
    let events = String::from_utf8_lossy(&s.ns.kubectl(&["get", "events", "-o", "yaml"]).stdout)
        .into_owned();
    let logs = format!(
        "{first_log}\n{}\n{}",
        s.controller().process.output(),
        s.grid.process.output()
    );
    // The machine's keys and the controller's signing key, too; and the VM's deployment (plain
    // text on the node) is searched for every secret but the machine's own network key and
    // seed, which zos needs in it.
    let seed = s.ns.secret_value("new-machine", "seed");
    let network_key = s.ns.secret_value("new-machine", "network-key");
    let signing_key = s.agent_key().await.to_base64();
    let vm = s.grid.admin.inspect().await.unwrap().vms.remove(0);
    let faces = s.grid.faces();
    let twin = faces.proxy.node(vm.node_id).await.unwrap().info.twin_id;
    let deployment =
        serde_json::to_string(&faces.nodes.get(twin, vm.contract_id).await.unwrap()).unwrap();
    for secret in [
        &token,
        &otp,
        &seed,
        &network_key,
        &signing_key,
        "sk-openai-e2e-secret-9931",
        "sk-ant-e2e-secret-7120",
        &client_secret,
        s.forge.token(),
        TWIN_SECRET,
        TWIN_MNEMONIC,
    ] {
        assert!(secret.len() >= 8);
        let zos_needs_it = *secret == seed || *secret == network_key;
        for (place, text) in [
            ("a status", &statuses),
            ("an Event", &events),
            ("a log line", &logs),
            ("the VM's deployment", &deployment),
        ] {
            if zos_needs_it && place == "the VM's deployment" {
                continue;
            }
            assert!(
                !text.contains(secret),
                "a secret ({}…) appears in {place}",
                &secret[..4]
            );
        }
    }
    assert!(logs.lines().count() > 10, "the logs were captured");
}
