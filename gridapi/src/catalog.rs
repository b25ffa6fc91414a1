//! The release catalog: the newest version of each app per channel, and
//! [`ReleaseCatalog`], the trait of its client.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::GridFuture;

/// A release channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Released builds.
    Stable,
    /// Builds published ahead of release.
    Prerelease,
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Channel::Stable => "stable",
            Channel::Prerelease => "prerelease",
        })
    }
}

/// The apps of the stack (DOMAIN.md), in install order of the real system.
pub const APPS: [&str; 9] = [
    "gateway",
    "cockpit",
    "assistant",
    "planner",
    "whiteboard",
    "slides",
    "books",
    "memory",
    "voice",
];

/// The release catalog: newest version per app per channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Channel → app → version.
    pub channels: BTreeMap<Channel, BTreeMap<String, String>>,
}

impl Catalog {
    /// Newest version of an app in a channel.
    pub fn version(&self, channel: Channel, app: &str) -> Option<&str> {
        self.channels
            .get(&channel)
            .and_then(|m| m.get(app))
            .map(String::as_str)
    }
}

/// One downloadable release of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Exact version.
    pub version: String,
    /// Where the artifact is downloaded from.
    pub url: String,
    /// SHA-256 (hex) of the artifact: the agent refuses anything else.
    pub sha256: String,
}

/// The release index the VM agents install from: channel → app → newest release.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseIndex {
    /// Channel → app → release.
    pub channels: BTreeMap<Channel, BTreeMap<String, Release>>,
}

impl ReleaseIndex {
    /// Newest release of an app in a channel.
    pub fn release(&self, channel: Channel, app: &str) -> Option<&Release> {
        self.channels.get(&channel).and_then(|m| m.get(app))
    }
}

// ---------------------------------------------------------------------------------------------

/// Where the newest versions are published.
pub trait ReleaseCatalog: Send + Sync {
    /// The whole catalog.
    fn catalog(&self) -> GridFuture<'_, Catalog>;
}
