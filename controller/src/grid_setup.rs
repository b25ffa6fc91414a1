//! Which grid the controller talks to and how: [`plan`] turns the configuration into the
//! endpoints of each face (pure, tested without I/O) and says what is missing; [`connect`]
//! builds the faces. The node bus over RMB starts in the background: a wrong mnemonic, an
//! account without a twin or an unreachable relay is every node call's error (a condition on
//! the Tester) and `/readyz`'s answer until mended, never a crash.

use std::sync::Arc;

use gridapi::{
    Grid,
    agent::signing::ControllerKey,
    http::{agent::HttpAgents, catalog::HttpCatalog, proxy::HttpProxy},
    proxy::Proxy,
};
use secrecy::SecretString;
use tfgrid::{
    chain::LazyChain,
    rmb::{PeerConfig, RmbNodeBus, RmbSetup},
};

use crate::config::{Config, GridKind, NodeBusKind};

/// Where each face is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The grid proxy.
    pub proxy: String,
    /// The release catalog.
    pub catalog: String,
    /// gridshim's HTTP transport (its chain face, and its node face when not over RMB).
    pub http_bus: Option<String>,
    /// The RMB relay, when node calls go over RMB.
    pub relay: Option<String>,
    /// tfchain's websocket, on the real grid.
    pub chain: Option<String>,
}

/// The faces' endpoints, or what the operator must set.
pub fn plan(c: &Config) -> Result<Plan, String> {
    let rmb = c.grid_node_bus == NodeBusKind::Rmb;
    if rmb && c.grid_mnemonic.is_none() {
        return Err("GRID_MNEMONIC is required for node calls over RMB (GRID_NODE_BUS=rmb): put the operator's mnemonic in a Secret and reference it".into());
    }
    match c.grid {
        GridKind::Gridshim => {
            let base = c
                .grid_url
                .as_deref()
                .ok_or("GRID_URL is required with GRID=gridshim")?
                .trim_end_matches('/');
            if c.grid_twin_id.is_none() || c.grid_twin_secret.is_none() {
                return Err(
                    "GRID_TWIN_ID and GRID_TWIN_SECRET are required with GRID=gridshim (its chain transport)".into(),
                );
            }
            let relay = rmb.then(|| {
                c.grid_relay_url
                    .clone()
                    .unwrap_or_else(|| format!("{}/relay", base.replacen("http", "ws", 1)))
            });
            Ok(Plan {
                proxy: c.grid_proxy_url.clone().unwrap_or_else(|| base.into()),
                catalog: c
                    .catalog_url
                    .clone()
                    .unwrap_or_else(|| format!("{base}/catalog")),
                http_bus: Some(base.into()),
                relay,
                chain: None,
            })
        }
        GridKind::Tfgrid => {
            if !rmb {
                return Err(
                    "GRID=tfgrid calls nodes over RMB only: unset GRID_NODE_BUS or set it to rmb"
                        .into(),
                );
            }
            let catalog = c.catalog_url.clone().ok_or(
                "CATALOG_URL is required with GRID=tfgrid (the release catalog is the project's own service)",
            )?;
            if c.release_index_url.is_none() {
                return Err("RELEASE_INDEX_URL is required with GRID=tfgrid (the VM agents install from it)".into());
            }
            let net = c.grid_network.endpoints();
            Ok(Plan {
                proxy: c.grid_proxy_url.clone().unwrap_or(net.proxy),
                catalog,
                http_bus: None,
                relay: Some(c.grid_relay_url.clone().unwrap_or(net.relay)),
                chain: Some(c.grid_chain_url.clone().unwrap_or(net.chain)),
            })
        }
    }
}

/// The grid's faces, and the parts that connect in the background (for `/readyz`).
pub struct Connected {
    /// Every face.
    pub grid: Grid,
    /// The node bus over RMB, when node calls go over RMB.
    pub rmb: Option<RmbNodeBus>,
    /// tfchain, on the real grid.
    pub chain: Option<Arc<LazyChain>>,
}

impl Connected {
    /// `Ok` while every background connection is up; otherwise what is not, for `/readyz`.
    pub fn health(&self) -> Result<(), String> {
        if let Some(bus) = &self.rmb {
            bus.health().map_err(|e| format!("grid message bus: {e}"))?;
        }
        if let Some(chain) = &self.chain {
            chain.health().map_err(|e| format!("tfchain: {e}"))?;
        }
        Ok(())
    }
}

/// Builds every face of `plan`. Fails only on settings that cannot work at all; connections
/// are made in the background.
pub fn connect(c: &Config, plan: &Plan, agent_key: ControllerKey) -> anyhow::Result<Connected> {
    let identity = c
        .grid_mnemonic
        .as_ref()
        .map(|m| tfgrid::identity::Identity::from_mnemonic(m, c.grid_key_type).map(Arc::new));
    // The node bus over RMB, reading twins from `proxy`.
    let rmb = |proxy: Arc<dyn Proxy>| {
        plan.relay.as_ref().map(|relay| {
            let bus = RmbNodeBus::new(RmbSetup {
                identity: identity.clone().expect("plan checked the mnemonic"),
                proxy,
                peer: PeerConfig {
                    relay: relay.clone(),
                    session: None,
                    call_timeout: c.grid_call_timeout,
                },
                expected_twin: c.grid_twin_id.filter(|_| c.grid == GridKind::Gridshim),
            });
            bus.warm_up();
            bus
        })
    };
    match &plan.http_bus {
        Some(base) => {
            let mut grid = gridapi::http::connect(&gridapi::http::Endpoints {
                proxy: plan.proxy.clone(),
                bus: base.clone(),
                catalog: plan.catalog.clone(),
                twin_id: c.grid_twin_id.unwrap_or_default(),
                secret: c
                    .grid_twin_secret
                    .clone()
                    .unwrap_or_else(|| SecretString::from("")),
                agent_port: c.agent_port,
                private_proxy: c.private_network_proxy.clone(),
                agent_key,
            })?;
            let rmb = rmb(grid.proxy.clone());
            if let Some(bus) = &rmb {
                grid.nodes = Arc::new(bus.clone());
            }
            Ok(Connected {
                grid,
                rmb,
                chain: None,
            })
        }
        None => {
            let http = gridapi::http::client();
            let proxy: Arc<dyn Proxy> = Arc::new(HttpProxy::with_client(&plan.proxy, http.clone()));
            let bus = rmb(proxy.clone()).expect("the real grid has a relay");
            let chain = LazyChain::new(
                plan.chain.as_deref().expect("the real grid has a chain"),
                identity.clone().expect("plan checked the mnemonic"),
            );
            chain.warm_up();
            let grid = Grid {
                proxy,
                chain: chain.clone(),
                nodes: Arc::new(bus.clone()),
                agents: Arc::new(HttpAgents::new(
                    c.agent_port,
                    c.private_network_proxy.as_deref(),
                    agent_key,
                )?),
                catalog: Arc::new(HttpCatalog::with_client(&plan.catalog, http)),
            };
            Ok(Connected {
                grid,
                rmb: Some(bus),
                chain: Some(chain),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut all = vec!["controller", "--forge-url=http://forge", "--forge-token=t"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).unwrap()
    }

    const MNEMONIC: &str =
        "--grid-mnemonic=bottom drive obey lake curtain smoke basket hold race lonely fit walk";

    #[test]
    fn gridshim_over_rmb_reaches_the_relay_beside_its_api() {
        let p = plan(&config(&[
            "--grid-url=http://127.0.0.1:8800/",
            "--grid-twin-id=7",
            "--grid-twin-secret=s",
            MNEMONIC,
        ]))
        .unwrap();
        assert_eq!(p.relay.as_deref(), Some("ws://127.0.0.1:8800/relay"));
        assert_eq!(p.proxy, "http://127.0.0.1:8800");
        assert_eq!(p.catalog, "http://127.0.0.1:8800/catalog");
        assert_eq!(p.chain, None);
    }

    #[test]
    fn the_real_grid_uses_the_networks_endpoints_unless_overridden() {
        let p = plan(&config(&[
            "--grid=tfgrid",
            "--grid-network=dev",
            "--catalog-url=https://releases.example.com/catalog",
            "--release-index-url=https://releases.example.com/index.json",
            "--grid-relay-url=wss://relay.02.dev.grid.tf",
            MNEMONIC,
        ]))
        .unwrap();
        assert_eq!(p.proxy, "https://gridproxy.dev.grid.tf");
        assert_eq!(p.relay.as_deref(), Some("wss://relay.02.dev.grid.tf"));
        assert_eq!(p.chain.as_deref(), Some("wss://tfchain.dev.grid.tf/ws"));
        assert_eq!(p.http_bus, None);
    }

    #[test]
    fn what_is_missing_is_said() {
        let e = plan(&config(&[
            "--grid-url=http://g",
            "--grid-twin-id=7",
            "--grid-twin-secret=s",
        ]))
        .unwrap_err();
        assert!(e.contains("GRID_MNEMONIC"), "{e}");
        let e = plan(&config(&[
            "--grid=tfgrid",
            "--grid-node-bus=http",
            MNEMONIC,
        ]))
        .unwrap_err();
        assert!(e.contains("RMB only"), "{e}");
        let e = plan(&config(&["--grid=tfgrid", MNEMONIC])).unwrap_err();
        assert!(e.contains("CATALOG_URL"), "{e}");
        let e = plan(&config(&["--grid-node-bus=http", "--grid-twin-id=7"])).unwrap_err();
        assert!(e.contains("GRID_URL"), "{e}");
        let ok = plan(&config(&[
            "--grid-node-bus=http",
            "--grid-url=http://g",
            "--grid-twin-id=7",
            "--grid-twin-secret=s",
        ]))
        .unwrap();
        assert_eq!(ok.relay, None);
    }
}
