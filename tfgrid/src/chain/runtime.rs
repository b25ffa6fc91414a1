//! tfchain's runtime API, generated at compile time by subxt from the vendored metadata.
//!
//! `metadata/tfchain.scale` is tfchain's runtime metadata (V14, spec version 149, transaction
//! version 2), copied from github.com/threefoldtech/rmb-rs `artifacts/network.scale` at commit
//! 610d871a6be2ff0cd77bf1a62122543eff580029 (April 2024). The generated calls and storage
//! addresses are used *unvalidated* against a live chain (see [`super`]): values are encoded and
//! decoded by the live runtime's own type information, by field names, so a runtime upgrade that
//! leaves these calls and types alone does not break the client.

#[allow(
    missing_docs,
    rust_2018_idioms,
    clippy::all,
    clippy::pedantic,
    unused_imports,
    non_camel_case_types
)]
#[subxt::subxt(runtime_metadata_path = "metadata/tfchain.scale")]
pub mod tfchain {}

pub use tfchain::runtime_types::pallet_smart_contract::types as contract_types;

/// The vendored metadata's bytes (for the offline client and the tests).
pub const METADATA: &[u8] = include_bytes!("../../metadata/tfchain.scale");
