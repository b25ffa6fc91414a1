//! gridshim: a faithful, fault-injectable simulator of the grid, and the typed client the
//! controller uses to talk to a grid.
//!
//! Without default features the crate is only [`api`] (the wire types of every face) and
//! [`client`] (the [`client::Grid`] trait and its HTTP implementation). The `server` feature
//! (default) adds the simulator; its modules mirror the grid's faces as GRID.md describes them.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod api;
pub mod client;
pub mod zos;

#[cfg(feature = "server")]
pub mod agent;
#[cfg(feature = "server")]
pub mod catalog;
#[cfg(feature = "server")]
pub mod chain;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod dataplane;
#[cfg(feature = "server")]
pub mod engines;
#[cfg(feature = "server")]
pub mod faults;
#[cfg(feature = "server")]
pub mod inspect;
#[cfg(feature = "server")]
pub mod node;
#[cfg(feature = "server")]
pub mod proxy;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod timing;
#[cfg(feature = "server")]
pub mod vm;
