//! Mycelium addresses as mycelium (`crypto.rs`) and zos (`pkg/netlight/resource`) derive them.

use std::net::Ipv6Addr;

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
