//! zos's face: the deployment a node accepts, its workloads and their results, as zosbase's
//! `pkg/gridtypes` defines them (JSON field for field), and zos's own arithmetic: the
//! deployment challenge and its hash ([`challenge`]), mycelium addresses ([`mycelium`]) and the
//! minimum root size of a VM ([`rootfs`]). `tests/vectors.rs` checks the arithmetic against
//! values computed by the real code.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub mod challenge;
pub mod mycelium;
pub mod rootfs;

pub use challenge::{challenge, challenge_hash};
pub use mycelium::{mycelium_address, vm_mycelium_ip};
pub use rootfs::{min_root_size, root_size};

/// A deployment sent to a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// 0 on create.
    #[serde(default)]
    pub version: u32,
    /// Owner twin.
    pub twin_id: u32,
    /// The node contract that pays for it.
    pub contract_id: u64,
    /// Free text.
    #[serde(default)]
    pub metadata: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Deprecated in zos (always 0), but part of the challenge.
    #[serde(default)]
    pub expiration: u64,
    /// Who must sign the deployment (grid-client: the deploying twin, weight 1).
    #[serde(default)]
    pub signature_requirement: SignatureRequirement,
    /// Workloads, names unique.
    pub workloads: Vec<Workload>,
}

/// Who must sign a deployment, as zos's `SignatureRequirement`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRequirement {
    /// One request per signing twin.
    #[serde(default)]
    pub requests: Vec<SignatureRequest>,
    /// The weight the signatures must add up to.
    #[serde(default)]
    pub weight_required: u32,
    /// The signatures of the challenge hash (not part of the challenge itself).
    #[serde(default)]
    pub signatures: Vec<Signature>,
    /// `""` (sign the challenge hash) or `polka-wallet`.
    #[serde(default)]
    pub signature_style: String,
}

impl SignatureRequirement {
    /// What grid-client asks for: the deploying twin alone, weight 1.
    pub fn by(twin_id: u32) -> Self {
        Self {
            requests: vec![SignatureRequest {
                twin_id,
                required: false,
                weight: 1,
            }],
            weight_required: 1,
            signatures: Vec::new(),
            signature_style: String::new(),
        }
    }
}

/// A twin's signature of a deployment, as zos's `Signature`: the hex of the signature of the
/// raw 16-byte challenge hash, and the key type that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing twin.
    pub twin_id: u32,
    /// Hex of the 64-byte signature.
    pub signature: String,
    /// `sr25519` or `ed25519`.
    pub signature_type: String,
}

/// One twin's part of a [`SignatureRequirement`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRequest {
    /// The twin.
    pub twin_id: u32,
    /// Whether its signature is required.
    #[serde(default)]
    pub required: bool,
    /// Its weight.
    pub weight: u32,
}

impl Deployment {
    /// The hash the node contract must carry for this deployment: zos's MD5 challenge hash,
    /// 32 hex digits (see [`challenge::challenge`]). The contract id and the results are not
    /// part of it, so it can be computed before the contract exists.
    pub fn challenge_hash(&self) -> String {
        challenge::challenge_hash(self)
    }

    /// The workload of that name.
    pub fn workload(&self, name: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.name == name)
    }

    /// Workloads whose result is `error`, with their messages.
    pub fn errors(&self) -> Vec<(&str, &str)> {
        self.workloads
            .iter()
            .filter(|w| w.result.state == WorkloadState::Error)
            .map(|w| (w.name.as_str(), w.result.message.as_str()))
            .collect()
    }

    /// True when every workload reached `ok`.
    pub fn all_ok(&self) -> bool {
        self.workloads
            .iter()
            .all(|w| w.result.state == WorkloadState::Ok)
    }
}

/// A workload of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// `^[a-zA-Z0-9_]+$`, at most 36 chars, unique in the deployment.
    pub name: String,
    /// Version, 0 on create.
    #[serde(default)]
    pub version: u32,
    /// Type and data.
    #[serde(flatten)]
    pub data: WorkloadData,
    /// Free text.
    #[serde(default)]
    pub metadata: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Filled in by the node; ignored on deploy.
    #[serde(default)]
    pub result: WorkloadResult,
}

impl Workload {
    /// A new workload with an empty result.
    pub fn new(name: impl Into<String>, data: WorkloadData) -> Self {
        Workload {
            name: name.into(),
            version: 0,
            data,
            metadata: String::new(),
            description: String::new(),
            result: WorkloadResult::default(),
        }
    }

    /// The zmachine result, when this is a zmachine with a result.
    pub fn zmachine_result(&self) -> Option<ZmachineResult> {
        match self.data {
            WorkloadData::ZmachineLight(_) => serde_json::from_value(self.result.data.clone()).ok(),
            _ => None,
        }
    }

    /// The gateway result, when this is a gateway with a result.
    pub fn gateway_result(&self) -> Option<GatewayResult> {
        match self.data {
            WorkloadData::GatewayNameProxy(_) => {
                serde_json::from_value(self.result.data.clone()).ok()
            }
            _ => None,
        }
    }
}

/// The workload types this grid supports, tagged by `type` with the payload in `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum WorkloadData {
    /// A private network (mycelium only).
    #[serde(rename = "network-light")]
    NetworkLight(NetworkLight),
    /// A disk.
    #[serde(rename = "zmount")]
    Zmount(Zmount),
    /// A micro VM.
    #[serde(rename = "zmachine-light")]
    ZmachineLight(ZmachineLight),
    /// A gateway name proxying to one backend.
    #[serde(rename = "gateway-name-proxy")]
    GatewayNameProxy(GatewayNameProxy),
}

impl WorkloadData {
    /// The zos type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            WorkloadData::NetworkLight(_) => "network-light",
            WorkloadData::Zmount(_) => "zmount",
            WorkloadData::ZmachineLight(_) => "zmachine-light",
            WorkloadData::GatewayNameProxy(_) => "gateway-name-proxy",
        }
    }
}

/// `network-light`: a private network reached over mycelium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "NetworkLightWire")]
pub struct NetworkLight {
    /// IPv4 subnet of the network on this node, e.g. `10.20.2.0/24`.
    pub subnet: String,
    /// The network's mycelium node.
    pub mycelium: NetworkMycelium,
}

/// What a `network-light` may look like when read: zos's shape, or the flat `mycelium_key`
/// gridshim stored before it spoke zos's (so an existing gridshim database still loads).
#[derive(Deserialize)]
#[serde(untagged)]
enum NetworkLightWire {
    Zos {
        subnet: String,
        mycelium: NetworkMycelium,
    },
    Flat {
        subnet: String,
        mycelium_key: String,
    },
}

impl From<NetworkLightWire> for NetworkLight {
    fn from(w: NetworkLightWire) -> Self {
        match w {
            NetworkLightWire::Zos { subnet, mycelium } => Self { subnet, mycelium },
            NetworkLightWire::Flat {
                subnet,
                mycelium_key,
            } => Self {
                subnet,
                mycelium: NetworkMycelium {
                    hex_key: mycelium_key,
                    peers: Vec::new(),
                },
            },
        }
    }
}

/// The mycelium node of a `network-light`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkMycelium {
    /// 32 bytes, hex: the node's key; its address (and so every VM's) derives from it.
    pub hex_key: String,
    /// Peers to use instead of the default list.
    #[serde(default)]
    pub peers: Vec<String>,
}

/// `zmount`: a disk of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zmount {
    /// Bytes.
    pub size: u64,
}

/// `zmachine-light`: a micro VM. Its `Debug` prints the env's names, never its values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZmachineLight {
    /// Image URL.
    pub flist: String,
    /// Network attachment.
    pub network: ZmachineNetwork,
    /// Root filesystem size, bytes.
    pub size: u64,
    /// vCPU and memory.
    pub compute_capacity: ComputeCapacity,
    /// Disks to mount (names of `zmount` workloads of the same deployment).
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Entry point.
    #[serde(default)]
    pub entrypoint: String,
    /// Environment (stored in plain text by the node: never a secret). The controller puts
    /// only its public key and the machine id here ([`crate::agent::signing`]).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Run with the zos core-x console.
    #[serde(default)]
    pub corex: bool,
}

impl fmt::Debug for ZmachineLight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZmachineLight")
            .field("flist", &self.flist)
            .field("network", &self.network)
            .field("size", &self.size)
            .field("compute_capacity", &self.compute_capacity)
            .field("mounts", &self.mounts)
            .field("entrypoint", &self.entrypoint)
            .field(
                "env",
                &self
                    .env
                    .keys()
                    .map(|k| (k, "<redacted>"))
                    .collect::<BTreeMap<_, _>>(),
            )
            .field("corex", &self.corex)
            .finish()
    }
}

/// How a zmachine attaches to its network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZmachineNetwork {
    /// Exactly one interface.
    pub interfaces: Vec<NetworkInterface>,
    /// The mycelium attachment.
    pub mycelium: MyceliumAttachment,
}

/// A network interface of a zmachine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// Name of a `network-light` workload of the same deployment.
    pub network: String,
    /// IPv4 inside the network's subnet.
    pub ip: String,
}

/// The mycelium attachment of a zmachine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyceliumAttachment {
    /// Name of the `network-light` workload.
    pub network: String,
    /// 6 bytes, hex; the VM's mycelium address is the network's /64 + `ff0f` + seed.
    #[serde(rename = "hex_seed", alias = "seed")]
    pub seed: String,
}

/// vCPU and memory of a zmachine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeCapacity {
    /// At least 1.
    pub cpu: u8,
    /// Bytes, at least 250 MiB.
    pub memory: u64,
}

/// A disk mount of a zmachine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Name of a `zmount` workload.
    pub name: String,
    /// Where it is mounted.
    pub mountpoint: String,
}

/// `gateway-name-proxy`: `NAME.<node domain>` proxying to one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayNameProxy {
    /// The name (a name contract of the same twin must hold it).
    pub name: String,
    /// Pass TLS through instead of terminating it.
    #[serde(default)]
    pub tls_passthrough: bool,
    /// Exactly one backend, `http://[<mycelium ip>]:port`.
    pub backends: Vec<String>,
    /// A network of the same deployment the backend is reached through, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// State of a workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadState {
    /// Accepted, being worked on.
    #[default]
    Init,
    /// Deployed.
    Ok,
    /// Failed; see the message.
    Error,
    /// Removed.
    Deleted,
    /// Paused (contract in grace period).
    Paused,
}

/// The node's result for a workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// Unix seconds of this state.
    #[serde(default)]
    pub created: u64,
    /// State.
    #[serde(default)]
    pub state: WorkloadState,
    /// Error text when `state` is `error`.
    #[serde(default)]
    pub message: String,
    /// Type-specific data ([`ZmachineResult`], [`GatewayResult`]); may be empty.
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Result data of a `zmachine-light`. Any field may be missing (a real failure mode).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZmachineResult {
    /// VM id on the node.
    #[serde(default)]
    pub id: String,
    /// IPv4 in the private network.
    #[serde(default)]
    pub ip: String,
    /// Mycelium IPv6 address; the VM's agent and web side are reached through it.
    #[serde(default)]
    pub mycelium_ip: String,
    /// Console URL.
    #[serde(default)]
    pub console_url: String,
}

/// Result data of a `gateway-name-proxy`. `fqdn` may be missing (a real failure mode).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayResult {
    /// `NAME.<node domain>`.
    #[serde(default)]
    pub fqdn: String,
}

/// One entry of a deployment's change history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadChange {
    /// Workload name.
    pub name: String,
    /// zos type name.
    #[serde(rename = "type")]
    pub workload_type: String,
    /// Workload version.
    pub version: u32,
    /// The state reached.
    pub result: WorkloadResult,
}

/// A VM's mycelium address, as zos derives it (see [`mycelium::vm_mycelium_ip`]): lets a
/// client compute the address when the node's result lacks it. `None` unless the network key
/// is 32 hex bytes and the seed 6.
pub fn mycelium_ip(network_key_hex: &str, seed_hex: &str) -> Option<String> {
    mycelium::vm_mycelium_ip(network_key_hex, seed_hex).map(|ip| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mycelium_ip_is_the_networks_64_then_ff0f_then_the_seed() {
        let key = "ab".repeat(32);
        let ip = mycelium_ip(&key, "0102030405ff").unwrap();
        assert!(ip.ends_with(":ff0f:102:304:5ff"), "{ip}");
        assert!(mycelium_ip(&key, "0102").is_none(), "a seed is 6 bytes");
        assert!(
            mycelium_ip("00aa", "0102030405ff").is_none(),
            "a key is 32 bytes"
        );
    }

    #[test]
    fn a_network_stored_before_the_zos_shape_still_loads() {
        let old: NetworkLight =
            serde_json::from_str(r#"{"subnet":"10.20.2.0/24","mycelium_key":"abcd"}"#).unwrap();
        assert_eq!(old.mycelium.hex_key, "abcd");
        let zos: NetworkLight = serde_json::from_str(
            r#"{"subnet":"10.20.2.0/24","mycelium":{"hex_key":"abcd","peers":["tcp://p:9651"]}}"#,
        )
        .unwrap();
        assert_eq!(zos.mycelium.peers, ["tcp://p:9651"]);
        let written = serde_json::to_value(&zos).unwrap();
        assert_eq!(
            written["mycelium"]["hex_key"], "abcd",
            "written in zos's shape"
        );
    }

    #[test]
    fn workload_wire_format_matches_zos() {
        let w = Workload::new("disk", WorkloadData::Zmount(Zmount { size: 10 }));
        let v = serde_json::to_value(&w).unwrap();
        assert_eq!(v["type"], "zmount");
        assert_eq!(v["data"]["size"], 10);
        let back: Workload = serde_json::from_value(v).unwrap();
        assert_eq!(back, w);
    }
}
