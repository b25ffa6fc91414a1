//! From `kubectl apply` to Ready and back to nothing, against the real API server, gridshim,
//! the Forge (a real Gitea) and the controller process.

use std::time::Duration;

use controller::resources::condition_status;
use e2e::{
    fixtures::{ai_keys, host_pool, shared_engine, tester},
    stack::{Stack, TestNode},
    wait,
};
use serde_json::json;

pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

fn applied(out: std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_to_ready_with_every_step_proven_then_delete_leaves_nothing() {
    let nodes = [TestNode::new(1, 1000, 64), TestNode::new(2, 1000, 64)];
    let s = Stack::start("ready", &nodes, "", &[]).await;
    applied(s.ns.apply(&host_pool("pool", &[1, 2], 50, 4)));
    applied(s.ns.apply(&shared_engine("embedder", &s.grid.engine_url("embedder"))));
    applied(s.ns.apply(&shared_engine("voice", &s.grid.engine_url("voice"))));
    applied(s.ns.apply(&ai_keys(&[
        ("openai", "sk-openai-e2e-1"),
        ("anthropic", "sk-ant-e2e-2"),
    ])));
    let t = tester("alice", "Alice.Smith_2", "pool")
        .with("sharedEngines", json!(["embedder", "voice"]))
        .with("aiProviders", json!(["openai", "anthropic"]));
    s.apply(&t.build());

    let ready = wait::ready(&s.api, "alice", READY_TIMEOUT).await.unwrap();
    let status = ready.status.clone().unwrap();
    for c in [
        "Scheduled",
        "MachineReady",
        "GatewayReady",
        "GateSecured",
        "TokensRegistered",
        "Installed",
        "Ready",
    ] {
        assert_eq!(
            condition_status(&status.conditions, c),
            "True",
            "{c}: {:#?}",
            status.conditions
        );
    }
    assert_eq!(status.phase.as_deref(), Some("Ready"));
    assert_eq!(status.observed_generation, ready.metadata.generation);
    let url = status.url.clone().expect("url");
    let name = status.gateway_name.clone().expect("gateway name");
    assert!(name.starts_with("alice-smith-2-"), "{name}");
    assert!(url.starts_with(&format!("http://{name}.")), "{url}");
    let installed = status.installed.clone().expect("installed versions");
    assert!(
        installed.versions.contains_key("cockpit") && installed.versions.contains_key("gateway"),
        "{installed:?}"
    );

    // The gate, proven from outside as a stranger: sent to sign-in, /health open.
    e2e::probe::gate_sends_strangers_to(&url, &s.forge.url).await;

    // The token: in a Secret, accepted by both engines under the tester's identity only.
    let token = s.ns.kubectl(&[
        "get",
        "secret",
        "alice-engine-token",
        "-o",
        "jsonpath={.data.token}",
    ]);
    let token = String::from_utf8(token.stdout).unwrap();
    let token = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, token.trim()).unwrap(),
    )
    .unwrap();
    let identity = status
        .engine_identity
        .clone()
        .expect("the engine identity is in the status");
    assert!(
        identity.starts_with(&format!("{}.alice-smith-2-", s.ns.name)),
        "{identity}"
    );
    for (engine, path) in [
        ("embedder", "/v1/embeddings"),
        ("voice", "/v1/transcriptions"),
    ] {
        let call = |who: &str, tok: &str| {
            reqwest::Client::new()
                .post(format!("{}{path}", s.grid.engine_url(engine)))
                .header("authorization", format!("Bearer {tok}"))
                .header("x-tester", who)
                .json(&json!({"input": "hello"}))
                .send()
        };
        assert_eq!(
            call(&identity, &token).await.unwrap().status(),
            200,
            "{engine}"
        );
        assert_eq!(
            call("someone-else", &token).await.unwrap().status(),
            403,
            "{engine}"
        );
        assert_eq!(
            call(&identity, "wrong").await.unwrap().status(),
            401,
            "{engine}"
        );
    }

    // Both AI-provider keys reached the machine (a real bug handed over only the first).
    let inspect = s.grid.admin.inspect().await.unwrap();
    assert_eq!(inspect.vms.len(), 1);
    assert_eq!(inspect.gateways.len(), 1);
    assert_eq!(inspect.tokens.len(), 2);
    let vm = &inspect.vms[0];
    let view = s.agent_view(vm).await;
    assert_eq!(view.ai_providers.len(), 2, "{view:?}");
    assert_eq!(view.ssh_keys, 1, "support key only: the tester set none");
    assert!(
        view.gate
            .as_ref()
            .unwrap()
            .allowed_accounts
            .contains(&e2e::stack::ADMIN.to_string())
    );

    // Delete: nothing left on the grid.
    applied(s.ns.kubectl(&["delete", "tester", "alice", "--wait=false"]));
    wait::gone(&s.api, "alice", READY_TIMEOUT).await.unwrap();
    let inspect = s.grid.admin.inspect().await.unwrap();
    assert!(inspect.contracts.is_empty(), "{:?}", inspect.contracts);
    assert!(inspect.names.is_empty(), "{:?}", inspect.names);
    assert!(
        inspect.vms.is_empty() && inspect.gateways.is_empty() && inspect.tokens.is_empty(),
        "{inspect:?}"
    );
    assert!(
        s.ns.kubectl(&["get", "secret", "alice-engine-token"])
            .status
            .code()
            != Some(0)
    );
}
