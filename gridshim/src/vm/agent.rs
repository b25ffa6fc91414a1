//! The simulated VM agent, on each VM's private address (`http://<loopback ip>:7070`).
//!
//! Accepts only the deployer's key (the zmachine's `AGENT_KEY` env) as a bearer token. Through
//! it the controller configures the sign-in gate, engine URL + token pairs, SSH keys and
//! AI-provider keys, starts an install of the app stack from a channel and reads the install
//! status (per-step log, exact version of every component) and per-app health.
//!
//! Install runs the apps in parallel (one task per app). A service start can lose its start-up
//! race (config `install.start_race_probability`, or the `service_start_race` fault scoped by
//! app name): the step fails with a clear log line and the controller must start the install
//! again; apps already at the newest version are skipped on the next attempt.
//!
//! Secrets (gate client secret, engine tokens, AI keys) are stored with the VM but never logged
//! nor returned; `GET /v1/config` shows what is set without them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use axum::{Json, Router};
use rand::Rng;

use crate::error::{ApiError, ApiResult};
use crate::faults::Hit;
use crate::prelude::*;
use crate::state::{Sim, VmRec};
use crate::timing::Wait;

#[derive(Clone)]
struct Ctx {
    sim: Arc<Sim>,
    key: String,
    alive: Arc<AtomicBool>,
}

/// The agent's router for one VM.
pub fn router(sim: Arc<Sim>, key: String, alive: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/v1/gate", put(set_gate))
        .route("/v1/engines", put(set_engines))
        .route("/v1/ssh-keys", put(set_ssh))
        .route("/v1/ai-keys", put(set_ai))
        .route("/v1/config", get(config))
        .route("/v1/install", get(install_status).post(start_install))
        .route("/v1/health", get(health))
        .with_state(Ctx { sim, key, alive })
}

/// Checks the bearer key and runs `f` on the VM record (persisting it when `write`).
fn with_vm<T>(
    ctx: &Ctx,
    headers: &HeaderMap,
    write: bool,
    f: impl FnOnce(&mut VmRec) -> ApiResult<T>,
) -> ApiResult<T> {
    if !ctx.alive.load(Ordering::SeqCst) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NodeUnreachable,
            "vm is not running",
        ));
    }
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let mut w = ctx.sim.world.lock().expect("world lock");
    let vm = w
        .vms
        .get_mut(&ctx.key)
        .ok_or_else(|| ApiError::not_found(ErrorCode::NotFound, "this vm no longer exists"))?;
    match (&vm.agent_key, presented) {
        (None, _) => {
            return Err(ApiError::forbidden(
                ErrorCode::Unauthorized,
                format!("agent has no key: deploy the VM with {AGENT_KEY_ENV} in its environment"),
            ));
        }
        (Some(_), None) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "missing bearer key",
            ));
        }
        (Some(k), Some(p)) if k != p => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "invalid agent key",
            ));
        }
        _ => {}
    }
    let out = f(vm)?;
    if write {
        ctx.sim.save_vm(vm)?;
    }
    Ok(out)
}

async fn set_gate(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Json(gate): Json<GateSettings>,
) -> ApiResult<Json<()>> {
    if gate.issuer.is_empty() || gate.client_id.is_empty() || gate.public_url.is_empty() {
        return Err(ApiError::invalid(
            ErrorCode::Invalid,
            "gate needs issuer, client_id and public_url",
        ));
    }
    with_vm(&ctx, &headers, true, |vm| {
        vm.gate = Some(gate);
        Ok(())
    })?;
    tracing::info!(vm = %ctx.key, "gate configured");
    crate::vm::refresh_gate(&ctx.sim, &ctx.key);
    Ok(Json(()))
}

async fn set_engines(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Json(body): Json<EngineCredentials>,
) -> ApiResult<Json<()>> {
    with_vm(&ctx, &headers, true, |vm| {
        vm.engines = body.engines;
        Ok(())
    })
    .map(Json)
}

async fn set_ssh(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Json(body): Json<SshKeys>,
) -> ApiResult<Json<()>> {
    with_vm(&ctx, &headers, true, |vm| {
        vm.ssh_keys = body.keys;
        Ok(())
    })
    .map(Json)
}

async fn set_ai(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Json(body): Json<AiKeys>,
) -> ApiResult<Json<()>> {
    with_vm(&ctx, &headers, true, |vm| {
        vm.ai_keys = body.keys;
        Ok(())
    })
    .map(Json)
}

async fn config(State(ctx): State<Ctx>, headers: HeaderMap) -> ApiResult<Json<AgentConfigView>> {
    with_vm(&ctx, &headers, false, |vm| {
        Ok(AgentConfigView {
            gate: vm.gate.as_ref().map(|g| GateView {
                issuer: g.issuer.clone(),
                client_id: g.client_id.clone(),
                allowed_accounts: g.allowed_accounts.clone(),
                public_url: g.public_url.clone(),
                client_secret_digest: Some(crate::state::sha256_hex(&g.client_secret)),
            }),
            engines: vm
                .engines
                .iter()
                .map(|e| (e.engine.clone(), e.url.clone()))
                .collect(),
            engine_token_digests: vm
                .engines
                .iter()
                .map(|e| (e.engine.clone(), crate::state::sha256_hex(&e.token)))
                .collect(),
            ssh_keys: vm.ssh_keys.len(),
            ai_providers: vm.ai_keys.keys().cloned().collect(),
        })
    })
    .map(Json)
}

async fn install_status(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
) -> ApiResult<Json<InstallStatus>> {
    with_vm(&ctx, &headers, false, |vm| Ok(vm.install.clone())).map(Json)
}

async fn start_install(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Json(req): Json<InstallRequest>,
) -> ApiResult<Json<InstallStatus>> {
    if req.apps.is_empty() {
        return Err(ApiError::invalid(ErrorCode::Invalid, "no apps to install"));
    }
    let status = with_vm(&ctx, &headers, true, |vm| {
        if matches!(
            vm.install.state,
            InstallState::Running | InstallState::Pending
        ) {
            return Err(ApiError::conflict(
                ErrorCode::Conflict,
                "an install is already running",
            ));
        }
        let i = &mut vm.install;
        i.state = InstallState::Running;
        i.channel = Some(req.channel);
        i.apps = req.apps.clone();
        i.attempt += 1;
        i.steps = req
            .apps
            .iter()
            .map(|a| InstallStep {
                app: a.clone(),
                state: InstallState::Pending,
                version: None,
                log: vec![],
            })
            .collect();
        Ok(i.clone())
    })?;
    tracing::info!(vm = %ctx.key, channel = %req.channel, apps = ?req.apps, attempt = status.attempt, "install started");
    for app in req.apps {
        let ctx = ctx.clone();
        tokio::spawn(async move { install_app(ctx, req.channel, app).await });
    }
    Ok(Json(status))
}

/// Updates this app's step (and the overall state when every step is done); persists.
fn step(
    ctx: &Ctx,
    app: &str,
    f: impl FnOnce(&mut InstallStep, &mut BTreeMap<String, String>, &mut BTreeMap<String, Channel>),
) {
    let mut w = ctx.sim.world.lock().expect("world lock");
    let Some(vm) = w.vms.get_mut(&ctx.key) else {
        return;
    };
    let i = &mut vm.install;
    if let Some(s) = i.steps.iter_mut().find(|s| s.app == app) {
        f(s, &mut i.components, &mut i.component_channels);
    }
    let done = i
        .steps
        .iter()
        .all(|s| matches!(s.state, InstallState::Succeeded | InstallState::Failed));
    if done && i.state == InstallState::Running {
        i.state = if i.steps.iter().all(|s| s.state == InstallState::Succeeded) {
            InstallState::Succeeded
        } else {
            InstallState::Failed
        };
        tracing::info!(vm = %ctx.key, state = ?i.state, "install finished");
    }
    if let Err(e) = ctx.sim.save_vm(vm) {
        tracing::error!(error = %e, "cannot persist install step");
    }
}

fn log(ctx: &Ctx, app: &str, state: InstallState, line: String) {
    step(ctx, app, |s, _, _| {
        s.state = state;
        s.log.push(line);
    });
}

async fn install_app(ctx: Ctx, channel: Channel, app: String) {
    let sim = ctx.sim.clone();
    log(
        &ctx,
        &app,
        InstallState::Running,
        format!("resolving {app} in channel {channel}"),
    );
    let Some(version) = sim
        .catalog
        .current()
        .version(channel, &app)
        .map(str::to_string)
    else {
        log(
            &ctx,
            &app,
            InstallState::Failed,
            format!("no release of {app} in channel {channel}"),
        );
        return;
    };
    let current = {
        let w = sim.world.lock().expect("world lock");
        w.vms.get(&ctx.key).map(|v| {
            (
                v.install.components.get(&app).cloned(),
                v.install.component_channels.get(&app).copied(),
            )
        })
    };
    if current == Some((Some(version.clone()), Some(channel))) {
        step(&ctx, &app, |s, _, _| {
            s.version = Some(version.clone());
            s.state = InstallState::Succeeded;
            s.log.push(format!(
                "{app} {version} ({channel}) already installed, skipped"
            ));
        });
        return;
    }
    step(&ctx, &app, |s, _, _| {
        s.version = Some(version.clone());
        s.log
            .push(format!("downloading {app} {version} from {channel}"));
    });
    sim.timing.wait(Wait::InstallDownload).await;
    log(
        &ctx,
        &app,
        InstallState::Running,
        format!("downloaded {app} {version}; configuring"),
    );
    sim.timing.wait(Wait::InstallConfigure).await;
    let p = sim.cfg.install.start_race_probability.clamp(0.0, 1.0);
    let lost = sim
        .faults
        .fire(Hit::new("service_start_race", "install").name(Some(&app)))
        .is_some()
        || (p > 0.0 && rand::rng().random_bool(p));
    if lost {
        log(
            &ctx,
            &app,
            InstallState::Failed,
            format!(
                "starting {app}.service failed: lost the start-up race (address already in use); retry the install"
            ),
        );
        return;
    }
    step(&ctx, &app, |s, comps, chans| {
        comps.insert(app.clone(), version.clone());
        chans.insert(app.clone(), channel);
        s.state = InstallState::Succeeded;
        s.log
            .push(format!("started {app}.service; {app} {version} installed"));
    });
}

async fn health(State(ctx): State<Ctx>, headers: HeaderMap) -> ApiResult<Json<AppHealth>> {
    let install = with_vm(&ctx, &headers, false, |vm| Ok(vm.install.clone()))?;
    let mut apps: Vec<String> = install.apps.clone();
    for a in install.components.keys() {
        if !apps.contains(a) {
            apps.push(a.clone());
        }
    }
    let entries = apps
        .into_iter()
        .map(|app| {
            let version = install.components.get(&app).cloned();
            let failed = install
                .steps
                .iter()
                .any(|s| s.app == app && s.state == InstallState::Failed);
            let fault = ctx
                .sim
                .faults
                .fire(Hit::new("app_unhealthy", "health").name(Some(&app)))
                .is_some();
            let (healthy, detail) = if version.is_none() {
                (false, "not installed".to_string())
            } else if failed {
                (false, "service failed to start".to_string())
            } else if fault {
                (false, "service does not answer".to_string())
            } else {
                (true, String::new())
            };
            AppHealthEntry {
                app,
                healthy,
                version,
                detail,
            }
        })
        .collect();
    Ok(Json(AppHealth { apps: entries }))
}

/// Marks installs that were running when gridshim stopped as failed (their tasks are gone).
pub fn interrupted_installs(sim: &Sim) {
    let mut w = sim.world.lock().expect("world lock");
    for vm in w.vms.values_mut() {
        let i = &mut vm.install;
        if matches!(i.state, InstallState::Running | InstallState::Pending) {
            i.state = InstallState::Failed;
            for s in &mut i.steps {
                if !matches!(s.state, InstallState::Succeeded | InstallState::Failed) {
                    s.state = InstallState::Failed;
                    s.log
                        .push("interrupted: gridshim restarted; retry the install".into());
                }
            }
            let _ = sim.save_vm(vm);
        }
    }
}
