//! Building one warm machine: placed by the scheduler and its ledger like a tester's, its own
//! random keys, a VM contract (adopted by node + hash after a restart), the deployment, the
//! agent answering, the apps installed. The gate stays closed: no step here sets one, so the
//! agent serves nothing but `/health` until a tester claims the machine. With neutral names the
//! machine also gets its name and gateway ([`super::name`]).

use std::time::Duration;

use gridapi::{
    ErrorCategory, ErrorCode,
    agent::{AgentTarget, InstallRequest},
};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::ObjectMeta, jiff::Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::{
    context::Context,
    error::{Error, KubeContext, Result},
    resources::{HostPool, Placement, WarmMachine, WarmMachineStatus, WarmPhase},
    scheduler::{Holding, Need, place},
    tester::{
        Flow, MANAGER,
        deployment::{self, ContractTag, MachineKeys},
        grid::{contract_for, deploy, deployment as deployed_on, node_contract},
        machine_keys,
        schedule::LISTING_MAX_AGE,
    },
};

/// The build name of every warm machine's keys and contract tag.
pub const WARM_BUILD: &str = "warm";

/// How often a Ready warm machine's agent is asked whether it is still well: as often as a
/// tester's apps (`APP_HEALTH_INTERVAL`, at most `RESYNC`).
pub fn health_interval(ctx: &Context) -> Duration {
    ctx.config.resync.min(ctx.config.app_health_interval)
}

/// How long a node that did not answer is kept out of warm machines' placements.
const REFUSED_COOL_DOWN: Duration = Duration::from_secs(300);

/// One pass over one warm machine.
pub struct Build<'a> {
    /// Shared clients and state.
    pub ctx: &'a Context,
    /// The machine as the pass started.
    pub machine: &'a WarmMachine,
    /// Its pool.
    pub pool: &'a HostPool,
    /// Namespace.
    pub ns: String,
    /// Name.
    pub name: String,
    /// UID (its ledger key and contract tag).
    pub uid: String,
    /// The status being built up, written at the end of the pass when it changed.
    pub status: WarmMachineStatus,
}

impl Build<'_> {
    fn need(&self) -> Need {
        let r = &self.machine.spec.resources;
        Need::from_gib(r.cpu, r.memory_gib, r.disk_gib)
    }

    fn tag(&self) -> ContractTag {
        ContractTag {
            tester: self.uid.clone(),
            kind: "vm".into(),
            build: WARM_BUILD.into(),
        }
    }

    /// Sets the phase and what it says.
    pub fn set(&mut self, phase: WarmPhase, message: impl Into<String>) {
        self.status.phase = phase;
        self.status.message = message.into();
    }

    /// How to reach its agent.
    pub fn agent(&self) -> Result<AgentTarget> {
        Ok(AgentTarget {
            mycelium_ip: self
                .status
                .private_address
                .clone()
                .ok_or(Error::MissingField("status.privateAddress"))?,
            machine_id: self
                .status
                .machine_id
                .clone()
                .ok_or(Error::MissingField("status.machineId"))?,
        })
    }

    /// The install every warm machine of this spec gets: the gateway app and the pool's apps.
    pub fn install_request(&self) -> InstallRequest {
        crate::tester::install::request(
            self.ctx,
            self.machine.spec.channel,
            &self.machine.spec.apps,
        )
    }

    /// Writes the status when it changed.
    pub async fn persist(&mut self) -> Result<()> {
        if self.machine.status.as_ref() == Some(&self.status) {
            return Ok(());
        }
        let api: Api<WarmMachine> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let patch = json!({
            "apiVersion": "sandbox.hero.dev/v1alpha1",
            "kind": "WarmMachine",
            "status": self.status,
        });
        self.ctx.kube_turn().await;
        api.patch_status(
            &self.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .kube("writing the WarmMachine status")?;
        Ok(())
    }
}

/// Runs the build steps in order until one stops the pass; a Ready machine only has its health
/// checked. A build that has not finished in twice the reachability time-out is given up (the
/// pool replaces it).
pub async fn build(b: &mut Build<'_>) -> Result<Flow> {
    if b.status.phase == WarmPhase::Ready {
        return super::install::healthy(b).await;
    }
    let limit = 2 * b.ctx.config.scaled(b.ctx.config.reachability_timeout);
    let age = b
        .machine
        .creation_timestamp()
        .map(|t| Timestamp::now().duration_since(t.0).unsigned_abs())
        .unwrap_or_default();
    let flow = steps(b).await;
    if age > limit && b.status.phase != WarmPhase::Ready {
        let why = match &flow {
            Err(e) => e.to_string(),
            Ok(_) => b.status.message.clone(),
        };
        b.set(
            WarmPhase::Failed,
            format!(
                "not built after {}: {why}",
                humantime::format_duration(Duration::from_secs(limit.as_secs()))
            ),
        );
        return Ok(Flow::Requeue(Duration::from_secs(30)));
    }
    flow
}

async fn steps(b: &mut Build<'_>) -> Result<Flow> {
    if let flow @ Flow::Requeue(_) = placed(b).await? {
        return Ok(flow);
    }
    match deployed(b).await {
        Ok(Flow::Continue) => {}
        Ok(flow) => return Ok(flow),
        // A node that does not answer is not waited for: this machine is given up (the pool
        // builds another, elsewhere) and the node kept out of placements for a while.
        Err(Error::Grid { source, .. }) if source.code() == ErrorCode::NodeUnreachable => {
            let node = b.status.placement.as_ref().map_or(0, |p| p.node_id);
            b.ctx.ledger.lock().await.refused(node, REFUSED_COOL_DOWN);
            b.set(
                WarmPhase::Failed,
                format!("node {node} does not answer: {source}"),
            );
            return Ok(Flow::Requeue(Duration::from_secs(30)));
        }
        Err(e) => return Err(e),
    }
    if let flow @ Flow::Requeue(_) = reachable(b).await? {
        return Ok(flow);
    }
    if let flow @ Flow::Requeue(_) = super::name::named(b).await? {
        return Ok(flow);
    }
    if let flow @ Flow::Requeue(_) = super::install::installed(b).await? {
        return Ok(flow);
    }
    Ok(Flow::Requeue(health_interval(b.ctx)))
}

/// A place on a node, held in the ledger and written before any grid call.
async fn placed(b: &mut Build<'_>) -> Result<Flow> {
    let need = b.need();
    if let Some(p) = &b.status.placement {
        let mut ledger = b.ctx.ledger.lock().await;
        if ledger.holding(&b.uid).is_none() {
            ledger.hold(
                &b.uid,
                Holding {
                    node_id: p.node_id,
                    need,
                    counted_after: None,
                },
            );
        }
        return Ok(Flow::Continue);
    }
    let key = format!("{}/{}", b.ns, b.pool.name_any());
    let listing = crate::tester::pool_nodes(b.ctx, &key, b.pool, LISTING_MAX_AGE).await?;
    let own_gateway = listing.gateways.is_empty();
    let mut ledger = b.ctx.ledger.lock().await;
    let rooms: Vec<_> = ledger
        .rooms(&listing.nodes, listing.listed_at)
        .into_iter()
        .filter(|r| !own_gateway || r.node.domain.is_some())
        .collect();
    match place(&rooms, need, b.pool.spec.placement) {
        Ok(node_id) => {
            ledger.hold(
                &b.uid,
                Holding {
                    node_id,
                    need,
                    counted_after: None,
                },
            );
            drop(ledger);
            b.status.placement = Some(Placement {
                node_id,
                cpu: need.cpu,
                memory_bytes: need.memory,
                disk_bytes: need.disk,
            });
            b.set(WarmPhase::Deploying, format!("placed on node {node_id}"));
            if let Err(e) = b.persist().await {
                b.ctx.ledger.lock().await.release(&b.uid);
                return Err(e);
            }
            Ok(Flow::Continue)
        }
        Err(why) => {
            drop(ledger);
            b.set(
                WarmPhase::Pending,
                format!(
                    "no node of the pool has room ({}); nothing was created on the grid",
                    why.reason()
                ),
            );
            Ok(Flow::Requeue(Duration::from_secs(30)))
        }
    }
}

/// The machine's keys and the VM deployment they make.
async fn desired(b: &mut Build<'_>) -> Result<(MachineKeys, gridapi::zos::Deployment)> {
    let placement = b
        .status
        .placement
        .clone()
        .ok_or(Error::MissingField("status.placement"))?;
    let meta = ObjectMeta {
        name: Some(b.machine.keys_secret_name()),
        namespace: Some(b.ns.clone()),
        owner_references: Some(vec![
            b.machine
                .controller_owner_ref(&())
                .ok_or(Error::MissingField("metadata.uid"))?,
        ]),
        ..Default::default()
    };
    let keys = machine_keys::kept(b.ctx, &b.ns, meta, WARM_BUILD, false).await?;
    b.status.machine_id = Some(keys.machine_id.clone());
    let d = deployment::vm(
        b.ctx.grid.twin_id(),
        &placement,
        &keys,
        &b.ctx.agent_public_key.to_base64(),
        &b.tag(),
    );
    Ok((keys, d))
}

/// The contract and the deployment, up on the node.
async fn deployed(b: &mut Build<'_>) -> Result<Flow> {
    let node = b
        .status
        .placement
        .as_ref()
        .ok_or(Error::MissingField("status.placement"))?
        .node_id;
    let contract_id = match b.status.contract_id {
        Some(id) => id,
        None => {
            let (_, d) = desired(b).await?;
            let hash = d.challenge_hash();
            let id = match contract_for(b.ctx, node, &hash).await? {
                Some(id) => id,
                None => node_contract(b.ctx, node, &hash, &b.tag()).await?.0,
            };
            b.status.contract_id = Some(id);
            id
        }
    };
    let on_node = match deployed_on(b.ctx, node, contract_id).await {
        Ok(d) => d,
        Err(Error::Grid { source, .. }) if source.category() == ErrorCategory::NotFound => {
            let (_, mut d) = desired(b).await?;
            d.contract_id = contract_id;
            deploy(b.ctx, node, &d).await?;
            deployed_on(b.ctx, node, contract_id).await?
        }
        Err(e) => return Err(e),
    };
    if let Some((workload, message)) = on_node.errors().first() {
        let message = format!("workload {workload} failed on node {node}: {message}");
        b.set(WarmPhase::Failed, message);
        return Ok(Flow::Requeue(Duration::from_secs(30)));
    }
    if !on_node.all_ok() {
        b.set(
            WarmPhase::Deploying,
            format!("node {node} is deploying the VM (contract {contract_id})"),
        );
        return Ok(Flow::Requeue(Duration::from_secs(2)));
    }
    b.ctx
        .ledger
        .lock()
        .await
        .deployed(&b.uid, b.ctx.config.proxy_lag);
    if b.status.private_address.is_none() || b.status.machine_id.is_none() {
        let reported = on_node
            .workload("vm")
            .and_then(|w| w.zmachine_result())
            .map(|r| r.mycelium_ip)
            .unwrap_or_default();
        let (keys, _) = desired(b).await?;
        b.status.private_address = Some(if reported.is_empty() {
            keys.mycelium_ip()
        } else {
            reported
        });
    }
    Ok(Flow::Continue)
}

/// The agent answers.
async fn reachable(b: &mut Build<'_>) -> Result<Flow> {
    let target = b.agent()?;
    match b
        .ctx
        .grid("agent_config", b.ctx.grid.agents.config(&target))
        .await
    {
        Ok(_) => Ok(Flow::Continue),
        Err(Error::Grid { source, .. }) if source.is_retry_later() => {
            b.set(
                WarmPhase::Deploying,
                format!(
                    "VM deployed but not reachable yet at {}; a new VM can take minutes",
                    target.mycelium_ip
                ),
            );
            Ok(Flow::Requeue(Duration::from_secs(2)))
        }
        Err(e) => Err(e),
    }
}
