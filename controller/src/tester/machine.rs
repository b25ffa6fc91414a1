//! Step `MachineReady`: one VM deployment per Tester, reachable on the private network.

use gridapi::ErrorCategory;
use kube::{ResourceExt, runtime::events::EventType};

use super::{
    Flow, Pass,
    conditions::{GATE_SECURED, INSTALLED, MACHINE_READY, SCHEDULED, TOKENS_REGISTERED},
    deployment::{self, ContractTag},
    grid::{
        agent_view, cancel_contract, contract_for, deploy, deployment as deployed_on, my_contracts,
        node_contract,
    },
};
use crate::{
    error::{Error, Result},
    resources::{MachineStatus, REBUILD_ANNOTATION},
};

/// How long a node that refused a deployment for capacity is kept out of placements.
const REFUSED_COOL_DOWN: std::time::Duration = std::time::Duration::from_secs(300);

/// The machine build asked for: the rebuild annotation's value (empty before any rebuild).
pub fn wanted_build(pass: &Pass<'_>) -> String {
    pass.tester
        .annotations()
        .get(REBUILD_ANNOTATION)
        .cloned()
        .unwrap_or_default()
}

/// The build of the current machine.
fn current_build(pass: &Pass<'_>) -> String {
    pass.status
        .machine
        .as_ref()
        .and_then(|m| m.build.clone())
        .unwrap_or_default()
}

/// What makes this machine a new one: its build, and how often it was moved off an unhealthy
/// node. The VM's keys (so its private address) and its contract tag derive from it.
fn machine_key(pass: &Pass<'_>) -> String {
    key_of(
        &current_build(pass),
        pass.status.machine.as_ref().map_or(0, |m| m.remediations),
    )
}

/// The machine key of `build` after `remediations` moves.
pub(super) fn key_of(build: &str, remediations: u32) -> String {
    match remediations {
        0 => build.to_string(),
        n => format!("{build}~r{n}"),
    }
}

/// Replaces the machine when the rebuild annotation has a new value: the VM contract is
/// cancelled; account, gateway name, tokens and access settings stay and are applied to the
/// new machine by the following steps.
pub async fn rebuild_if_asked(pass: &mut Pass<'_>) -> Result<()> {
    let wanted = wanted_build(pass);
    if wanted == current_build(pass) {
        return Ok(());
    }
    let old = pass.status.machine.as_ref().and_then(|m| m.contract_id);
    if let Some(id) = old {
        cancel_contract(pass, id).await?;
        pass.event(
            EventType::Normal,
            "Rebuilding",
            &format!("replacing the machine (contract {id} cancelled) for build {wanted:?}"),
        );
    }
    let machine = pass
        .status
        .machine
        .get_or_insert_with(MachineStatus::default);
    machine.contract_id = None;
    machine.private_address = None;
    machine.machine_id = None;
    machine.build = Some(wanted).filter(|b| !b.is_empty());
    pass.status.installed = None;
    for c in [MACHINE_READY, GATE_SECURED, TOKENS_REGISTERED, INSTALLED] {
        pass.set(c, false, "Rebuilding", "the machine is being rebuilt");
    }
    let mut ledger = pass.ctx.ledger.lock().await;
    if let Some(h) = ledger.holding(&pass.uid).cloned() {
        ledger.hold(
            &pass.uid,
            crate::scheduler::Holding {
                counted_after: None,
                ..h
            },
        );
    }
    drop(ledger);
    pass.persist().await
}

/// Owns `MachineReady`: the VM contract (adopted by its tag after a restart, never created
/// twice), the deployment on the node, the private address recorded in the status before going
/// on, and reachability awaited with backoff.
pub async fn machine(pass: &mut Pass<'_>) -> Result<Flow> {
    let placement = pass
        .status
        .placement
        .clone()
        .ok_or(Error::MissingField("status.placement"))?;
    let node = placement.node_id;
    if let Some(why) = deployment::too_small(&placement) {
        // zos would refuse it: nothing is created on the grid.
        pass.set(MACHINE_READY, false, "DiskTooSmall", &why);
        return Ok(Flow::Requeue(std::time::Duration::from_secs(300)));
    }
    let build = machine_key(pass);
    let tag = ContractTag {
        tester: pass.uid.clone(),
        kind: "vm".into(),
        build: build.clone(),
    };
    // The keys (a Secret read) are needed only to make or send the deployment, to compute the
    // address, or to learn the machine id: not at rest.
    if pass
        .status
        .machine
        .as_ref()
        .and_then(|m| m.machine_id.as_ref())
        .is_none()
    {
        desired_vm(pass, &placement, &build, &tag).await?;
    }

    let contract_id = match pass.status.machine.as_ref().and_then(|m| m.contract_id) {
        Some(id) => id,
        None => {
            let (_, desired) = desired_vm(pass, &placement, &build, &tag).await?;
            let id = create_or_adopt(pass, node, &desired.challenge_hash(), &tag).await?;
            // Written with the pass's status: a contract made but not recorded is adopted by
            // its hash on the next pass, and found by its tag on deletion.
            pass.status
                .machine
                .get_or_insert_with(MachineStatus::default)
                .contract_id = Some(id);
            id
        }
    };

    let deployed = match deployed_on(pass.ctx, node, contract_id).await {
        Ok(d) => d,
        Err(Error::Grid { source, .. }) if source.category() == ErrorCategory::NotFound => {
            let (_, mut desired) = desired_vm(pass, &placement, &build, &tag).await?;
            desired.contract_id = contract_id;
            match deploy(pass.ctx, node, &desired).await {
                Ok(()) => {}
                // The contract is gone (cancelled by a pass that saw the node refuse): drop it
                // from the status; the next pass creates or adopts a new one.
                Err(Error::Grid { source, .. }) if source.category() == ErrorCategory::NotFound => {
                    if let Some(m) = pass.status.machine.as_mut() {
                        m.contract_id = None;
                    }
                    pass.set(
                        MACHINE_READY,
                        false,
                        "ContractGone",
                        &format!("contract {contract_id} no longer exists; creating a new one"),
                    );
                    pass.persist().await?;
                    return Ok(Flow::Requeue(std::time::Duration::from_secs(1)));
                }
                Err(e) => return Err(e),
            }
            // A node with the image cached may have it up at once: look before waiting.
            deployed_on(pass.ctx, node, contract_id).await?
        }
        Err(e) => return Err(e),
    };

    if let Some((workload, message)) = deployed
        .errors()
        .first()
        .map(|(w, m)| (w.to_string(), m.to_string()))
    {
        return failed_deployment(pass, node, contract_id, &workload, &message).await;
    }
    if !deployed.all_ok() {
        pass.set(
            MACHINE_READY,
            false,
            "Deploying",
            &format!("node {node} is deploying the VM (contract {contract_id})"),
        );
        return Ok(Flow::Requeue(pass.backoff(MACHINE_READY)));
    }
    pass.ctx
        .ledger
        .lock()
        .await
        .deployed(&pass.uid, pass.ctx.config.proxy_lag);

    let reported = deployed
        .workload("vm")
        .and_then(|w| w.zmachine_result())
        .map(|r| r.mycelium_ip)
        .unwrap_or_default();
    let address = if reported.is_empty() {
        let computed = desired_vm(pass, &placement, &build, &tag)
            .await?
            .0
            .mycelium_ip();
        if pass
            .status
            .machine
            .as_ref()
            .and_then(|m| m.private_address.as_ref())
            != Some(&computed)
        {
            pass.event(
                EventType::Normal,
                "AddressComputed",
                "the node reported no private address; computed it from the network key and seed",
            );
        }
        computed
    } else {
        reported
    };
    let machine = pass
        .status
        .machine
        .get_or_insert_with(MachineStatus::default);
    // Written with the pass's status: the address is derived again from the deployment if the
    // controller stops before that.
    if machine.private_address.as_deref() != Some(address.as_str()) {
        machine.private_address = Some(address.clone());
    }

    match agent_view(pass).await {
        Ok(_) => {
            let msg = format!("VM on node {node} (contract {contract_id}) answers at {address}");
            pass.set(MACHINE_READY, true, "Reachable", &msg);
            Ok(Flow::Continue)
        }
        Err(Error::Grid { source, .. }) if source.is_retry_later() => {
            // A new VM's route can take minutes to appear: keep waiting with backoff, and past
            // the configured time say so (the operator may want to look at the node).
            let waited = pass.waited(MACHINE_READY);
            let limit = pass.ctx.config.scaled(pass.ctx.config.reachability_timeout);
            let (reason, msg) = if waited > limit {
                (
                    "UnreachableTooLong",
                    format!(
                        "VM on node {node} has not answered at {address} for more than {}; still retrying",
                        humantime::format_duration(limit)
                    ),
                )
            } else {
                (
                    "Unreachable",
                    format!(
                        "VM deployed on node {node} but not reachable yet at {address}; a new VM can take minutes, retrying with backoff"
                    ),
                )
            };
            pass.set(MACHINE_READY, false, reason, &msg);
            Ok(Flow::Requeue(pass.backoff(MACHINE_READY)))
        }
        Err(e) => Err(e),
    }
}

/// The machine's keys (recording its id in the status) and the VM deployment they make.
async fn desired_vm(
    pass: &mut Pass<'_>,
    placement: &crate::resources::Placement,
    build: &str,
    tag: &ContractTag,
) -> Result<(deployment::MachineKeys, gridapi::zos::Deployment)> {
    let keys = super::machine_keys::machine_keys(pass, build).await?;
    let machine = pass
        .status
        .machine
        .get_or_insert_with(MachineStatus::default);
    if machine.machine_id.as_deref() != Some(keys.machine_id.as_str()) {
        // Written with the pass's status; the Secret is the record: a pass that stopped after
        // sending the deployment reads the same keys from it.
        machine.machine_id = Some(keys.machine_id.clone());
    }
    let desired = deployment::vm(
        pass.ctx.grid.twin_id(),
        placement,
        &keys,
        &pass.ctx.agent_public_key.to_base64(),
        tag,
    );
    Ok((keys, desired))
}

/// Creates the VM's node contract, or adopts the one a previous pass created (a chain call that
/// timed out may have landed). The deployment is the same on every pass, so its hash finds the
/// contract on the chain exactly; the proxy's tag listing (which lags) finds one made for
/// another placement by a controller that was stopped before recording it.
async fn create_or_adopt(
    pass: &mut Pass<'_>,
    node: u32,
    hash: &str,
    tag: &ContractTag,
) -> Result<u64> {
    let exact = contract_for(pass.ctx, node, hash).await?;
    let listed = match exact {
        Some(id) => Some(id),
        None => my_contracts(pass.ctx, tag)
            .await?
            .into_iter()
            .next()
            .map(|c| c.contract_id),
    };
    if let Some(id) = listed {
        pass.event(
            EventType::Normal,
            "AdoptedExistingMachine",
            &format!("adopted VM contract {id} found on the grid"),
        );
        return Ok(id);
    }
    let (id, adopted) = node_contract(pass.ctx, node, hash, tag).await?;
    if adopted {
        pass.event(
            EventType::Normal,
            "AdoptedExistingMachine",
            &format!("adopted VM contract {id}"),
        );
    } else {
        tracing::info!(tester = %pass.name, contract = id, node, "VM contract created");
    }
    Ok(id)
}

/// A workload failed on the node. A capacity refusal (the proxy said free, the node disagrees)
/// sends the tester back to the scheduler, away from that node; anything else is retried with a
/// fresh contract.
async fn failed_deployment(
    pass: &mut Pass<'_>,
    node: u32,
    contract_id: u64,
    workload: &str,
    message: &str,
) -> Result<Flow> {
    let capacity =
        gridapi::GridError::from_workload_message(message).category() == ErrorCategory::Capacity;
    cancel_contract(pass, contract_id).await?;
    if let Some(m) = pass.status.machine.as_mut() {
        m.contract_id = None;
        m.private_address = None;
    }
    if capacity {
        {
            let mut ledger = pass.ctx.ledger.lock().await;
            ledger.refused(node, REFUSED_COOL_DOWN);
            ledger.release(&pass.uid);
        }
        pass.status.placement = None;
        pass.status.host = None;
        let msg =
            format!("node {node} refused the VM for capacity ({message}); placing it elsewhere");
        pass.set(SCHEDULED, false, "NodeRefused", &msg);
        pass.set(MACHINE_READY, false, "NodeRefused", &msg);
    } else {
        pass.set(
            MACHINE_READY,
            false,
            "DeploymentFailed",
            &format!("workload {workload} failed on node {node}: {message}; cancelled contract {contract_id}, deploying again"),
        );
    }
    pass.persist().await?;
    Ok(Flow::Requeue(pass.backoff(MACHINE_READY)))
}
