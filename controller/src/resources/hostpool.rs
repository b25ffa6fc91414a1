//! `HostPool`: the grid nodes testers may be placed on.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{WarmPool, WarmPoolStatus};

/// A pool of grid nodes that testers are placed on, with what one tester needs and how to
/// spread them. The status reports each node's real free disk and memory and how many more
/// testers fit.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sandbox.hero.dev",
    version = "v1alpha1",
    kind = "HostPool",
    namespaced,
    doc = "A pool of grid nodes testers are placed on, placed by real free disk and memory.",
    shortname = "hp",
    status = "HostPoolStatus",
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".status.nodeCount"}"#,
    printcolumn = r#"{"name":"Online","type":"integer","jsonPath":".status.onlineCount"}"#,
    printcolumn = r#"{"name":"Fit","type":"integer","jsonPath":".status.fit"}"#,
    printcolumn = r#"{"name":"Testers","type":"integer","jsonPath":".status.testers"}"#,
    printcolumn = r#"{"name":"Unhealthy","type":"integer","jsonPath":".status.unhealthy"}"#,
    printcolumn = r#"{"name":"Warm","type":"integer","jsonPath":".status.warm.ready"}"#,
    printcolumn = r#"{"name":"Warming","type":"integer","jsonPath":".status.warm.warming"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.farm) ? 1 : 0) + (has(self.nodes) && size(self.nodes) > 0 ? 1 : 0) == 1")
    .message("set exactly one of nodes (a list of grid node ids) or farm (a farm id to take nodes from)"))]
#[x_kube(validation = Rule::new("!has(self.warmPool) || !has(self.warmPoolSize) || self.warmPoolSize == 0")
    .message("warmPoolSize is deprecated: set warmPool.size only"))]
pub struct HostPoolSpec {
    /// Grid node ids testers may be placed on. Set this or `farm`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    #[x_kube(validation = Rule::new("self.all(n, n >= 1)").message("nodes must be grid node ids (1 or more)"))]
    pub nodes: Vec<u32>,

    /// A farm id: every node of the farm that has a gateway domain is part of the pool. Set
    /// this or `nodes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("farm must be a grid farm id (1 or more)"))]
    pub farm: Option<u32>,

    /// What one tester's machine needs, unless the Tester overrides it.
    #[serde(default)]
    pub per_tester: TesterResources,

    /// How testers are spread over the nodes: `spread` (the node with the most free room,
    /// default) or `binpack` (fill the fullest node that still fits first).
    #[serde(default)]
    pub placement: PlacementPolicy,

    /// Deprecated: use `warmPool.size`. Still honoured (as `warmPool.size` with its defaults)
    /// when `warmPool` is not set.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 50").message("warmPoolSize must be between 0 and 50"))]
    pub warm_pool_size: u32,
    /// Machines built ahead of any tester, so that a new tester gets a working machine in
    /// seconds: its name, gate, tokens, keys and account are bound when it claims one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<WarmPool>,
    /// Grid nodes with a gateway domain that run the testers' name proxies (a tester's public
    /// name then points at its machine wherever the machine is, and keeps its address when the
    /// machine moves). Empty: each tester's name proxy runs on its machine's own node, so only
    /// nodes with a gateway domain take testers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(n, n >= 1)").message("gatewayNodes must be grid node ids (1 or more)"))]
    pub gateway_nodes: Vec<u32>,
    /// Farms whose gateway nodes also run the testers' name proxies: every node the grid
    /// proxy's gateway listing shows up and healthy in these farms, found anew at each refresh
    /// (a tester keeps the gateway node it was given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(f, f >= 1)").message("gatewayFarms must be grid farm ids (1 or more)"))]
    pub gateway_farms: Vec<u32>,
    /// Moving testers off dead nodes.
    #[serde(default)]
    pub remediation: Remediation,
}

/// When a tester's machine is rebuilt on another node of the pool (as the rebuild annotation
/// does: same account, address, tokens and access).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Remediation {
    /// How long a machine may be unreachable (or its node down) before it is moved, as a
    /// duration such as `10m` or `1h30m`; `0s` turns remediation off.
    #[serde(default = "default_unhealthy_after")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+([.][0-9]+)?(ms|s|m|h))+$') && duration(self) >= duration('0s')")
        .message("unhealthyAfter must be a duration such as 10m, 90s or 1h30m (0s turns remediation off)"))]
    pub unhealthy_after: String,
    /// No machine is moved while more than this percentage of the pool's testers is unhealthy:
    /// a grid-wide outage must not cause a stampede of rebuilds.
    #[serde(default = "default_max_unhealthy")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 100").message("maxUnhealthy is a percentage, 0-100"))]
    pub max_unhealthy: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl HostPoolSpec {
    /// The warm pool asked for: `warmPool`, else the deprecated `warmPoolSize` with the
    /// defaults; `None` when no machine is to be kept warm.
    pub fn warm(&self) -> Option<WarmPool> {
        let warm = match &self.warm_pool {
            Some(w) => w.clone(),
            None => WarmPool {
                size: self.warm_pool_size,
                ..WarmPool::default()
            },
        };
        (warm.size > 0).then_some(warm)
    }
}

fn default_unhealthy_after() -> String {
    "10m".into()
}

fn default_max_unhealthy() -> u32 {
    40
}

impl Default for Remediation {
    fn default() -> Self {
        Self {
            unhealthy_after: default_unhealthy_after(),
            max_unhealthy: default_max_unhealthy(),
        }
    }
}

impl Remediation {
    /// `unhealthyAfter` as a duration; `None` when remediation is off (or unparsable, which
    /// the CRD's validation prevents).
    pub fn after(&self) -> Option<std::time::Duration> {
        humantime::parse_duration(&self.unhealthy_after)
            .ok()
            .filter(|d| !d.is_zero())
    }
}

/// The resources of one tester's machine.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.diskGiB >= (self.cpu * self.memoryGiB >= 8 ? 3 : 2)")
    .message("diskGiB must hold zos's minimum root filesystem (2 GiB when cpu × memoryGiB ≥ 8, else 500 MiB) and a data disk of at least 1 GiB: 3 GiB or more for such machines, 2 GiB or more for smaller ones"))]
pub struct TesterResources {
    /// Virtual CPUs, 1-32.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 32").message("cpu must be between 1 and 32 vCPUs"))]
    pub cpu: u32,
    /// Memory in GiB, 1-256.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 256").message("memoryGiB must be between 1 and 256"))]
    #[serde(rename = "memoryGiB")]
    pub memory_gib: u32,
    /// Disk in GiB, 1-4096.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 4096").message("diskGiB must be between 1 and 4096"))]
    #[serde(rename = "diskGiB")]
    pub disk_gib: u32,
}

impl Default for TesterResources {
    fn default() -> Self {
        Self {
            cpu: 2,
            memory_gib: 4,
            disk_gib: 50,
        }
    }
}

/// How testers are spread over a pool's nodes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PlacementPolicy {
    /// Place on the node with the most free room.
    #[default]
    Spread,
    /// Place on the fullest node that still fits.
    Binpack,
}

/// What the controller observed of a HostPool's nodes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostPoolStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Available` when at least one node is online and another tester fits, else `Full`,
    /// `Offline` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// `Available`: whether a new tester can be placed now, and if not, why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Number of nodes in the pool.
    #[serde(default)]
    pub node_count: u32,
    /// Number of nodes online and healthy.
    #[serde(default)]
    pub online_count: u32,
    /// How many more testers with the pool's `perTester` resources fit, from real free disk
    /// and memory.
    #[serde(default)]
    pub fit: u32,
    /// Machines placed on the pool's nodes: testers', and warm machines (which hold their
    /// place like a tester's).
    #[serde(default)]
    pub testers: u32,
    /// Testers whose machine is unreachable or whose node is down.
    #[serde(default)]
    pub unhealthy: u32,
    /// The gateway nodes new testers' name proxies go to: `gatewayNodes` and those found in
    /// `gatewayFarms`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_nodes: Vec<u32>,
    /// The warm pool: machines desired, ready to claim, being built, outdated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<WarmPoolStatus>,
    /// Per node: online, real free disk and memory, testers placed, how many more fit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["nodeId"]))]
    pub nodes: Vec<NodeCapacity>,
}

/// One node of a HostPool as the controller sees it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeCapacity {
    /// Grid node id.
    pub node_id: u32,
    /// Whether the grid reports the node up and healthy.
    pub online: bool,
    /// The node's gateway domain, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_domain: Option<String>,
    /// Free disk (SSD) in bytes: total minus used minus the grid's reserve, minus what placed
    /// testers hold that the grid has not counted yet.
    pub free_disk_bytes: u64,
    /// Free memory in bytes, computed the same way.
    pub free_memory_bytes: u64,
    /// Machines placed on this node (testers' and warm ones).
    pub testers: u32,
    /// How many more testers with the pool's `perTester` resources fit.
    pub fit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deprecated_warm_pool_size_still_turns_the_warm_pool_on() {
        let mut spec: HostPoolSpec = serde_json::from_str(r#"{"nodes":[1]}"#).unwrap();
        assert_eq!(spec.warm(), None, "off by default");
        spec.warm_pool_size = 3;
        let warm = spec.warm().unwrap();
        assert_eq!((warm.size, warm.max_building), (3, 2));
        assert_eq!(warm.apps.len(), 8, "all apps by default");
        // warmPool wins (the CRD refuses both at once).
        let spec: HostPoolSpec =
            serde_json::from_str(r#"{"nodes":[1],"warmPool":{"size":1,"names":"neutral"}}"#)
                .unwrap();
        let warm = spec.warm().unwrap();
        assert_eq!(
            (warm.size, warm.names),
            (1, super::super::WarmNames::Neutral)
        );
        let off: HostPoolSpec =
            serde_json::from_str(r#"{"nodes":[1],"warmPool":{"size":0}}"#).unwrap();
        assert_eq!(off.warm(), None);
    }
}
