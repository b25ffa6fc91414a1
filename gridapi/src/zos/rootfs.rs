//! The root filesystem size zos gives a `zmachine-light`, and its minimum.

use super::ZmachineLight;
use crate::{GIB, MIB};

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
