//! The controller that onboards testers onto a shared sandbox on the grid.
//!
//! - [`resources`]: the custom resources (the API).
//! - [`scheduler`]: placement by real free disk and memory; [`placements`]: its ledger rebuilt
//!   at start.
//! - [`tester`]: the Tester reconciler, one module per step.
//! - [`hostpool`], [`sharedengine`]: the other reconcilers; [`warm`]: the warm pool (pre-built
//!   machines new testers claim).
//! - [`engines`]: the shared engines' token stores; [`forge`]: the identity provider's accounts
//!   and sign-in clients; [`mail`]: the welcome emails' transport.
//! - [`backoff`]: per-object retry delays after failures.
//! - [`context`], [`config`], [`metrics`], [`error`], [`names`], [`run`]: the plumbing.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod agent_key;
pub mod api_client;
pub mod backoff;
pub mod config;
pub mod context;
pub mod engines;
pub mod error;
pub mod forge;
pub mod grid_setup;
pub mod hostpool;
pub mod mail;
pub mod metrics;
pub mod names;
pub mod placements;
pub mod resources;
pub mod run;
pub mod scheduler;
pub mod sharedengine;
pub mod tester;
#[cfg(test)]
mod testing;
pub mod warm;
