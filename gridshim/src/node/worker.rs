//! Each node's queue: deployments worked one at a time, workloads in zos's order, capacity
//! enforced with the node's own texts, results and state history; resuming the queues after a
//! restart or when a node comes back (clean-up after a cancel is in `cleanup`).

use std::sync::Arc;

use crate::faults::Hit;
use crate::prelude::*;
use crate::state::{GatewayRec, Sim, VmRec, World, node_used, now_secs};
use crate::timing::{Draw, Wait};
use crate::wire::*;

use super::change;

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
        let draws = draw_waits(sim, node_id, &data);
        if !sim.timing.is_instant() {
            let mut w = sim.world.lock().expect("world lock");
            if w.contracts.contains_key(&cid) {
                for (what, d) in &draws {
                    w.pending_waits.contract(cid, *what, *d);
                }
            }
        }
        sim.timing
            .sleep(draws.iter().map(|(_, d)| d.sleep).sum())
            .await;
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
            let reach = sim.timing.draw(Wait::Reachability);
            sim.note_vm_wait(&key, WaitFor::Reachability, None, reach);
            let delay = reach.sleep + slow.unwrap_or_default();
            tokio::spawn(async move {
                sim2.timing.sleep(delay).await;
                crate::vm::start(&sim2, &key).await;
            });
        }
    }
}

/// The waits a workload takes on its node, in order: a VM's first image pull on the node, then
/// its boot; the others one each.
fn draw_waits(sim: &Sim, node_id: u32, data: &WorkloadData) -> Vec<(WaitFor, Draw)> {
    let one = |what, w| vec![(what, sim.timing.draw(w))];
    match data {
        WorkloadData::Zmount(_) => one(WaitFor::Zmount, Wait::Zmount),
        WorkloadData::NetworkLight(_) => one(WaitFor::Network, Wait::Network),
        WorkloadData::ZmachineLight(z) => {
            let first = {
                let mut w = sim.world.lock().expect("world lock");
                w.nodes
                    .get_mut(&node_id)
                    .is_some_and(|n| n.images.insert(z.flist.clone()))
            };
            let mut draws = Vec::with_capacity(2);
            if first {
                draws.push((WaitFor::ImagePull, sim.timing.draw(Wait::ImagePull)));
            }
            draws.push((WaitFor::VmBoot, sim.timing.draw(Wait::VmBoot)));
            draws
        }
        WorkloadData::GatewayNameProxy(_) => one(WaitFor::Gateway, Wait::Gateway),
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
                controller_key: z.env.get(CONTROLLER_KEY_ENV).cloned(),
                machine_id: z.env.get(MACHINE_ID_ENV).cloned(),
                waits: w.pending_waits.for_vm(cid),
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
                waits: w.pending_waits.for_gateway(&g.name, cid),
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
