//! The Helm chart (`charts/sandbox-controller`): it lints strictly; it renders with default and
//! non-default values into exactly the objects the controller needs; its schema refuses bad
//! values with a message naming the value; it installs the CRDs from `crds/` (no second copy);
//! its manifests are accepted by the real API server; and the RBAC it installs lets the
//! controller's ServiceAccount do what the controller does and nothing it must not.
//!
//! `helm` is the pinned build from `hack/build-tools.sh helm`; `kubectl` and the API server are
//! the harness's real ones.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Command, Output},
};

use e2e::{
    TestNamespace, cluster,
    helm::{helm, helm_cluster},
    kubectl, repo_root,
};
use serde::Deserialize;
use serde_yaml::Value;

const CHART: &str = "charts/sandbox-controller";
/// The non-default values: 2 replicas, one watched namespace, ServiceMonitor and dashboard on.
const CI_VALUES: &str = "charts/sandbox-controller/ci/namespaced-ha-values.yaml";
const DASHBOARD: &str = "charts/sandbox-controller/dashboards/sandbox-controller.json";

// ---------------------------------------------------------------------------------------------
// helm, rendering and small accessors

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stdout)
}

/// The non-empty YAML documents of a multi-document stream.
fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}
/// `helm template` of the chart as release `rel` in namespace `ns`, with extra arguments.
fn render(rel: &str, ns: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", rel, CHART, "--namespace", ns];
    args.extend_from_slice(extra);
    docs(&ok(&helm(&args), &format!("helm {}", args.join(" "))))
}

fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

fn kinds(objs: &[Value]) -> BTreeSet<String> {
    objs.iter()
        .map(|o| format!("{}/{}", kind(o), name(o)))
        .collect()
}

fn one<'a>(objs: &'a [Value], k: &str) -> &'a Value {
    let found: Vec<_> = objs.iter().filter(|o| kind(o) == k).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {k}, got {:?}",
        kinds(objs)
    );
    found[0]
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

/// The controller container.
fn container(objs: &[Value]) -> &Value {
    let containers = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

/// The container's env as name → entry (an entry has `value` or `valueFrom`).
fn env(objs: &[Value]) -> BTreeMap<String, Value> {
    let mut env = BTreeMap::new();
    for e in container(objs)["env"].as_sequence().unwrap() {
        let prev = env.insert(str_of(&e["name"]).to_owned(), e.clone());
        assert!(prev.is_none(), "env {} set twice", str_of(&e["name"]));
    }
    env
}

fn env_value(env: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    env.get(key)
        .and_then(|e| e["value"].as_str())
        .map(String::from)
}

/// Every env var the controller reads (`env = "X"` in controller/src/config.rs), and which of them
/// are secrets (`hide_env_values = true`): the contract between the chart and the binary.
fn controller_env() -> (BTreeSet<String>, BTreeSet<String>) {
    let src = std::fs::read_to_string(repo_root().join("controller/src/config.rs")).unwrap();
    let (mut all, mut secret) = (BTreeSet::new(), BTreeSet::new());
    for line in src.lines() {
        if let Some(rest) = line.split("env = \"").nth(1) {
            let var = rest.split('"').next().unwrap().to_owned();
            if line.contains("hide_env_values = true") {
                secret.insert(var.clone());
            }
            all.insert(var);
        }
    }
    assert!(
        all.len() > 10 && secret.len() >= 3,
        "could not read the env vars of config.rs: {all:?} {secret:?}"
    );
    (all, secret)
}

/// A scratch directory of this test's own.
fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "helm-chart-{what}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------------
// lint and render

#[test]
fn lint_strict_passes_with_default_and_non_default_values() {
    let out = ok(&helm(&["lint", "--strict", CHART]), "helm lint --strict");
    assert!(out.contains("0 chart(s) failed"), "{out}");
    let out = ok(
        &helm(&["lint", "--strict", CHART, "-f", CI_VALUES]),
        "helm lint --strict -f ci values",
    );
    assert!(out.contains("0 chart(s) failed"), "{out}");
    // And lint is not toothless: a template that does not parse fails it.
    let broken = scratch("lint");
    let copy = broken.join("sandbox-controller");
    let cp = Command::new("cp")
        .args(["-rL", CHART, copy.to_str().unwrap()])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(cp.status.success(), "{}", text(&cp.stderr));
    std::fs::write(copy.join("templates/broken.yaml"), "{{ if }}\n").unwrap();
    let out = helm(&["lint", "--strict", copy.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "lint passed a broken template: {}",
        text(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(broken);
}

#[test]
fn default_values_render_one_cluster_scoped_replica() {
    let objs = render("sbx", "sandbox-system", &[]);
    assert_eq!(
        kinds(&objs),
        [
            "ClusterRole/sbx-sandbox-controller",
            "ClusterRoleBinding/sbx-sandbox-controller",
            "Deployment/sbx-sandbox-controller",
            "Role/sbx-sandbox-controller-agent-signing-key",
            "RoleBinding/sbx-sandbox-controller-agent-signing-key",
            "Service/sbx-sandbox-controller-metrics",
            "ServiceAccount/sbx-sandbox-controller",
        ]
        .map(String::from)
        .into(),
        "default values render exactly these objects (no watch-namespace Role, no Lease Role, no ServiceMonitor, no dashboard; the signing-key Role only)"
    );
    let deploy = one(&objs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"].as_u64(), Some(1));
    assert_eq!(
        deploy["spec"]["strategy"]["type"].as_str(),
        Some("Recreate"),
        "one controller at a time without leader election"
    );
    let env = env(&objs);
    assert_eq!(env_value(&env, "LEADER_ELECTION").as_deref(), Some("false"));
    for absent in [
        "WATCH_NAMESPACE",
        "POD_NAME",
        "LEASE_NAME",
        "SMTP_URL",
        "SMTP_PASSWORD",
        "ADMINS",
    ] {
        assert!(
            !env.contains_key(absent),
            "{absent} set with default values"
        );
    }
    assert_eq!(
        env_value(&env, "METRICS_ADDR").as_deref(),
        Some("0.0.0.0:8080")
    );
    assert_eq!(
        str_of(&container(&objs)["image"]),
        "ghcr.io/hero-sandbox/controller:0.1.0",
        "tag defaults to appVersion"
    );
    assert_common_shape(&objs, "sandbox-system");
}

#[test]
fn non_default_values_turn_on_leader_election_namespace_scope_service_monitor_and_dashboard() {
    let objs = render("sbx", "sandbox-system", &["-f", CI_VALUES]);
    assert_eq!(
        kinds(&objs),
        [
            "ConfigMap/sbx-sandbox-controller-dashboard",
            "Deployment/sbx-sandbox-controller",
            "Role/sbx-sandbox-controller",
            "Role/sbx-sandbox-controller-agent-signing-key",
            "Role/sbx-sandbox-controller-leader-election",
            "RoleBinding/sbx-sandbox-controller",
            "RoleBinding/sbx-sandbox-controller-agent-signing-key",
            "RoleBinding/sbx-sandbox-controller-leader-election",
            "Service/sbx-sandbox-controller-metrics",
            "ServiceAccount/sbx-sandbox-controller",
            "ServiceMonitor/sbx-sandbox-controller",
        ]
        .map(String::from)
        .into(),
        "namespace-scoped: Roles, never a ClusterRole"
    );
    assert_common_shape(&objs, "sandbox-system");

    // Two replicas: leader election on, with the pod's own name and namespace from the downward API.
    let deploy = one(&objs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"].as_u64(), Some(2));
    assert_eq!(
        deploy["spec"]["strategy"]["type"].as_str(),
        Some("RollingUpdate")
    );
    let env = env(&objs);
    assert_eq!(env_value(&env, "LEADER_ELECTION").as_deref(), Some("true"));
    assert_eq!(
        env_value(&env, "LEASE_NAME").as_deref(),
        Some("sbx-sandbox-controller")
    );
    assert_eq!(
        env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.name")
    );
    assert_eq!(
        env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.namespace")
    );
    assert_eq!(
        env_value(&env, "WATCH_NAMESPACE").as_deref(),
        Some("testers")
    );
    assert_eq!(env_value(&env, "GRID_TWIN_ID").as_deref(), Some("4242"));
    assert_eq!(env_value(&env, "ADMINS").as_deref(), Some("root,ops.lead"));
    assert_eq!(
        env_value(&env, "SMTP_URL").as_deref(),
        Some("smtp://mail.example.com:587?tls=required")
    );
    assert_eq!(
        env["SMTP_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"].as_str(),
        Some("smtp-credentials")
    );
    assert_eq!(
        env_value(&env, "REACHABILITY_TIMEOUT").as_deref(),
        Some("15m")
    );
    assert_eq!(
        env_value(&env, "RUST_LOG").as_deref(),
        Some("info,controller=debug"),
        "extraEnv passes through"
    );
    assert_eq!(
        str_of(&container(&objs)["image"]),
        "registry.example.com/sandbox/controller@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "a digest wins over the tag"
    );

    // The watched namespace gets the Role; the Lease's Role stays in the release namespace.
    let roles: BTreeMap<&str, &str> = objs
        .iter()
        .filter(|o| kind(o) == "Role" || kind(o) == "RoleBinding")
        .map(|o| (name(o), str_of(&o["metadata"]["namespace"])))
        .collect();
    assert_eq!(roles["sbx-sandbox-controller"], "testers");
    assert_eq!(
        roles["sbx-sandbox-controller-leader-election"],
        "sandbox-system"
    );
    for binding in objs.iter().filter(|o| kind(o) == "RoleBinding") {
        assert_eq!(binding["roleRef"]["name"], Value::from(name(binding)));
        assert_eq!(
            binding["subjects"][0]["namespace"].as_str(),
            Some("sandbox-system"),
            "the SA lives in the release namespace"
        );
    }

    // The ServiceMonitor scrapes the metrics Service's port, keeping the metrics' own namespace label.
    let sm = one(&objs, "ServiceMonitor");
    let svc = one(&objs, "Service");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(
            &svc["metadata"]["labels"][k.as_str().unwrap()],
            v,
            "ServiceMonitor selects the metrics Service"
        );
    }
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(
        sm["spec"]["endpoints"][0]["path"].as_str(),
        Some("/metrics")
    );
    assert_eq!(
        sm["spec"]["endpoints"][0]["honorLabels"].as_bool(),
        Some(true)
    );
    assert_eq!(
        sm["metadata"]["labels"]["release"].as_str(),
        Some("prometheus")
    );

    // The dashboard ConfigMap carries the sidecar's label and the dashboard file, byte for byte.
    let cm = one(&objs, "ConfigMap");
    assert_eq!(
        cm["metadata"]["labels"]["grafana_dashboard"].as_str(),
        Some("1")
    );
    let shipped = std::fs::read_to_string(repo_root().join(DASHBOARD)).unwrap();
    assert_eq!(
        cm["data"]["sandbox-controller.json"]
            .as_str()
            .map(str::trim_end),
        Some(shipped.trim_end())
    );
}

/// What every rendering must hold: Helm's labels, the security context, probes, resources, the
/// Service and SA wired to the Deployment, and secrets only from Secret references.
fn assert_common_shape(objs: &[Value], ns: &str) {
    for o in objs {
        let labels = &o["metadata"]["labels"];
        for l in [
            "helm.sh/chart",
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
        ] {
            assert!(
                labels[l].is_string(),
                "{} {} lacks label {l}",
                kind(o),
                name(o)
            );
        }
        assert_eq!(
            labels["app.kubernetes.io/managed-by"].as_str(),
            Some("Helm")
        );
        let cluster_scoped = matches!(kind(o), "ClusterRole" | "ClusterRoleBinding");
        assert_eq!(
            o["metadata"]["namespace"].is_null(),
            cluster_scoped,
            "{} {} namespace",
            kind(o),
            name(o)
        );
    }
    let deploy = one(objs, "Deployment");
    let pod = &deploy["spec"]["template"];
    for (k, v) in deploy["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(
            &pod["metadata"]["labels"][k.as_str().unwrap()],
            v,
            "the selector matches the pod labels"
        );
    }
    let svc = one(objs, "Service");
    assert_eq!(
        svc["spec"]["selector"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(svc["spec"]["type"].as_str(), Some("ClusterIP"));

    // Security context: non-root, read-only root, no escalation, no capabilities, seccomp.
    let spec = &pod["spec"];
    assert_eq!(
        spec["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    let c = container(objs);
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(sc["capabilities"]["drop"], Value::from(vec!["ALL"]));
    assert!(sc["capabilities"]["add"].is_null());

    // Probes on the metrics port, resources with a memory limit.
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    let port = &c["ports"][0];
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            c[probe]["httpGet"]["port"], port["name"],
            "{probe} on the metrics port"
        );
    }
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], port["name"]);
    let metrics_addr = env_value(&env(objs), "METRICS_ADDR").unwrap();
    assert!(
        metrics_addr.ends_with(&format!(":{}", port["containerPort"].as_u64().unwrap())),
        "METRICS_ADDR {metrics_addr} matches the port"
    );
    assert!(
        c["resources"]["requests"]["cpu"].is_string()
            && c["resources"]["requests"]["memory"].is_string()
    );
    assert!(c["resources"]["limits"]["memory"].is_string());

    // The pod runs as the chart's ServiceAccount, which other pods do not get a token of.
    let sa = one(objs, "ServiceAccount");
    assert_eq!(sa["metadata"]["namespace"].as_str(), Some(ns));
    assert_eq!(sa["automountServiceAccountToken"].as_bool(), Some(false));
    assert_eq!(spec["serviceAccountName"], sa["metadata"]["name"]);
    assert_eq!(spec["automountServiceAccountToken"].as_bool(), Some(true));
    for binding in objs.iter().filter(|o| kind(o).ends_with("Binding")) {
        assert_eq!(binding["subjects"].as_sequence().unwrap().len(), 1);
        assert_eq!(binding["subjects"][0]["name"], sa["metadata"]["name"]);
    }

    // Secrets: from secretKeyRef, never a plain value.
    let (_, secret) = controller_env();
    for (var, e) in env(objs) {
        if secret.contains(&var) {
            assert!(e["value"].is_null(), "{var} must not be a plain value");
            assert!(
                e["valueFrom"]["secretKeyRef"]["name"].is_string()
                    && e["valueFrom"]["secretKeyRef"]["key"].is_string(),
                "{var}: {e:?}"
            );
        }
    }
}

#[test]
fn chart_env_is_the_controllers_flags_exactly() {
    let (known, secret) = controller_env();
    let default = env(&render("sbx", "sandbox-system", &[]));
    let full = env(&render("sbx", "sandbox-system", &["-f", CI_VALUES]));
    // The chart sets nothing the binary does not read (RUST_LOG comes from extraEnv in the CI values).
    let set: BTreeSet<String> = default
        .keys()
        .chain(full.keys())
        .filter(|k| *k != "RUST_LOG")
        .cloned()
        .collect();
    let unknown: Vec<_> = set.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "the chart sets env vars the controller does not read: {unknown:?}"
    );
    // And every flag can be set from values (a new flag in config.rs fails here until the chart has it).
    let unset: Vec<_> = known.difference(&set).collect();
    assert!(
        unset.is_empty(),
        "flags of controller/src/config.rs the chart cannot set: {unset:?}"
    );
    // The flags without a default are always set.
    for required in [
        "GRID_URL",
        "GRID_TWIN_ID",
        "GRID_TWIN_SECRET",
        "FORGE_URL",
        "FORGE_TOKEN",
    ] {
        assert!(
            default.contains_key(required),
            "{required} missing with default values"
        );
    }
    assert!(secret.contains("GRID_TWIN_SECRET") && secret.contains("SMTP_PASSWORD"));
    // extraEnv cannot override any of them (above all, not a secret with a plain value).
    for var in &known {
        let name = format!("extraEnv[0].name={var}");
        let out = helm(&[
            "template",
            "sbx",
            CHART,
            "--set",
            &name,
            "--set",
            "extraEnv[0].value=x",
        ]);
        assert!(
            !out.status.success()
                && text(&out.stderr).contains(&format!("extraEnv: {var} is set by the chart")),
            "extraEnv may override {var}: {}",
            text(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC, as rendered

/// Rules flattened to "group resource verb [names]" lines.
fn flat_rules(role: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_sequence().unwrap() {
        let list = |k: &str| {
            rule[k]
                .as_sequence()
                .map(|s| s.iter().map(|v| str_of(v).to_owned()).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let names = list("resourceNames");
        assert!(rule["nonResourceURLs"].is_null(), "no non-resource URLs");
        for g in list("apiGroups") {
            for r in list("resources") {
                for v in list("verbs") {
                    for part in [&g, &r, &v] {
                        assert!(!part.contains('*'), "wildcard in {rule:?}");
                    }
                    let group = if g.is_empty() {
                        "core".to_owned()
                    } else {
                        g.clone()
                    };
                    out.insert(if names.is_empty() {
                        format!("{group} {r} {v}")
                    } else {
                        format!("{group} {r} {v} {}", names.join(","))
                    });
                }
            }
        }
    }
    out
}

fn expected_rules() -> BTreeSet<String> {
    let mut want = BTreeSet::new();
    for r in ["testers", "hostpools", "sharedengines"] {
        for v in ["get", "list", "watch", "patch"] {
            want.insert(format!("sandbox.hero.dev {r} {v}"));
        }
        want.insert(format!("sandbox.hero.dev {r}/status patch"));
    }
    want.insert("sandbox.hero.dev testers update".into());
    want.insert("sandbox.hero.dev testers/finalizers update".into());
    for r in ["secrets", "configmaps"] {
        for v in ["get", "list", "watch", "create", "patch", "delete"] {
            want.insert(format!("core {r} {v}"));
        }
    }
    for g in ["core", "events.k8s.io"] {
        for v in ["create", "patch"] {
            want.insert(format!("{g} events {v}"));
        }
    }
    want
}

#[test]
fn rbac_rules_are_exactly_what_the_controller_uses() {
    let cluster_scoped = render("sbx", "sandbox-system", &[]);
    assert_eq!(
        flat_rules(one(&cluster_scoped, "ClusterRole")),
        expected_rules()
    );

    let ns_scoped = render("sbx", "sandbox-system", &["-f", CI_VALUES]);
    assert!(ns_scoped.iter().all(|o| !kind(o).starts_with("Cluster")));
    let role = ns_scoped
        .iter()
        .find(|o| kind(o) == "Role" && name(o) == "sbx-sandbox-controller")
        .unwrap();
    assert_eq!(flat_rules(role), expected_rules());
    let lease = ns_scoped
        .iter()
        .find(|o| name(o) == "sbx-sandbox-controller-leader-election" && kind(o) == "Role")
        .unwrap();
    assert_eq!(
        flat_rules(lease),
        [
            "coordination.k8s.io leases create",
            "coordination.k8s.io leases get sbx-sandbox-controller",
            "coordination.k8s.io leases patch sbx-sandbox-controller",
            "coordination.k8s.io leases update sbx-sandbox-controller",
        ]
        .map(String::from)
        .into()
    );

    // The agent-signing key: its one Secret, in the release namespace, read by name.
    for objs in [&cluster_scoped, &ns_scoped] {
        let key = objs
            .iter()
            .find(|o| name(o) == "sbx-sandbox-controller-agent-signing-key" && kind(o) == "Role")
            .unwrap();
        assert_eq!(
            key["metadata"]["namespace"].as_str(),
            Some("sandbox-system")
        );
        assert_eq!(
            flat_rules(key),
            [
                "core secrets create",
                "core secrets get sandbox-controller-agent-signing-key",
            ]
            .map(String::from)
            .into()
        );
    }

    // rbac.create=false and serviceAccount.create=false leave RBAC to the operator.
    let none = render(
        "sbx",
        "sandbox-system",
        &[
            "--set",
            "rbac.create=false",
            "--set",
            "serviceAccount.create=false",
            "--set",
            "serviceAccount.name=mine",
        ],
    );
    assert_eq!(
        kinds(&none),
        [
            "Deployment/sbx-sandbox-controller",
            "Service/sbx-sandbox-controller-metrics"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(
        one(&none, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"].as_str(),
        Some("mine")
    );
}

// ---------------------------------------------------------------------------------------------
// the dashboard

/// Metric → type, as the controller exports them.
const METRICS: &[(&str, &str)] = &[
    ("sandbox_reconcile_total", "counter"),
    ("sandbox_reconcile_errors_total", "counter"),
    ("sandbox_step_duration_seconds", "histogram"),
    ("sandbox_time_to_ready_seconds", "histogram"),
    ("sandbox_testers", "gauge"),
    ("sandbox_grid_request_duration_seconds", "histogram"),
    ("sandbox_grid_errors_total", "counter"),
    ("sandbox_hostpool_fit", "gauge"),
    ("sandbox_apps_unhealthy", "gauge"),
    ("sandbox_remediations_total", "counter"),
];

fn exprs(panel: &serde_json::Value, out: &mut Vec<String>) {
    for t in panel["targets"].as_array().into_iter().flatten() {
        out.push(
            t["expr"]
                .as_str()
                .expect("every target has a PromQL expr")
                .to_owned(),
        );
    }
    for p in panel["panels"].as_array().into_iter().flatten() {
        exprs(p, out);
    }
}

#[test]
fn dashboard_is_built_on_the_controllers_metrics() {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join(DASHBOARD)).unwrap())
            .expect("dashboard is JSON");
    assert_eq!(json["uid"], "sandbox-controller");
    let panels = json["panels"].as_array().unwrap();
    let ids: BTreeSet<_> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let titles: Vec<_> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for needed in [
        "Testers per phase",
        "Time to Ready",
        "Reconcile errors per step",
        "Grid call latency (p50, p95)",
        "Grid errors",
        "Testers with an app down",
        "Machines moved off unhealthy nodes",
    ] {
        assert!(
            titles.contains(&needed),
            "{needed:?} panel missing: {titles:?}"
        );
    }
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{} uses the datasource variable",
            p["title"]
        );
    }

    let mut all = Vec::new();
    for p in panels {
        exprs(p, &mut all);
    }
    let known: BTreeMap<_, _> = METRICS.iter().copied().collect();
    let mut used = BTreeSet::new();
    for expr in &all {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("sandbox_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let series = &tail[..end];
            rest = &tail[end..];
            let (metric, suffix) = match series.strip_suffix("_bucket") {
                Some(m) => (m, "_bucket"),
                None => (series, ""),
            };
            let Some(ty) = known.get(metric) else {
                panic!("{expr}: {series} is not a metric of the controller")
            };
            match *ty {
                "histogram" => assert!(
                    suffix == "_bucket" && expr.contains("histogram_quantile("),
                    "{expr}: a histogram is read through its buckets"
                ),
                "counter" => assert!(
                    expr.contains(&format!("rate({series}")),
                    "{expr}: a counter is read as a rate"
                ),
                _ => assert!(suffix.is_empty(), "{expr}"),
            }
            used.insert(metric.to_owned());
        }
    }
    let unused: Vec<_> = known.keys().filter(|m| !used.contains(**m)).collect();
    assert!(unused.is_empty(), "metrics without a panel: {unused:?}");
}

// ---------------------------------------------------------------------------------------------
// the schema

#[test]
fn bad_values_are_refused_with_a_clear_message() {
    const SCHEMA: &str = "values don't meet the specifications of the schema(s)";
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "negative replicas",
            "replicas: -1",
            &[SCHEMA, "at '/replicas': minimum: got -1, want 0"],
        ),
        (
            "replicas as text",
            "replicas: two",
            &[SCHEMA, "at '/replicas': got string, want integer"],
        ),
        (
            "misspelt key",
            "replica: 2",
            &[SCHEMA, "additional properties 'replica' not allowed"],
        ),
        (
            "unknown nested key",
            "serviceMonitor: {enable: true}",
            &[
                SCHEMA,
                "at '/serviceMonitor': additional properties 'enable' not allowed",
            ],
        ),
        (
            "a secret as a plain value",
            "grid: {url: https://grid.example.com, twinId: 1, twinSecret: hunter2}",
            &[SCHEMA, "at '/grid/twinSecret': got string, want object"],
        ),
        (
            "a secret value beside its reference",
            "forge: {url: https://forge.example.com, token: {name: creds, key: token, value: hunter2}}",
            &[
                SCHEMA,
                "at '/forge/token': additional properties 'value' not allowed",
            ],
        ),
        (
            "grid URL without scheme",
            "grid: {url: grid.example.com, twinId: 1, twinSecret: {name: a, key: b}}",
            &[SCHEMA, "at '/grid/url'", "does not match pattern"],
        ),
        (
            "twin id 0",
            "grid: {url: https://g.example.com, twinId: 0, twinSecret: {name: a, key: b}}",
            &[SCHEMA, "at '/grid/twinId': minimum: got 0, want 1"],
        ),
        (
            "mail in plaintext across the network",
            "smtp: {url: 'smtp://mail.example.com:587'}",
            &[SCHEMA, "at '/smtp/url'", "does not match pattern"],
        ),
        (
            "root user",
            "runAsUser: 0",
            &[SCHEMA, "at '/runAsUser': minimum: got 0, want 1"],
        ),
        (
            "namespace with upper case",
            "watchNamespace: Testers",
            &[SCHEMA, "at '/watchNamespace'", "does not match pattern"],
        ),
        (
            "admin with a comma",
            "admins: ['a,b']",
            &[SCHEMA, "at '/admins/0'", "does not match pattern"],
        ),
        (
            "bad duration",
            "controller: {resync: soon}",
            &[SCHEMA, "at '/controller/resync'", "does not match pattern"],
        ),
        (
            "a secret smuggled through extraEnv",
            "extraEnv: [{name: GRID_TWIN_SECRET, value: hunter2}]",
            &[
                "extraEnv: GRID_TWIN_SECRET is set by the chart",
                "secrets only from Secret references",
            ],
        ),
    ];
    let dir = scratch("bad-values");
    let mut failures = Vec::new();
    for (i, (what, yaml, needles)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad-{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        // `helm lint` checks the schema too; a template's own `fail` it only logs.
        let from_schema = needles.contains(&SCHEMA);
        for cmd in if from_schema {
            &["template", "lint"][..]
        } else {
            &["template"][..]
        } {
            let args: Vec<&str> = match *cmd {
                "template" => vec!["template", "sbx", CHART, "-f", file.to_str().unwrap()],
                _ => vec!["lint", CHART, "-f", file.to_str().unwrap()],
            };
            let out = helm(&args);
            let said = format!("{}{}", text(&out.stderr), text(&out.stdout));
            if out.status.success() {
                failures.push(format!("{what}: helm {cmd} accepted {yaml:?}"));
            } else if let Some(missing) = needles.iter().find(|n| !said.contains(**n)) {
                failures.push(format!(
                    "{what}: helm {cmd} refused {yaml:?} without saying {missing:?}:\n{said}"
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------------------------
// CRDs: from crds/, one copy

/// CRD name → parsed document.
fn crd_map(objs: impl IntoIterator<Item = Value>) -> BTreeMap<String, Value> {
    objs.into_iter()
        .filter(|o| kind(o) == "CustomResourceDefinition")
        .map(|o| (name(&o).to_owned(), o))
        .collect()
}

#[test]
fn crds_are_the_repository_crds_not_a_copy() {
    let root = repo_root();
    let link = std::fs::read_link(root.join(CHART).join("crds"))
        .expect("charts/sandbox-controller/crds is a symlink");
    assert_eq!(link, Path::new("../../crds"));

    let mut want = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("crds")).unwrap() {
        let path = entry.unwrap().path();
        want.extend(crd_map(docs(&std::fs::read_to_string(path).unwrap())));
    }
    assert_eq!(
        want.keys().cloned().collect::<Vec<_>>(),
        [
            "hostpools.sandbox.hero.dev",
            "sharedengines.sandbox.hero.dev",
            "testers.sandbox.hero.dev"
        ]
    );

    // helm template --include-crds reads them through the link...
    let rendered = crd_map(render("sbx", "sandbox-system", &["--include-crds"]));
    assert_eq!(
        rendered, want,
        "helm template --include-crds renders crds/ as it is"
    );
    // ...and helm package puts their content (not a dangling link) into the chart archive.
    let dir = scratch("package");
    ok(
        &helm(&["package", CHART, "--destination", dir.to_str().unwrap()]),
        "helm package",
    );
    let tgz = dir.join("sandbox-controller-0.1.0.tgz");
    let shown = crd_map(docs(&ok(
        &helm(&["show", "crds", tgz.to_str().unwrap()]),
        "helm show crds",
    )));
    assert_eq!(shown, want, "the packaged chart carries crds/ as it is");
    let listing = ok(
        &Command::new("tar")
            .args(["tzf", tgz.to_str().unwrap()])
            .output()
            .unwrap(),
        "tar tzf",
    );
    assert!(
        !listing.contains("/ci/"),
        "ci values stay out of the package:\n{listing}"
    );
    assert!(listing.contains("sandbox-controller/dashboards/sandbox-controller.json"));
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// against the real API server

/// Rendered objects as one YAML stream, without the ServiceMonitor (its CRD belongs to the
/// Prometheus Operator, which this control plane does not run); returns the stream and how many
/// ServiceMonitors were left out.
fn without_service_monitor(objs: &[Value]) -> (String, usize) {
    let keep: Vec<String> = objs
        .iter()
        .filter(|o| kind(o) != "ServiceMonitor")
        .map(|o| serde_yaml::to_string(o).unwrap())
        .collect();
    (keep.join("---\n"), objs.len() - keep.len())
}

#[test]
fn rendered_manifests_pass_server_side_dry_run() {
    let ns = TestNamespace::new("helm-dry");
    let watched = TestNamespace::new("helm-dry-watched");
    let set_watch = format!("watchNamespace={}", watched.name);
    for (values, extra, monitors) in [
        (vec![], vec![], 0),
        (vec!["-f", CI_VALUES], vec!["--set", set_watch.as_str()], 1),
    ] {
        let mut args = vec!["--include-crds"];
        args.extend(values.iter().copied());
        args.extend(extra.iter().copied());
        let objs = render("dry", &ns.name, &args);
        let (yaml, left_out) = without_service_monitor(&objs);
        assert_eq!(left_out, monitors);
        let out = cluster().kubectl_stdin(
            &["apply", "--server-side", "--dry-run=server", "-f", "-"],
            Some(&yaml),
        );
        let said = ok(
            &out,
            &format!("kubectl apply --dry-run=server ({values:?})"),
        );
        for o in objs.iter().filter(|o| kind(o) != "ServiceMonitor") {
            let n = name(o);
            assert!(
                said.lines()
                    .any(|l| l.contains(&format!("/{n} ")) && l.contains("(server dry run)")),
                "{} {n} not accepted:\n{said}",
                kind(o)
            );
        }
    }
    // Nothing of it was created.
    let out = ns.kubectl(&["get", "deployments,serviceaccounts", "-o", "name"]);
    assert!(
        !text(&out.stdout).contains("dry-sandbox-controller"),
        "{}",
        text(&out.stdout)
    );
}

/// A Helm release installed for real into `ns`, uninstalled when dropped.
struct Release {
    name: String,
    ns: String,
}

impl Release {
    fn install(name: &str, ns: &str, extra: &[&str]) -> Self {
        // --skip-crds: the harness installed them already (and keeps them current for every test).
        let mut args = vec!["install", name, CHART, "--namespace", ns, "--skip-crds"];
        args.extend_from_slice(extra);
        // Made first, so that a failed install (which can leave cluster-scoped objects behind)
        // is uninstalled too.
        let release = Self {
            name: name.into(),
            ns: ns.into(),
        };
        let out = ok(&helm_cluster(&args), "helm install");
        assert!(out.contains("STATUS: deployed"), "{out}");
        // NOTES.txt tells the operator which Secrets to create.
        assert!(
            out.contains("create secret generic sandbox-controller-credentials"),
            "{out}"
        );
        release
    }

    fn sa(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}-sandbox-controller",
            self.ns, self.name
        )
    }

    fn uninstall(&self) -> Output {
        helm_cluster(&[
            "uninstall",
            &self.name,
            "--namespace",
            &self.ns,
            "--wait",
            "--timeout",
            "60s",
        ])
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self.uninstall();
    }
}

/// Checks `kubectl auth can-i VERB RESOURCE [flags]` as `user` against what is expected; returns
/// the mismatches.
fn can_i(user: &str, checks: &[(bool, &[&str])]) -> Vec<String> {
    let mut wrong = Vec::new();
    for (want, args) in checks {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let as_user = format!("--as={user}");
        all.push(&as_user);
        let out = kubectl(&all);
        let answer = text(&out.stdout).trim().to_owned();
        let got = match answer.as_str() {
            "yes" => true,
            "no" => false,
            _ => panic!(
                "kubectl {} answered {answer:?}: {}",
                all.join(" "),
                text(&out.stderr)
            ),
        };
        if got != *want {
            wrong.push(format!(
                "can-i {}: expected {}, got {answer}",
                args.join(" "),
                if *want { "yes" } else { "no" }
            ));
        }
    }
    wrong
}

#[test]
fn installed_cluster_scoped_rbac_allows_what_the_controller_does_and_nothing_more() {
    let ns = TestNamespace::new("helm-rbac");
    let other = TestNamespace::new("helm-rbac-other");
    let rel = format!("hc{:06x}", rand::random::<u32>() & 0xff_ffff);
    // Two replicas, so the leader-election Role is installed too.
    let release = Release::install(&rel, &ns.name, &["--set", "replicas=2"]);
    let lease = format!("{rel}-sandbox-controller");
    let (n, o) = (ns.name.as_str(), other.name.as_str());
    let lease_res = format!("leases.coordination.k8s.io/{lease}");
    let checks: &[(bool, &[&str])] = &[
        // Its own resources, everywhere.
        (
            true,
            &["list", "testers.sandbox.hero.dev", "--all-namespaces"],
        ),
        (
            true,
            &["watch", "hostpools.sandbox.hero.dev", "--all-namespaces"],
        ),
        (true, &["get", "sharedengines.sandbox.hero.dev", "-n", o]),
        (true, &["patch", "testers.sandbox.hero.dev", "-n", o]),
        (true, &["update", "testers.sandbox.hero.dev", "-n", o]),
        (
            true,
            &[
                "patch",
                "testers.sandbox.hero.dev",
                "--subresource=status",
                "-n",
                o,
            ],
        ),
        (
            true,
            &[
                "patch",
                "hostpools.sandbox.hero.dev",
                "--subresource=status",
                "-n",
                o,
            ],
        ),
        (
            true,
            &[
                "patch",
                "sharedengines.sandbox.hero.dev",
                "--subresource=status",
                "-n",
                o,
            ],
        ),
        (
            true,
            &[
                "update",
                "testers.sandbox.hero.dev",
                "--subresource=finalizers",
                "-n",
                o,
            ],
        ),
        // The Secrets and ConfigMaps it owns, Events.
        (true, &["create", "secrets", "-n", o]),
        (true, &["get", "secrets", "-n", o]),
        (true, &["delete", "secrets", "-n", o]),
        (true, &["create", "configmaps", "-n", o]),
        (true, &["create", "events.events.k8s.io", "-n", o]),
        (true, &["create", "events", "-n", o]),
        // Its Lease, in its own namespace only.
        (true, &["create", "leases.coordination.k8s.io", "-n", n]),
        (true, &["update", &lease_res, "-n", n]),
        (true, &["get", &lease_res, "-n", n]),
        (
            false,
            &[
                "update",
                "leases.coordination.k8s.io/kube-scheduler",
                "-n",
                n,
            ],
        ),
        (false, &["update", &lease_res, "-n", o]),
        (false, &["create", "leases.coordination.k8s.io", "-n", o]),
        // Nothing else.
        (false, &["create", "testers.sandbox.hero.dev", "-n", o]),
        (false, &["delete", "testers.sandbox.hero.dev", "-n", o]),
        (false, &["update", "hostpools.sandbox.hero.dev", "-n", o]),
        (false, &["update", "secrets", "-n", o]),
        (false, &["delete", &format!("namespaces/{o}")]),
        (false, &["create", "namespaces"]),
        (false, &["get", "nodes"]),
        (false, &["list", "pods", "-n", o]),
        (false, &["create", "pods", "-n", o]),
        (false, &["create", "pods/exec", "-n", o]),
        (false, &["create", "deployments.apps", "-n", o]),
        (false, &["create", "serviceaccounts/token", "-n", o]),
        (
            false,
            &["update", "customresourcedefinitions.apiextensions.k8s.io"],
        ),
        (
            false,
            &["create", "clusterrolebindings.rbac.authorization.k8s.io"],
        ),
        (
            false,
            &["create", "rolebindings.rbac.authorization.k8s.io", "-n", o],
        ),
        (false, &["impersonate", "users"]),
        (false, &["*", "*", "--all-namespaces"]),
    ];
    let wrong = can_i(&release.sa(), checks);
    assert!(
        wrong.is_empty(),
        "{} as {}:\n{}",
        rel,
        release.sa(),
        wrong.join("\n")
    );

    // Uninstalling removes the cluster-scoped RBAC too: no permission outlives the release.
    ok(&release.uninstall(), "helm uninstall");
    let out = kubectl(&[
        "get",
        "clusterrole,clusterrolebinding",
        &lease,
        "-o",
        "name",
        "--ignore-not-found",
    ]);
    assert!(
        out.status.success() && text(&out.stdout).trim().is_empty(),
        "left behind: {}",
        text(&out.stdout)
    );
    let wrong = can_i(
        &release.sa(),
        &[
            (false, &["get", "secrets", "-n", o]),
            (
                false,
                &["list", "testers.sandbox.hero.dev", "--all-namespaces"],
            ),
        ],
    );
    assert!(wrong.is_empty(), "after uninstall:\n{}", wrong.join("\n"));
}

#[test]
fn installed_namespace_scoped_rbac_cannot_reach_other_namespaces() {
    let ns = TestNamespace::new("helm-nsrbac");
    let watched = TestNamespace::new("helm-nsrbac-watched");
    let other = TestNamespace::new("helm-nsrbac-other");
    let rel = format!("hn{:06x}", rand::random::<u32>() & 0xff_ffff);
    let set_watch = format!("watchNamespace={}", watched.name);
    let release = Release::install(&rel, &ns.name, &["--set", &set_watch]);
    let out = kubectl(&[
        "get",
        "clusterrole",
        &format!("{rel}-sandbox-controller"),
        "--ignore-not-found",
        "-o",
        "name",
    ]);
    assert!(
        text(&out.stdout).trim().is_empty(),
        "namespace-scoped install created a ClusterRole"
    );
    let (n, w, o) = (ns.name.as_str(), watched.name.as_str(), other.name.as_str());
    let checks: &[(bool, &[&str])] = &[
        // Everything it needs in the watched namespace.
        (true, &["watch", "testers.sandbox.hero.dev", "-n", w]),
        (
            true,
            &[
                "patch",
                "testers.sandbox.hero.dev",
                "--subresource=status",
                "-n",
                w,
            ],
        ),
        (true, &["create", "secrets", "-n", w]),
        (true, &["get", "secrets", "-n", w]),
        (true, &["create", "configmaps", "-n", w]),
        (true, &["create", "events.events.k8s.io", "-n", w]),
        // Nothing in any other namespace, its own included.
        (false, &["get", "secrets", "-n", o]),
        (false, &["list", "secrets", "-n", o]),
        (false, &["get", "secrets", "-n", n]),
        (false, &["create", "secrets", "-n", o]),
        (
            false,
            &["list", "testers.sandbox.hero.dev", "--all-namespaces"],
        ),
        (false, &["list", "testers.sandbox.hero.dev", "-n", o]),
        (false, &["create", "events.events.k8s.io", "-n", o]),
        (false, &["get", "configmaps", "-n", o]),
        // One replica: no leader election, no Lease rights.
        (false, &["create", "leases.coordination.k8s.io", "-n", n]),
        (false, &["delete", &format!("namespaces/{w}")]),
        (false, &["get", "nodes"]),
        (false, &["create", "pods", "-n", w]),
    ];
    let wrong = can_i(&release.sa(), checks);
    assert!(
        wrong.is_empty(),
        "{} as {}:\n{}",
        rel,
        release.sa(),
        wrong.join("\n")
    );
}
