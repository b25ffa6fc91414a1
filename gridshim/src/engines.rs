//! Shared engines on the admin machine: `embedder` (`POST /v1/embeddings`) and `voice`
//! (`POST /v1/transcriptions`), each with a token registry keyed by tester identity.
//!
//! A call answers only a registered token presented under its own tester's identity header
//! (`X-Tester`): no token or a wrong token is 401, another tester's token is 403, each with a
//! JSON error. An engine whose token store is unavailable refuses to open its listener at all
//! (admin `POST /admin/engines/{engine}/token-store {"available": false}`, or the config's
//! `engines.token_store_unavailable`). Tokens are stored as SHA-256 only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::prelude::*;
use crate::state::{Sim, engines::Slot, sha256_hex};

/// Opens every engine whose token store is available.
pub async fn start_all(sim: &Arc<Sim>) {
    for s in &sim.engines.slots {
        open(sim, s).await;
    }
}

/// Opens an engine's listener if its token store is available; it refuses otherwise.
async fn open(sim: &Arc<Sim>, s: &Slot) {
    if !s.available.load(Ordering::SeqCst) {
        tracing::warn!(
            engine = s.name,
            "token store unavailable: engine refuses to open its listener"
        );
        return;
    }
    if s.stop.lock().expect("engine lock").is_some() {
        return;
    }
    let port = *s.port.lock().expect("engine lock");
    let l = match tokio::net::TcpListener::bind((s.ip.as_str(), port)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(engine = s.name, ip = %s.ip, port, error = %e, "engine cannot listen");
            return;
        }
    };
    let addr: SocketAddr = match l.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    // Port 0 picks one; keep it so the engine's URL stays the same across reopenings.
    *s.port.lock().expect("engine lock") = addr.port();
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    *s.stop.lock().expect("engine lock") = Some(tx);
    let app = Router::new()
        .route(s.call_path, post(call))
        .route("/admin", axum::routing::get(store_info))
        .route(
            "/admin/tokens/{tester}",
            put(store_register).delete(store_revoke),
        )
        .with_state(EngineCtx {
            sim: sim.clone(),
            engine: s.name,
        });
    tokio::spawn(async move {
        let _ = axum::serve(l, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|v| *v).await;
            })
            .await;
    });
    tracing::info!(engine = s.name, %addr, "engine listening");
}

#[derive(Clone)]
struct EngineCtx {
    sim: Arc<Sim>,
    engine: &'static str,
}

fn refuse(status: StatusCode, code: ErrorCode, msg: &str) -> ApiError {
    ApiError::new(status, code, msg)
}

async fn call(
    State(ctx): State<EngineCtx>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Json<serde_json::Value>> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            refuse(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "missing bearer token",
            )
        })?;
    let tester = headers
        .get(TESTER_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            refuse(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "missing X-Tester identity header",
            )
        })?;
    let sha = sha256_hex(token);
    {
        let w = ctx.sim.world.lock().expect("world lock");
        let own = w.tokens.get(&(ctx.engine.to_string(), tester.to_string()));
        if own != Some(&sha) {
            let someone_else = w
                .tokens
                .iter()
                .any(|((e, t), h)| e == ctx.engine && t != tester && *h == sha);
            return Err(if someone_else {
                refuse(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Unauthorized,
                    "token belongs to another tester",
                )
            } else {
                refuse(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthenticated,
                    "invalid token",
                )
            });
        }
    }
    Ok(Json(match ctx.engine {
        "embedder" => {
            // A deterministic small vector per input, enough to tell calls apart.
            let input = body.get("input").map(|v| v.to_string()).unwrap_or_default();
            let h = sha256_hex(&input);
            let v: Vec<f32> = h
                .as_bytes()
                .chunks(8)
                .map(|c| f32::from(c[0]) / 255.0)
                .collect();
            serde_json::json!({
                "object": "list",
                "model": "gridshim-embedder",
                "tester": tester,
                "data": [{ "object": "embedding", "index": 0, "embedding": v }],
            })
        }
        _ => serde_json::json!({
            "model": "gridshim-voice",
            "tester": tester,
            "text": "transcribed by gridshim",
        }),
    }))
}

/// Routes of the engines' registries (on the API) and the token-store knob.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/engines", axum::routing::get(list))
        .route(
            "/engines/{engine}/tokens/{tester}",
            put(register).delete(revoke),
        )
        .route("/admin/engines/{engine}/token-store", post(token_store))
}

async fn list(State(sim): State<Arc<Sim>>) -> Json<Vec<EngineInfo>> {
    Json(sim.engines.info(|engine| {
        let w = sim.world.lock().expect("world lock");
        w.tokens.keys().filter(|(e, _)| e == engine).count()
    }))
}

fn store_up(sim: &Sim, engine: &str) -> ApiResult<()> {
    if !sim.engines.slot(engine)?.available.load(Ordering::SeqCst) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Busy,
            format!("{engine}: token store unavailable"),
        ));
    }
    Ok(())
}

async fn register(
    State(sim): State<Arc<Sim>>,
    Path((engine, tester)): Path<(String, String)>,
    Json(reg): Json<TokenRegistration>,
) -> ApiResult<Json<()>> {
    register_token(&sim, &engine, &tester, &reg)
}

fn register_token(
    sim: &Sim,
    engine: &str,
    tester: &str,
    reg: &TokenRegistration,
) -> ApiResult<Json<()>> {
    let (engine, tester) = (engine.to_string(), tester.to_string());
    store_up(sim, &engine)?;
    if reg.token.len() < 16 {
        return Err(ApiError::invalid(
            ErrorCode::Invalid,
            "token too short (at least 16 chars)",
        ));
    }
    let sha = sha256_hex(&reg.token);
    let mut w = sim.world.lock().expect("world lock");
    sim.save_token(&engine, &tester, Some(&sha))?;
    w.tokens.insert((engine.clone(), tester.clone()), sha);
    tracing::info!(%engine, %tester, "engine token registered");
    Ok(Json(()))
}

async fn revoke(
    State(sim): State<Arc<Sim>>,
    Path((engine, tester)): Path<(String, String)>,
) -> ApiResult<Json<()>> {
    revoke_token(&sim, &engine, &tester)
}

fn revoke_token(sim: &Sim, engine: &str, tester: &str) -> ApiResult<Json<()>> {
    let (engine, tester) = (engine.to_string(), tester.to_string());
    store_up(sim, &engine)?;
    let mut w = sim.world.lock().expect("world lock");
    sim.save_token(&engine, &tester, None)?;
    if w.tokens.remove(&(engine.clone(), tester.clone())).is_some() {
        tracing::info!(%engine, %tester, "engine token revoked");
    }
    Ok(Json(()))
}

/// The token store on the engine's own listener (`{url}/admin`), where a SharedEngine's
/// `spec.tokenStore.url` points: what the engine is, the path testers call, how many tokens it
/// holds.
async fn store_info(State(ctx): State<EngineCtx>) -> ApiResult<Json<TokenStoreInfo>> {
    let slot = ctx.sim.engines.slot(ctx.engine)?;
    let tokens = {
        let w = ctx.sim.world.lock().expect("world lock");
        w.tokens.keys().filter(|(e, _)| e == ctx.engine).count()
    };
    Ok(Json(TokenStoreInfo {
        engine: ctx.engine.to_string(),
        call_path: slot.call_path.to_string(),
        tokens,
    }))
}

async fn store_register(
    State(ctx): State<EngineCtx>,
    Path(tester): Path<String>,
    Json(reg): Json<TokenRegistration>,
) -> ApiResult<Json<()>> {
    register_token(&ctx.sim, ctx.engine, &tester, &reg)
}

async fn store_revoke(
    State(ctx): State<EngineCtx>,
    Path(tester): Path<String>,
) -> ApiResult<Json<()>> {
    revoke_token(&ctx.sim, ctx.engine, &tester)
}

#[derive(Deserialize)]
struct StoreKnob {
    available: bool,
}

async fn token_store(
    State(sim): State<Arc<Sim>>,
    Path(engine): Path<String>,
    Json(k): Json<StoreKnob>,
) -> ApiResult<Json<()>> {
    let s = sim.engines.slot(&engine)?;
    s.available.store(k.available, Ordering::SeqCst);
    if k.available {
        open(&sim, s).await;
    } else if let Some(tx) = s.stop.lock().expect("engine lock").take() {
        tracing::warn!(%engine, "token store unavailable: engine closes its listener");
        let _ = tx.send(true);
    }
    Ok(Json(()))
}
