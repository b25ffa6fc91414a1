//! Step `Installed` (and `UpdateAvailable`): the app stack from the chosen channel, with the
//! exact version of every component recorded.

use std::collections::{BTreeMap, BTreeSet};

use gridapi::{
    agent::{InstallRequest, InstallState, InstallStatus},
    catalog::Channel as GridChannel,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{Patch, PatchParams},
    runtime::events::EventType,
};

use super::{
    Flow, Pass,
    conditions::{INSTALLED, UPDATE_AVAILABLE},
    grid::agent,
    pass::MANAGER,
};
use crate::{
    context::Context,
    error::{KubeContext, Result},
    resources::{App, Channel, InstalledVersions},
};

/// The ConfigMap holding the full log of a failed install.
pub fn log_config_map_name(tester: &str) -> String {
    format!("{tester}-install-log")
}

/// The catalog's name of a channel.
pub fn grid_channel(c: Channel) -> GridChannel {
    match c {
        Channel::Stable => GridChannel::Stable,
        Channel::Prerelease => GridChannel::Prerelease,
    }
}

/// The install of `apps` from `channel`: the gateway app every machine has, and those apps
/// (a tester's, or a warm machine's).
pub fn request(ctx: &Context, channel: Channel, apps: &[App]) -> InstallRequest {
    let mut names: Vec<String> = vec!["gateway".into()];
    names.extend(apps.iter().map(|a| a.as_str().to_string()));
    InstallRequest {
        channel: grid_channel(channel),
        apps: names,
        index_url: ctx.config.release_index_url(),
    }
}

/// Whether the agent's install `status` is of `request` (same channel, same app set).
pub fn is_of(status: &InstallStatus, request: &InstallRequest) -> bool {
    status.channel == Some(request.channel)
        && status.apps.iter().collect::<BTreeSet<_>>() == request.apps.iter().collect()
}

/// The exact version of each app of `request` the agent's install `status` reports.
pub fn versions_of(status: &InstallStatus, request: &InstallRequest) -> BTreeMap<String, String> {
    status
        .components
        .iter()
        .filter(|(k, _)| request.apps.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The install the spec asks for.
fn wanted_install(pass: &Pass<'_>) -> InstallRequest {
    request(pass.ctx, pass.tester.spec.channel, &pass.tester.spec.apps)
}

/// What `Installed` says while an install runs.
fn installing(n: usize, channel: Channel) -> String {
    format!("installing {n} apps from channel {}", channel.as_str())
}

/// What the machine's agent says of its install, and whether it is of `request`.
async fn install_status(
    pass: &Pass<'_>,
    request: &InstallRequest,
) -> Result<(InstallStatus, bool)> {
    let target = agent(pass)?;
    let status = pass
        .ctx
        .grid(
            "agent_install_status",
            pass.ctx.grid.agents.install_status(&target),
        )
        .await?;
    let same_request = is_of(&status, request);
    Ok((status, same_request))
}

/// Starts the install the moment the machine answers, so that the name, the gate and the tokens
/// are set up while it runs (`install` then waits for it). Safe before the gate: the machine's
/// agent serves nothing but `/health` until the gate step configures its gate. Never stops the
/// pass; an install already under way, done or failed for this request is left to `install`.
pub async fn begin(pass: &mut Pass<'_>) -> Result<Flow> {
    if pass.done_for_generation(INSTALLED) {
        return Ok(Flow::Continue);
    }
    let request = wanted_install(pass);
    let (status, same_request) = install_status(pass, &request).await?;
    if !same_request || status.state == InstallState::Idle {
        start(pass, &request).await?;
    }
    Ok(Flow::Continue)
}

/// Asks the machine's agent to install `request` and says so in `Installed`.
async fn start(pass: &mut Pass<'_>, request: &InstallRequest) -> Result<()> {
    let target = agent(pass)?;
    pass.ctx
        .grid(
            "agent_start_install",
            pass.ctx.grid.agents.start_install(&target, request),
        )
        .await?;
    let msg = installing(request.apps.len(), pass.tester.spec.channel);
    pass.set(INSTALLED, false, "Installing", &msg);
    Ok(())
}

/// Owns `Installed` and `UpdateAvailable`. Starts an install when what the machine has differs
/// from the spec (channel or app set), waits for it, retries a failed one (service starts can
/// lose a start-up race), records the versions.
pub async fn install(pass: &mut Pass<'_>) -> Result<Flow> {
    let target = agent(pass)?;
    let channel = pass.tester.spec.channel;
    let request = wanted_install(pass);
    let apps = request.apps.clone();
    let (status, same_request) = install_status(pass, &request).await?;
    match (status.state, same_request) {
        (InstallState::Succeeded, true) => {
            let versions = versions_of(&status, &request);
            let installed = InstalledVersions { channel, versions };
            if pass.status.installed.as_ref() != Some(&installed) {
                tracing::info!(
                    tester = %pass.name,
                    components = installed.versions.len(),
                    channel = channel.as_str(),
                    "installed"
                );
            }
            pass.status.installed = Some(installed);
            let msg = format!(
                "{} apps installed from channel {}",
                apps.len(),
                channel.as_str()
            );
            pass.set(INSTALLED, true, "Installed", &msg);
            update_available(pass).await?;
            Ok(Flow::Continue)
        }
        (InstallState::Running | InstallState::Pending, _) => {
            pass.set(
                INSTALLED,
                false,
                "Installing",
                &installing(apps.len(), channel),
            );
            Ok(Flow::Requeue(
                pass.backoff(INSTALLED)
                    .min(std::time::Duration::from_secs(10)),
            ))
        }
        (InstallState::Failed, true) => {
            let summary = failure_summary(&status);
            write_log(pass, &status).await?;
            pass.event(EventType::Warning, "InstallFailed", &summary);
            pass.set(
                INSTALLED,
                false,
                "InstallFailed",
                &format!(
                    "attempt {} failed: {summary}; retrying (full log in ConfigMap {})",
                    status.attempt,
                    log_config_map_name(&pass.name)
                ),
            );
            pass.ctx
                .grid(
                    "agent_start_install",
                    pass.ctx.grid.agents.start_install(&target, &request),
                )
                .await?;
            Ok(Flow::Requeue(pass.backoff(INSTALLED)))
        }
        _ => {
            start(pass, &request).await?;
            Ok(Flow::Requeue(pass.backoff(INSTALLED)))
        }
    }
}

/// The failed steps and the last line of each one's log.
fn failure_summary(status: &InstallStatus) -> String {
    let failed: Vec<String> = status
        .steps
        .iter()
        .filter(|s| s.state == InstallState::Failed)
        .map(|s| format!("{}: {}", s.app, s.log.last().cloned().unwrap_or_default()))
        .collect();
    if failed.is_empty() {
        "install failed".into()
    } else {
        failed.join("; ")
    }
}

/// Keeps the full step log of the last failed install in a ConfigMap owned by the Tester, so the
/// operator can read it without logging in anywhere.
async fn write_log(pass: &Pass<'_>, status: &InstallStatus) -> Result<()> {
    let mut text = String::new();
    for step in &status.steps {
        text.push_str(&format!(
            "== {} ({:?}, version {})\n",
            step.app,
            step.state,
            step.version.as_deref().unwrap_or("?")
        ));
        for line in &step.log {
            text.push_str(line);
            text.push('\n');
        }
    }
    let name = log_config_map_name(&pass.name);
    let cms: Api<ConfigMap> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    let cm = ConfigMap {
        metadata: pass.owned_meta(&name)?,
        data: Some(BTreeMap::from([
            ("attempt".to_string(), status.attempt.to_string()),
            ("log".to_string(), text),
        ])),
        ..Default::default()
    };
    pass.ctx.kube_turn().await;
    cms.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&cm),
    )
    .await
    .kube("writing the install log ConfigMap")?;
    Ok(())
}

/// Owns `UpdateAvailable`: compares the recorded versions with the newest of the channel.
async fn update_available(pass: &mut Pass<'_>) -> Result<()> {
    let Some(installed) = pass.status.installed.clone() else {
        return Ok(());
    };
    let catalog = pass
        .ctx
        .grid("catalog", pass.ctx.grid.catalog.catalog())
        .await?;
    let newest = catalog
        .channels
        .get(&grid_channel(installed.channel))
        .cloned()
        .unwrap_or_default();
    let newer: Vec<String> = installed
        .versions
        .iter()
        .filter_map(|(app, v)| {
            newest
                .get(app)
                .filter(|n| *n != v)
                .map(|n| format!("{app} {v} -> {n}"))
        })
        .collect();
    if newer.is_empty() {
        pass.set(
            UPDATE_AVAILABLE,
            false,
            "UpToDate",
            &format!(
                "every component is the newest of {}",
                installed.channel.as_str()
            ),
        );
    } else {
        pass.set(
            UPDATE_AVAILABLE,
            true,
            "NewerVersions",
            &format!(
                "newer in {}: {}",
                installed.channel.as_str(),
                newer.join(", ")
            ),
        );
    }
    Ok(())
}
