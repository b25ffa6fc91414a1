//! The chart against the real API server: its rendered manifests pass a server-side dry run,
//! and, installed, its RBAC lets the controller's ServiceAccount do what the controller does
//! and nothing it must not (the rendered rules are checked in `helm_rbac.rs`).
//!
//! `helm` is the pinned build from `hack/build-tools.sh helm`; `kubectl` and the API server are
//! the harness's real ones.

use std::process::Output;

use e2e::{TestNamespace, chart::*, cluster, helm::helm_cluster, kubectl};
use serde_yaml::Value;

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
