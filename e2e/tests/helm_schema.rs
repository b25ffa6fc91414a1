//! The Helm chart's values schema refuses bad values with a message naming the value, and the
//! chart installs the CRDs from `crds/` (no second copy).
//!
//! `helm` is the pinned build from `hack/build-tools.sh helm`.

use std::{collections::BTreeMap, path::Path, process::Command};

use e2e::{chart::*, helm::helm, repo_root};
use serde_yaml::Value;

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
            "testers.sandbox.hero.dev",
            "warmmachines.sandbox.hero.dev"
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
