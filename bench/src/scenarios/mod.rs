//! One module per scenario of issue 6, and the warm pool's of issue 16 (8, 9).

pub mod at_rest;
pub mod overhead;
pub mod realistic;
pub mod recovery;
pub mod relist;
pub mod scheduler;
pub mod throughput;
pub mod warm;
pub mod warm_instant;
pub mod warm_realistic;
