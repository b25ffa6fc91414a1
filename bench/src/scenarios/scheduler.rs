//! Scenario 6, the scheduler: the placement decision timed in-process over 1,000 nodes, and a
//! real run of 200 testers created at once on a pool with room for 150, checked for
//! over-commitment node by node.

use std::{
    collections::BTreeMap,
    hint::black_box,
    time::{Duration, Instant},
};

use controller::{
    resources::PlacementPolicy,
    scheduler::{Holding, Ledger, Need, NodeView, place},
};
use e2e::forge::Forge;
use serde_json::json;

use crate::{
    Ctx,
    report::Report,
    stack::{Profile, Stack, has, nodes, reason},
};

const S: &str = "6 scheduler";
const GIB: u64 = 1 << 30;

/// Times `rooms` + `place` (what the controller does per decision) and `place` alone.
pub fn decision_time(r: &mut Report) {
    let views: Vec<NodeView> = (0..1000u32)
        .map(|i| NodeView {
            node_id: i + 1,
            online: i % 17 != 0,
            domain: Some(format!("n{i}.grid.localhost")),
            free_memory: u64::from(64 + i % 200) * GIB,
            free_disk: u64::from(200 + (i * 37) % 800) * GIB,
        })
        .collect();
    let need = Need::from_gib(1, 4, 50);
    let mut ledger = Ledger::default();
    // A ledger holding 1,000 placements, half not yet counted by the listing.
    for t in 0..1000u32 {
        ledger.hold(
            &format!("uid-{t}"),
            Holding {
                node_id: t % 1000 + 1,
                need,
                counted_after: (t % 2 == 0).then(Instant::now),
            },
        );
    }
    for (label, policy) in [
        ("spread", PlacementPolicy::Spread),
        ("binpack", PlacementPolicy::Binpack),
    ] {
        let (ns, iters) = time_per_op(|| {
            let rooms = ledger.rooms(black_box(&views), Instant::now());
            black_box(place(&rooms, need, policy)).ok();
        });
        r.num(
            S,
            &format!("rooms+place, 1,000 nodes, 1,000 holdings ({label})"),
            ns / 1000.0,
            &format!("µs/op ({iters} ops)"),
        );
    }
    let rooms = ledger.rooms(&views, Instant::now());
    let (ns, iters) = time_per_op(|| {
        black_box(place(black_box(&rooms), need, PlacementPolicy::Spread)).ok();
    });
    r.num(
        S,
        "place only, 1,000 nodes (spread)",
        ns / 1000.0,
        &format!("µs/op ({iters} ops)"),
    );
}

fn time_per_op(mut f: impl FnMut()) -> (f64, u64) {
    for _ in 0..50 {
        f();
    }
    let start = Instant::now();
    let mut iters = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        for _ in 0..20 {
            f();
        }
        iters += 20;
    }
    (start.elapsed().as_nanos() as f64 / iters as f64, iters)
}

/// 200 testers at once on 15 nodes with room for 10 each: 150 Ready, 50 `Scheduled=False`,
/// and no node holding more than its free disk.
///
/// Each tester needs 25 GiB disk and 1 GiB memory; a node has 290 GiB SSD (270 free after the
/// grid's 20 GiB reserve), so exactly 10 fit per node: the run tests the ledger (placements
/// made from one listing before the grid counts them), the grid itself refuses nothing.
pub async fn overcommit(ctx: &Ctx, oidc: &'static Forge, r: &mut Report) -> anyhow::Result<()> {
    const NODES: u32 = 15;
    const FREE_GIB: u64 = 270;
    const TESTERS: usize = 200;
    const ROOM: usize = 150;
    let mut env = ctx.settings.controller_env.clone();
    env.push(("RESYNC".into(), "60s".into()));
    let s = Stack::start(
        "bench-overcommit",
        &nodes(NODES, FREE_GIB + 20, 64),
        Profile::Instant,
        (25, 1),
        oidc,
        &env,
    )
    .await?;
    s.make_accounts(0, TESTERS, crate::stack::ACCOUNTS_IN_FLIGHT)
        .await?;
    let start = Instant::now();
    s.create_testers(0, TESTERS, 64).await?;
    let settled = s
        .tracker
        .wait(Duration::from_secs(600), || {
            s.tracker.ready_now() >= ROOM
                && s.tracker.count(|t| has(t, "Scheduled", "False")) >= TESTERS - ROOM
        })
        .await;
    r.num(
        S,
        "overcommit run: settled after",
        start.elapsed().as_secs_f64(),
        if settled { "s" } else { "s (did NOT settle)" },
    );
    // A few more seconds: anything that would still be placed wrongly shows up now.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let seen = s.tracker.snapshot();
    let ready = s.tracker.ready_now();
    let unscheduled = s.tracker.count(|t| has(t, "Scheduled", "False"));
    let mut reasons: BTreeMap<String, f64> = BTreeMap::new();
    let mut per_node: BTreeMap<u32, (u64, usize)> = BTreeMap::new();
    for t in seen.values().filter_map(|x| x.last.as_ref()) {
        if has(t, "Scheduled", "False") {
            *reasons
                .entry(reason(t, "Scheduled").unwrap_or_default())
                .or_default() += 1.0;
        }
        if let Some(p) = t.status.as_ref().and_then(|s| s.placement.as_ref()) {
            let e = per_node.entry(p.node_id).or_default();
            e.0 += p.disk_bytes;
            e.1 += 1;
        }
    }
    r.num(
        S,
        "overcommit run: testers / room",
        TESTERS as f64,
        &format!("created at once, room for {ROOM} ({NODES} nodes × 10)"),
    );
    r.num(S, "overcommit run: Ready", ready as f64, "");
    r.num(S, "overcommit run: Scheduled=False", unscheduled as f64, "");
    r.val(
        S,
        "overcommit run: unscheduled reasons",
        crate::report::map(&reasons),
        "",
    );
    let max = per_node.values().map(|v| v.1).max().unwrap_or(0);
    r.num(
        S,
        "overcommit run: max testers on a node",
        max as f64,
        "(room 10)",
    );
    let over: Vec<String> = per_node
        .iter()
        .filter(|(_, (disk, _))| *disk > FREE_GIB * GIB)
        .map(|(id, (disk, c))| {
            format!(
                "node {id}: {c} testers, {} GiB > {FREE_GIB} GiB",
                disk / GIB
            )
        })
        .collect();
    // The grid's own view: VMs per node.
    let inspect = s.grid.admin.inspect().await?;
    let mut vms: BTreeMap<u32, usize> = BTreeMap::new();
    for vm in &inspect.vms {
        *vms.entry(vm.node_id).or_default() += 1;
    }
    let vm_max = vms.values().copied().max().unwrap_or(0);
    r.num(
        S,
        "overcommit run: VMs on the grid / max per node",
        inspect.vms.len() as f64,
        &format!("/ {vm_max}"),
    );
    r.val(
        S,
        "overcommit run: over-committed nodes",
        json!(over.len()),
        "",
    );
    if !over.is_empty() {
        r.violation(S, format!("over-committed: {}", over.join("; ")));
    }
    if ready > ROOM || vm_max > 10 || inspect.vms.len() > ROOM {
        r.violation(
            S,
            format!(
                "more placed than fits: {ready} Ready, {} VMs, {vm_max} on one node",
                inspect.vms.len()
            ),
        );
    }
    Ok(())
}
