//! The data plane: the gateway and the private network.
//!
//! * The gateway listens on one port (default `127.0.0.1:8880`) and routes `Host: NAME.<domain>`
//!   to the backend of the gateway workload holding that fqdn: 404 for an unknown name, 502
//!   while the backend is unreachable (VM not yet reachable, node down).
//! * The private (mycelium) network: each VM's mycelium address stands for a distinct loopback
//!   IPv4 (`127.77.x.y`). The gateway listener is also an HTTP proxy into that network: a
//!   request for `http://[<mycelium ip>]:port/...` (absolute form, as a client configured with an
//!   HTTP proxy sends it) goes to that VM's port, so a controller reaches a VM agent exactly as
//!   it would on the real private network, through a proxy. `GET /private/{mycelium_ip}` (tests
//!   only) tells where an address is reachable; gateway backends resolve the same way.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::error::{ApiError, ApiResult};
use crate::prelude::*;
use crate::state::Sim;
use crate::wire::*;

/// API routes of the data plane.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/private/{ip}", get(resolve))
}

async fn resolve(
    State(sim): State<Arc<Sim>>,
    Path(ip): Path<String>,
) -> ApiResult<Json<PrivateRoute>> {
    let w = sim.world.lock().expect("world lock");
    let v = w
        .vm_by_mycelium
        .get(&ip)
        .and_then(|k| w.vms.get(k))
        .ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::NotFound,
                format!("no route to {ip} on the private network"),
            )
        })?;
    Ok(Json(PrivateRoute {
        mycelium_ip: ip,
        loopback_ip: v.loopback_ip.clone(),
        agent_port: sim.cfg.private_network.agent_port,
        web_port: sim.cfg.private_network.web_port,
    }))
}

/// The gateway's router (on its own listener).
pub fn gateway_router(sim: Arc<Sim>) -> Router {
    Router::new().fallback(forward).with_state(sim)
}

fn plain(status: StatusCode, text: String) -> Response {
    (status, text).into_response()
}

/// Where the gateway sends a request for `host`, or the answer it gives instead.
/// Boxed: a `Response` is large and this is the cold path.
fn route(sim: &Sim, host: &str) -> Result<String, Box<Response>> {
    if let Some(private) = private_route(sim, host) {
        return private;
    }
    let fqdn = host
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(host)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let w = sim.world.lock().expect("world lock");
    let Some(g) = w.gateways.get(&fqdn) else {
        return Err(Box::new(plain(
            StatusCode::NOT_FOUND,
            format!("404 no gateway name {fqdn}\n"),
        )));
    };
    let gw_up = w.nodes.get(&g.node_id).map(|n| n.status) == Some(NodeStatus::Up);
    if !gw_up {
        return Err(Box::new(plain(
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: gateway node unreachable\n".into(),
        )));
    }
    let Some((host, port)) = crate::node::backend_host_port(&g.backend) else {
        return Err(Box::new(plain(
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: invalid backend\n".into(),
        )));
    };
    let ip = if host.parse::<std::net::Ipv4Addr>().is_ok() {
        host
    } else {
        match w.vm_by_mycelium.get(&host).and_then(|k| w.vms.get(k)) {
            Some(v) => v.loopback_ip.clone(),
            None => {
                return Err(Box::new(plain(
                    StatusCode::BAD_GATEWAY,
                    "502 Bad Gateway: backend unreachable\n".into(),
                )));
            }
        }
    };
    Ok(format!("http://{ip}:{port}"))
}

/// A request for `[<mycelium ip>]:port`: the VM's loopback address on that port, or 502 when
/// no VM has that address (or its node is down). `None` when `host` is no IPv6 literal.
fn private_route(sim: &Sim, host: &str) -> Option<Result<String, Box<Response>>> {
    let (ip, port) = host.strip_prefix('[')?.split_once("]:")?;
    let ip: std::net::Ipv6Addr = ip.parse().ok()?;
    let port: u16 = port.parse().ok()?;
    let w = sim.world.lock().expect("world lock");
    let vm = w
        .vm_by_mycelium
        .get(&ip.to_string())
        .and_then(|k| w.vms.get(k))
        .filter(|v| w.nodes.get(&v.node_id).map(|n| n.status) == Some(NodeStatus::Up));
    Some(match vm {
        Some(v) => Ok(format!("http://{}:{port}", v.loopback_ip)),
        None => Err(Box::new(plain(
            StatusCode::BAD_GATEWAY,
            format!("502 Bad Gateway: no route to {ip} on the private network\n"),
        ))),
    })
}

const HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];

async fn forward(State(sim): State<Arc<Sim>>, req: Request) -> Response {
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let base = match route(&sim, &host) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let Ok(bytes) = axum::body::to_bytes(body, 32 << 20).await else {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n".into());
    };
    let mut out = sim
        .http
        .request(parts.method.clone(), format!("{base}{path}"));
    for (k, v) in &parts.headers {
        if k == "host" || HOP.contains(&k.as_str()) {
            continue;
        }
        out = out.header(k, v);
    }
    out = out
        .header("x-forwarded-host", host.as_str())
        .header("x-forwarded-proto", "http")
        .body(bytes);
    let resp = match out.send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%host, error = %e, "gateway backend unreachable");
            return plain(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: backend unreachable\n".into(),
            );
        }
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(_) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: backend reset\n".into(),
            );
        }
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    for (k, v) in &headers {
        if HOP.contains(&k.as_str()) || k == "content-length" {
            continue;
        }
        r.headers_mut().append(k.clone(), v.clone());
    }
    r.headers_mut()
        .insert("via", HeaderValue::from_static("1.1 gridshim-gateway"));
    r
}
