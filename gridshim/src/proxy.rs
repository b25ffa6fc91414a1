//! The proxy face: the read-only node index. It lags: used capacity shows what nodes reported a
//! while ago, and a node that went silent stays `up` for the proxy's grace time.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};

use crate::api::*;
use crate::server::{ApiError, ApiResult, NodeRec, Sim};
use crate::timing::Wait;

/// Routes of the proxy face.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/proxy/nodes", get(list_nodes))
        .route("/proxy/nodes/{id}", get(get_node))
}

/// The node as the proxy shows it now.
pub fn proxy_view(sim: &Sim, n: &NodeRec) -> Node {
    let now = Instant::now();
    let lag = sim.timing.of(Wait::ProxyLag);
    let cutoff = now.checked_sub(lag).unwrap_or(now);
    let used = n
        .reports
        .iter()
        .rev()
        .find(|(t, _)| *t <= cutoff)
        .or_else(|| n.reports.first())
        .map(|(_, u)| *u)
        .unwrap_or_default();
    // A silent node stays `up` until the grace time has passed.
    let grace = sim.timing.of(Wait::ProxyDownGrace);
    let (status, healthy) = match (n.status, n.down_since) {
        (NodeStatus::Up, _) => (NodeStatus::Up, n.healthy),
        (s, Some(since)) if now.duration_since(since) >= grace => (s, false),
        (_, _) => (NodeStatus::Up, n.healthy),
    };
    Node {
        node_id: n.cfg.id,
        farm_id: n.cfg.farm_id,
        twin_id: n.cfg.twin_id.unwrap_or(1000 + n.cfg.id),
        total_resources: n.cfg.total(),
        // As the real proxy reports it: what contracts use plus the node's reserves.
        used_resources: used.plus(reserves(&n.cfg.total())),
        status,
        healthy,
        public_config: PublicConfig {
            domain: n.cfg.domain.clone(),
        },
        dedicated: n.cfg.dedicated,
        rented: n.cfg.rented_by.is_some(),
        rented_by_twin_id: n.cfg.rented_by.unwrap_or(0),
        features: n.cfg.features(),
    }
}

/// Whether a listed node passes the filter.
pub fn matches(n: &Node, f: &NodeFilter) -> bool {
    let free = n.free();
    if f.free_mru.is_some_and(|v| free.mru < v)
        || f.free_sru.is_some_and(|v| free.sru < v)
        || f.free_hru.is_some_and(|v| free.hru < v)
        || f.status.is_some_and(|s| s != n.status)
        || f.healthy.is_some_and(|h| h != n.healthy)
        || f.node_id.is_some_and(|id| id != n.node_id)
    {
        return false;
    }
    if f.domain == Some(true) && n.public_config.domain.is_none() {
        return false;
    }
    if let Some(farms) = &f.farm_ids {
        let ids: Vec<u32> = farms
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        if !ids.is_empty() && !ids.contains(&n.farm_id) {
            return false;
        }
    }
    if let Some(twin) = f.available_for {
        let rented_by_other = n.rented && n.rented_by_twin_id != twin;
        let dedicated_not_ours = n.dedicated && n.rented_by_twin_id != twin;
        if rented_by_other || dedicated_not_ours {
            return false;
        }
    }
    true
}

async fn list_nodes(
    State(sim): State<Arc<Sim>>,
    Query(f): Query<NodeFilter>,
) -> ApiResult<Json<NodePage>> {
    let all: Vec<Node> = {
        let w = sim.world.lock().expect("world lock");
        w.nodes
            .values()
            .map(|n| proxy_view(&sim, n))
            .filter(|n| matches(n, &f))
            .collect()
    };
    let size = f.size.unwrap_or(50).max(1) as usize;
    let page = f.page.unwrap_or(1).max(1) as usize;
    let total = all.len() as u64;
    let nodes = all.into_iter().skip((page - 1) * size).take(size).collect();
    Ok(Json(NodePage {
        nodes,
        total_count: f.ret_count.unwrap_or(false).then_some(total),
    }))
}

async fn get_node(State(sim): State<Arc<Sim>>, Path(id): Path<u32>) -> ApiResult<Json<Node>> {
    let w = sim.world.lock().expect("world lock");
    w.nodes
        .get(&id)
        .map(|n| Json(proxy_view(&sim, n)))
        .ok_or_else(|| {
            ApiError::not_found(ErrorCode::NodeNotExists, format!("node {id} not found"))
        })
}
