//! The seam between the controller and the world.
//!
//! ```text
//!            controller (reconcilers)
//!                   │  gridapi::Grid: one trait object per face
//!   ┌────────┬──────┴──┬──────────┬──────────────┬───────────┐
//!   Proxy    Chain     NodeBus    MachineAgent   ReleaseCatalog
//!   │        │         │          │              │
//!   grid     tfchain   zos over   the agent in   the release
//!   proxy    pallet    RMB        a tester's VM  index
//!   REST     calls     (node twin)
//! ```
//!
//! * [`proxy`], [`chain`] and [`zos`] hold the grid's own wire types, field for field as
//!   tfgrid-sdk-go's grid-proxy, tfchain's smart-contract pallet and zosbase's `gridtypes` define
//!   them, with zos's own arithmetic (challenge hash, mycelium addresses, root size).
//! * One trait per face: [`proxy::Proxy`], [`chain::Chain`], [`node::NodeBus`]; the project's own
//!   services have theirs: [`agent::MachineAgent`] (what the controller asks of a tester's VM),
//!   [`engines`] (a SharedEngine's token store) and [`catalog::ReleaseCatalog`].
//! * [`http`] implements every face over HTTP: the proxy's real REST API, and the chain and node
//!   faces over an HTTP transport whose bodies are the real types (gridshim serves it; the real
//!   transports, substrate and RMB, implement the same traits).
//!
//! Errors ([`GridError`]) are sorted into what a reconciler does with them ([`ErrorCategory`])
//! and carry the grid's own texts.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

use std::{future::Future, pin::Pin, sync::Arc};

pub mod agent;
pub mod catalog;
pub mod chain;
pub mod engines;
pub mod error;
pub mod http;
pub mod node;
pub mod proxy;
pub mod zos;

pub use error::{ErrorBody, ErrorCategory, ErrorCode, GridError};

/// One GiB in bytes.
pub const GIB: u64 = 1 << 30;
/// One MiB in bytes.
pub const MIB: u64 = 1 << 20;

/// The future every face method returns: boxed, so the traits are object safe.
pub type GridFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, GridError>> + Send + 'a>>;

/// The faces a controller talks to, as chosen at start-up (gridshim over HTTP, or the real grid).
#[derive(Clone)]
pub struct Grid {
    /// The grid proxy: listings that lag the chain.
    pub proxy: Arc<dyn proxy::Proxy>,
    /// The chain: contracts, exact and final.
    pub chain: Arc<dyn chain::Chain>,
    /// The nodes' message bus: deployments.
    pub nodes: Arc<dyn node::NodeBus>,
    /// The agents in the testers' VMs.
    pub agents: Arc<dyn agent::MachineAgent>,
    /// Newest version per app per channel.
    pub catalog: Arc<dyn catalog::ReleaseCatalog>,
}

impl Grid {
    /// All faces from one value that implements every trait (a test double, say).
    pub fn from_one<T>(all: Arc<T>) -> Grid
    where
        T: proxy::Proxy
            + chain::Chain
            + node::NodeBus
            + agent::MachineAgent
            + catalog::ReleaseCatalog
            + 'static,
    {
        Grid {
            proxy: all.clone(),
            chain: all.clone(),
            nodes: all.clone(),
            agents: all.clone(),
            catalog: all,
        }
    }

    /// The twin every chain and node call is made as.
    pub fn twin_id(&self) -> u32 {
        self.chain.twin_id()
    }
}

impl std::fmt::Debug for Grid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grid")
            .field("twin_id", &self.twin_id())
            .finish_non_exhaustive()
    }
}
