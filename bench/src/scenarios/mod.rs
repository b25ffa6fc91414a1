//! One module per scenario of issue 6.

pub mod at_rest;
pub mod overhead;
pub mod realistic;
pub mod recovery;
pub mod relist;
pub mod scheduler;
pub mod throughput;
