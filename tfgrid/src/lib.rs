//! The real ThreeFold grid client.
//!
//! * [`identity`]: the operator's keys, derived from the mnemonic as tfchain's clients derive
//!   them (sr25519 by default, ed25519 selectable), the `s`/`e` prefixed signatures RMB uses, and
//!   the secp256k1 key of RMB's end-to-end encryption.
//! * [`rmb`]: the Reliable Message Bus as rmb-sdk-go's peer speaks it: the protobuf envelope, its
//!   MD5 challenge and signature, the relay's JWT, end-to-end encryption, the relay websocket
//!   with reconnects and a reply map; [`rmb::RmbNodeBus`] implements [`gridapi::node::NodeBus`].
//! * [`chain`]: tfchain over substrate JSON-RPC with the vendored runtime metadata;
//!   implements [`gridapi::chain::Chain`].
//! * [`network`]: the public endpoints of each ThreeFold network.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod chain;
pub mod identity;
pub mod network;
pub mod rmb;
