//! Scenario 7, recovery: N testers created at once; when about half are Ready the controller is
//! killed with SIGKILL and started again. Time from the kill to all Ready, then gridshim's
//! `/inspect` must show exactly N VMs and N names, none twice.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use e2e::forge::Forge;

use crate::{
    Ctx,
    report::Report,
    stack::{Profile, Stack, nodes},
};

const S: &str = "7 recovery";

/// Runs the scenario.
pub async fn run(ctx: &Ctx, oidc: &'static Forge, r: &mut Report) -> anyhow::Result<()> {
    let n = ctx.settings.count(500, 20);
    let mut env = ctx.settings.controller_env.clone();
    env.push(("RESYNC".into(), "60s".into()));
    let mut s = Stack::start(
        "bench-recovery",
        &nodes(25, 1000, 256),
        Profile::Instant,
        // 2 GiB: zos's 500 MiB root minimum and a data disk (the HostPool's CEL rule).
        (2, 1),
        oidc,
        &env,
    )
    .await?;
    s.make_accounts(0, n, crate::stack::ACCOUNTS_IN_FLIGHT)
        .await?;
    let start = Instant::now();
    // Create in the background, so the kill can land while creates are still in flight too.
    let creating = s.create_testers(0, n, 64);
    let watch_half = s.tracker.wait_ready(n / 2, Duration::from_secs(900));
    let (created, _) = tokio::join!(creating, watch_half);
    created?;
    let ready_at_kill = s.tracker.ready_now();
    let kill = Instant::now();
    tokio::task::block_in_place(|| s.controller.kill_and_restart())?;
    let restarted = kill.elapsed();
    let all = s.tracker.wait_ready(n, Duration::from_secs(1200)).await;
    let reconverged = kill.elapsed();
    r.num(S, "testers", n as f64, "created at once");
    r.num(
        S,
        "Ready when killed",
        ready_at_kill as f64,
        &format!("after {:.1} s", (kill - start).as_secs_f64()),
    );
    r.num(S, "restart to ledger rebuilt", restarted.as_secs_f64(), "s");
    r.num(
        S,
        "kill → all Ready",
        reconverged.as_secs_f64(),
        if all { "s" } else { "s (NOT all Ready)" },
    );
    r.num(S, "create → all Ready", start.elapsed().as_secs_f64(), "s");
    if !all {
        r.violation(
            S,
            format!(
                "only {} of {n} Ready 20 min after the restart",
                s.tracker.ready_now()
            ),
        );
    }
    let inspect = s.grid.admin.inspect().await?;
    let vm_contracts: HashSet<u64> = inspect.vms.iter().map(|v| v.contract_id).collect();
    let addresses: HashSet<&str> = inspect.vms.iter().map(|v| v.loopback_ip.as_str()).collect();
    let names: HashSet<&str> = inspect.names.iter().map(|v| v.name.as_str()).collect();
    // The contracts the testers recorded: every VM must be one of them, one per tester.
    let recorded: HashSet<u64> = s
        .tracker
        .snapshot()
        .values()
        .filter_map(|x| {
            x.last
                .as_ref()?
                .status
                .as_ref()?
                .machine
                .as_ref()?
                .contract_id
        })
        .collect();
    let orphans = vm_contracts.difference(&recorded).count();
    r.num(
        S,
        "VMs on the grid",
        inspect.vms.len() as f64,
        &format!(
            "({} distinct contracts, {} distinct addresses)",
            vm_contracts.len(),
            addresses.len()
        ),
    );
    r.num(
        S,
        "names on the grid",
        inspect.names.len() as f64,
        &format!("({} distinct)", names.len()),
    );
    r.num(S, "VMs no tester records", orphans as f64, "");
    if inspect.vms.len() != n
        || vm_contracts.len() != n
        || addresses.len() != n
        || inspect.names.len() != n
        || names.len() != n
        || orphans != 0
    {
        r.violation(
            S,
            format!(
                "expected {n} VMs and {n} names: {} VMs ({} contracts, {} addresses, {orphans} not recorded by a tester), {} names ({} distinct)",
                inspect.vms.len(),
                vm_contracts.len(),
                addresses.len(),
                inspect.names.len(),
                names.len()
            ),
        );
    }
    Ok(())
}
