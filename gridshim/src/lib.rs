//! gridshim: a faithful, fault-injectable simulator of the grid, speaking the grid's own formats
//! (the types of [`gridapi`]).
//!
//! Without default features the crate is only [`wire`] (gridshim's own simulator-only types)
//! and [`admin`] (the client of its admin API, for tests). The `server` feature (default) adds
//! the simulator:
//!
//! ```text
//!   server (listeners, router)
//!     └─► faces: proxy, chain, relay ─► node ─► vm (the product's agent per VM), dataplane, engines, catalog,
//!                control (admin), inspect
//!           └─► state (Sim, World; state::{catalog, engines, vms}: what the sub-systems hold)
//!                 └─► faults (registry), error, store, config, timing, wire
//! ```
//! Each arrow points down only: no module depends on one above it.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod admin;
pub mod wire;

#[cfg(feature = "server")]
pub mod catalog;
#[cfg(feature = "server")]
pub mod chain;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod control;
#[cfg(feature = "server")]
pub mod dataplane;
#[cfg(feature = "server")]
pub mod engines;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod faults;
#[cfg(feature = "server")]
pub mod inspect;
#[cfg(feature = "server")]
pub mod node;
#[cfg(feature = "server")]
pub mod proxy;
#[cfg(feature = "server")]
pub mod relay;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod timing;
#[cfg(feature = "server")]
pub mod vm;

/// The grid's types every face of the simulator uses.
#[cfg(feature = "server")]
mod prelude {
    pub use gridapi::{
        ErrorCode,
        agent::signing::{CONTROLLER_KEY_ENV, MACHINE_ID_ENV},
        agent::*,
        catalog::*,
        chain::{NameOwner, check_name},
        engines::*,
        http::session::SESSION_HEADER,
        proxy::{NodeStatus, Resources, reserves},
        zos::*,
    };
}
