//! Giving a warm machine up on the grid.

use crate::{
    context::Context,
    error::Result,
    resources::WarmMachine,
    tester::{
        deployment::{self, ContractTag},
        grid::{cancel, contract_for},
        machine_keys,
    },
};

use super::WARM_BUILD;
use kube::ResourceExt;

/// Gives the machine up on the grid: its contract cancelled, its place released.
pub async fn tear_down(ctx: &Context, machine: &WarmMachine) -> Result<()> {
    let status = machine.status.clone().unwrap_or_default();
    for id in [
        status.gateway_contract_id,
        status.name_contract_id,
        status.contract_id,
    ]
    .into_iter()
    .flatten()
    {
        cancel(ctx, id).await?;
    }
    // A name kept in the status whose contract was made but not recorded.
    if status.name_contract_id.is_none()
        && let Some(name) = &status.gateway_name
        && let Some(owner) = ctx
            .grid("name_owner", ctx.grid.chain.name_owner(name))
            .await?
        && owner.twin_id == ctx.grid.twin_id()
    {
        cancel(ctx, owner.contract_id).await?;
    }
    // A contract made but not recorded is found by its node + hash (the keys are kept).
    if let (Some(placement), Some(uid)) = (
        machine.status.as_ref().and_then(|s| s.placement.clone()),
        machine.uid(),
    ) && let Some(keys) = machine_keys::read(
        ctx,
        &machine.namespace().unwrap_or_default(),
        &machine.keys_secret_name(),
        WARM_BUILD,
    )
    .await?
    {
        let tag = ContractTag {
            tester: uid.clone(),
            kind: "vm".into(),
            build: WARM_BUILD.into(),
        };
        let d = deployment::vm(
            ctx.grid.twin_id(),
            &placement,
            &keys,
            &ctx.agent_public_key.to_base64(),
            &tag,
        );
        if let Some(id) = contract_for(ctx, placement.node_id, &d.challenge_hash()).await? {
            cancel(ctx, id).await?;
        }
    }
    if let Some(uid) = machine.uid() {
        ctx.ledger.lock().await.release(&uid);
    }
    Ok(())
}
