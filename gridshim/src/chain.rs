//! The chain face: sessions (the client's connection), the smart-contract pallet's calls
//! (`create_node_contract`, `create_name_contract`, `cancel_contract`) and its storage maps
//! (`Contracts`, `ContractIDByNameRegistration`, `ContractIDByNodeIDAndHash`), with the
//! pallet's types as bodies and its error names as texts.
//!
//! Every write waits for a block. Faults: `chain_timeout_after_landed` (the call applies, then
//! answers "extrinsic timeout waiting for block"), `cancel502` (cancel answers 502 and does
//! nothing), `stale_connection` (see [`Sim::session`]).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};

use gridapi::chain::{
    Contract, CreateNameContract, CreateNodeContract, MAX_DEPLOYMENT_DATA, check_name,
};
use gridapi::http::chain::{
    CancelContract, STORAGE_CONTRACT_ID_BY_NAME, STORAGE_CONTRACT_ID_BY_NODE_HASH,
    STORAGE_CONTRACTS, TX_CANCEL_CONTRACT, TX_CREATE_NAME_CONTRACT, TX_CREATE_NODE_CONTRACT,
};
use gridapi::http::session::{SessionGrant, SessionRequest};

use crate::error::{ApiError, ApiResult};
use crate::faults::Hit;
use crate::prelude::*;
use crate::state::{Sim, now_secs, random_hex};
use crate::timing::Wait;
use crate::wire::{ContractKind, ContractRec, RecordState, WaitFor};

/// Routes of the chain face.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/session", post(open_session))
        .route(TX_CREATE_NODE_CONTRACT, post(create_node_contract))
        .route(TX_CREATE_NAME_CONTRACT, post(create_name_contract))
        .route(TX_CANCEL_CONTRACT, post(cancel_contract))
        .route(&format!("{STORAGE_CONTRACTS}/{{id}}"), get(contract))
        .route(
            &format!("{STORAGE_CONTRACT_ID_BY_NAME}/{{name}}"),
            get(contract_id_by_name),
        )
        .route(
            &format!("{STORAGE_CONTRACT_ID_BY_NODE_HASH}/{{node}}/{{hash}}"),
            get(contract_id_by_node_hash),
        )
}

async fn open_session(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<SessionRequest>,
) -> ApiResult<Json<SessionGrant>> {
    let ok = sim
        .cfg
        .twins
        .iter()
        .any(|t| t.id == req.twin_id && t.secret == req.secret);
    if !ok {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            format!("twin {} unknown or wrong secret", req.twin_id),
        ));
    }
    let token = random_hex(16);
    sim.world.lock().expect("world lock").sessions.insert(
        token.clone(),
        crate::state::SessionRec {
            twin_id: req.twin_id,
            stale: false,
        },
    );
    Ok(Json(SessionGrant {
        session: token,
        twin_id: req.twin_id,
    }))
}

/// Answers the "timed out after it landed" fault, waiting as long as the real client would.
async fn maybe_timeout_after_landing(
    sim: &Sim,
    call: &str,
    node: Option<u32>,
    name: Option<&str>,
) -> ApiResult<()> {
    if sim
        .faults
        .fire(
            Hit::new("chain_timeout_after_landed", call)
                .node(node)
                .name(name),
        )
        .is_some()
    {
        sim.timing.wait(Wait::ChainTimeout).await;
        return Err(ApiError::timeout("extrinsic timeout waiting for block"));
    }
    Ok(())
}

async fn create_node_contract(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Json(req): Json<CreateNodeContract>,
) -> ApiResult<Json<Contract>> {
    let call = "create_node_contract";
    let twin = sim.session(&headers, call, Some(req.node_id), None)?;
    let block = sim.timing.draw(Wait::Block);
    sim.timing.sleep(block.sleep).await;
    if req.deployment_data.len() > MAX_DEPLOYMENT_DATA {
        // A `BoundedVec` longer than its bound does not decode: the extrinsic is refused.
        return Err(ApiError::invalid(
            ErrorCode::ContractMetadataTooLong,
            format!(
                "Could not decode `deployment_data`: {} bytes, at most {MAX_DEPLOYMENT_DATA}",
                req.deployment_data.len()
            ),
        ));
    }
    let c = {
        let mut w = sim.world.lock().expect("world lock");
        let node = w.nodes.get(&req.node_id).ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::NodeNotExists,
                format!("NodeNotExists: node {}", req.node_id),
            )
        })?;
        let rented_by_other = node.cfg.rented_by.is_some_and(|t| t != twin);
        if rented_by_other || (node.cfg.dedicated && node.cfg.rented_by != Some(twin)) {
            return Err(ApiError::forbidden(
                ErrorCode::NodeNotAvailableToDeploy,
                format!("NodeNotAvailableToDeploy: node {}", req.node_id),
            ));
        }
        let dup = w.contracts.values().any(|c| {
            matches!(&c.kind, ContractKind::Node { node_id, deployment_hash, .. }
                if *node_id == req.node_id && *deployment_hash == req.deployment_hash)
        });
        if dup {
            return Err(ApiError::conflict(
                ErrorCode::ContractIsNotUnique,
                "ContractIsNotUnique",
            ));
        }
        let id = w.next_contract_id;
        w.next_contract_id += 1;
        let c = ContractRec {
            contract_id: id,
            twin_id: twin,
            state: RecordState::Created,
            created_at: now_secs(),
            kind: ContractKind::Node {
                node_id: req.node_id,
                deployment_hash: req.deployment_hash.clone(),
                metadata: req.deployment_data.clone(),
            },
        };
        w.contracts.insert(id, c.clone());
        w.pending_waits
            .contract(id, WaitFor::NodeContractBlock, block);
        sim.store.put("contract", &id.to_string(), &c)?;
        sim.save_counters(&w)?;
        c
    };
    tracing::info!(
        contract = c.contract_id,
        twin,
        node = req.node_id,
        "node contract created"
    );
    maybe_timeout_after_landing(&sim, call, Some(req.node_id), None).await?;
    Ok(Json(c.chain()))
}

async fn create_name_contract(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Json(req): Json<CreateNameContract>,
) -> ApiResult<Json<Contract>> {
    let call = "create_name_contract";
    let twin = sim.session(&headers, call, None, Some(&req.name))?;
    let block = sim.timing.draw(Wait::Block);
    sim.timing.sleep(block.sleep).await;
    if let Some(code) = check_name(&req.name) {
        return Err(ApiError::invalid(code, format!("{code:?}")));
    }
    let c = {
        let mut w = sim.world.lock().expect("world lock");
        if let Some(&id) = w.names.get(&req.name) {
            let owner = w.contracts.get(&id).map(|c| c.twin_id).unwrap_or_default();
            let mut e = ApiError::conflict(ErrorCode::NameExists, "NameExists");
            e.body.owner_twin = Some(owner);
            e.body.contract_id = Some(id);
            return Err(e);
        }
        let c = sim.add_name_contract(&mut w, &req.name, twin)?;
        w.pending_waits
            .name(&req.name, WaitFor::NameContractBlock, block);
        c
    };
    tracing::info!(contract = c.contract_id, twin, name = %req.name, "name contract created");
    maybe_timeout_after_landing(&sim, call, None, Some(&req.name)).await?;
    Ok(Json(c.chain()))
}

async fn cancel_contract(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Json(CancelContract { contract_id: id }): Json<CancelContract>,
) -> ApiResult<Json<()>> {
    let call = "cancel_contract";
    let (node, name) = {
        let w = sim.world.lock().expect("world lock");
        match w.contracts.get(&id).map(|c| &c.kind) {
            Some(ContractKind::Node { node_id, .. }) => (Some(*node_id), None),
            Some(ContractKind::Name { name }) => (None, Some(name.clone())),
            None => (None, None),
        }
    };
    let twin = sim.session(&headers, call, node, name.as_deref())?;
    if sim
        .faults
        .fire(Hit::new("cancel502", call).node(node).name(name.as_deref()))
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::BadGateway,
            "HTTP 502 Bad Gateway: relay unreachable",
        ));
    }
    sim.timing.wait(Wait::Block).await;
    let contract = {
        let mut w = sim.world.lock().expect("world lock");
        let c = w.contracts.get(&id).ok_or_else(|| {
            ApiError::not_found(ErrorCode::ContractNotExists, "ContractNotExists")
        })?;
        if c.twin_id != twin {
            return Err(ApiError::forbidden(
                ErrorCode::TwinNotAuthorizedToCancelContract,
                "TwinNotAuthorizedToCancelContract",
            ));
        }
        let c = w.contracts.remove(&id).expect("checked above");
        w.pending_waits.forget_contract(id);
        if let ContractKind::Name { name } = &c.kind {
            // A cancelled name is free at once on the chain; the node drops its route later.
            w.names.remove(name);
            w.pending_waits.forget_name(name);
        }
        sim.store.delete("contract", &id.to_string())?;
        c
    };
    tracing::info!(contract = id, twin, "contract cancelled");
    match contract.kind {
        ContractKind::Name { name } => crate::node::after_name_cancelled(&sim, name).await,
        ContractKind::Node { .. } => crate::node::after_node_contract_cancelled(&sim, id).await,
    }
    maybe_timeout_after_landing(&sim, call, node, name.as_deref()).await?;
    Ok(Json(()))
}

async fn contract(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> ApiResult<Json<Option<Contract>>> {
    sim.session(&headers, "get_contract", None, None)?;
    let w = sim.world.lock().expect("world lock");
    Ok(Json(w.contracts.get(&id).map(ContractRec::chain)))
}

/// A value query: 0 when no contract holds the name, as on chain.
async fn contract_id_by_name(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<u64>> {
    sim.session(&headers, "name_owner", None, Some(&name))?;
    let w = sim.world.lock().expect("world lock");
    Ok(Json(w.names.get(&name).copied().unwrap_or_default()))
}

/// A value query: 0 when no live contract has this hash on this node.
async fn contract_id_by_node_hash(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((node, hash)): Path<(u32, String)>,
) -> ApiResult<Json<u64>> {
    sim.session(&headers, "contract_by_hash", Some(node), None)?;
    let w = sim.world.lock().expect("world lock");
    Ok(Json(
        w.contracts
            .values()
            .find(|c| {
                matches!(&c.kind, ContractKind::Node { node_id, deployment_hash, .. }
                    if *node_id == node && *deployment_hash == hash)
            })
            .map_or(0, |c| c.contract_id),
    ))
}
