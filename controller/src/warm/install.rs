//! A warm machine's apps: installed from the pool's channel once its agent answers, then its
//! health (agent answering, install intact) checked while it waits to be claimed.

use std::time::Duration;

use gridapi::agent::InstallState;
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use super::build::{Build, health_interval};
use crate::{
    error::{Error, Result},
    resources::WarmPhase,
    tester::{
        Flow,
        install::{is_of, versions_of},
    },
};

/// How many failed installs a warm machine gets before it is given up (and replaced).
const INSTALL_ATTEMPTS: u32 = 3;

/// The apps installed; then the machine is Ready, and stays so while its install holds.
pub async fn installed(b: &mut Build<'_>) -> Result<Flow> {
    let target = b.agent()?;
    let request = b.install_request();
    let status = b
        .ctx
        .grid(
            "agent_install_status",
            b.ctx.grid.agents.install_status(&target),
        )
        .await?;
    match (status.state, is_of(&status, &request)) {
        (InstallState::Succeeded, true) => {
            if b.status.phase != WarmPhase::Ready {
                b.status.ready_since = Some(Time(Timestamp::now()));
                tracing::info!(warm_machine = %b.name, "warm machine ready");
            }
            b.status.versions = versions_of(&status, &request);
            let node = b.status.placement.as_ref().map_or(0, |p| p.node_id);
            b.set(
                WarmPhase::Ready,
                format!(
                    "ready to be claimed: VM on node {node}, {} apps installed, gate closed",
                    request.apps.len()
                ),
            );
            Ok(Flow::Continue)
        }
        (InstallState::Running | InstallState::Pending, _) => {
            b.set(
                WarmPhase::Installing,
                format!("installing {} apps", request.apps.len()),
            );
            Ok(Flow::Requeue(Duration::from_secs(2)))
        }
        (InstallState::Failed, true) if status.attempt >= INSTALL_ATTEMPTS => {
            b.set(
                WarmPhase::Failed,
                format!("the install failed {} times", status.attempt),
            );
            Ok(Flow::Requeue(Duration::from_secs(30)))
        }
        _ => {
            b.ctx
                .grid(
                    "agent_start_install",
                    b.ctx.grid.agents.start_install(&target, &request),
                )
                .await?;
            b.set(
                WarmPhase::Installing,
                format!("installing {} apps", request.apps.len()),
            );
            Ok(Flow::Requeue(Duration::from_secs(2)))
        }
    }
}

/// A Ready machine stays Ready while its agent answers with its install intact; otherwise it
/// is Failed (and replaced): a machine nobody uses is not waited for.
pub async fn healthy(b: &mut Build<'_>) -> Result<Flow> {
    let target = b.agent()?;
    let request = b.install_request();
    match b
        .ctx
        .grid(
            "agent_install_status",
            b.ctx.grid.agents.install_status(&target),
        )
        .await
    {
        Ok(s) if s.state == InstallState::Succeeded && s.channel == Some(request.channel) => {
            Ok(Flow::Requeue(health_interval(b.ctx)))
        }
        Ok(s) => {
            b.set(
                WarmPhase::Failed,
                format!("its install is no longer intact ({:?})", s.state),
            );
            Ok(Flow::Requeue(Duration::from_secs(30)))
        }
        Err(Error::Grid { source, .. }) if source.is_retry_later() => {
            b.set(
                WarmPhase::Failed,
                format!("its agent stopped answering: {source}"),
            );
            Ok(Flow::Requeue(Duration::from_secs(30)))
        }
        Err(e) => Err(e),
    }
}
