//! The proxy face: grid-proxy's REST API verbatim (`GET /nodes`, `/nodes/{id}`, `/gateways`,
//! `/gateways/{id}`, `/contracts`, `/farms`, `/twins`; JSON arrays, the `count`, `size` and `pages` headers with
//! `ret_count=true`, the real query filters, `{"error": ...}` answers). It lags like the real
//! indexer: used capacity shows what nodes reported a while ago, a node that went silent stays
//! `up` for the proxy's grace time, and a new contract shows only after the lag.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gridapi::proxy::{
    COUNT_HEADER, Contract, ContractFilter, Farm, FarmFilter, Limit, Node, NodeFilter, NodeInfo,
    NodeStatus, NodeWithNestedCapacity, PublicConfig, Twin, TwinFilter, reserves,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::state::{NodeRec, Sim, now_secs};
use crate::timing::Wait;

/// Routes of the proxy face.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/nodes", get(list_nodes))
        .route("/nodes/{id}", get(get_node))
        .route("/gateways", get(list_gateways))
        .route("/gateways/{id}", get(get_gateway))
        .route("/contracts", get(list_contracts))
        .route("/farms", get(list_farms))
        .route("/twins", get(list_twins))
}

/// The name gridshim gives a farm.
pub fn farm_name(farm_id: u32) -> String {
    format!("farm{farm_id}")
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
        info: NodeInfo {
            id: format!("node-{}", n.cfg.id),
            node_id: n.cfg.id,
            farm_id: n.cfg.farm_id,
            farm_name: farm_name(n.cfg.farm_id),
            twin_id: n.cfg.twin_id(),
            grid_version: 3,
            status,
            healthy,
            public_config: PublicConfig {
                domain: n.cfg.domain.clone().unwrap_or_default(),
                ..PublicConfig::default()
            },
            certification_type: "Diy".into(),
            dedicated: n.cfg.dedicated,
            rented: n.cfg.rented_by.is_some(),
            rentable: n.cfg.dedicated && n.cfg.rented_by.is_none(),
            rented_by_twin_id: n.cfg.rented_by.unwrap_or(0),
            features: n.cfg.features(),
            ..NodeInfo::default()
        },
        total_resources: n.cfg.total(),
        // As the real proxy reports it: what contracts use plus the node's reserves.
        used_resources: used.plus(reserves(&n.cfg.total())),
    }
}

/// Whether a listed node passes the filter.
pub fn matches(n: &Node, f: &NodeFilter) -> bool {
    let free = n.free();
    let i = &n.info;
    if f.free_mru.is_some_and(|v| free.mru < v)
        || f.free_sru.is_some_and(|v| free.sru < v)
        || f.free_hru.is_some_and(|v| free.hru < v)
        || (!f.status.is_empty() && !f.status.contains(&i.status))
        || f.healthy.is_some_and(|h| h != i.healthy)
        || f.dedicated.is_some_and(|d| d != i.dedicated)
        || f.node_id.is_some_and(|id| id != i.node_id)
        || (!f.node_ids.is_empty() && !f.node_ids.contains(&i.node_id))
        || (!f.farm_ids.is_empty() && !f.farm_ids.contains(&i.farm_id))
        || f.domain
            .is_some_and(|d| d != i.public_config.domain().is_some())
        || !f.features.iter().all(|x| i.features.contains(x))
    {
        return false;
    }
    if let Some(twin) = f.available_for {
        let rented_by_other = i.rented && i.rented_by_twin_id != twin;
        let dedicated_not_ours = i.dedicated && i.rented_by_twin_id != twin;
        if rented_by_other || dedicated_not_ours {
            return false;
        }
    }
    true
}

/// The proxy's error answer: `{"error": "..."}`.
fn error(status: StatusCode, text: String) -> Response {
    (status, Json(serde_json::json!({ "error": text }))).into_response()
}

/// Reads a query as the proxy does: a list may come comma separated or with its key repeated
/// (`farm_ids=1&farm_ids=2`, as tfgrid-sdk-go's client writes it).
fn query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, String> {
    let mut merged: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        merged
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    let pairs: Vec<(String, String)> = merged.into_iter().map(|(k, v)| (k, v.join(","))).collect();
    let text = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    serde_urlencoded::from_str(&text).map_err(|e| format!("invalid query: {e}"))
}

/// A listing's filter and paging from the query, or the proxy's 400 answer.
fn filter_and_limit<F: DeserializeOwned>(raw: Option<&str>) -> Result<(F, Limit), Box<Response>> {
    query(raw)
        .and_then(|f| Ok((f, query(raw)?)))
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, e)))
}

/// One page of `items` as the proxy answers it, with the `count` header when asked.
fn page<T: Serialize>(items: Vec<T>, limit: Limit) -> Response {
    let size = limit.size.unwrap_or(50).max(1) as usize;
    let page = limit.page.unwrap_or(1).max(1) as usize;
    let total = items.len();
    let items: Vec<T> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    let mut r = Json(items).into_response();
    if limit.ret_count {
        let h = r.headers_mut();
        h.insert(COUNT_HEADER, HeaderValue::from(total as u64));
        h.insert("size", HeaderValue::from(size as u64));
        h.insert("pages", HeaderValue::from(total.div_ceil(size) as u64));
    }
    r
}

fn nodes(sim: &Sim, f: &NodeFilter) -> Vec<Node> {
    let w = sim.world.lock().expect("world lock");
    w.nodes
        .values()
        .map(|n| proxy_view(sim, n))
        .filter(|n| matches(n, f))
        .collect()
}

async fn list_nodes(State(sim): State<Arc<Sim>>, RawQuery(q): RawQuery) -> Response {
    match filter_and_limit(q.as_deref()) {
        Ok((f, limit)) => page(nodes(&sim, &f), limit),
        Err(e) => *e,
    }
}

async fn list_gateways(State(sim): State<Arc<Sim>>, RawQuery(q): RawQuery) -> Response {
    match filter_and_limit::<NodeFilter>(q.as_deref()) {
        Ok((f, limit)) => {
            let f = NodeFilter {
                domain: Some(true),
                ..f
            };
            page(nodes(&sim, &f), limit)
        }
        Err(e) => *e,
    }
}

fn one_node(sim: &Sim, id: u32, gateway: bool) -> Response {
    let w = sim.world.lock().expect("world lock");
    match w.nodes.get(&id).map(|n| proxy_view(sim, n)) {
        Some(n) if !gateway || n.info.public_config.domain().is_some() => {
            Json(NodeWithNestedCapacity::from(n)).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "node not found".to_string()),
    }
}

async fn get_node(State(sim): State<Arc<Sim>>, Path(id): Path<u32>) -> Response {
    one_node(&sim, id, false)
}

async fn get_gateway(State(sim): State<Arc<Sim>>, Path(id): Path<u32>) -> Response {
    one_node(&sim, id, true)
}

async fn list_contracts(State(sim): State<Arc<Sim>>, RawQuery(q): RawQuery) -> Response {
    let (f, limit): (ContractFilter, Limit) = match filter_and_limit(q.as_deref()) {
        Ok(x) => x,
        Err(e) => return *e,
    };
    // The indexer sees a contract only once its block has been processed.
    let lag = sim.timing.of(Wait::ProxyLag).as_secs();
    let now = now_secs();
    let items: Vec<Contract> = {
        let w = sim.world.lock().expect("world lock");
        w.contracts
            .values()
            .filter(|c| now.saturating_sub(c.created_at) >= lag)
            .map(|c| {
                let farm = match &c.kind {
                    crate::wire::ContractKind::Node { node_id, .. } => {
                        w.nodes.get(node_id).map_or(0, |n| n.cfg.farm_id)
                    }
                    crate::wire::ContractKind::Name { .. } => 0,
                };
                c.proxy((farm, &farm_name(farm)))
            })
            .filter(|c| f.matches(c))
            .collect()
    };
    page(items, limit)
}

async fn list_farms(State(sim): State<Arc<Sim>>, RawQuery(q): RawQuery) -> Response {
    let (f, limit): (FarmFilter, Limit) = match filter_and_limit(q.as_deref()) {
        Ok(x) => x,
        Err(e) => return *e,
    };
    let farms: BTreeSet<u32> = {
        let w = sim.world.lock().expect("world lock");
        w.nodes.values().map(|n| n.cfg.farm_id).collect()
    };
    let items: Vec<Farm> = farms
        .into_iter()
        .map(|id| Farm {
            name: farm_name(id),
            farm_id: id,
            twin_id: 1,
            pricing_policy_id: 1,
            certification_type: "NotCertified".into(),
            ..Farm::default()
        })
        .filter(|farm| {
            f.farm_id.is_none_or(|id| id == farm.farm_id)
                && f.twin_id.is_none_or(|t| t == farm.twin_id)
                && f.name.as_deref().is_none_or(|n| n == farm.name)
        })
        .collect();
    page(items, limit)
}

/// The twins RMB can reach (the config's twins with a mnemonic, every node's twin), as
/// grid-proxy lists them: account in SS58, the relay (gridshim's API address) and the
/// end-to-end key in hex.
pub fn twins(sim: &Sim) -> Vec<Twin> {
    let relay = sim
        .api_addr
        .lock()
        .expect("api lock")
        .map(|a| a.to_string())
        .unwrap_or_default();
    sim.rmb
        .iter()
        .map(|(id, t)| Twin {
            twin_id: id,
            account_id: t.identity.account().ss58(),
            relay: relay.clone(),
            public_key: hex::encode(t.e2e.public()),
        })
        .collect()
}

/// Whether a listed twin passes the filter (an account in SS58 or `0x` hex).
pub fn twin_matches(t: &Twin, f: &TwinFilter) -> bool {
    use tfgrid::identity::AccountId;
    let same_account = |a: &str| match (AccountId::parse(a), AccountId::parse(&t.account_id)) {
        (Some(x), Some(y)) => x == y,
        _ => a == t.account_id,
    };
    f.twin_id.is_none_or(|id| id == t.twin_id) && f.account_id.as_deref().is_none_or(same_account)
}

async fn list_twins(State(sim): State<Arc<Sim>>, RawQuery(q): RawQuery) -> Response {
    let (f, limit): (TwinFilter, Limit) = match filter_and_limit(q.as_deref()) {
        Ok(x) => x,
        Err(e) => return *e,
    };
    let items: Vec<Twin> = twins(&sim)
        .into_iter()
        .filter(|t| twin_matches(t, &f))
        .collect();
    page(items, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twins_filter_by_id_and_account_in_either_spelling() {
        let id = crate::state::rmb::node_identity(1011).account();
        let t = Twin {
            twin_id: 1011,
            account_id: id.ss58(),
            relay: "127.0.0.1:8800".into(),
            public_key: String::new(),
        };
        let by = |twin_id, account_id: Option<String>| TwinFilter {
            twin_id,
            account_id,
        };
        assert!(twin_matches(&t, &by(None, None)));
        assert!(twin_matches(&t, &by(Some(1011), None)));
        assert!(!twin_matches(&t, &by(Some(1012), None)));
        assert!(twin_matches(&t, &by(None, Some(id.ss58()))));
        assert!(twin_matches(
            &t,
            &by(None, Some(format!("0x{}", hex::encode(id.0))))
        ));
        let other = crate::state::rmb::node_identity(1012).account();
        assert!(!twin_matches(&t, &by(None, Some(other.ss58()))));
    }
}
