//! The chart's RBAC is enough, and no more: the real controller, authenticated as the chart's
//! ServiceAccount (a token the API server minted for it), takes a Tester to Ready and deletes
//! it cleanly, and the same identity cannot read Secrets elsewhere or delete Namespaces.

use std::time::Duration;

use e2e::{
    fixtures::{ai_keys, host_pool, shared_engine, tester},
    helm::helm,
    kubectl,
    stack::{Stack, TestNode},
    wait,
};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_under_the_charts_service_account_reaches_ready_and_cleans_up() {
    let mut s = Stack::without_controller("rbac", &[TestNode::new(1, 1000, 64)], "").await;
    let ns = s.ns.name.clone();

    // The chart's ServiceAccount and namespace-scoped RBAC, rendered by helm and installed.
    let out = helm(&[
        "template",
        "rel",
        "charts/sandbox-controller",
        "-n",
        &ns,
        "--set",
        &format!("watchNamespace={ns}"),
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/rbac.yaml",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.apply(&String::from_utf8_lossy(&out.stdout));
    let sa = "rel-sandbox-controller";
    let token = s.ns.kubectl(&["create", "token", sa, "--duration=1h"]);
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap();

    let server = String::from_utf8(
        kubectl(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])
        .stdout,
    )
    .unwrap();
    let ca = String::from_utf8(
        kubectl(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority}",
        ])
        .stdout,
    )
    .unwrap();
    let kubeconfig = s.grid.dir.join("sa.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: '{server}', certificate-authority: '{ca}'}}\n\
             users:\n- name: sa\n  user: {{token: '{}'}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: sa, namespace: {ns}}}\ncurrent-context: c\n",
            token.trim()
        ),
    )
    .unwrap();

    // What it must not do.
    let who = format!("system:serviceaccount:{ns}:{sa}");
    for (verb, what, namespace, allowed) in [
        (
            "patch",
            "testers.sandbox.hero.dev/status",
            ns.as_str(),
            "yes",
        ),
        ("create", "secrets", ns.as_str(), "yes"),
        ("list", "secrets", "default", "no"),
        ("get", "secrets", "kube-system", "no"),
        ("delete", "namespaces", "", "no"),
        ("create", "pods", ns.as_str(), "no"),
        ("list", "nodes", "", "no"),
    ] {
        let mut args = vec!["auth", "can-i", verb, what, "--as", &who];
        if !namespace.is_empty() {
            args.extend(["-n", namespace]);
        }
        let out = kubectl(&args);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            allowed,
            "can-i {verb} {what} in {namespace:?}"
        );
    }

    s.start_controller(&[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    s.apply(&host_pool("pool", &[1], 50, 4));
    s.apply(&shared_engine("embedder", &s.grid.engine_url("embedder")));
    s.apply(&ai_keys(&[("openai", "sk-rbac-e2e")]));
    s.apply(
        &tester("t", "tom", "pool")
            .with("sharedEngines", json!(["embedder"]))
            .with("aiProviders", json!(["openai"]))
            .with("gatewayName", json!("tomrbac01"))
            .build(),
    );
    wait::ready(&s.api, "t", TIMEOUT).await.unwrap();
    assert!(
        s.ns.kubectl(&["delete", "tester", "t", "--wait=false"])
            .status
            .success()
    );
    wait::gone(&s.api, "t", TIMEOUT).await.unwrap();
    let inspect = s.grid.admin.inspect().await.unwrap();
    assert!(
        inspect.contracts.is_empty() && inspect.names.is_empty() && inspect.tokens.is_empty(),
        "{inspect:?}"
    );
    let logs = s.controller().process.output();
    assert!(
        !logs.contains("Forbidden") && !logs.contains("forbidden"),
        "the controller was refused something:\n{logs}"
    );
}
