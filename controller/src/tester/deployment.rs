//! The desired grid deployments of a tester, built without any client (pure, unit-tested).
//!
//! The machine's keys (network key, mycelium seed, machine id) are random, made once per
//! machine build and kept in a Secret owned by the Tester ([`super::machine_keys`]), so every
//! pass builds the same deployment and the same hash, and a rebuild gets a machine of its own.
//! The VM's env holds nothing secret: the controller's public key and the machine id.

use std::collections::BTreeMap;

use gridapi::{
    agent::signing::{CONTROLLER_KEY_ENV, MACHINE_ID_ENV},
    zos::{
        ComputeCapacity, Deployment, GatewayNameProxy, MyceliumAttachment, NetworkInterface,
        NetworkLight, SignatureRequirement, Workload, WorkloadData, ZmachineLight, ZmachineNetwork,
        Zmount, mycelium_ip,
    },
};
use serde::{Deserialize, Serialize};

use crate::resources::Placement;

/// The image every tester VM boots.
pub const FLIST: &str = "https://hub.grid.tf/tf-official-apps/sandbox-tester-v1.flist";
/// Port of the VM's web side (behind the gate), the gateway's backend.
pub const WEB_PORT: u16 = 8080;

/// What the controller writes into a contract's metadata so that a restarted controller finds
/// (adopts) what it created instead of creating a second one.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ContractTag {
    /// The Tester's UID.
    pub tester: String,
    /// `vm` or `gw`.
    pub kind: String,
    /// The machine build (the rebuild annotation's value, empty for the first).
    #[serde(default)]
    pub build: String,
}

impl ContractTag {
    /// The metadata string (well under the grid's 512 bytes).
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("tag serializes")
    }

    /// Reads a contract's metadata; `None` when it is not one of ours.
    pub fn decode(metadata: &str) -> Option<Self> {
        serde_json::from_str(metadata).ok()
    }
}

/// The random keys of one machine build. Its `Debug` shows only the machine id.
#[derive(Clone, PartialEq, Eq)]
pub struct MachineKeys {
    /// The machine id its agent answers to (not secret).
    pub machine_id: String,
    /// The private network's key (32 bytes, hex).
    pub network_key: String,
    /// The VM's mycelium seed (6 bytes, hex).
    pub seed: String,
}

impl std::fmt::Debug for MachineKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineKeys")
            .field("machine_id", &self.machine_id)
            .finish_non_exhaustive()
    }
}

impl MachineKeys {
    /// New random keys.
    pub fn generate() -> Self {
        use rand::RngCore as _;
        let mut bytes = [0u8; 46];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            machine_id: format!("m-{}", hex::encode(&bytes[..8])),
            network_key: hex::encode(&bytes[8..40]),
            seed: hex::encode(&bytes[40..46]),
        }
    }

    /// The VM's private address, computed as the grid does (used when the node's result
    /// lacks it).
    pub fn mycelium_ip(&self) -> String {
        mycelium_ip(&self.network_key, &self.seed).expect("seed is 6 bytes")
    }
}

/// The VM deployment: a disk, a private network and the micro VM.
pub fn vm(
    twin_id: u32,
    placement: &Placement,
    keys: &MachineKeys,
    controller_public_key: &str,
    tag: &ContractTag,
) -> Deployment {
    let env = BTreeMap::from([
        (
            CONTROLLER_KEY_ENV.to_string(),
            controller_public_key.to_string(),
        ),
        (MACHINE_ID_ENV.to_string(), keys.machine_id.clone()),
    ]);
    Deployment {
        version: 0,
        twin_id,
        contract_id: 0,
        metadata: tag.encode(),
        description: "sandbox tester machine".into(),
        expiration: 0,
        signature_requirement: SignatureRequirement::by(twin_id),
        workloads: vec![
            Workload::new(
                "disk",
                WorkloadData::Zmount(Zmount {
                    size: placement.disk_bytes.saturating_sub(rootfs_size(placement)),
                }),
            ),
            Workload::new(
                "net",
                WorkloadData::NetworkLight(NetworkLight {
                    subnet: "10.20.2.0/24".into(),
                    mycelium: gridapi::zos::NetworkMycelium {
                        hex_key: keys.network_key.clone(),
                        peers: Vec::new(),
                    },
                }),
            ),
            Workload::new(
                "vm",
                WorkloadData::ZmachineLight(ZmachineLight {
                    flist: FLIST.into(),
                    network: ZmachineNetwork {
                        interfaces: vec![NetworkInterface {
                            network: "net".into(),
                            ip: "10.20.2.2".into(),
                        }],
                        mycelium: MyceliumAttachment {
                            network: "net".into(),
                            seed: keys.seed.clone(),
                        },
                    },
                    size: rootfs_size(placement),
                    compute_capacity: ComputeCapacity {
                        cpu: placement.cpu.clamp(1, 255) as u8,
                        memory: placement.memory_bytes,
                    },
                    mounts: vec![gridapi::zos::Mount {
                        name: "disk".into(),
                        mountpoint: "/data".into(),
                    }],
                    entrypoint: "/sbin/zinit init".into(),
                    env,
                    corex: false,
                }),
            ),
        ],
    }
}

/// The VM's root filesystem, carved out of the tester's disk so that the machine holds exactly
/// the disk it was placed with: an eighth of it (at most 2 GiB), never below zos's minimum for
/// the machine's CPU and memory (2 GiB when cpu × memory ≥ 8 GiB, else 500 MiB).
pub fn rootfs_size(placement: &Placement) -> u64 {
    let min =
        gridapi::zos::min_root_size(placement.cpu.clamp(1, 255) as u8, placement.memory_bytes);
    (placement.disk_bytes / 8).min(2 << 30).max(min)
}

/// Why a machine of this size cannot be built (zos's minimum root size leaves no data disk),
/// or `None` when it can.
pub fn too_small(placement: &Placement) -> Option<String> {
    let root = rootfs_size(placement);
    (placement.disk_bytes < root + (1 << 30)).then(|| {
        format!(
            "{} GiB of disk cannot hold the {} MiB root filesystem zos requires for {} vCPU and {} MiB of memory plus a data disk of at least 1 GiB; give the tester more disk (diskGiB) or less cpu × memory",
            placement.disk_bytes >> 30,
            root >> 20,
            placement.cpu,
            placement.memory_bytes >> 20
        )
    })
}

/// The gateway deployment: `name` proxying to the VM's web side.
pub fn gateway(twin_id: u32, name: &str, vm_address: &str, tag: &ContractTag) -> Deployment {
    Deployment {
        version: 0,
        twin_id,
        contract_id: 0,
        metadata: tag.encode(),
        description: "sandbox tester gateway".into(),
        expiration: 0,
        signature_requirement: SignatureRequirement::by(twin_id),
        workloads: vec![Workload::new(
            "gw",
            WorkloadData::GatewayNameProxy(GatewayNameProxy {
                name: name.to_string(),
                tls_passthrough: false,
                backends: vec![backend(vm_address)],
                network: None,
            }),
        )],
    }
}

/// The backend URL of a VM's web side.
pub fn backend(vm_address: &str) -> String {
    format!("http://[{vm_address}]:{WEB_PORT}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_are_deterministic_per_build() {
        let p = Placement {
            node_id: 1,
            cpu: 2,
            memory_bytes: 4 << 30,
            disk_bytes: 50 << 30,
        };
        let tag = ContractTag {
            tester: "u1".into(),
            kind: "vm".into(),
            build: String::new(),
        };
        let keys = MachineKeys::generate();
        let a = vm(7, &p, &keys, "k", &tag);
        let b = vm(7, &p, &keys.clone(), "k", &tag);
        assert_eq!(a.challenge_hash(), b.challenge_hash());
        let rebuilt = vm(7, &p, &MachineKeys::generate(), "k", &tag);
        assert_ne!(a.challenge_hash(), rebuilt.challenge_hash());
        assert_ne!(keys.mycelium_ip(), MachineKeys::generate().mycelium_ip());
        assert!(tag.encode().len() < 512);
        assert_eq!(ContractTag::decode(&tag.encode()), Some(tag));
        assert_eq!(ContractTag::decode("something else"), None);
    }

    #[test]
    fn the_vm_env_holds_only_the_public_key_and_the_machine_id() {
        let p = Placement {
            node_id: 1,
            cpu: 1,
            memory_bytes: 2 << 30,
            disk_bytes: 20 << 30,
        };
        let tag = ContractTag {
            tester: "u1".into(),
            kind: "vm".into(),
            build: String::new(),
        };
        let keys = MachineKeys::generate();
        let d = vm(7, &p, &keys, "cHVibGlj", &tag);
        let WorkloadData::ZmachineLight(z) = &d.workload("vm").unwrap().data else {
            panic!("a zmachine")
        };
        assert_eq!(
            z.env,
            BTreeMap::from([
                (CONTROLLER_KEY_ENV.to_string(), "cHVibGlj".to_string()),
                (MACHINE_ID_ENV.to_string(), keys.machine_id.clone()),
            ])
        );
        assert!(!format!("{keys:?}").contains(&keys.seed));
        assert!(!format!("{keys:?}").contains(&keys.network_key));
    }

    #[test]
    fn the_root_filesystem_is_never_below_zos_minimum() {
        let p = |cpu, mem_gib: u64, disk_gib: u64| Placement {
            node_id: 1,
            cpu,
            memory_bytes: mem_gib << 30,
            disk_bytes: disk_gib << 30,
        };
        // cpu × memory = 8 GiB: zos wants at least 2 GiB, an eighth of 10 GiB is 1.25 GiB.
        let m = p(2, 4, 10);
        assert_eq!(rootfs_size(&m), 2 << 30);
        let d = vm(7, &m, &MachineKeys::generate(), "k", &tag());
        let WorkloadData::ZmachineLight(z) = &d.workload("vm").unwrap().data else {
            panic!("a zmachine")
        };
        assert_eq!(gridapi::zos::root_size(z), Ok(2 << 30), "zos accepts it");
        // Small machines: 500 MiB at least.
        assert_eq!(rootfs_size(&p(1, 2, 2)), 500 << 20);
        // A machine whose disk cannot hold the minimum and a data disk is refused before the grid.
        assert!(
            too_small(&p(2, 4, 2))
                .unwrap()
                .contains("2048 MiB root filesystem")
        );
        assert_eq!(too_small(&m), None);
    }

    fn tag() -> ContractTag {
        ContractTag {
            tester: "u1".into(),
            kind: "vm".into(),
            build: String::new(),
        }
    }
}
