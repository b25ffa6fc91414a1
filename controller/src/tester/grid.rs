//! What several steps do on the grid: reach the machine's agent, find our contracts by their
//! tag, cancel one, and talk to a node by its twin.

use gridapi::{
    ErrorCategory,
    agent::{AgentConfigView, AgentTarget},
    chain::CreateNodeContract,
    proxy::{ContractDetails, ContractFilter, ContractState, ContractType, Limit},
    zos::Deployment,
};

use super::{Pass, deployment::ContractTag};
use crate::{
    context::Context,
    error::{Error, Result},
};

/// One of our node contracts, as the proxy lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    /// The contract.
    pub contract_id: u64,
    /// Its node.
    pub node_id: u32,
    /// The deployment hash it carries.
    pub deployment_hash: String,
    /// The tag in its deployment data.
    pub tag: ContractTag,
}

/// Every live node contract of our twin that carries a tag, from the proxy (which lags the
/// chain: a contract created a moment ago may be missing; exact look-ups go to the chain).
pub async fn tagged_contracts(ctx: &Context) -> Result<Vec<Tagged>> {
    live_contracts(ctx, None).await
}

/// Our live node contracts tagged exactly `tag` (the tester, kind and build), found by the
/// proxy's `deployment_data` filter: one tester's contracts, not every contract of the twin.
pub async fn my_contracts(ctx: &Context, tag: &ContractTag) -> Result<Vec<Tagged>> {
    live_contracts(ctx, Some(tag.encode())).await
}

/// Our twin's live node contracts that carry a tag (exactly `data`, when given), every page.
async fn live_contracts(ctx: &Context, data: Option<String>) -> Result<Vec<Tagged>> {
    const PAGE: u32 = 1000;
    let filter = ContractFilter {
        twin_id: Some(ctx.grid.twin_id()),
        kind: Some(ContractType::Node),
        state: vec![ContractState::Created, ContractState::GracePeriod],
        deployment_data: data,
        ..ContractFilter::default()
    };
    let mut out = Vec::new();
    for page in 1.. {
        let got = ctx
            .grid(
                "list_contracts",
                ctx.grid.proxy.contracts(&filter, Limit::page(page, PAGE)),
            )
            .await?;
        let n = got.items.len();
        out.extend(got.items.into_iter().filter_map(|c| match c.details {
            ContractDetails::Node(d) => ContractTag::decode(&d.deployment_data).map(|tag| Tagged {
                contract_id: c.contract_id,
                node_id: d.node_id,
                deployment_hash: d.deployment_hash,
                tag,
            }),
            _ => None,
        }));
        if n < PAGE as usize {
            break;
        }
    }
    Ok(out)
}

/// The live contract for exactly this deployment on this node, from the chain (exact, no lag).
pub async fn contract_for(ctx: &Context, node_id: u32, hash: &str) -> Result<Option<u64>> {
    ctx.grid(
        "contract_id_by_node_hash",
        ctx.grid.chain.contract_id_by_node_hash(node_id, hash),
    )
    .await
}

/// Fails unless node calls can be made now: checked before any contract is created, so that
/// nothing is paid for on chain that could not then be deployed (an account without a twin, a
/// relay down).
pub async fn nodes_ready(ctx: &Context) -> Result<()> {
    ctx.grid("node_bus_ready", ctx.grid.nodes.ready()).await
}

/// Creates the node contract for `hash` on `node`, or adopts the live one the chain already
/// holds for it (it refuses a second one: a call that timed out may have landed). The flag says
/// whether it was adopted.
pub async fn node_contract(
    ctx: &Context,
    node: u32,
    hash: &str,
    tag: &ContractTag,
) -> Result<(u64, bool)> {
    nodes_ready(ctx).await?;
    let req = CreateNodeContract {
        node_id: node,
        deployment_hash: hash.to_string(),
        deployment_data: tag.encode(),
        public_ips: 0,
        solution_provider_id: None,
    };
    match ctx
        .grid(
            "create_node_contract",
            ctx.grid.chain.create_node_contract(&req),
        )
        .await
    {
        Ok(c) => Ok((c.contract_id, false)),
        Err(Error::Grid { source, .. }) if source.category() == ErrorCategory::Conflict => {
            match contract_for(ctx, node, hash).await? {
                Some(id) => Ok((id, true)),
                None => Err(Error::Grid {
                    call: "create_node_contract",
                    source,
                }),
            }
        }
        Err(e) => Err(e),
    }
}

/// Cancels a contract; one that is already gone counts as cancelled.
pub async fn cancel_contract(pass: &Pass<'_>, id: u64) -> Result<()> {
    cancel(pass.ctx, id).await
}

/// Cancels a contract; one that is already gone counts as cancelled.
pub async fn cancel(ctx: &Context, id: u64) -> Result<()> {
    match ctx
        .grid("cancel_contract", ctx.grid.chain.cancel_contract(id))
        .await
    {
        Ok(()) => Ok(()),
        Err(Error::Grid { source, .. }) if source.category() == ErrorCategory::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The agent of the tester's VM.
pub fn agent(pass: &Pass<'_>) -> Result<AgentTarget> {
    let address = pass
        .status
        .machine
        .as_ref()
        .and_then(|m| m.private_address.clone())
        .ok_or(Error::MissingField("status.machine.privateAddress"))?;
    let machine_id = pass
        .status
        .machine
        .as_ref()
        .and_then(|m| m.machine_id.clone())
        .ok_or(Error::MissingField("status.machine.machineId"))?;
    Ok(AgentTarget {
        mycelium_ip: address,
        machine_id,
    })
}

/// What the machine's agent holds, read at most once per pass (the steps share it); a step
/// that changes the machine calls [`forget_agent_view`].
pub async fn agent_view(pass: &mut Pass<'_>) -> Result<AgentConfigView> {
    let target = agent(pass)?;
    if let Some((address, view)) = &pass.agent_view
        && *address == target.mycelium_ip
    {
        return Ok(view.clone());
    }
    let view = pass
        .ctx
        .grid("agent_config", pass.ctx.grid.agents.config(&target))
        .await?;
    pass.agent_view = Some((target.mycelium_ip, view.clone()));
    Ok(view)
}

/// Drops the pass's agent view after a step changed the machine.
pub fn forget_agent_view(pass: &mut Pass<'_>) {
    pass.agent_view = None;
}

/// The twin of a node (the message bus addresses nodes by twin), from the proxy once, then
/// from memory: a node's twin never changes.
pub async fn node_twin(ctx: &Context, node_id: u32) -> Result<u32> {
    if let Some(&twin) = ctx
        .node_twins
        .lock()
        .expect("node twins lock")
        .get(&node_id)
    {
        return Ok(twin);
    }
    let node = ctx.grid("get_node", ctx.grid.proxy.node(node_id)).await?;
    let twin = node.info.twin_id;
    ctx.node_twins
        .lock()
        .expect("node twins lock")
        .insert(node_id, twin);
    Ok(twin)
}

/// The deployment of `contract_id` on `node_id`, with its results.
pub async fn deployment(ctx: &Context, node_id: u32, contract_id: u64) -> Result<Deployment> {
    let twin = node_twin(ctx, node_id).await?;
    ctx.grid("get_deployment", ctx.grid.nodes.get(twin, contract_id))
        .await
}

/// Sends a deployment to its node.
pub async fn deploy(ctx: &Context, node_id: u32, d: &Deployment) -> Result<()> {
    let twin = node_twin(ctx, node_id).await?;
    ctx.grid("deploy", ctx.grid.nodes.deploy(twin, d)).await
}

#[cfg(test)]
mod tests {
    use gridapi::proxy::{Contract, NodeContractDetails};

    use super::*;
    use crate::testing::{FakeGrid, ME, context};

    fn listed(id: u64, tag: &ContractTag) -> Contract {
        Contract {
            contract_id: id,
            twin_id: ME,
            state: ContractState::Created,
            created_at: 0,
            details: ContractDetails::Node(NodeContractDetails {
                node_id: 12,
                deployment_data: tag.encode(),
                deployment_hash: format!("hash-{id}"),
                ..Default::default()
            }),
        }
    }

    #[tokio::test]
    async fn one_testers_contracts_are_asked_of_the_proxy_by_their_exact_tag() {
        let tag = |tester: &str, build: &str| ContractTag {
            tester: tester.into(),
            kind: "vm".into(),
            build: build.into(),
        };
        let grid = FakeGrid::default();
        grid.0.lock().unwrap().listed = vec![
            listed(1, &tag("uid-a", "")),
            listed(2, &tag("uid-b", "")),
            listed(3, &tag("uid-a", "2")),
        ];
        let ctx = context(grid.clone());

        let mine = my_contracts(&ctx, &tag("uid-a", "2")).await.unwrap();
        assert_eq!(mine.iter().map(|c| c.contract_id).collect::<Vec<_>>(), [3]);
        assert_eq!(mine[0].tag, tag("uid-a", "2"));
        let asked = grid.0.lock().unwrap().contract_filters[0].clone();
        assert_eq!(
            asked.deployment_data.as_deref(),
            Some(r#"{"tester":"uid-a","kind":"vm","build":"2"}"#),
            "the tag exactly as written into the contract"
        );
        assert_eq!(asked.twin_id, Some(ME));
        assert_eq!(asked.kind, Some(ContractType::Node));

        let all = tagged_contracts(&ctx).await.unwrap();
        assert_eq!(
            all.len(),
            3,
            "the clean-up's listing still sees every tagged contract"
        );
    }
}
