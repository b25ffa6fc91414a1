//! Objects the tests apply, as builders that read like the sentence they stand for.

use serde_json::{Value, json};

/// A HostPool over `nodes` where each tester needs `disk_gib` disk and `memory_gib` memory.
pub fn host_pool(name: &str, nodes: &[u32], disk_gib: u32, memory_gib: u32) -> String {
    serde_json::to_string(&json!({
        "apiVersion": "sandbox.hero.dev/v1alpha1",
        "kind": "HostPool",
        "metadata": {"name": name},
        "spec": {"nodes": nodes, "perTester": {"cpu": 1, "memoryGiB": memory_gib, "diskGiB": disk_gib}},
    }))
    .unwrap()
}

/// A HostPool over `nodes` (10 GiB disk, 1 GiB memory per tester) whose name proxies run on
/// `gateways` and that moves a machine unreachable for longer than `unhealthy_after`.
pub fn remediating_pool(nodes: &[u32], gateways: &[u32], unhealthy_after: &str) -> String {
    json!({
        "apiVersion": "sandbox.hero.dev/v1alpha1",
        "kind": "HostPool",
        "metadata": {"name": "pool"},
        "spec": {
            "nodes": nodes,
            "gatewayNodes": gateways,
            "perTester": {"cpu": 1, "memoryGiB": 1, "diskGiB": 10},
            "remediation": {"unhealthyAfter": unhealthy_after, "maxUnhealthy": 40},
        },
    })
    .to_string()
}

/// A HostPool over `nodes` (each tester `disk_gib` disk, `memory_gib` memory) keeping `size`
/// machines warm, built `max_building` at a time, with `warmPool.names` when given.
pub fn warm_pool(
    name: &str,
    nodes: &[u32],
    (disk_gib, memory_gib): (u32, u32),
    (size, max_building): (u32, u32),
    names: Option<&str>,
) -> String {
    let mut warm = json!({"size": size, "maxBuilding": max_building});
    if let Some(n) = names {
        warm["names"] = json!(n);
    }
    serde_json::to_string(&json!({
        "apiVersion": "sandbox.hero.dev/v1alpha1",
        "kind": "HostPool",
        "metadata": {"name": name},
        "spec": {
            "nodes": nodes,
            "perTester": {"cpu": 1, "memoryGiB": memory_gib, "diskGiB": disk_gib},
            "warmPool": warm,
        },
    }))
    .unwrap()
}

/// A SharedEngine of kind `engine` served at `url`, its token store at `{url}/admin`.
pub fn shared_engine(engine: &str, url: &str) -> String {
    shared_engine_with_store(engine, engine, url, &format!("{url}/admin"))
}

/// A SharedEngine `name` of kind `engine` served at `url` whose token store is at `store`.
pub fn shared_engine_with_store(name: &str, engine: &str, url: &str, store: &str) -> String {
    serde_json::to_string(&json!({
        "apiVersion": "sandbox.hero.dev/v1alpha1",
        "kind": "SharedEngine",
        "metadata": {"name": name},
        "spec": {"engine": engine, "url": url, "tokenStore": {"url": store}},
    }))
    .unwrap()
}

/// The operator's AI-provider keys Secret.
pub fn ai_keys(keys: &[(&str, &str)]) -> String {
    let data: serde_json::Map<String, Value> = keys
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    serde_json::to_string(&json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "ai-provider-keys"},
        "stringData": data,
    }))
    .unwrap()
}

/// A Tester builder.
pub struct TesterBuilder {
    doc: Value,
}

/// A Tester named `name` for account `account` on pool `pool`, welcome email off.
pub fn tester(name: &str, account: &str, pool: &str) -> TesterBuilder {
    TesterBuilder {
        doc: json!({
            "apiVersion": "sandbox.hero.dev/v1alpha1",
            "kind": "Tester",
            "metadata": {"name": name},
            "spec": {
                "accountName": account,
                "email": format!("{}@example.com", account.to_lowercase()),
                "accountType": "Existing",
                "hostPool": pool,
                "welcomeEmail": false,
            },
        }),
    }
}

impl TesterBuilder {
    /// Sets a spec field.
    pub fn with(mut self, field: &str, value: Value) -> Self {
        self.doc["spec"][field] = value;
        self
    }

    /// The YAML/JSON document.
    pub fn build(&self) -> String {
        serde_json::to_string(&self.doc).unwrap()
    }
}
