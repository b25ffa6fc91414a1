//! The node face: zos's `zos.deployment.deploy`, `.get` and `.changes` commands, addressed by
//! the node's twin as the message bus (RMB) carries them: `POST /rmb/{node_twin}/{command}` with
//! the command's payload.
//!
//! Deploy validates the deployment and queues it; each node works its queue one deployment at
//! a time, workloads in the order zmount → network → zmachine → gateway, each reporting `init`
//! then `ok` or `error`. Capacity is enforced here, by the node, with the node's own texts,
//! whatever the (lagging) proxy says. Deletion through the node is refused: it is a chain cancel.
//!
//! Faults: `node_unreachable` and a node that is down (calls time out), `deploy_timeout_but_created`,
//! `capacity_refusal`, `gateway_failed_but_created`, `result_without_address` (call `provision`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use gridapi::node::{CMD_CHANGES, CMD_DEPLOY, CMD_GET, ContractRef};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};
use crate::faults::Hit;
use crate::prelude::*;
use crate::state::{DeploymentRec, GatewayRec, Sim, VmRec, World, node_used, now_secs};
use crate::timing::Wait;
use crate::wire::*;

/// Routes of the node face.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/rmb/{twin}/{command}", post(command))
}

/// The command to delete a deployment, which zos refuses (it is a chain cancel).
const CMD_DELETE: &str = "zos.deployment.delete";

fn payload<T: DeserializeOwned>(body: &[u8], command: &str) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            ErrorCode::Invalid,
            format!("{command}: invalid payload: {e}"),
        )
    })
}

/// One message to a node's twin: finds the node, then runs the command.
async fn command(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((twin, command)): Path<(u32, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let node_id = {
        let w = sim.world.lock().expect("world lock");
        w.nodes
            .values()
            .find(|n| n.cfg.twin_id() == twin)
            .map(|n| n.cfg.id)
    }
    .ok_or_else(|| {
        ApiError::not_found(
            ErrorCode::NodeNotExists,
            format!("twin {twin} is not a node's twin"),
        )
    })?;
    Ok(match command.as_str() {
        CMD_DEPLOY => deploy(sim, headers, node_id, payload(&body, &command)?)
            .await?
            .into_response(),
        CMD_GET => {
            let ContractRef { contract_id } = payload(&body, &command)?;
            get_deployment(sim, headers, node_id, contract_id)
                .await?
                .into_response()
        }
        CMD_CHANGES => {
            let ContractRef { contract_id } = payload(&body, &command)?;
            changes(sim, headers, node_id, contract_id)
                .await?
                .into_response()
        }
        CMD_DELETE => delete_deployment(sim, headers, node_id)
            .await?
            .into_response(),
        other => {
            return Err(ApiError::invalid(
                ErrorCode::Invalid,
                format!("unknown command {other:?}"),
            ));
        }
    })
}

/// Fails like the message bus when the node is down or the `node_unreachable` fault fires.
async fn reach(sim: &Sim, node_id: u32, call: &str) -> ApiResult<()> {
    let up = {
        let w = sim.world.lock().expect("world lock");
        let n = w.nodes.get(&node_id).ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::NodeNotExists,
                format!("node {node_id} not found"),
            )
        })?;
        n.status == NodeStatus::Up
    };
    let fault = sim
        .faults
        .fire(Hit::new("node_unreachable", call).node(Some(node_id)))
        .is_some();
    if !up || fault {
        sim.timing.wait(Wait::RmbTimeout).await;
        return Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::NodeUnreachable,
            format!(
                "failed to send request to node {node_id} (twin {}): context deadline exceeded",
                1000 + node_id
            ),
        ));
    }
    Ok(())
}

fn valid_workload_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 36 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks a deployment the way the node does on submission.
pub fn validate(d: &Deployment) -> Result<(), String> {
    if d.version != 0 {
        return Err("version must be 0 on create".into());
    }
    if d.workloads.is_empty() {
        return Err("deployment has no workloads".into());
    }
    let mut seen = std::collections::HashSet::new();
    for w in &d.workloads {
        if !valid_workload_name(&w.name) {
            return Err(format!(
                "invalid workload name {:?}: must match ^[a-zA-Z0-9_]+$ and be at most 36 characters",
                w.name
            ));
        }
        if !seen.insert(w.name.as_str()) {
            return Err(format!("duplicate workload name {:?}", w.name));
        }
    }
    let is = |name: &str, t: &str| {
        d.workloads
            .iter()
            .any(|w| w.name == name && w.data.type_name() == t)
    };
    for w in &d.workloads {
        let n = &w.name;
        match &w.data {
            WorkloadData::NetworkLight(net) => {
                if net.subnet.is_empty() {
                    return Err(format!("{n}: subnet is required"));
                }
                if hex::decode(&net.mycelium.hex_key).map(|k| k.len()) != Ok(32) {
                    return Err(format!("{n}: invalid mycelium key: must be 32 bytes hex"));
                }
            }
            WorkloadData::Zmount(z) => {
                if z.size == 0 {
                    return Err(format!("{n}: zmount size must be positive"));
                }
            }
            WorkloadData::ZmachineLight(z) => {
                if z.flist.is_empty() {
                    return Err(format!("{n}: flist url is required"));
                }
                if z.compute_capacity.cpu < 1 {
                    return Err(format!("{n}: cpu capacity can't be less than 1"));
                }
                if z.compute_capacity.memory < 250 * MIB {
                    return Err(format!("{n}: mem capacity can't be less than 250M"));
                }
                // zos's own check and text (ZMachineLight.Valid).
                gridapi::zos::root_size(z).map_err(|e| format!("{n}: {e}"))?;
                if z.network.interfaces.len() != 1 {
                    return Err(format!("{n}: only one network interface is supported"));
                }
                let iface = &z.network.interfaces[0];
                if !is(&iface.network, "network-light") {
                    return Err(format!(
                        "{n}: network {:?} not found in deployment",
                        iface.network
                    ));
                }
                if !is(&z.network.mycelium.network, "network-light") {
                    return Err(format!(
                        "{n}: mycelium network {:?} not found in deployment",
                        z.network.mycelium.network
                    ));
                }
                if hex::decode(&z.network.mycelium.seed).map(|s| s.len()) != Ok(6) {
                    return Err(format!(
                        "{n}: invalid mycelium seed length: must be 6 bytes"
                    ));
                }
                for m in &z.mounts {
                    if !is(&m.name, "zmount") {
                        return Err(format!(
                            "{n}: mount {:?} is not a zmount of this deployment",
                            m.name
                        ));
                    }
                }
            }
            WorkloadData::GatewayNameProxy(g) => {
                if let Some(code) = check_name(&g.name) {
                    return Err(format!("{n}: invalid gateway name {:?}: {code:?}", g.name));
                }
                if g.backends.len() != 1 {
                    return Err(format!("{n}: exactly one backend is required"));
                }
                if backend_host_port(&g.backends[0]).is_none() {
                    return Err(format!(
                        "{n}: invalid backend {:?}: want http://[ip]:port",
                        g.backends[0]
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Host (without brackets) and port of a backend URL `http://[ipv6]:port` or `http://ipv4:port`.
pub fn backend_host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("http://")?;
    let hostport = rest.split('/').next()?;
    let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
        let (h, p) = r.split_once("]:")?;
        (h.to_string(), p)
    } else {
        let (h, p) = hostport.rsplit_once(':')?;
        (h.to_string(), p)
    };
    let port: u16 = port.parse().ok()?;
    if host.is_empty() {
        return None;
    }
    Some((host, port))
}

fn change(w: &Workload) -> WorkloadChange {
    WorkloadChange {
        name: w.name.clone(),
        workload_type: w.data.type_name().into(),
        version: w.version,
        result: w.result.clone(),
    }
}

async fn deploy(
    sim: Arc<Sim>,
    headers: HeaderMap,
    node_id: u32,
    mut d: Deployment,
) -> ApiResult<Json<()>> {
    let call = "deploy";
    let twin = sim.session(&headers, call, Some(node_id), None)?;
    reach(&sim, node_id, call).await?;
    validate(&d).map_err(|m| ApiError::invalid(ErrorCode::Invalid, m))?;
    {
        let mut w = sim.world.lock().expect("world lock");
        if d.twin_id != twin {
            return Err(ApiError::forbidden(
                ErrorCode::Unauthorized,
                "twin id mismatch",
            ));
        }
        let c = w.contracts.get(&d.contract_id).ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::ContractNotExists,
                format!("contract {} not found", d.contract_id),
            )
        })?;
        let ContractKind::Node {
            node_id: cnode,
            deployment_hash,
            ..
        } = &c.kind
        else {
            return Err(ApiError::invalid(
                ErrorCode::Invalid,
                format!("contract {} is not a node contract", d.contract_id),
            ));
        };
        if *cnode != node_id {
            return Err(ApiError::invalid(
                ErrorCode::Invalid,
                format!(
                    "contract {} is for node {cnode}, not {node_id}",
                    d.contract_id
                ),
            ));
        }
        if c.twin_id != twin {
            return Err(ApiError::forbidden(
                ErrorCode::Unauthorized,
                "twin id mismatch",
            ));
        }
        if *deployment_hash != d.challenge_hash() {
            return Err(ApiError::invalid(
                ErrorCode::Invalid,
                "deployment hash does not match the contract's hash",
            ));
        }
        if w.deployments.contains_key(&d.contract_id) {
            return Err(ApiError::conflict(
                ErrorCode::Conflict,
                format!("deployment with contract {} already exists", d.contract_id),
            ));
        }
        let now = now_secs();
        let mut changes = Vec::new();
        for wl in &mut d.workloads {
            wl.result = WorkloadResult {
                created: now,
                state: WorkloadState::Init,
                message: String::new(),
                data: serde_json::Value::Null,
            };
            changes.push(change(wl));
        }
        let rec = DeploymentRec {
            node_id,
            deployment: d.clone(),
            changes,
        };
        sim.save_deployment(&rec)?;
        w.deployments.insert(d.contract_id, rec);
    }
    tracing::info!(
        node = node_id,
        contract = d.contract_id,
        "deployment queued"
    );
    enqueue(&sim, node_id, d.contract_id);
    if sim
        .faults
        .fire(Hit::new("deploy_timeout_but_created", call).node(Some(node_id)))
        .is_some()
    {
        sim.timing.wait(Wait::RmbTimeout).await;
        return Err(ApiError::timeout("context deadline exceeded"));
    }
    Ok(Json(()))
}

async fn get_deployment(
    sim: Arc<Sim>,
    headers: HeaderMap,
    node_id: u32,
    cid: u64,
) -> ApiResult<Json<Deployment>> {
    let call = "get_deployment";
    let twin = sim.session(&headers, call, Some(node_id), None)?;
    reach(&sim, node_id, call).await?;
    let w = sim.world.lock().expect("world lock");
    let rec = find(&w, node_id, cid, twin)?;
    Ok(Json(rec.deployment.clone()))
}

async fn changes(
    sim: Arc<Sim>,
    headers: HeaderMap,
    node_id: u32,
    cid: u64,
) -> ApiResult<Json<Vec<WorkloadChange>>> {
    let call = "deployment_changes";
    let twin = sim.session(&headers, call, Some(node_id), None)?;
    reach(&sim, node_id, call).await?;
    let w = sim.world.lock().expect("world lock");
    let rec = find(&w, node_id, cid, twin)?;
    Ok(Json(rec.changes.clone()))
}

fn find(w: &World, node_id: u32, cid: u64, twin: u32) -> ApiResult<&DeploymentRec> {
    let rec = w
        .deployments
        .get(&cid)
        .filter(|r| r.node_id == node_id)
        .ok_or_else(|| {
            ApiError::not_found(ErrorCode::NotFound, format!("deployment {cid} not found"))
        })?;
    if rec.deployment.twin_id != twin {
        return Err(ApiError::forbidden(
            ErrorCode::Unauthorized,
            "twin id mismatch",
        ));
    }
    Ok(rec)
}

async fn delete_deployment(sim: Arc<Sim>, headers: HeaderMap, node_id: u32) -> ApiResult<Json<()>> {
    sim.session(&headers, "delete_deployment", Some(node_id), None)?;
    Err(ApiError::forbidden(
        ErrorCode::DeletionDisabled,
        "deletion over the api is disabled, please cancel your contract instead",
    ))
}

/// Puts a deployment on its node's queue (starting the node's worker on first use).
pub fn enqueue(sim: &Arc<Sim>, node_id: u32, cid: u64) {
    let mut q = sim.queues.lock().expect("queues lock");
    let tx = q.entry(node_id).or_insert_with(|| {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let weak = Arc::downgrade(sim);
        tokio::spawn(async move {
            // One deployment at a time, in order, like a real node.
            while let Some(cid) = rx.recv().await {
                let Some(sim) = weak.upgrade() else { break };
                process(&sim, cid).await;
            }
        });
        tx
    });
    let _ = tx.send(cid);
}

fn type_order(d: &WorkloadData) -> u8 {
    match d {
        WorkloadData::Zmount(_) => 0,
        WorkloadData::NetworkLight(_) => 1,
        WorkloadData::ZmachineLight(_) => 2,
        WorkloadData::GatewayNameProxy(_) => 3,
    }
}

/// What a workload turned into.
struct Outcome {
    state: WorkloadState,
    message: String,
    data: serde_json::Value,
    /// A new VM whose listeners must be started.
    vm: Option<String>,
}

impl Outcome {
    fn error(message: impl Into<String>) -> Self {
        Outcome {
            state: WorkloadState::Error,
            message: message.into(),
            data: serde_json::Value::Null,
            vm: None,
        }
    }
    fn ok(data: serde_json::Value) -> Self {
        Outcome {
            state: WorkloadState::Ok,
            message: String::new(),
            data,
            vm: None,
        }
    }
}

async fn process(sim: &Arc<Sim>, cid: u64) {
    let order: Vec<(String, WorkloadData, u32)> = {
        let w = sim.world.lock().expect("world lock");
        let Some(rec) = w.deployments.get(&cid) else {
            return;
        };
        let mut v: Vec<_> = rec
            .deployment
            .workloads
            .iter()
            .filter(|wl| wl.result.state == WorkloadState::Init)
            .map(|wl| (wl.name.clone(), wl.data.clone(), rec.node_id))
            .collect();
        v.sort_by_key(|(_, d, _)| type_order(d));
        v
    };
    for (name, data, node_id) in order {
        // A node that is down works nothing; it resumes its queue when it comes back.
        {
            let w = sim.world.lock().expect("world lock");
            if w.nodes.get(&node_id).map(|n| n.status) != Some(NodeStatus::Up) {
                return;
            }
        }
        let wait = match &data {
            WorkloadData::Zmount(_) => sim.timing.of(Wait::Zmount),
            WorkloadData::NetworkLight(_) => sim.timing.of(Wait::Network),
            WorkloadData::ZmachineLight(z) => {
                let first = {
                    let mut w = sim.world.lock().expect("world lock");
                    w.nodes
                        .get_mut(&node_id)
                        .is_some_and(|n| n.images.insert(z.flist.clone()))
                };
                let boot = sim.timing.of(Wait::VmBoot);
                if first {
                    boot + sim.timing.of(Wait::ImagePull)
                } else {
                    boot
                }
            }
            WorkloadData::GatewayNameProxy(_) => sim.timing.of(Wait::Gateway),
        };
        sim.timing.sleep(wait).await;
        let outcome = {
            let mut w = sim.world.lock().expect("world lock");
            if !w.contracts.contains_key(&cid) || !w.deployments.contains_key(&cid) {
                return; // cancelled meanwhile
            }
            evaluate(sim, &mut w, cid, node_id, &name, &data)
        };
        let mut outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, contract = cid, "cannot persist workload");
                return;
            }
        };
        let vm = outcome.vm.take();
        // On instant the address must answer as soon as the workload says ok.
        let slow = vm.as_ref().and_then(|_| {
            match sim.faults.fire(
                Hit::new("slow_reachability", "reachability")
                    .node(Some(node_id))
                    .name(Some(&name)),
            ) {
                Some(FaultKind::SlowReachability { delay_ms }) => {
                    Some(std::time::Duration::from_millis(delay_ms))
                }
                _ => None,
            }
        });
        if let Some(key) = &vm
            && sim.timing.is_instant()
            && slow.is_none()
        {
            crate::vm::start(sim, key).await;
        }
        if let Err(e) = apply(sim, cid, node_id, &name, outcome) {
            tracing::error!(error = %e, contract = cid, "cannot persist workload");
        }
        if let Some(key) = vm
            && (!sim.timing.is_instant() || slow.is_some())
        {
            let sim2 = sim.clone();
            let delay = sim.timing.of(Wait::Reachability) + slow.unwrap_or_default();
            tokio::spawn(async move {
                sim2.timing.sleep(delay).await;
                crate::vm::start(&sim2, &key).await;
            });
        }
    }
}

fn apply(
    sim: &Sim,
    cid: u64,
    node_id: u32,
    name: &str,
    o: Outcome,
) -> Result<(), crate::store::StoreError> {
    let mut w = sim.world.lock().expect("world lock");
    let Some(rec) = w.deployments.get_mut(&cid) else {
        return Ok(());
    };
    if let Some(wl) = rec.deployment.workloads.iter_mut().find(|x| x.name == name) {
        wl.result = WorkloadResult {
            created: now_secs(),
            state: o.state,
            message: o.message,
            data: o.data,
        };
        let ch = change(wl);
        tracing::info!(contract = cid, workload = name, state = ?ch.result.state, message = %ch.result.message, "workload");
        rec.changes.push(ch);
    }
    sim.save_deployment(rec)?;
    sim.report_used(&mut w, node_id);
    Ok(())
}

fn ssd_refusal() -> Outcome {
    Outcome::error("not enough space left in pools of this type ssd")
}

fn evaluate(
    sim: &Sim,
    w: &mut World,
    cid: u64,
    node_id: u32,
    name: &str,
    data: &WorkloadData,
) -> Result<Outcome, crate::store::StoreError> {
    let node = w.nodes.get(&node_id).expect("node of a deployment exists");
    let total = node.cfg.total();
    let domain = node.cfg.domain.clone();
    let reserve = reserves(&total);
    let used = node_used(w, node_id);
    let capacity_fault = |sim: &Sim| {
        sim.faults
            .fire(
                Hit::new("capacity_refusal", "provision")
                    .node(Some(node_id))
                    .name(Some(name)),
            )
            .is_some()
    };
    let rec = w.deployments.get(&cid).expect("checked by caller");
    let twin = rec.deployment.twin_id;
    let state_of = |n: &str| {
        rec.deployment
            .workload(n)
            .map(|x| x.result.state)
            .unwrap_or(WorkloadState::Error)
    };
    let usable_sru = total
        .sru
        .saturating_sub(reserve.sru)
        .saturating_sub(used.sru);
    Ok(match data {
        WorkloadData::Zmount(z) => {
            if capacity_fault(sim) || z.size > usable_sru {
                ssd_refusal()
            } else {
                Outcome::ok(serde_json::json!({ "volume_id": format!("{cid}-{name}") }))
            }
        }
        WorkloadData::NetworkLight(_) => Outcome::ok(serde_json::json!({})),
        WorkloadData::ZmachineLight(z) => {
            let net = &z.network.interfaces[0].network;
            if state_of(net) != WorkloadState::Ok {
                return Ok(Outcome::error(format!("network {net} is not ready")));
            }
            if let Some(m) = z
                .mounts
                .iter()
                .find(|m| state_of(&m.name) != WorkloadState::Ok)
            {
                return Ok(Outcome::error(format!(
                    "failed to mount {}: disk is not ready",
                    m.name
                )));
            }
            let usable_mru = total
                .mru
                .saturating_sub(reserve.mru)
                .saturating_sub(used.mru);
            if capacity_fault(sim) {
                return Ok(ssd_refusal());
            }
            if z.compute_capacity.memory > usable_mru {
                return Ok(Outcome::error(format!(
                    "cannot fulfil required memory size {} bytes out of usable {} bytes",
                    z.compute_capacity.memory, usable_mru
                )));
            }
            if z.size > usable_sru {
                return Ok(ssd_refusal());
            }
            let key_hex = match rec
                .deployment
                .workload(&z.network.mycelium.network)
                .map(|x| &x.data)
            {
                Some(WorkloadData::NetworkLight(n)) => n.mycelium.hex_key.clone(),
                _ => String::new(),
            };
            let Some(myc) = mycelium_ip(&key_hex, &z.network.mycelium.seed) else {
                return Ok(Outcome::error("invalid mycelium seed"));
            };
            if let Some(other) = w.vm_by_mycelium.get(&myc) {
                return Ok(Outcome::error(format!(
                    "mycelium address {myc} already in use by {other}"
                )));
            }
            let key = format!("{cid}/{name}");
            let loopback = sim.cfg.private_network.vm_ip(w.next_vm_index);
            w.next_vm_index += 1;
            let vm = VmRec {
                key: key.clone(),
                contract_id: cid,
                node_id,
                workload: name.to_string(),
                mycelium_ip: myc.clone(),
                loopback_ip: loopback,
                agent_key: z.env.get(AGENT_KEY_ENV).cloned(),
                gate: None,
                engines: vec![],
                ssh_keys: vec![],
                ai_keys: Default::default(),
                install: InstallStatus::default(),
            };
            sim.save_vm(&vm)?;
            w.vm_by_mycelium.insert(myc.clone(), key.clone());
            w.vms.insert(key.clone(), vm);
            sim.save_counters(w)?;
            let console = format!("10.20.{}.1:20001", node_id % 250);
            let without = sim
                .faults
                .fire(
                    Hit::new("result_without_address", "provision")
                        .node(Some(node_id))
                        .name(Some(name)),
                )
                .is_some();
            let data = if without {
                serde_json::json!({ "id": key, "console_url": console })
            } else {
                serde_json::to_value(ZmachineResult {
                    id: key.clone(),
                    ip: z.network.interfaces[0].ip.clone(),
                    mycelium_ip: myc,
                    console_url: console,
                })
                .expect("serialisable")
            };
            let mut o = Outcome::ok(data);
            o.vm = Some(key);
            o
        }
        WorkloadData::GatewayNameProxy(g) => {
            let Some(domain) = domain else {
                return Ok(Outcome::error(
                    "node does not support gateways: no domain configured",
                ));
            };
            let Some(&ncid) = w.names.get(&g.name) else {
                return Ok(Outcome::error(format!(
                    "failed to get name contract for {:?}: ContractNotExists",
                    g.name
                )));
            };
            if w.contracts.get(&ncid).map(|c| c.twin_id) != Some(twin) {
                return Ok(Outcome::error("twin id mismatch"));
            }
            let fqdn = format!("{}.{}", g.name, domain).to_ascii_lowercase();
            if let Some(existing) = w.gateways.get(&fqdn)
                && (existing.contract_id != cid || existing.workload != name)
            {
                return Ok(Outcome::error(format!("domain already registered: {fqdn}")));
            }
            let gw = GatewayRec {
                fqdn: fqdn.clone(),
                name: g.name.clone(),
                contract_id: cid,
                workload: name.to_string(),
                node_id,
                backend: g.backends[0].clone(),
            };
            sim.store.put("gateway", &fqdn, &gw)?;
            w.gateways.insert(fqdn.clone(), gw);
            let hit = |kind| {
                sim.faults
                    .fire(
                        Hit::new(kind, "provision")
                            .node(Some(node_id))
                            .name(Some(&g.name)),
                    )
                    .is_some()
            };
            let data = if hit("result_without_address") {
                serde_json::json!({})
            } else {
                serde_json::to_value(GatewayResult { fqdn }).expect("serialisable")
            };
            if hit("gateway_failed_but_created") {
                // The route is up, but the report says otherwise (seen on the real grid).
                Outcome {
                    state: WorkloadState::Error,
                    message: "failed to deploy gateway: context deadline exceeded".into(),
                    data,
                    vm: None,
                }
            } else {
                Outcome::ok(data)
            }
        }
    })
}

/// Removes a cancelled node contract's workloads, after the node's clean-up delay.
pub async fn after_node_contract_cancelled(sim: &Arc<Sim>, cid: u64) {
    if sim.timing.is_instant() {
        cleanup_deployment(sim, cid);
    } else {
        let sim = sim.clone();
        tokio::spawn(async move {
            sim.timing.wait(Wait::CancelCleanup).await;
            cleanup_deployment(&sim, cid);
        });
    }
}

fn cleanup_deployment(sim: &Arc<Sim>, cid: u64) {
    let stopped: Vec<String> = {
        let mut w = sim.world.lock().expect("world lock");
        let Some(rec) = w.deployments.remove(&cid) else {
            return;
        };
        let _ = sim.store.delete("deployment", &cid.to_string());
        let keys: Vec<String> = w
            .vms
            .values()
            .filter(|v| v.contract_id == cid)
            .map(|v| v.key.clone())
            .collect();
        for k in &keys {
            if let Some(v) = w.vms.remove(k) {
                w.vm_by_mycelium.remove(&v.mycelium_ip);
            }
            let _ = sim.store.delete("vm", k);
        }
        let gws: Vec<String> = w
            .gateways
            .values()
            .filter(|g| g.contract_id == cid)
            .map(|g| g.fqdn.clone())
            .collect();
        for g in gws {
            w.gateways.remove(&g);
            let _ = sim.store.delete("gateway", &g);
        }
        sim.report_used(&mut w, rec.node_id);
        keys
    };
    for k in stopped {
        sim.vms.stop(&k);
    }
    tracing::info!(
        contract = cid,
        "node removed the workloads of a cancelled contract"
    );
}

/// Drops gateway routes whose name contract is gone, after the node's re-sync delay.
pub async fn after_name_cancelled(sim: &Arc<Sim>, name: String) {
    if sim.timing.is_instant() {
        drop_name(sim, &name);
    } else {
        let sim = sim.clone();
        tokio::spawn(async move {
            sim.timing.wait(Wait::NameDrop).await;
            drop_name(&sim, &name);
        });
    }
}

fn drop_name(sim: &Sim, name: &str) {
    let mut w = sim.world.lock().expect("world lock");
    let owner = w
        .names
        .get(name)
        .and_then(|id| w.contracts.get(id))
        .map(|c| c.twin_id);
    let gone: Vec<GatewayRec> = w
        .gateways
        .values()
        .filter(|g| g.name == name)
        .filter(|g| {
            // A name registered again by the same twin keeps its route.
            let twin = w
                .deployments
                .get(&g.contract_id)
                .map(|d| d.deployment.twin_id);
            owner.is_none() || owner != twin
        })
        .cloned()
        .collect();
    for g in gone {
        w.gateways.remove(&g.fqdn);
        let _ = sim.store.delete("gateway", &g.fqdn);
        if let Some(rec) = w.deployments.get_mut(&g.contract_id) {
            if let Some(wl) = rec
                .deployment
                .workloads
                .iter_mut()
                .find(|x| x.name == g.workload)
            {
                wl.result.state = WorkloadState::Deleted;
                wl.result.message = "name contract is gone".into();
                wl.result.created = now_secs();
                let ch = change(wl);
                rec.changes.push(ch);
            }
            let _ = sim.save_deployment(rec);
        }
        tracing::info!(fqdn = %g.fqdn, "gateway dropped: name contract gone");
    }
}

/// After a start: re-queue unfinished deployments and reopen the VMs' listeners.
pub async fn resume(sim: &Arc<Sim>) {
    let nodes: Vec<u32> = sim
        .world
        .lock()
        .expect("world lock")
        .nodes
        .keys()
        .copied()
        .collect();
    for n in nodes {
        crate::vm::start_node(sim, n).await;
        resume_node(sim, n);
    }
}

/// Re-queues the unfinished deployments of a node.
pub fn resume_node(sim: &Arc<Sim>, node_id: u32) {
    let pending: Vec<u64> = {
        let w = sim.world.lock().expect("world lock");
        w.deployments
            .values()
            .filter(|d| d.node_id == node_id)
            .filter(|d| {
                d.deployment
                    .workloads
                    .iter()
                    .any(|x| x.result.state == WorkloadState::Init)
            })
            .map(|d| d.deployment.contract_id)
            .collect()
    };
    for cid in pending {
        enqueue(sim, node_id, cid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_forms() {
        assert_eq!(
            backend_host_port("http://[5a2:1::ff0f:1:2:3]:8080"),
            Some(("5a2:1::ff0f:1:2:3".into(), 8080))
        );
        assert_eq!(
            backend_host_port("http://127.77.0.2:8080/"),
            Some(("127.77.0.2".into(), 8080))
        );
        assert_eq!(backend_host_port("https://x:1"), None);
        assert_eq!(backend_host_port("http://x"), None);
    }

    #[test]
    fn workload_names() {
        assert!(valid_workload_name("vm_1"));
        assert!(!valid_workload_name("vm-1"));
        assert!(!valid_workload_name(&"a".repeat(37)));
    }
}
