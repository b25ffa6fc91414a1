//! A warm machine's neutral name (`warmPool.names: neutral`): a random name registered on the
//! chain and routed to the machine by a gateway deployment, so that the tester who claims the
//! machine has a working address at once. The name is written in the status before its
//! contract is made, so a pass stopped in between adopts it.

use std::time::Duration;

use gridapi::{ErrorCategory, GridError};
use kube::ResourceExt;

use super::build::Build;
use crate::{
    error::{Error, Result},
    resources::WarmPhase,
    tester::{
        Flow,
        deployment::{self, ContractTag},
        gateway::node_domain,
        grid::{contract_for, deploy, deployment as deployed_on, node_contract},
    },
};

/// A fresh neutral name: `w` and 10 random hex digits (valid grid name, no account in it).
fn neutral_name() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 5];
    rand::rng().fill_bytes(&mut bytes);
    format!("w{}", hex::encode(bytes))
}

/// The gateway deployment's tag: the warm machine's UID (the tester who takes the name keeps
/// it, see `WarmStart.namedBy`).
pub fn tag(uid: &str) -> ContractTag {
    ContractTag {
        tester: uid.to_string(),
        kind: "gw".into(),
        build: String::new(),
    }
}

/// Owns the name part of a warm machine's build.
pub async fn named(b: &mut Build<'_>) -> Result<Flow> {
    if !b.machine.spec.neutral_name {
        return Ok(Flow::Continue);
    }
    let me = b.ctx.grid.twin_id();
    // The name: kept in the status first, then held by a name contract of ours.
    if b.status.name_contract_id.is_none() {
        let name = match b.status.gateway_name.clone() {
            Some(n) => n,
            None => {
                b.status.gateway_name = Some(neutral_name());
                b.persist().await?;
                b.status.gateway_name.clone().unwrap_or_default()
            }
        };
        let owner = b
            .ctx
            .grid("name_owner", b.ctx.grid.chain.name_owner(&name))
            .await?;
        let id = match owner {
            Some(o) if o.twin_id == me => o.contract_id,
            Some(_) => {
                // Someone else's: another name next pass.
                b.status.gateway_name = None;
                return Ok(Flow::Requeue(Duration::from_millis(100)));
            }
            None => match async {
                crate::tester::grid::nodes_ready(b.ctx).await?;
                b.ctx
                    .grid(
                        "create_name_contract",
                        b.ctx.grid.chain.create_name_contract(&name),
                    )
                    .await
            }
            .await
            {
                Ok(c) => c.contract_id,
                Err(Error::Grid {
                    source:
                        GridError::NameExists {
                            owner_twin,
                            contract_id,
                            ..
                        },
                    ..
                }) if owner_twin == me => contract_id,
                Err(Error::Grid {
                    source: GridError::NameExists { .. },
                    ..
                }) => {
                    b.status.gateway_name = None;
                    return Ok(Flow::Requeue(Duration::from_millis(100)));
                }
                Err(e) => return Err(e),
            },
        };
        b.status.name_contract_id = Some(id);
    }
    let name = b
        .status
        .gateway_name
        .clone()
        .ok_or(Error::MissingField("status.gatewayName"))?;
    let node = match b.status.gateway_node_id {
        Some(n) => n,
        None => {
            let key = format!("{}/{}", b.ns, b.pool.name_any());
            let gateways = crate::tester::pool_nodes(
                b.ctx,
                &key,
                b.pool,
                crate::tester::schedule::LISTING_MAX_AGE,
            )
            .await?
            .gateways;
            let own = b
                .status
                .placement
                .as_ref()
                .ok_or(Error::MissingField("status.placement"))?
                .node_id;
            let n = match gateways.len() {
                0 => own,
                len => gateways[(own as usize) % len],
            };
            b.status.gateway_node_id = Some(n);
            n
        }
    };
    let address = b
        .status
        .private_address
        .clone()
        .ok_or(Error::MissingField("status.privateAddress"))?;
    let tag = tag(&b.uid);
    let mut desired = deployment::gateway(b.ctx.grid.twin_id(), &name, &address, &tag);
    let hash = desired.challenge_hash();
    let id = match b.status.gateway_contract_id {
        Some(id) => id,
        None => {
            let id = match contract_for(b.ctx, node, &hash).await? {
                Some(id) => id,
                None => node_contract(b.ctx, node, &hash, &tag).await?.0,
            };
            b.status.gateway_contract_id = Some(id);
            id
        }
    };
    desired.contract_id = id;
    let on_node = match deployed_on(b.ctx, node, id).await {
        Ok(d) => d,
        Err(Error::Grid { source, .. }) if source.category() == ErrorCategory::NotFound => {
            deploy(b.ctx, node, &desired).await?;
            deployed_on(b.ctx, node, id).await?
        }
        Err(e) => return Err(e),
    };
    if let Some((_, message)) = on_node.errors().first() {
        b.set(
            WarmPhase::Failed,
            format!("gateway {name} failed on node {node}: {message}"),
        );
        return Ok(Flow::Requeue(Duration::from_secs(30)));
    }
    if !on_node.all_ok() {
        b.set(
            WarmPhase::Deploying,
            format!("node {node} is setting up gateway {name}"),
        );
        return Ok(Flow::Requeue(Duration::from_secs(2)));
    }
    if b.status.url.is_none() {
        let fqdn = match on_node
            .workload("gw")
            .and_then(|w| w.gateway_result())
            .map(|r| r.fqdn)
            .filter(|f| !f.is_empty())
        {
            Some(f) => f,
            None => format!("{name}.{}", node_domain(b.ctx, node).await?),
        };
        b.status.url = Some(b.ctx.config.public_url_format.replace("{fqdn}", &fqdn));
    }
    Ok(Flow::Continue)
}
