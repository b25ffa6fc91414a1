//! zos's deployment challenge (zosbase `pkg/gridtypes`, `Deployment.Challenge`): the text a
//! deployment is signed and hashed by, and its MD5 hash as the node contract carries it.

use std::fmt::Write as _;

use md5::{Digest, Md5};

use super::{Deployment, GatewayNameProxy, NetworkLight, WorkloadData, ZmachineLight};

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
