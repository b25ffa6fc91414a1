//! The RBAC the Helm chart renders (`charts/sandbox-controller`): exactly the rules the
//! controller uses. Accepted by the real API server and, installed, letting the controller's
//! ServiceAccount do what it does and nothing more: `helm_rbac_installed.rs`.
//!
//! `helm` is the pinned build from `hack/build-tools.sh helm`; `kubectl` and the API server are
//! the harness's real ones.

use std::collections::BTreeSet;

use e2e::chart::*;
use serde_yaml::Value;

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
    for v in [
        "get", "list", "watch", "create", "patch", "update", "delete",
    ] {
        want.insert(format!("sandbox.hero.dev warmmachines {v}"));
    }
    want.insert("sandbox.hero.dev warmmachines/status patch".into());
    for r in ["hostpools", "warmmachines"] {
        want.insert(format!("sandbox.hero.dev {r}/finalizers update"));
    }
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
