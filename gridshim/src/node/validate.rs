//! What a node checks when a deployment is submitted, with the node's own texts.

use gridapi::MIB;
use gridapi::chain::check_name;
use gridapi::zos::{Deployment, WorkloadData};

fn valid_workload_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 36 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks a deployment the way the node does on submission.
pub fn validate(d: &Deployment) -> Result<(), String> {
    if d.version != 0 {
        return Err("version must be 0 on create".into());
    }
    if d.workloads.is_empty() {
        return Err("deployment has no workloads".into());
    }
    let mut seen = std::collections::HashSet::new();
    for w in &d.workloads {
        if !valid_workload_name(&w.name) {
            return Err(format!(
                "invalid workload name {:?}: must match ^[a-zA-Z0-9_]+$ and be at most 36 characters",
                w.name
            ));
        }
        if !seen.insert(w.name.as_str()) {
            return Err(format!("duplicate workload name {:?}", w.name));
        }
    }
    let is = |name: &str, t: &str| {
        d.workloads
            .iter()
            .any(|w| w.name == name && w.data.type_name() == t)
    };
    for w in &d.workloads {
        let n = &w.name;
        match &w.data {
            WorkloadData::NetworkLight(net) => {
                if net.subnet.is_empty() {
                    return Err(format!("{n}: subnet is required"));
                }
                if hex::decode(&net.mycelium.hex_key).map(|k| k.len()) != Ok(32) {
                    return Err(format!("{n}: invalid mycelium key: must be 32 bytes hex"));
                }
            }
            WorkloadData::Zmount(z) => {
                if z.size == 0 {
                    return Err(format!("{n}: zmount size must be positive"));
                }
            }
            WorkloadData::ZmachineLight(z) => {
                if z.flist.is_empty() {
                    return Err(format!("{n}: flist url is required"));
                }
                if z.compute_capacity.cpu < 1 {
                    return Err(format!("{n}: cpu capacity can't be less than 1"));
                }
                if z.compute_capacity.memory < 250 * MIB {
                    return Err(format!("{n}: mem capacity can't be less than 250M"));
                }
                // zos's own check and text (ZMachineLight.Valid).
                gridapi::zos::root_size(z).map_err(|e| format!("{n}: {e}"))?;
                if z.network.interfaces.len() != 1 {
                    return Err(format!("{n}: only one network interface is supported"));
                }
                let iface = &z.network.interfaces[0];
                if !is(&iface.network, "network-light") {
                    return Err(format!(
                        "{n}: network {:?} not found in deployment",
                        iface.network
                    ));
                }
                if !is(&z.network.mycelium.network, "network-light") {
                    return Err(format!(
                        "{n}: mycelium network {:?} not found in deployment",
                        z.network.mycelium.network
                    ));
                }
                if hex::decode(&z.network.mycelium.seed).map(|s| s.len()) != Ok(6) {
                    return Err(format!(
                        "{n}: invalid mycelium seed length: must be 6 bytes"
                    ));
                }
                for m in &z.mounts {
                    if !is(&m.name, "zmount") {
                        return Err(format!(
                            "{n}: mount {:?} is not a zmount of this deployment",
                            m.name
                        ));
                    }
                }
            }
            WorkloadData::GatewayNameProxy(g) => {
                if let Some(code) = check_name(&g.name) {
                    return Err(format!("{n}: invalid gateway name {:?}: {code:?}", g.name));
                }
                if g.backends.len() != 1 {
                    return Err(format!("{n}: exactly one backend is required"));
                }
                if backend_host_port(&g.backends[0]).is_none() {
                    return Err(format!(
                        "{n}: invalid backend {:?}: want http://[ip]:port",
                        g.backends[0]
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Host (without brackets) and port of a backend URL `http://[ipv6]:port` or `http://ipv4:port`.
pub fn backend_host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("http://")?;
    let hostport = rest.split('/').next()?;
    let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
        let (h, p) = r.split_once("]:")?;
        (h.to_string(), p)
    } else {
        let (h, p) = hostport.rsplit_once(':')?;
        (h.to_string(), p)
    };
    let port: u16 = port.parse().ok()?;
    if host.is_empty() {
        return None;
    }
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_forms() {
        assert_eq!(
            backend_host_port("http://[5a2:1::ff0f:1:2:3]:8080"),
            Some(("5a2:1::ff0f:1:2:3".into(), 8080))
        );
        assert_eq!(
            backend_host_port("http://127.77.0.2:8080/"),
            Some(("127.77.0.2".into(), 8080))
        );
        assert_eq!(backend_host_port("https://x:1"), None);
        assert_eq!(backend_host_port("http://x"), None);
    }

    #[test]
    fn workload_names() {
        assert!(valid_workload_name("vm_1"));
        assert!(!valid_workload_name("vm-1"));
        assert!(!valid_workload_name(&"a".repeat(37)));
    }
}
