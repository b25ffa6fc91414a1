//! The node face: zos's `zos.deployment.deploy`, `.get` and `.changes` commands, addressed by
//! the node's twin as the message bus (RMB) carries them: `POST /rmb/{node_twin}/{command}` with
//! the command's payload.
//!
//! Deploy validates the deployment and queues it; each node works its queue one deployment at
//! a time, workloads in the order zmount → network → zmachine → gateway, each reporting `init`
//! then `ok` or `error`. Capacity is enforced here, by the node, with the node's own texts,
//! whatever the (lagging) proxy says. Deletion through the node is refused: it is a chain cancel.
//!
//! Faults: `node_unreachable` and a node that is down (calls time out), `deploy_timeout_but_created`,
//! `capacity_refusal`, `gateway_failed_but_created`, `result_without_address` (call `provision`).

mod cleanup;
mod validate;
mod worker;

pub use cleanup::{after_name_cancelled, after_node_contract_cancelled};
pub use validate::{backend_host_port, validate};
pub use worker::{enqueue, resume, resume_node};

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use gridapi::node::{CMD_CHANGES, CMD_DEPLOY, CMD_GET, ContractRef};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};
use crate::faults::Hit;
use crate::prelude::*;
use crate::state::{DeploymentRec, Sim, World, now_secs};
use crate::timing::Wait;
use crate::wire::*;

/// Routes of the node face.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/rmb/{twin}/{command}", post(command))
}

/// The command to delete a deployment, which zos refuses (it is a chain cancel).
const CMD_DELETE: &str = "zos.deployment.delete";

fn payload<T: DeserializeOwned>(body: &[u8], command: &str) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            ErrorCode::Invalid,
            format!("{command}: invalid payload: {e}"),
        )
    })
}

/// One message to a node's twin: finds the node, then runs the command.
async fn command(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((twin, command)): Path<(u32, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let node_id = {
        let w = sim.world.lock().expect("world lock");
        w.nodes
            .values()
            .find(|n| n.cfg.twin_id() == twin)
            .map(|n| n.cfg.id)
    }
    .ok_or_else(|| {
        ApiError::not_found(
            ErrorCode::NodeNotExists,
            format!("twin {twin} is not a node's twin"),
        )
    })?;
    Ok(match command.as_str() {
        CMD_DEPLOY => deploy(sim, headers, node_id, payload(&body, &command)?)
            .await?
            .into_response(),
        CMD_GET => {
            let ContractRef { contract_id } = payload(&body, &command)?;
            get_deployment(sim, headers, node_id, contract_id)
                .await?
                .into_response()
        }
        CMD_CHANGES => {
            let ContractRef { contract_id } = payload(&body, &command)?;
            changes(sim, headers, node_id, contract_id)
                .await?
                .into_response()
        }
        CMD_DELETE => delete_deployment(sim, headers, node_id)
            .await?
            .into_response(),
        other => {
            return Err(ApiError::invalid(
                ErrorCode::Invalid,
                format!("unknown command {other:?}"),
            ));
        }
    })
}

/// Fails like the message bus when the node is down or the `node_unreachable` fault fires.
async fn reach(sim: &Sim, node_id: u32, call: &str) -> ApiResult<()> {
    let up = {
        let w = sim.world.lock().expect("world lock");
        let n = w.nodes.get(&node_id).ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::NodeNotExists,
                format!("node {node_id} not found"),
            )
        })?;
        n.status == NodeStatus::Up
    };
    let fault = sim
        .faults
        .fire(Hit::new("node_unreachable", call).node(Some(node_id)))
        .is_some();
    if !up || fault {
        sim.timing.wait(Wait::RmbTimeout).await;
        return Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::NodeUnreachable,
            format!(
                "failed to send request to node {node_id} (twin {}): context deadline exceeded",
                1000 + node_id
            ),
        ));
    }
    Ok(())
}

/// A workload's state as one entry of the deployment's history.
fn change(w: &Workload) -> WorkloadChange {
    WorkloadChange {
        name: w.name.clone(),
        workload_type: w.data.type_name().into(),
        version: w.version,
        result: w.result.clone(),
    }
}

async fn deploy(
    sim: Arc<Sim>,
    headers: HeaderMap,
    node_id: u32,
    mut d: Deployment,
) -> ApiResult<Json<()>> {
    let call = "deploy";
    let twin = sim.session(&headers, call, Some(node_id), None)?;
    reach(&sim, node_id, call).await?;
    validate(&d).map_err(|m| ApiError::invalid(ErrorCode::Invalid, m))?;
    {
        let mut w = sim.world.lock().expect("world lock");
        if d.twin_id != twin {
            return Err(ApiError::forbidden(
                ErrorCode::Unauthorized,
                "twin id mismatch",
            ));
        }
        let c = w.contracts.get(&d.contract_id).ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::ContractNotExists,
                format!("contract {} not found", d.contract_id),
            )
        })?;
        let ContractKind::Node {
            node_id: cnode,
            deployment_hash,
            ..
        } = &c.kind
        else {
            return Err(ApiError::invalid(
                ErrorCode::Invalid,
                format!("contract {} is not a node contract", d.contract_id),
            ));
        };
        if *cnode != node_id {
            return Err(ApiError::invalid(
                ErrorCode::Invalid,
                format!(
                    "contract {} is for node {cnode}, not {node_id}",
                    d.contract_id
                ),
            ));
        }
        if c.twin_id != twin {
            return Err(ApiError::forbidden(
                ErrorCode::Unauthorized,
                "twin id mismatch",
            ));
        }
        if *deployment_hash != d.challenge_hash() {
            return Err(ApiError::invalid(
                ErrorCode::Invalid,
                "deployment hash does not match the contract's hash",
            ));
        }
        if w.deployments.contains_key(&d.contract_id) {
            return Err(ApiError::conflict(
                ErrorCode::Conflict,
                format!("deployment with contract {} already exists", d.contract_id),
            ));
        }
        let now = now_secs();
        let mut changes = Vec::new();
        for wl in &mut d.workloads {
            wl.result = WorkloadResult {
                created: now,
                state: WorkloadState::Init,
                message: String::new(),
                data: serde_json::Value::Null,
            };
            changes.push(change(wl));
        }
        let rec = DeploymentRec {
            node_id,
            deployment: d.clone(),
            changes,
        };
        sim.save_deployment(&rec)?;
        w.deployments.insert(d.contract_id, rec);
    }
    tracing::info!(
        node = node_id,
        contract = d.contract_id,
        "deployment queued"
    );
    enqueue(&sim, node_id, d.contract_id);
    if sim
        .faults
        .fire(Hit::new("deploy_timeout_but_created", call).node(Some(node_id)))
        .is_some()
    {
        sim.timing.wait(Wait::RmbTimeout).await;
        return Err(ApiError::timeout("context deadline exceeded"));
    }
    Ok(Json(()))
}

async fn get_deployment(
    sim: Arc<Sim>,
    headers: HeaderMap,
    node_id: u32,
    cid: u64,
) -> ApiResult<Json<Deployment>> {
    let call = "get_deployment";
    let twin = sim.session(&headers, call, Some(node_id), None)?;
    reach(&sim, node_id, call).await?;
    let w = sim.world.lock().expect("world lock");
    let rec = find(&w, node_id, cid, twin)?;
    Ok(Json(rec.deployment.clone()))
}

async fn changes(
    sim: Arc<Sim>,
    headers: HeaderMap,
    node_id: u32,
    cid: u64,
) -> ApiResult<Json<Vec<WorkloadChange>>> {
    let call = "deployment_changes";
    let twin = sim.session(&headers, call, Some(node_id), None)?;
    reach(&sim, node_id, call).await?;
    let w = sim.world.lock().expect("world lock");
    let rec = find(&w, node_id, cid, twin)?;
    Ok(Json(rec.changes.clone()))
}

fn find(w: &World, node_id: u32, cid: u64, twin: u32) -> ApiResult<&DeploymentRec> {
    let rec = w
        .deployments
        .get(&cid)
        .filter(|r| r.node_id == node_id)
        .ok_or_else(|| {
            ApiError::not_found(ErrorCode::NotFound, format!("deployment {cid} not found"))
        })?;
    if rec.deployment.twin_id != twin {
        return Err(ApiError::forbidden(
            ErrorCode::Unauthorized,
            "twin id mismatch",
        ));
    }
    Ok(rec)
}

async fn delete_deployment(sim: Arc<Sim>, headers: HeaderMap, node_id: u32) -> ApiResult<Json<()>> {
    sim.session(&headers, "delete_deployment", Some(node_id), None)?;
    Err(ApiError::forbidden(
        ErrorCode::DeletionDisabled,
        "deletion over the api is disabled, please cancel your contract instead",
    ))
}
