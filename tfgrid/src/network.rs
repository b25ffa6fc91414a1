//! The public endpoints of each ThreeFold network, as tfgrid-sdk-go's grid-client lists them
//! (`grid-client/deployer/stacks.go`): the first of each list; each can be overridden.

use std::{fmt, str::FromStr};

/// A ThreeFold network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Mainnet.
    #[default]
    Main,
    /// Testnet.
    Test,
    /// QAnet.
    Qa,
    /// Devnet.
    Dev,
}

/// Where a network's faces are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The grid proxy (HTTPS).
    pub proxy: String,
    /// The RMB relay (websocket).
    pub relay: String,
    /// tfchain's JSON-RPC (websocket).
    pub chain: String,
}

impl Network {
    /// The network's public endpoints.
    pub fn endpoints(self) -> Endpoints {
        let sub = match self {
            Network::Main => "",
            Network::Test => "test.",
            Network::Qa => "qa.",
            Network::Dev => "dev.",
        };
        Endpoints {
            proxy: format!("https://gridproxy.{sub}grid.tf"),
            relay: format!("wss://relay.{sub}grid.tf"),
            chain: format!("wss://tfchain.{sub}grid.tf/ws"),
        }
    }
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "main" => Ok(Network::Main),
            "test" => Ok(Network::Test),
            "qa" => Ok(Network::Qa),
            "dev" => Ok(Network::Dev),
            _ => Err(format!("unknown network {s:?}: use main, test, qa or dev")),
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Network::Main => "main",
            Network::Test => "test",
            Network::Qa => "qa",
            Network::Dev => "dev",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_grid_client() {
        assert_eq!(
            Network::Main.endpoints(),
            Endpoints {
                proxy: "https://gridproxy.grid.tf".into(),
                relay: "wss://relay.grid.tf".into(),
                chain: "wss://tfchain.grid.tf/ws".into(),
            }
        );
        assert_eq!(Network::Dev.endpoints().relay, "wss://relay.dev.grid.tf");
        assert_eq!("qa".parse(), Ok(Network::Qa));
        assert!("moon".parse::<Network>().is_err());
    }
}
