//! `managementPolicy: ObserveOnly`: the machine that exists for this tester (the VM contract
//! carrying the controller's tag, or the one named in `spec.contractId`) is found and
//! reported: node, private address, whether it answers, whether the gateway name is ours.
//! Nothing is created, changed or deleted on the grid; only reads.

use std::time::Duration;

use gridapi::{ErrorCategory, agent::signing::MACHINE_ID_ENV};

use super::{
    Flow, Pass,
    conditions::{
        GATE_SECURED, GATEWAY_READY, INSTALLED, MACHINE_READY, SCHEDULED, TOKENS_REGISTERED,
    },
    grid::{self, agent, tagged_contracts},
};
use crate::{
    error::{Error, Result},
    resources::MachineStatus,
};

/// How often an observed tester is looked at again.
const OBSERVE_INTERVAL: Duration = Duration::from_secs(60);

/// The machine's contract as found: by id on the chain, or by tag in the proxy's listing.
struct Found {
    contract_id: u64,
    /// `None` for a contract that is not a node contract.
    node_id: Option<u32>,
}

/// Reports what exists, with reads only.
pub async fn observe(pass: &mut Pass<'_>) -> Result<Flow> {
    let not_checked = "not checked: an ObserveOnly tester is only reported, never configured";
    for c in [GATE_SECURED, TOKENS_REGISTERED, INSTALLED] {
        pass.set_status(c, "Unknown", "ObserveOnly", not_checked);
    }
    let contract = match pass.tester.spec.contract_id {
        Some(id) => match pass
            .ctx
            .grid("get_contract", pass.ctx.grid.chain.get_contract(id))
            .await
        {
            Ok(c) => Some(Found {
                contract_id: c.contract_id,
                node_id: c.node_contract().map(|n| n.node_id),
            }),
            Err(Error::Grid { source, .. }) if source.category() == ErrorCategory::NotFound => None,
            Err(e) => return Err(e),
        },
        // Any build of its machine: the whole listing, filtered here (observed testers are few
        // and looked at rarely).
        None => tagged_contracts(pass.ctx)
            .await?
            .into_iter()
            .find(|c| c.tag.tester == pass.uid && c.tag.kind == "vm")
            .map(|c| Found {
                contract_id: c.contract_id,
                node_id: Some(c.node_id),
            }),
    };
    let Some(contract) = contract else {
        let msg = match pass.tester.spec.contract_id {
            Some(id) => format!("contract {id} (spec.contractId) does not exist on the grid"),
            None => "no VM contract of this tester on the grid (none carries its tag; name one in spec.contractId)".to_string(),
        };
        pass.set(SCHEDULED, false, "NotFound", &msg);
        pass.set(MACHINE_READY, false, "NotFound", &msg);
        return Ok(Flow::Requeue(OBSERVE_INTERVAL));
    };
    let Some(node_id) = contract.node_id else {
        let msg = format!(
            "contract {} is a name contract, not a machine's node contract",
            contract.contract_id
        );
        pass.set(MACHINE_READY, false, "NotAMachine", &msg);
        return Ok(Flow::Requeue(OBSERVE_INTERVAL));
    };
    pass.status.host = Some(format!("node-{node_id}"));
    pass.set(
        SCHEDULED,
        true,
        "Observed",
        &format!("the machine is on node {node_id}"),
    );
    let deployed = grid::deployment(pass.ctx, node_id, contract.contract_id).await?;
    let address = deployed
        .workloads
        .iter()
        .find_map(|w| w.zmachine_result())
        .map(|r| r.mycelium_ip)
        .filter(|a| !a.is_empty());
    // The machine id its agent answers to is in the VM's env (public, like the address).
    let machine_id = deployed.workloads.iter().find_map(|w| match &w.data {
        gridapi::zos::WorkloadData::ZmachineLight(z) => z.env.get(MACHINE_ID_ENV).cloned(),
        _ => None,
    });
    let machine = pass
        .status
        .machine
        .get_or_insert_with(MachineStatus::default);
    machine.contract_id = Some(contract.contract_id);
    machine.private_address = address.clone();
    machine.machine_id = machine_id.clone();
    if machine_id.is_none() {
        pass.set(
            MACHINE_READY,
            false,
            "NoAgent",
            &format!(
                "the VM of contract {} has no {MACHINE_ID_ENV} in its env: it runs no agent of this project",
                contract.contract_id
            ),
        );
        return Ok(Flow::Requeue(OBSERVE_INTERVAL));
    }
    let Some(address) = address else {
        pass.set(
            MACHINE_READY,
            false,
            "NoAddress",
            &format!(
                "the deployment of contract {} reports no private address",
                contract.contract_id
            ),
        );
        return Ok(Flow::Requeue(OBSERVE_INTERVAL));
    };
    let target = agent(pass)?;
    match pass
        .ctx
        .grid("agent_config", pass.ctx.grid.agents.config(&target))
        .await
    {
        Ok(_) => pass.set(
            MACHINE_READY,
            true,
            "Observed",
            &format!(
                "contract {} on node {node_id} answers at {address}",
                contract.contract_id
            ),
        ),
        Err(e) => pass.set(
            MACHINE_READY,
            false,
            "Unreachable",
            &format!("contract {} on node {node_id}: {e}", contract.contract_id),
        ),
    }
    observe_name(pass).await?;
    Ok(Flow::Requeue(OBSERVE_INTERVAL))
}

/// Whether the tester's gateway name (recorded, or asked for in the spec) is held by us.
async fn observe_name(pass: &mut Pass<'_>) -> Result<()> {
    let name = pass
        .status
        .gateway_name
        .clone()
        .or_else(|| pass.tester.spec.gateway_name.clone());
    let Some(name) = name else {
        pass.set_status(
            GATEWAY_READY,
            "Unknown",
            "ObserveOnly",
            "no gateway name to look for (none recorded, none in the spec)",
        );
        return Ok(());
    };
    let me = pass.ctx.grid.twin_id();
    match pass
        .ctx
        .grid("name_owner", pass.ctx.grid.chain.name_owner(&name))
        .await?
    {
        Some(o) if o.twin_id == me => {
            pass.status.gateway_name = Some(name.clone());
            pass.status
                .machine
                .get_or_insert_with(MachineStatus::default)
                .name_contract_id = Some(o.contract_id);
            pass.set(
                GATEWAY_READY,
                true,
                "Observed",
                &format!(
                    "gateway name {name} is held by us (contract {})",
                    o.contract_id
                ),
            );
        }
        Some(o) => pass.set(
            GATEWAY_READY,
            false,
            "NameTaken",
            &format!("gateway name {name} is held by twin {}", o.twin_id),
        ),
        None => pass.set(
            GATEWAY_READY,
            false,
            "NotFound",
            &format!("gateway name {name} is held by nobody"),
        ),
    }
    Ok(())
}
