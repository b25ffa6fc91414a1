//! The Helm chart (`charts/sandbox-controller`): it lints strictly; it renders with default and
//! non-default values into exactly the objects the controller needs; it sets exactly the
//! controller's flags. The schema and CRDs are in `helm_schema.rs`, the RBAC in `helm_rbac.rs`,
//! the dashboard in `helm_dashboard.rs`.
//!
//! `helm` is the pinned build from `hack/build-tools.sh helm`; `kubectl` and the API server are
//! the harness's real ones.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use e2e::{chart::*, helm::helm, repo_root};
use serde_yaml::Value;

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
