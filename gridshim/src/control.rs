//! The admin API (tests and operators of the simulator only): faults
//! (`POST /admin/faults` with a [`FaultSpec`], `GET /admin/faults`, `DELETE /admin/faults/{id}`,
//! `DELETE /admin/faults`) and the state changes that are not per-call: `POST /admin/names`
//! (a leftover name), `POST /admin/nodes/{id}` (node down/up). Engines' token stores are made
//! unavailable through [`crate::engines`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};

use crate::error::{ApiError, ApiResult};
use crate::prelude::*;
use crate::state::Sim;
use crate::wire::*;

/// Admin routes of faults and of the state-changing failures.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/admin/faults",
            get(list_faults).post(inject).delete(clear_faults),
        )
        .route("/admin/faults/{id}", delete(remove_fault))
        .route("/admin/names", post(leftover_name))
        .route("/admin/nodes/{id}", post(set_node))
}

async fn list_faults(State(sim): State<Arc<Sim>>) -> Json<Vec<Fault>> {
    Json(sim.faults.list())
}

async fn inject(State(sim): State<Arc<Sim>>, Json(spec): Json<FaultSpec>) -> Json<Fault> {
    Json(sim.faults.inject(spec))
}

async fn clear_faults(State(sim): State<Arc<Sim>>) -> Json<()> {
    sim.faults.clear();
    Json(())
}

async fn remove_fault(State(sim): State<Arc<Sim>>, Path(id): Path<u64>) -> ApiResult<Json<()>> {
    if sim.faults.remove(id) {
        Ok(Json(()))
    } else {
        Err(ApiError::not_found(
            ErrorCode::NotFound,
            format!("no fault {id}"),
        ))
    }
}

/// A name registration left over by an earlier attempt (owned by us or by another twin).
async fn leftover_name(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<LeftoverName>,
) -> ApiResult<Json<ContractRec>> {
    if let Some(code) = check_name(&req.name) {
        return Err(ApiError::invalid(code, format!("{code:?}")));
    }
    let mut w = sim.world.lock().expect("world lock");
    if let Some(id) = w.names.get(&req.name) {
        return Err(ApiError::conflict(
            ErrorCode::NameExists,
            format!("NameExists: name {:?} is held by contract {id}", req.name),
        ));
    }
    Ok(Json(sim.add_name_contract(
        &mut w,
        &req.name,
        req.twin_id,
    )?))
}

/// Takes a node down (its VMs stop answering, node calls time out; the proxy notices only after
/// its grace time) or brings it back.
async fn set_node(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<u32>,
    Json(cond): Json<NodeCondition>,
) -> ApiResult<Json<()>> {
    let (went_down, came_up) = {
        let mut w = sim.world.lock().expect("world lock");
        let n = w.nodes.get_mut(&id).ok_or_else(|| {
            ApiError::not_found(ErrorCode::NodeNotExists, format!("node {id} not found"))
        })?;
        let was = n.status;
        if let Some(h) = cond.healthy {
            n.healthy = h;
        }
        if let Some(s) = cond.status {
            n.status = s;
            n.down_since = (s != NodeStatus::Up).then(std::time::Instant::now);
        }
        sim.save_node(n)?;
        let now = n.status;
        (
            was == NodeStatus::Up && now != NodeStatus::Up,
            was != NodeStatus::Up && now == NodeStatus::Up,
        )
    };
    if went_down {
        tracing::info!(node = id, "node goes down");
        sim.vms.stop_node(id);
    }
    if came_up {
        tracing::info!(node = id, "node comes back up");
        crate::vm::start_node(&sim, id).await;
        crate::node::resume_node(&sim, id);
    }
    Ok(Json(()))
}
