//! The controller as a Pod: the image `make image` builds, imported into the containerd of the
//! local control plane's node (`hack/node.sh`: kubelet, kube-scheduler, containerd, runc and the
//! CNI bridge), installed with the chart. The Pod reads its Secrets, passes its probes, drives a
//! Tester to Ready against gridshim and the Forge on this machine (reached through the node's
//! bridge address) and deletes it leaving nothing; with two replicas exactly one leads, a
//! deleted leader is replaced within the lease, a `helm upgrade` to a new tag rolls both Pods,
//! and `helm uninstall` leaves no object of the chart.
//!
//! Needs root (containers), as CI has; the image build takes several minutes the first time.

use std::{process::Command, time::Duration};

use e2e::{
    TestNamespace,
    fixtures::{host_pool, tester},
    forge::Forge,
    helm::helm_cluster,
    procs::repo_root,
    stack::{Gridshim, TWIN, TWIN_MNEMONIC, TWIN_SECRET, TestNode},
    wait,
};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::ListParams};

const TIMEOUT: Duration = Duration::from_secs(180);
/// The node's bridge address: where Pods reach this machine (hack/node.sh).
const NODE: &str = "10.88.0.1";
const CHART: &str = "charts/sandbox-controller";
const RELEASE: &str = "sbx";

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn bash(script: &str, args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(repo_root().join(script))
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"))
}

/// The controller's version (the image's tag).
fn version() -> String {
    let meta = Command::new("cargo")
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(repo_root())
        .output()
        .expect("cargo metadata");
    let v: serde_json::Value = serde_json::from_slice(&meta.stdout).expect("metadata JSON");
    v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "controller")
        .and_then(|p| p["version"].as_str())
        .expect("the controller's version")
        .to_string()
}

/// The node up, the image built and imported under its own tag and under `extra_tag`.
fn node_with_image(extra_tag: &str) -> String {
    ok(&bash("hack/node.sh", &["up"]), "hack/node.sh up");
    ok(&bash("hack/image.sh", &["build"]), "hack/image.sh build");
    let v = version();
    let archive = repo_root().join(format!("target/image/controller-{v}.oci.tar"));
    ok(
        &bash("hack/node.sh", &["import", archive.to_str().unwrap()]),
        "hack/node.sh import",
    );
    ok(
        &bash(
            "hack/node.sh",
            &[
                "tag",
                &format!("ghcr.io/hero-sandbox/controller:{v}"),
                &format!("ghcr.io/hero-sandbox/controller:{extra_tag}"),
            ],
        ),
        "hack/node.sh tag",
    );
    v
}

async fn pods(api: &Api<Pod>) -> Vec<Pod> {
    api.list(&ListParams::default().labels("app.kubernetes.io/name=sandbox-controller"))
        .await
        .unwrap()
        .items
}

fn ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until exactly `n` controller Pods are Ready, all of image tag `tag`.
async fn ready_pods(api: &Api<Pod>, n: usize, tag: &str) -> Vec<Pod> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let all = pods(api).await;
        let good: Vec<Pod> = all
            .iter()
            .filter(|p| {
                ready(p)
                    && p.spec.as_ref().is_some_and(|s| {
                        s.containers[0]
                            .image
                            .as_deref()
                            .is_some_and(|i| i.ends_with(&format!(":{tag}")))
                    })
            })
            .cloned()
            .collect();
        if good.len() == n && all.len() == n {
            return good;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not {n} Ready controller Pods of tag {tag} after {TIMEOUT:?}: {:?}",
            all.iter()
                .map(|p| (p.metadata.name.clone(), p.status.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The holder of the release's Lease (named like the release's objects).
fn leader(ns: &TestNamespace) -> String {
    String::from_utf8_lossy(
        &ns.kubectl(&[
            "get",
            "lease",
            "sbx-sandbox-controller",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .stdout,
    )
    .into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_runs_the_controller_as_a_pod_that_onboards_hands_over_and_rolls() {
    let v = node_with_image("e2e-next");
    let ns = TestNamespace::new("incluster");
    let grid = Gridshim::start_bound(&[TestNode::new(1, 1000, 64)], "", "0.0.0.0")
        .expect("gridshim on every address");
    let forge = Forge::start_bound("0.0.0.0").expect("a Forge on every address");
    forge.ensure_account("pia").await.unwrap();
    let port = |url: &str| url::Url::parse(url).unwrap().port().unwrap();
    // The API server's port, from the admin kubeconfig (`server: https://127.0.0.1:PORT`).
    let kubeconfig = std::fs::read_to_string(&e2e::cluster().kubeconfig).unwrap();
    let cluster_port = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:"))
        .expect("the API server's port")
        .to_string();
    ok(
        &ns.kubectl(&[
            "create",
            "secret",
            "generic",
            "sandbox-controller-credentials",
            &format!("--from-literal=grid-twin-secret={TWIN_SECRET}"),
            &format!("--from-literal=grid-mnemonic={TWIN_MNEMONIC}"),
            &format!("--from-literal=forge-token={}", forge.token()),
        ]),
        "create the credentials Secret",
    );
    let grid_url = format!("http://{NODE}:{}", port(&grid.url));
    let forge_url = format!("http://{NODE}:{}/", port(&forge.url));
    let sets = [
        "image.pullPolicy=Never".to_string(),
        format!("grid.url={grid_url}"),
        format!("grid.twinId={TWIN}"),
        "grid.proxyLag=0s".to_string(),
        format!("grid.localhostAddress={NODE}"),
        format!(
            "grid.privateNetworkProxy=http://{NODE}:{}",
            grid.gateway_port
        ),
        format!(
            "grid.publicUrlFormat=http://{{fqdn}}:{}/",
            grid.gateway_port
        ),
        format!("forge.url={forge_url}"),
        format!("forge.issuer={}", forge.url),
        format!("watchNamespace={}", ns.name),
        "admins={ops}".to_string(),
        // No kube-proxy on the local node: the API server is reached at the bridge address.
        "extraEnv[0].name=KUBERNETES_SERVICE_HOST".to_string(),
        format!("extraEnv[0].value={NODE}"),
        "extraEnv[1].name=KUBERNETES_SERVICE_PORT".to_string(),
    ];
    // An environment variable's value is a string, even when it looks like a number.
    let port_value = format!("extraEnv[1].value={cluster_port}");
    let mut args = vec![
        "install",
        RELEASE,
        CHART,
        "-n",
        &ns.name,
        "--wait",
        "--timeout",
        "3m",
    ];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    args.extend(["--set-string", port_value.as_str()]);
    ok(&helm_cluster(&args), "helm install");

    let client = e2e::cluster().client().await;
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    ready_pods(&pod_api, 1, &v).await;

    // The Pod onboards a tester and removes it again.
    ok(
        &ns.apply(&host_pool("pool", &[1], 50, 4)),
        "apply the HostPool",
    );
    ok(
        &ns.apply(&tester("pia", "pia", "pool").build()),
        "apply the Tester",
    );
    let testers = Api::namespaced(client.clone(), &ns.name);
    wait::ready(&testers, "pia", TIMEOUT).await.unwrap();
    assert_eq!(grid.admin.inspect().await.unwrap().vms.len(), 1);
    ok(
        &ns.kubectl(&["delete", "tester", "pia", "--wait=false"]),
        "delete the Tester",
    );
    wait::gone(&testers, "pia", TIMEOUT).await.unwrap();
    let left = grid.admin.inspect().await.unwrap();
    assert!(left.contracts.is_empty() && left.vms.is_empty(), "{left:?}");

    // Two replicas: one leads; the leader's Pod deleted, the other takes over within the lease.
    let mut up = vec!["upgrade", RELEASE, CHART, "-n", &ns.name, "--reuse-values"];
    up.extend(["--set", "replicas=2", "--wait", "--timeout", "3m"]);
    ok(&helm_cluster(&up), "helm upgrade to 2 replicas");
    let two = ready_pods(&pod_api, 2, &v).await;
    let names: Vec<String> = two.iter().filter_map(|p| p.metadata.name.clone()).collect();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !names.contains(&leader(&ns)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader among {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let first = leader(&ns);
    ok(
        &ns.kubectl(&["delete", "pod", &first, "--wait=false"]),
        "delete the leader's Pod",
    );
    // The standby, or the Pod that replaces the deleted one, whichever asks first: within the
    // lease's 15 s (plus the time a Pod takes to start).
    let deleted_at = tokio::time::Instant::now();
    let deadline = deleted_at + Duration::from_secs(60);
    loop {
        let now = leader(&ns);
        let live: Vec<String> = pods(&pod_api)
            .await
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        if now != first && live.contains(&now) {
            eprintln!(
                "lease handed over from {first} to {now} in {:?}",
                deleted_at.elapsed()
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease stayed with {first} (now {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The new leader onboards.
    ok(
        &ns.apply(&tester("pia", "pia", "pool").build()),
        "apply the Tester again",
    );
    wait::ready(&testers, "pia", TIMEOUT).await.unwrap();
    assert_eq!(
        grid.admin.inspect().await.unwrap().vms.len(),
        1,
        "nothing done twice"
    );
    // Only the leader reconciles: the other replica (reached at its Pod address over the
    // node's bridge) has counted no reconcile at all.
    let now = leader(&ns);
    let reconciles = |pod: &Pod| {
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap();
        async move {
            let text = reqwest::get(format!("http://{ip}:8080/metrics"))
                .await
                .expect("the Pod's metrics answer")
                .text()
                .await
                .unwrap();
            text.lines()
                .filter(|l| l.starts_with("sandbox_reconcile_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        }
    };
    for pod in ready_pods(&pod_api, 2, &v).await {
        let n = reconciles(&pod).await;
        if pod.metadata.name.as_deref() == Some(now.as_str()) {
            assert!(n > 0.0, "the leader {now} reconciled nothing");
        } else {
            assert_eq!(n, 0.0, "the standby {:?} reconciled", pod.metadata.name);
        }
    }

    // A new image tag rolls both Pods and completes.
    let mut roll = vec!["upgrade", RELEASE, CHART, "-n", &ns.name, "--reuse-values"];
    roll.extend(["--set", "image.tag=e2e-next", "--wait", "--timeout", "3m"]);
    ok(&helm_cluster(&roll), "helm upgrade to a new tag");
    ready_pods(&pod_api, 2, "e2e-next").await;
    ok(
        &ns.kubectl(&[
            "rollout",
            "status",
            "deployment/sbx-sandbox-controller",
            "--timeout=60s",
        ]),
        "rollout status",
    );

    // Testers first (the controller cleans up on the grid), then the release: nothing left.
    ok(
        &ns.kubectl(&["delete", "tester", "pia", "--wait=false"]),
        "delete the Tester",
    );
    wait::gone(&testers, "pia", TIMEOUT).await.unwrap();
    ok(
        &helm_cluster(&["uninstall", RELEASE, "-n", &ns.name, "--wait"]),
        "helm uninstall",
    );
    // The Pods go after the uninstall (the garbage collector removes the ReplicaSet's Pods, each
    // with its grace period): wait for that, then nothing of the chart may be left.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let left = ns.kubectl(&[
            "get",
            "all,secrets,configmaps,serviceaccounts,roles,rolebindings,leases",
            "-l",
            &format!("app.kubernetes.io/instance={RELEASE}"),
            "-o",
            "name",
        ]);
        let left = ok(&left, "list what is left");
        if left.trim().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "objects of the chart remain: {left}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let left = grid.admin.inspect().await.unwrap();
    assert!(left.contracts.is_empty() && left.vms.is_empty(), "{left:?}");
}
