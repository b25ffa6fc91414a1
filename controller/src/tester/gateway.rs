//! Step `GatewayReady`: a public name, unique to this tester for life, routed to its VM.

use gridapi::{ErrorCategory, GridError};
use kube::{ResourceExt, runtime::events::EventType};

use super::{
    Flow, Pass,
    conditions::GATEWAY_READY,
    deployment::{self, ContractTag},
    grid::{self, cancel_contract, my_contracts},
};
use crate::{
    error::{Error, Result},
    names::gateway_name,
    resources::MachineStatus,
};

/// How many generated names are tried before giving up (each taken by another twin).
pub const MAX_NAME_ATTEMPTS: u32 = 8;

/// Owns `GatewayReady`: the name contract (adopted when it is already ours, the next candidate
/// when another twin holds a generated name, `NameTaken` for a custom one), the gateway
/// deployment pointing at the VM, and the URL (computed from name and node domain when the
/// grid does not report it).
pub async fn gateway(pass: &mut Pass<'_>) -> Result<Flow> {
    let Some(name) = hold_name(pass).await? else {
        return Ok(Flow::Requeue(std::time::Duration::from_secs(300)));
    };
    let node = gateway_node(pass).await?;
    let vm_address = pass
        .status
        .machine
        .as_ref()
        .and_then(|m| m.private_address.clone())
        .ok_or(Error::MissingField("status.machine.privateAddress"))?;
    // A neutral name taken with a warm machine keeps the gateway deployment that machine made.
    let tag = ContractTag {
        tester: pass
            .status
            .warm_start
            .as_ref()
            .and_then(|w| w.named_by.clone())
            .unwrap_or_else(|| pass.uid.clone()),
        kind: "gw".into(),
        build: String::new(),
    };
    let mut desired = deployment::gateway(pass.ctx.grid.twin_id(), &name, &vm_address, &tag);
    let hash = desired.challenge_hash();

    let contract_id = gateway_contract(pass, node, &hash, &tag).await?;
    desired.contract_id = contract_id;
    let deployed = match grid::deployment(pass.ctx, node, contract_id).await {
        Ok(d) => d,
        Err(Error::Grid { source, .. }) if source.category() == ErrorCategory::NotFound => {
            grid::deploy(pass.ctx, node, &desired).await?;
            // Often set up at once: look before waiting.
            grid::deployment(pass.ctx, node, contract_id).await?
        }
        Err(e) => return Err(e),
    };
    let workload = deployed.workload("gw").cloned();
    let fqdn_reported = workload
        .as_ref()
        .and_then(|w| w.gateway_result())
        .map(|r| r.fqdn)
        .filter(|f| !f.is_empty());
    let domain = node_domain(pass.ctx, node).await?;
    let fqdn = fqdn_reported
        .clone()
        .unwrap_or_else(|| format!("{name}.{domain}"));
    let url = pass.ctx.config.public_url_format.replace("{fqdn}", &fqdn);

    if let Some((_, message)) = deployed
        .errors()
        .first()
        .map(|(w, m)| (w.to_string(), m.to_string()))
    {
        // The grid sometimes reports the gateway failed although it was created: look before
        // tearing it down.
        if routes(pass, &url).await {
            if pass.status.url.as_deref() != Some(url.as_str()) {
                pass.event(
                    EventType::Normal,
                    "AdoptedFailedGateway",
                    &format!(
                        "the grid reported the gateway failed ({message}) but {url} routes: adopted"
                    ),
                );
            }
        } else {
            cancel_contract(pass, contract_id).await?;
            pass.status
                .machine
                .get_or_insert_with(MachineStatus::default)
                .gateway_contract_id = None;
            pass.set(
                GATEWAY_READY,
                false,
                "GatewayFailed",
                &format!("gateway {name} failed on node {node}: {message}; deploying it again"),
            );
            pass.persist().await?;
            return Ok(Flow::Requeue(pass.backoff(GATEWAY_READY)));
        }
    } else if !deployed.all_ok() {
        pass.set(
            GATEWAY_READY,
            false,
            "Deploying",
            &format!("node {node} is setting up gateway {name}"),
        );
        return Ok(Flow::Requeue(pass.backoff(GATEWAY_READY)));
    }
    if fqdn_reported.is_none() && pass.status.url.as_deref() != Some(url.as_str()) {
        pass.event(
            EventType::Normal,
            "AddressComputed",
            &format!("the grid reported no address for gateway {name}; computed {fqdn}"),
        );
    }
    pass.status.url = Some(url.clone());
    pass.set(
        GATEWAY_READY,
        true,
        "Routed",
        &format!("{url} routes to the VM"),
    );
    Ok(Flow::Continue)
}

/// The tester's gateway name, held by a name contract of ours; `None` (with the condition set)
/// when a custom name is taken by someone else.
async fn hold_name(pass: &mut Pass<'_>) -> Result<Option<String>> {
    let me = pass.ctx.grid.twin_id();
    if let Some(name) = pass.status.gateway_name.clone() {
        // Known: check it is still ours (cheap read), take it again if it was lost.
        let owner = pass
            .ctx
            .grid("name_owner", pass.ctx.grid.chain.name_owner(&name))
            .await?;
        match owner {
            Some(o) if o.twin_id == me => {
                record_name(pass, &name, o.contract_id);
                return Ok(Some(name));
            }
            Some(_) => {
                pass.set(
                    GATEWAY_READY,
                    false,
                    "NameTaken",
                    &format!("gateway name {name} is now held by another owner"),
                );
                return Ok(None);
            }
            None => {
                // Free a moment ago; another account may take it before our claim lands.
                let Some(id) = claim(pass, &name).await? else {
                    pass.set(
                        GATEWAY_READY,
                        false,
                        "NameTaken",
                        &format!(
                            "gateway name {name} was lost and taken by another owner before it could be claimed again"
                        ),
                    );
                    return Ok(None);
                };
                record_name(pass, &name, id);
                return Ok(Some(name));
            }
        }
    }
    let candidates: Vec<String> = match &pass.tester.spec.gateway_name {
        Some(custom) => vec![custom.clone()],
        None => (0..MAX_NAME_ATTEMPTS)
            .map(|i| gateway_name(&pass.tester.spec.account_name, &pass.uid, i))
            .collect(),
    };
    for name in &candidates {
        if let Some(id) = claim(pass, name).await? {
            pass.status.gateway_name = Some(name.clone());
            // Written with the pass's status: a name claimed but not recorded is found again on
            // the chain (ours, held by no other Tester) by the next pass and by the clean-up.
            record_name(pass, name, id);
            return Ok(Some(name.clone()));
        }
    }
    let msg = if pass.tester.spec.gateway_name.is_some() {
        format!(
            "gateway name {} is held by another owner on the grid; choose another gatewayName (a new Tester)",
            candidates[0]
        )
    } else {
        format!("all {MAX_NAME_ATTEMPTS} generated gateway names are held by other owners")
    };
    pass.set(GATEWAY_READY, false, "NameTaken", &msg);
    Ok(None)
}

fn record_name(pass: &mut Pass<'_>, name: &str, contract_id: u64) {
    pass.status.gateway_name = Some(name.to_string());
    pass.status
        .machine
        .get_or_insert_with(MachineStatus::default)
        .name_contract_id = Some(contract_id);
}

/// The node that runs the tester's name proxy: the one recorded, else one of the HostPool's
/// gateway nodes (chosen by the tester's UID, so every pass chooses the same), else the
/// machine's own node.
async fn gateway_node(pass: &mut Pass<'_>) -> Result<u32> {
    if let Some(n) = pass.status.machine.as_ref().and_then(|m| m.gateway_node_id) {
        return Ok(n);
    }
    let pool = match pass.ctx.pool_of(pass.tester) {
        Some(pool) => Some(pool),
        None => {
            pass.ctx.kube_turn().await;
            let pools: kube::Api<crate::resources::HostPool> =
                kube::Api::namespaced(pass.ctx.client.clone(), &pass.ns);
            pools
                .get_opt(&pass.tester.spec.host_pool)
                .await
                .map_err(|source| Error::Kube {
                    action: "reading the Tester's HostPool",
                    source,
                })?
                .map(std::sync::Arc::new)
        }
    };
    let gateways = match pool {
        Some(pool) if !pool.spec.gateway_farms.is_empty() => {
            let key = format!("{}/{}", pass.ns, pool.name_any());
            super::schedule::pool_nodes(pass.ctx, &key, &pool, super::schedule::LISTING_MAX_AGE)
                .await?
                .gateways
        }
        Some(pool) => pool.spec.gateway_nodes.clone(),
        None => Vec::new(),
    };
    if gateways.is_empty() {
        return Ok(pass
            .status
            .placement
            .as_ref()
            .ok_or(Error::MissingField("status.placement"))?
            .node_id);
    }
    let pick = u64::from_str_radix(&crate::names::derived_hex(&pass.uid, "gateway-node", 4), 16)
        .unwrap_or_default()
        % gateways.len() as u64;
    let node = gateways[pick as usize];
    pass.status
        .machine
        .get_or_insert_with(MachineStatus::default)
        .gateway_node_id = Some(node);
    Ok(node)
}

/// Takes `name`: `Some(contract)` when it is ours now (created, or a leftover of ours adopted),
/// `None` when another twin holds it.
async fn claim(pass: &mut Pass<'_>, name: &str) -> Result<Option<u64>> {
    let me = pass.ctx.grid.twin_id();
    if let Some(o) = pass
        .ctx
        .grid("name_owner", pass.ctx.grid.chain.name_owner(name))
        .await?
    {
        if o.twin_id == me && held_by_another_tester(pass, name).await? {
            pass.event(
                EventType::Warning,
                "NameHeldByOtherTester",
                &format!("gateway name {name} belongs to another Tester"),
            );
            return Ok(None);
        }
        return Ok(adopt_if_ours(pass, name, o.twin_id, o.contract_id, me));
    }
    super::grid::nodes_ready(pass.ctx).await?;
    match pass
        .ctx
        .grid(
            "create_name_contract",
            pass.ctx.grid.chain.create_name_contract(name),
        )
        .await
    {
        Ok(c) => {
            tracing::info!(tester = %pass.name, %name, contract = c.contract_id, "gateway name registered");
            Ok(Some(c.contract_id))
        }
        Err(Error::Grid {
            source:
                GridError::NameExists {
                    owner_twin,
                    contract_id,
                    ..
                },
            ..
        }) => Ok(adopt_if_ours(pass, name, owner_twin, contract_id, me)),
        Err(e) => Err(e),
    }
}

/// Whether another Tester records `name` as its gateway name: a name of ours is a leftover to
/// adopt only when no other tester uses it (two Testers could ask for the same custom name).
pub(super) async fn held_by_another_tester(pass: &Pass<'_>, name: &str) -> Result<bool> {
    pass.ctx.kube_turn().await;
    // Within the watched namespace when there is one: that is all the controller may read.
    let all: kube::Api<crate::resources::Tester> = match &pass.ctx.config.namespace {
        Some(ns) => kube::Api::namespaced(pass.ctx.client.clone(), ns),
        None => kube::Api::all(pass.ctx.client.clone()),
    };
    let list = all
        .list(&Default::default())
        .await
        .map_err(|source| Error::Kube {
            action: "listing Testers",
            source,
        })?;
    Ok(list.items.iter().any(|t| {
        t.metadata.uid.as_deref() != Some(pass.uid.as_str())
            && t.status.as_ref().and_then(|s| s.gateway_name.as_deref()) == Some(name)
    }))
}

fn adopt_if_ours(
    pass: &mut Pass<'_>,
    name: &str,
    owner: u32,
    contract_id: u64,
    me: u32,
) -> Option<u64> {
    if owner == me {
        pass.event(
            EventType::Normal,
            "AdoptedExistingName",
            &format!("gateway name {name} already held by us (contract {contract_id}): adopted"),
        );
        Some(contract_id)
    } else {
        pass.event(
            EventType::Normal,
            "NameHeldByOther",
            &format!("gateway name {name} is held by twin {owner}"),
        );
        None
    }
}

/// The gateway deployment's contract: known, adopted by tag, or created. A contract whose
/// deployment points at an old VM (after a rebuild) is replaced.
async fn gateway_contract(
    pass: &mut Pass<'_>,
    node: u32,
    hash: &str,
    tag: &ContractTag,
) -> Result<u64> {
    let known = pass
        .status
        .machine
        .as_ref()
        .and_then(|m| m.gateway_contract_id);
    let existing = match known {
        Some(id) => Some(id),
        None => my_contracts(pass.ctx, tag)
            .await?
            .into_iter()
            .map(|c| c.contract_id)
            .next(),
    };
    if let Some(id) = existing {
        let current = pass
            .ctx
            .grid("get_contract", pass.ctx.grid.chain.get_contract(id))
            .await;
        match current {
            Ok(c) if c.node_contract().is_some_and(|n| n.deployment_hash == hash) => {
                if known.is_none() {
                    pass.event(
                        EventType::Normal,
                        "AdoptedExistingGateway",
                        &format!("adopted gateway contract {id}"),
                    );
                    pass.status
                        .machine
                        .get_or_insert_with(MachineStatus::default)
                        .gateway_contract_id = Some(id);
                }
                return Ok(id);
            }
            Ok(_) => {
                cancel_contract(pass, id).await?;
                pass.event(
                    EventType::Normal,
                    "GatewayRepointed",
                    "the gateway pointed at a previous machine; replacing it",
                );
            }
            Err(Error::Grid { source, .. }) if source.category() == ErrorCategory::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let (id, _) = grid::node_contract(pass.ctx, node, hash, tag).await?;
    // Written with the pass's status: a contract made but not recorded is found by its hash
    // (the chain refuses a second one) and by its tag on deletion.
    pass.status
        .machine
        .get_or_insert_with(MachineStatus::default)
        .gateway_contract_id = Some(id);
    Ok(id)
}

/// The node's gateway domain, from the proxy.
pub(crate) async fn node_domain(ctx: &crate::context::Context, node: u32) -> Result<String> {
    let n = ctx.grid("get_node", ctx.grid.proxy.node(node)).await?;
    n.info
        .public_config
        .domain()
        .map(str::to_string)
        .ok_or_else(|| Error::Probe {
            what: format!("node {node}"),
            reason: "the node has no gateway domain".into(),
        })
}

/// Whether the public URL routes to the VM: the gate's `/health` answers through it.
async fn routes(pass: &Pass<'_>, url: &str) -> bool {
    let health = format!("{}/health", url.trim_end_matches('/'));
    matches!(pass.ctx.http.get(&health).send().await, Ok(r) if r.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeGrid, context, tester};

    #[tokio::test]
    async fn a_name_taken_between_look_up_and_claim_is_reported_not_a_panic() {
        let grid = FakeGrid::default();
        let mut t = tester("bob", "Bob.Smith");
        let name = "bob-smith-0a1b2c".to_string();
        t.status = Some(crate::resources::TesterStatus {
            gateway_name: Some(name.clone()),
            ..Default::default()
        });
        // Our name was lost (its contract is gone) and another account takes it in the
        // instant between our look-up and our claim.
        grid.0
            .lock()
            .unwrap()
            .stolen_on_claim
            .insert(name.clone(), 99);
        let ctx = context(grid.clone());
        let mut pass = Pass::new(&t, &ctx).unwrap();

        let held = hold_name(&mut pass).await.unwrap();

        assert_eq!(held, None);
        let c = pass.condition(GATEWAY_READY).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "NameTaken")
        );
        assert!(c.message.contains(&name), "{}", c.message);
        assert_eq!(
            grid.calls(),
            ["name_owner", "name_owner", "create_name_contract"]
        );
    }
}
