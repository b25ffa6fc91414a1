//! The waits gridshim draws on a VM's and a gateway name's way to ready, as `/inspect` shows
//! them: none on `instant`; on `realistic`, every one in real-grid seconds (what a benchmark
//! needs to compute the grid's own floor).

mod common;

use common::*;

/// A VM with an install of two apps, and a name routed to it; returns the inspection.
async fn onboard(s: &Shim) -> Inspection {
    let (_, vm) = vm(&s.us, 11, "k").await;
    eventually(|| s.us.agent_config(&vm)).await;
    s.us.agent_start_install(
        &vm,
        &InstallRequest {
            channel: Channel::Stable,
            apps: vec!["gateway".into(), "cockpit".into()],
            index_url: s.index_url(),
        },
    )
    .await
    .unwrap();
    let st = eventually(|| async {
        let st = s.us.agent_install_status(&vm).await?;
        match st.state {
            InstallState::Succeeded | InstallState::Failed => Ok(st),
            _ => Err(GridError::RetryLater {
                code: ErrorCode::Busy,
                message: "running".into(),
            }),
        }
    })
    .await;
    assert_eq!(st.state, InstallState::Succeeded);
    s.us.create_name_contract("waits01").await.unwrap();
    let mut gw = gw_deployment(US, "waits01", &format!("http://[{}]:8080", vm.mycelium_ip));
    let c = submit(&s.us, 11, &mut gw, "").await.unwrap();
    assert!(settled(&s.us, 11, c).await.all_ok());
    s.admin.inspect().await.unwrap()
}

fn kinds(w: &[DrawnWait]) -> Vec<WaitFor> {
    w.iter().map(|d| d.wait).collect()
}

#[tokio::test]
async fn instant_records_no_waits() {
    let s = shim("").await;
    let insp = onboard(&s).await;
    assert!(insp.vms[0].waits.is_empty(), "{:?}", insp.vms[0].waits);
    assert!(insp.gateways[0].waits.is_empty());
    assert_eq!(insp.gateways[0].name, "waits01");
}

#[tokio::test]
async fn realistic_records_each_wait_in_real_grid_seconds() {
    // 6000× faster than the real grid: a block is 1 ms, a first image pull about 60 ms.
    let (mut cfg, _) = config("");
    cfg.profile = gridshim::timing::Profile::Realistic;
    cfg.time_scale = 6000.0;
    let s = shim_cfg(cfg, None, false).await;
    let insp = onboard(&s).await;

    let vm = &insp.vms[0].waits;
    assert_eq!(
        kinds(&vm[..6]),
        [
            WaitFor::NodeContractBlock,
            WaitFor::Zmount,
            WaitFor::Network,
            WaitFor::ImagePull,
            WaitFor::VmBoot,
            WaitFor::Reachability,
        ],
        "{vm:?}"
    );
    // Real-grid seconds within the profile's bounds, not the scaled sleeps (milliseconds).
    let bounds = |w: WaitFor| match w {
        WaitFor::NodeContractBlock | WaitFor::NameContractBlock => (6.0, 6.0),
        WaitFor::Zmount => (1.0, 3.0),
        WaitFor::Network => (2.0, 6.0),
        WaitFor::ImagePull => (300.0, 420.0),
        WaitFor::VmBoot => (30.0, 60.0),
        WaitFor::Reachability => (60.0, 300.0),
        WaitFor::InstallDownload => (20.0, 40.0),
        WaitFor::InstallConfigure => (200.0, 320.0),
        WaitFor::Gateway => (10.0, 60.0),
    };
    let all = vm.iter().chain(&insp.gateways[0].waits);
    for d in all {
        let (lo, hi) = bounds(d.wait);
        assert!(d.secs >= lo && d.secs <= hi, "{d:?}");
    }
    // The install: one download and at least one configure per app, each naming its app.
    for app in ["gateway", "cockpit"] {
        let of = |w: WaitFor| {
            vm.iter()
                .filter(|d| d.wait == w && d.app.as_deref() == Some(app))
                .count()
        };
        assert_eq!(of(WaitFor::InstallDownload), 1, "{app}: {vm:?}");
        assert!(of(WaitFor::InstallConfigure) >= 1, "{app}: {vm:?}");
    }

    let gw = &insp.gateways[0];
    assert_eq!(gw.name, "waits01");
    assert_eq!(
        kinds(&gw.waits),
        [
            WaitFor::NameContractBlock,
            WaitFor::NodeContractBlock,
            WaitFor::Gateway
        ]
    );
    s.running.shutdown().await;
}
