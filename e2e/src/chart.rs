//! The Helm chart's rendering and small accessors of rendered objects, shared by the chart's
//! tests (`tests/helm_chart.rs`, `tests/helm_rbac.rs`).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::Output,
};

use serde::Deserialize;
use serde_yaml::Value;

use crate::{helm::helm, repo_root};

/// The chart, relative to the repository.
pub const CHART: &str = "charts/sandbox-controller";
/// The non-default values: 2 replicas, one watched namespace, ServiceMonitor and dashboard on.
pub const CI_VALUES: &str = "charts/sandbox-controller/ci/namespaced-ha-values.yaml";
/// The Grafana dashboard.
pub const DASHBOARD: &str = "charts/sandbox-controller/dashboards/sandbox-controller.json";

// ---------------------------------------------------------------------------------------------
// helm, rendering and small accessors

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stdout)
}

/// The non-empty YAML documents of a multi-document stream.
pub fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}
/// `helm template` of the chart as release `rel` in namespace `ns`, with extra arguments.
pub fn render(rel: &str, ns: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", rel, CHART, "--namespace", ns];
    args.extend_from_slice(extra);
    docs(&ok(&helm(&args), &format!("helm {}", args.join(" "))))
}

pub fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

pub fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn kinds(objs: &[Value]) -> BTreeSet<String> {
    objs.iter()
        .map(|o| format!("{}/{}", kind(o), name(o)))
        .collect()
}

pub fn one<'a>(objs: &'a [Value], k: &str) -> &'a Value {
    let found: Vec<_> = objs.iter().filter(|o| kind(o) == k).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {k}, got {:?}",
        kinds(objs)
    );
    found[0]
}

pub fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

/// The controller container.
pub fn container(objs: &[Value]) -> &Value {
    let containers = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

/// The container's env as name → entry (an entry has `value` or `valueFrom`).
pub fn env(objs: &[Value]) -> BTreeMap<String, Value> {
    let mut env = BTreeMap::new();
    for e in container(objs)["env"].as_sequence().unwrap() {
        let prev = env.insert(str_of(&e["name"]).to_owned(), e.clone());
        assert!(prev.is_none(), "env {} set twice", str_of(&e["name"]));
    }
    env
}

pub fn env_value(env: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    env.get(key)
        .and_then(|e| e["value"].as_str())
        .map(String::from)
}

/// Every env var the controller reads (`env = "X"` in controller/src/config.rs), and which of them
/// are secrets (`hide_env_values = true`): the contract between the chart and the binary.
pub fn controller_env() -> (BTreeSet<String>, BTreeSet<String>) {
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
pub fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "helm-chart-{what}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
