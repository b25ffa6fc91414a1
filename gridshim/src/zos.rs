//! zos's own algorithms, reproduced exactly so gridshim and a client compute what the real grid
//! computes: the deployment challenge and its MD5 hash (zosbase `pkg/gridtypes`: the contract
//! carries this hash), the mycelium addresses of a network and of a VM (mycelium `crypto.rs`,
//! zosbase `pkg/netlight/resource`), and the minimum root size of a `zmachine-light`.
//! `tests/vectors.rs` checks each against values computed by the real code.

use std::{fmt::Write as _, net::Ipv6Addr};

use md5::{Digest, Md5};

use crate::api::{Deployment, GatewayNameProxy, NetworkLight, WorkloadData, ZmachineLight};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The text zos hashes for a deployment: version, twin, metadata, description, expiration,
/// every workload (version, name, type, metadata, description, then its data), and the
/// signature requirement. The contract id and the results are not part of it.
pub fn challenge(d: &Deployment) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "{}{}{}{}{}",
        d.version, d.twin_id, d.metadata, d.description, d.expiration
    );
    for w in &d.workloads {
        let _ = write!(
            s,
            "{}{}{}{}{}",
            w.version,
            w.name,
            w.data.type_name(),
            w.metadata,
            w.description
        );
        match &w.data {
            WorkloadData::Zmount(z) => {
                let _ = write!(s, "{}", z.size);
            }
            WorkloadData::NetworkLight(n) => network_light(&mut s, n),
            WorkloadData::ZmachineLight(z) => zmachine_light(&mut s, z),
            WorkloadData::GatewayNameProxy(g) => gateway_name_proxy(&mut s, g),
        }
    }
    let sr = &d.signature_requirement;
    for r in &sr.requests {
        let _ = write!(s, "{}{}{}", r.twin_id, r.required, r.weight);
    }
    let _ = write!(s, "{}{}", sr.weight_required, sr.signature_style);
    s
}

/// The deployment's challenge hash as the chain stores it: MD5 of [`challenge`], 32 hex digits.
pub fn challenge_hash(d: &Deployment) -> String {
    hex::encode(Md5::digest(challenge(d).as_bytes()))
}

/// Hex as Go's `%x` prints bytes: lower case (the JSON may carry upper case).
fn go_hex(hex_text: &str) -> String {
    hex::decode(hex_text).map_or_else(|_| hex_text.to_string(), hex::encode)
}

fn network_light(s: &mut String, n: &NetworkLight) {
    // No IPv4 range (`<nil>`), the subnet, no WireGuard key (empty), listen port 0: as zos
    // prints the fields this workload leaves unset.
    let _ = write!(s, "<nil>{}0", n.subnet);
    s.push_str(&go_hex(&n.mycelium.hex_key));
    for p in &n.mycelium.peers {
        s.push_str(p);
    }
}

fn zmachine_light(s: &mut String, z: &ZmachineLight) {
    s.push_str(&z.flist);
    for i in &z.network.interfaces {
        let _ = write!(s, "{}{}", i.network, i.ip);
    }
    let m = &z.network.mycelium;
    let _ = write!(s, "{}{}", m.network, go_hex(&m.seed));
    let _ = write!(
        s,
        "{}{}{}",
        z.size, z.compute_capacity.cpu, z.compute_capacity.memory
    );
    for mount in &z.mounts {
        let _ = write!(s, "{}{}", mount.name, mount.mountpoint);
    }
    s.push_str(&z.entrypoint);
    // Sorted by key (a BTreeMap), as zos sorts them.
    for (k, v) in &z.env {
        let _ = write!(s, "{k}={v}");
    }
}

fn gateway_name_proxy(s: &mut String, g: &GatewayNameProxy) {
    let _ = write!(s, "{}{}", g.name, g.tls_passthrough);
    for b in &g.backends {
        s.push_str(b);
    }
    if let Some(n) = &g.network {
        s.push_str(n);
    }
}

/// The mycelium address of a node whose key is `key` (32 bytes): the x25519 public key, hashed
/// with blake3 into 16 bytes, the first byte mangled into `400::/7` (mycelium `crypto.rs`).
pub fn mycelium_address(key: [u8; 32]) -> Ipv6Addr {
    let secret = x25519_dalek::StaticSecret::from(key);
    let public = x25519_dalek::PublicKey::from(&secret);
    let mut hasher = blake3::Hasher::new();
    hasher.update(public.as_bytes());
    let mut buf = [0u8; 16];
    hasher.finalize_xof().fill(&mut buf);
    let lsb = (buf[0].count_ones() % 2) as u8;
    buf[0] = 0x04 | lsb;
    Ipv6Addr::from(buf)
}

/// A VM's mycelium address: the /64 of its network's mycelium address (from `hex_key`), then
/// `ff0f`, then the 6 seed bytes (zosbase `pkg/netlight/resource`). `None` unless the key is 32
/// hex bytes and the seed 6.
pub fn vm_mycelium_ip(network_hex_key: &str, hex_seed: &str) -> Option<Ipv6Addr> {
    let key: [u8; 32] = hex::decode(network_hex_key).ok()?.try_into().ok()?;
    let seed: [u8; 6] = hex::decode(hex_seed).ok()?.try_into().ok()?;
    let net = mycelium_address(key).octets();
    let mut ip = [0u8; 16];
    ip[..8].copy_from_slice(&net[..8]);
    ip[8] = 0xff;
    ip[9] = 0x0f;
    ip[10..].copy_from_slice(&seed);
    Some(Ipv6Addr::from(ip))
}

/// The smallest root filesystem zos accepts for a `zmachine-light`: 2 GiB when
/// cpu × memory / 8 GiB ≥ 1 (integer division), else 500 MiB.
pub fn min_root_size(cpu: u8, memory: u64) -> u64 {
    if u64::from(cpu).saturating_mul(memory) / (8 * GIB) == 0 {
        500 * MIB
    } else {
        2 * GIB
    }
}

/// The root size zos uses (0 means the minimum), or its own refusal text when `size` is below
/// the minimum.
pub fn root_size(z: &ZmachineLight) -> Result<u64, String> {
    let min = min_root_size(z.compute_capacity.cpu, z.compute_capacity.memory);
    match z.size {
        0 => Ok(min),
        s if s < min => Err(format!(
            "disk size can't be less that {min}. Set to 0 for minimum"
        )),
        s => Ok(s),
    }
}
