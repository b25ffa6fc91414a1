//! The controller that onboards testers onto a shared sandbox on the grid.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod resources;
