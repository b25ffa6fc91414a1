//! The Reliable Message Bus, as rmb-sdk-go's peer speaks it to a relay: [`envelope`] (the
//! protobuf message and its signed challenge), [`crypto`] (end-to-end encryption), [`jwt`]
//! (admission to the relay), [`twins`] (whose keys), [`peer`] (the connection and its calls)
//! and [`node_bus`] (zos's commands over it).

pub mod crypto;
pub mod envelope;
pub mod jwt;
pub mod node_bus;
pub mod peer;
pub mod twins;

pub use node_bus::{RmbNodeBus, RmbSetup};
pub use peer::{Link, Peer, PeerConfig};
pub use twins::{ProxyTwins, TwinDirectory, TwinKeys};
