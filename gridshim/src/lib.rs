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

