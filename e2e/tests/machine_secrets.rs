//! The secrets a tester's machine holds, end to end: the deployment env (which the node keeps
//! in plain text) carries none; each secret handed to the machine (an AI key, the engine token,
//! the support SSH key) is rotated and the new value reaches the machine's files while the old
//! one stops working. The OIDC client secret's rotation is in `identity.rs`.

use std::time::Duration;

use e2e::{
    fixtures::{ai_keys, host_pool, shared_engine, shared_engine_with_store, tester},
    stack::{Stack, TestNode},
    wait,
};
use gridapi::agent::signing::{CONTROLLER_KEY_ENV, MACHINE_ID_ENV};
use gridshim::wire::VmView;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);
const SUPPORT_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsupport support@team";
const NEW_SUPPORT_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnewsupport support@team";

/// Waits until a file of the machine satisfies `ok` (files have no watch: this polls).
async fn file_until(s: &Stack, vm: &VmView, path: &str, what: &str, ok: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let text = s.grid.vm_file(vm, path).unwrap_or_default();
        if ok(&text) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} on the machine: not {what} after {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn engine_answers(s: &Stack, identity: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/v1/embeddings", s.grid.engine_url("embedder")))
        .header("authorization", format!("Bearer {token}"))
        .header("x-tester", identity)
        .json(&json!({"input": "hello"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_secrets_reach_the_machine_and_the_old_values_stop_working() {
    let mut s = Stack::start(
        "rotate",
        &[TestNode::new(1, 1000, 64)],
        "",
        &[("SUPPORT_SSH_KEYS", SUPPORT_KEY)],
    )
    .await;
    s.apply(&host_pool("pool", &[1], 50, 4));
    s.apply(&shared_engine("embedder", &s.grid.engine_url("embedder")));
    s.apply(&ai_keys(&[("openai", "sk-rotate-old-4471")]));
    s.apply(
        &tester("r", "rita", "pool")
            .with("sharedEngines", json!(["embedder"]))
            .with("aiProviders", json!(["openai"]))
            .build(),
    );
    let t = wait::ready(&s.api, "r", TIMEOUT).await.unwrap();
    let status = t.status.unwrap();
    let identity = status.engine_identity.unwrap();
    let vm = s.grid.admin.inspect().await.unwrap().vms.remove(0);

    // The node stores the VM's env in plain text: it holds the controller's public key and the
    // machine id, nothing else.
    let faces = s.grid.faces();
    let twin = faces.proxy.node(vm.node_id).await.unwrap().info.twin_id;
    let deployment = faces.nodes.get(twin, vm.contract_id).await.unwrap();
    let gridapi::zos::WorkloadData::ZmachineLight(z) = &deployment.workload("vm").unwrap().data
    else {
        panic!("a zmachine")
    };
    assert_eq!(
        z.env.keys().map(String::as_str).collect::<Vec<_>>(),
        [CONTROLLER_KEY_ENV, MACHINE_ID_ENV]
    );
    assert_eq!(
        z.env[CONTROLLER_KEY_ENV],
        s.agent_key().await.public().to_base64()
    );
    assert_eq!(
        Some(&z.env[MACHINE_ID_ENV]),
        status.machine.unwrap().machine_id.as_ref()
    );

    // What the machine holds now.
    let old_token = s.ns.secret_value("r-engine-token", "token");
    let ai = "/etc/hero/ai-keys.env";
    let engines = "/etc/hero/engines.json";
    let ssh = "/root/.ssh/authorized_keys";
    assert_eq!(
        s.grid.vm_file(&vm, ai).unwrap(),
        "OPENAI_API_KEY=sk-rotate-old-4471\n"
    );
    assert!(s.grid.vm_file(&vm, engines).unwrap().contains(&old_token));
    assert_eq!(
        s.grid.vm_file(&vm, ssh).unwrap(),
        format!("{SUPPORT_KEY}\n")
    );
    assert_eq!(engine_answers(&s, &identity, &old_token).await, 200);

    // An AI key changed in the operator's Secret reaches the machine, replacing the old one.
    s.apply(&ai_keys(&[("openai", "sk-rotate-new-9052")]));
    file_until(&s, &vm, ai, "the new AI key only", |t| {
        t == "OPENAI_API_KEY=sk-rotate-new-9052\n"
    })
    .await;

    // A new engine token on request: registered with the engine (the old one is refused
    // there from then on) and handed to the machine.
    assert!(
        s.ns.kubectl(&[
            "annotate",
            "tester",
            "r",
            "sandbox.hero.dev/rotate-engine-token=2026-12-04",
        ])
        .status
        .success()
    );
    file_until(&s, &vm, engines, "a new token", |t| {
        !t.is_empty() && !t.contains(&old_token)
    })
    .await;
    let new_token = s.ns.secret_value("r-engine-token", "token");
    assert_ne!(new_token, old_token);
    assert!(s.grid.vm_file(&vm, engines).unwrap().contains(&new_token));
    assert_eq!(engine_answers(&s, &identity, &new_token).await, 200);
    assert_eq!(engine_answers(&s, &identity, &old_token).await, 401);

    // The team's support key replaced in the controller's configuration: every machine gets
    // the new key and loses the old one.
    s.controller = None;
    s.start_controller(&[("SUPPORT_SSH_KEYS", NEW_SUPPORT_KEY)]);
    file_until(&s, &vm, ssh, "the new support key only", |t| {
        t == format!("{NEW_SUPPORT_KEY}\n")
    })
    .await;

    // A SharedEngine that moves: the machine gets its new URL at once, not at the next full
    // verification.
    let moved = format!("{}/", s.grid.engine_url("embedder"));
    let store = format!("{}/admin", s.grid.engine_url("embedder"));
    s.apply(&shared_engine_with_store(
        "embedder", "embedder", &moved, &store,
    ));
    file_until(&s, &vm, engines, "the engine's new URL", |t| {
        t.contains(&moved)
    })
    .await;

    let t = wait::ready(&s.api, "r", TIMEOUT).await.unwrap();
    let view = s.agent_view(&vm).await;
    assert_eq!(
        view.ai_key_digests["openai"],
        gridapi::agent::digest("sk-rotate-new-9052")
    );
    assert!(
        t.status
            .unwrap()
            .conditions
            .iter()
            .all(|c| c.type_ != "Ready" || c.status == "True")
    );
}
