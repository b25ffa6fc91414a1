//! The node face: zos's `zos.deployment.deploy`, `.get` and `.changes` commands, addressed by
//! the node's twin as the message bus (RMB) carries them: `POST /rmb/{node_twin}/{command}` with
//! the command's payload and a session header, or an envelope over the RMB relay (`relay`).
//! Both transports find the caller's twin their own way, then call [`run`].
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

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
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

/// A node command with its payload read, whatever transport carried it.
#[derive(Debug, Clone)]
pub enum Cmd {
    /// `zos.deployment.deploy`.
    Deploy(Box<Deployment>),
    /// `zos.deployment.get`.
    Get(u64),
    /// `zos.deployment.changes`.
    Changes(u64),
    /// `zos.deployment.delete` (refused).
    Delete,
}

impl Cmd {
    /// Reads `command` and its payload, with the node's texts for a bad one.
    pub fn parse(command: &str, body: &[u8]) -> ApiResult<Cmd> {
        Ok(match command {
            CMD_DEPLOY => Cmd::Deploy(Box::new(payload(body, command)?)),
            CMD_GET => Cmd::Get(payload::<ContractRef>(body, command)?.contract_id),
            CMD_CHANGES => Cmd::Changes(payload::<ContractRef>(body, command)?.contract_id),
            CMD_DELETE => Cmd::Delete,
            other => {
                return Err(ApiError::invalid(
                    ErrorCode::Invalid,
                    format!("unknown command {other:?}"),
                ));
            }
        })
    }

    /// The call's name, as fault scopes name it.
    pub fn call(&self) -> &'static str {
        match self {
            Cmd::Deploy(_) => "deploy",
            Cmd::Get(_) => "get_deployment",
            Cmd::Changes(_) => "deployment_changes",
            Cmd::Delete => "delete_deployment",
        }
    }
}

/// The node whose twin is `twin`.
pub fn node_of_twin(sim: &Sim, twin: u32) -> ApiResult<u32> {
    let w = sim.world.lock().expect("world lock");
    w.nodes
        .values()
        .find(|n| n.cfg.twin_id() == twin)
        .map(|n| n.cfg.id)
        .ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::NodeNotExists,
                format!("twin {twin} is not a node's twin"),
            )
        })
}

/// One message to a node's twin over HTTP: finds the node, reads the command, resolves the
/// caller's twin from its session, then runs the command.
async fn command(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((twin, command)): Path<(u32, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let node_id = node_of_twin(&sim, twin)?;
    let cmd = Cmd::parse(&command, &body)?;
    let caller = sim.session(&headers, cmd.call(), Some(node_id), None)?;
    let answer = run(sim, node_id, caller, cmd).await?;
    Ok(([(CONTENT_TYPE, "application/json")], answer).into_response())
}

/// Runs a command on node `node_id` for the twin `caller` (whose session or signature the
/// transport checked); the answer's JSON, or the node's error.
pub async fn run(sim: Arc<Sim>, node_id: u32, caller: u32, cmd: Cmd) -> ApiResult<Vec<u8>> {
    fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
        serde_json::to_vec(v).expect("zos types serialise")
    }
    Ok(match cmd {
        Cmd::Deploy(d) => json(&deploy(sim, caller, node_id, *d).await?),
        Cmd::Get(cid) => json(&get_deployment(sim, caller, node_id, cid).await?),
        Cmd::Changes(cid) => json(&changes(sim, caller, node_id, cid).await?),
        Cmd::Delete => json(&delete_deployment()?),
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

async fn deploy(sim: Arc<Sim>, twin: u32, node_id: u32, mut d: Deployment) -> ApiResult<()> {
    let call = "deploy";
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
    Ok(())
}

async fn get_deployment(sim: Arc<Sim>, twin: u32, node_id: u32, cid: u64) -> ApiResult<Deployment> {
    reach(&sim, node_id, "get_deployment").await?;
    let w = sim.world.lock().expect("world lock");
    let rec = find(&w, node_id, cid, twin)?;
    Ok(rec.deployment.clone())
}

async fn changes(
    sim: Arc<Sim>,
    twin: u32,
    node_id: u32,
    cid: u64,
) -> ApiResult<Vec<WorkloadChange>> {
    reach(&sim, node_id, "deployment_changes").await?;
    let w = sim.world.lock().expect("world lock");
    let rec = find(&w, node_id, cid, twin)?;
    Ok(rec.changes.clone())
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

fn delete_deployment() -> ApiResult<()> {
    Err(ApiError::forbidden(
        ErrorCode::DeletionDisabled,
        "deletion over the api is disabled, please cancel your contract instead",
    ))
}
