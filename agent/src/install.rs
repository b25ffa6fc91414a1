//! The install of the app stack: every app of the request in parallel, each downloaded from
//! the release index with its SHA-256 checked, written under `/opt/apps/<app>/<version>/`, its
//! service started (a racy start is retried), its exact version recorded. The status, with a
//! log per app, is kept on the machine.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use backon::{ExponentialBuilder, Retryable as _};
use gridapi::ErrorCode;
use gridapi::agent::{InstallRequest, InstallState, InstallStatus, InstallStep};
use gridapi::catalog::{Channel, ReleaseIndex};
use sha2::{Digest as _, Sha256};

use crate::Agent;
use crate::api::Failed;
use crate::machine::{Machine, read_file, write_file};

/// Where the install status is kept.
pub const INSTALL_FILE: &str = "/var/lib/hero-agent/install.json";
/// How many times a service start is tried before the step fails.
const START_ATTEMPTS: usize = 3;

/// Reads the kept install status.
pub fn load(machine: &dyn Machine) -> std::io::Result<InstallStatus> {
    match read_file(machine, INSTALL_FILE)? {
        None => Ok(InstallStatus::default()),
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| std::io::Error::other(format!("{INSTALL_FILE} is damaged: {e}"))),
    }
}

/// Marks an install that was running when the agent stopped as failed (its work is gone).
pub fn interrupted(agent: &Agent) {
    let mut state = agent.state.lock().expect("agent state");
    let i = &mut state.install;
    if matches!(i.state, InstallState::Running | InstallState::Pending) {
        i.state = InstallState::Failed;
        for s in &mut i.steps {
            if !matches!(s.state, InstallState::Succeeded | InstallState::Failed) {
                s.state = InstallState::Failed;
                s.log
                    .push("interrupted: the agent restarted; retry the install".into());
            }
        }
        save(agent, i);
    }
}

fn save(agent: &Agent, status: &InstallStatus) {
    let bytes = serde_json::to_vec(status).expect("install status serialises");
    if let Err(e) = write_file(&*agent.machine, INSTALL_FILE, &bytes, 0o600, None) {
        tracing::error!(error = %e, "cannot keep the install status");
    }
}

/// Starts an install of `req.apps` (refused while one is running).
pub fn start(agent: &Arc<Agent>, req: InstallRequest) -> Result<InstallStatus, Failed> {
    if req.apps.is_empty() {
        return Err(Failed(
            StatusCode::BAD_REQUEST,
            ErrorCode::Invalid,
            "no apps to install".into(),
        ));
    }
    let status = {
        let mut state = agent.state.lock().expect("agent state");
        let i = &mut state.install;
        if matches!(i.state, InstallState::Running | InstallState::Pending) {
            return Err(Failed(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "an install is already running".into(),
            ));
        }
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
        save(agent, i);
        i.clone()
    };
    tracing::info!(channel = %req.channel, apps = ?req.apps, attempt = status.attempt, "install started");
    let agent = agent.clone();
    tokio::spawn(async move { run(agent, req).await });
    Ok(status)
}

async fn run(agent: Arc<Agent>, req: InstallRequest) {
    let read = async {
        let base = reqwest::Url::parse(&req.index_url)
            .map_err(|e| format!("{:?} is not a URL: {e}", req.index_url))?;
        let bytes = get(&agent, &base).await?;
        let index: ReleaseIndex =
            serde_json::from_slice(&bytes).map_err(|e| format!("{base}: {e}"))?;
        Ok::<_, String>((index, base))
    };
    let (index, base) = match read.await {
        Ok(read) => read,
        Err(why) => {
            for app in &req.apps {
                log(
                    &agent,
                    app,
                    InstallState::Failed,
                    format!("cannot read the release index: {why}"),
                );
            }
            return;
        }
    };
    let (index, base, agent) = (&index, &base, &agent);
    futures::future::join_all(
        req.apps
            .iter()
            .map(|app| install_app(agent, index, base, req.channel, app)),
    )
    .await;
}

fn retry_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(3)
}

/// The body at `url` (retried on failure).
async fn get(agent: &Agent, url: &reqwest::Url) -> Result<Vec<u8>, String> {
    let get = || async {
        let resp = agent
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("{url} answered HTTP {status}"));
        }
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string())
    };
    get.retry(retry_policy()).await
}

/// Updates one app's step (and the overall state once every step is done), then keeps it.
fn step(agent: &Agent, app: &str, f: impl FnOnce(&mut InstallStep, &mut InstallStatus)) {
    let mut state = agent.state.lock().expect("agent state");
    let i = &mut state.install;
    if let Some(pos) = i.steps.iter().position(|s| s.app == app) {
        let mut s = i.steps[pos].clone();
        f(&mut s, i);
        i.steps[pos] = s;
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
        tracing::info!(state = ?i.state, "install finished");
    }
    save(agent, i);
}

fn log(agent: &Agent, app: &str, state: InstallState, line: String) {
    step(agent, app, |s, _| {
        s.state = state;
        s.log.push(line);
    });
}

async fn install_app(
    agent: &Agent,
    index: &ReleaseIndex,
    base: &reqwest::Url,
    channel: Channel,
    app: &str,
) {
    log(
        agent,
        app,
        InstallState::Running,
        format!("resolving {app} in channel {channel}"),
    );
    let Some(release) = index.release(channel, app) else {
        log(
            agent,
            app,
            InstallState::Failed,
            format!("no release of {app} in channel {channel}"),
        );
        return;
    };
    let version = release.version.clone();
    let installed = {
        let state = agent.state.lock().expect("agent state");
        (
            state.install.components.get(app).cloned(),
            state.install.component_channels.get(app).copied(),
        )
    };
    if installed == (Some(version.clone()), Some(channel)) {
        step(agent, app, |s, _| {
            s.version = Some(version.clone());
            s.state = InstallState::Succeeded;
            s.log.push(format!(
                "{app} {version} ({channel}) already installed, skipped"
            ));
        });
        return;
    }
    let url = match base.join(&release.url) {
        Ok(u) => u,
        Err(e) => {
            log(
                agent,
                app,
                InstallState::Failed,
                format!("the release of {app} has no valid URL: {e}"),
            );
            return;
        }
    };
    step(agent, app, |s, _| {
        s.version = Some(version.clone());
        s.log
            .push(format!("downloading {app} {version} from {url}"));
    });
    let bytes = match get(agent, &url).await {
        Ok(b) => b,
        Err(why) => {
            log(
                agent,
                app,
                InstallState::Failed,
                format!("cannot download {app} {version}: {why}"),
            );
            return;
        }
    };
    let got = hex::encode(Sha256::digest(&bytes));
    if !got.eq_ignore_ascii_case(&release.sha256) {
        log(
            agent,
            app,
            InstallState::Failed,
            format!(
                "refused {app} {version}: its SHA-256 is {got}, the release index says {}",
                release.sha256
            ),
        );
        return;
    }
    let path = format!("/opt/apps/{app}/{version}/{app}.tar");
    if let Err(e) = write_file(&*agent.machine, &path, &bytes, 0o644, None) {
        log(
            agent,
            app,
            InstallState::Failed,
            format!("cannot write {path}: {e}"),
        );
        return;
    }
    log(
        agent,
        app,
        InstallState::Running,
        format!(
            "downloaded {app} {version} ({} bytes, SHA-256 verified); starting {app}.service",
            bytes.len()
        ),
    );
    let mut last = String::new();
    for attempt in 1..=START_ATTEMPTS {
        match agent.machine.start_service(app, &version).await {
            Ok(()) => {
                step(agent, app, |s, i| {
                    i.components.insert(app.to_string(), version.clone());
                    i.component_channels.insert(app.to_string(), channel);
                    s.state = InstallState::Succeeded;
                    s.log
                        .push(format!("started {app}.service; {app} {version} installed"));
                });
                return;
            }
            Err(why) => {
                log(
                    agent,
                    app,
                    InstallState::Running,
                    format!(
                        "starting {app}.service failed (attempt {attempt} of {START_ATTEMPTS}): {why}"
                    ),
                );
                last = why;
                tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
            }
        }
    }
    log(
        agent,
        app,
        InstallState::Failed,
        format!(
            "{app}.service did not start after {START_ATTEMPTS} attempts ({last}); retry the install"
        ),
    );
}
