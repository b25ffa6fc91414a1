//! Timing profiles: how long the grid takes for each thing (GRID.md "Timings").
//!
//! `instant` makes every wait zero, so the e2e suite and the 1,000-tester benchmarks run in
//! milliseconds. `realistic` uses the real grid's figures, divided by `--time-scale`.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A timing profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// No waits at all.
    #[default]
    Instant,
    /// The real grid's timings, divided by the time scale.
    Realistic,
}

/// Named durations of the real grid, in seconds: (low, high); a value is drawn uniformly.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// A chain block (every chain call waits for one).
    Block,
    /// The message bus gives up on a node call (a timeout fault answers after this).
    RmbTimeout,
    /// The chain client gives up waiting for a block.
    ChainTimeout,
    /// A zmount is created.
    Zmount,
    /// A network-light is set up.
    Network,
    /// A micro VM boots with its image cached.
    VmBoot,
    /// The first pull of an image on a node.
    ImagePull,
    /// A gateway name is set up.
    Gateway,
    /// A new VM's private-network route appears.
    Reachability,
    /// Download of one app during install.
    InstallDownload,
    /// Configuration and start of one app during install.
    InstallConfigure,
    /// The proxy's used figures trail the nodes' reports.
    ProxyLag,
    /// The proxy keeps a silent node `up` this long.
    ProxyDownGrace,
    /// A node removes the workloads of a cancelled contract.
    CancelCleanup,
    /// A node drops gateway names whose contract is gone.
    NameDrop,
}

impl Wait {
    /// Real-grid bounds in seconds.
    fn real_secs(self) -> (f64, f64) {
        match self {
            Wait::Block => (6.0, 6.0),
            Wait::RmbTimeout => (60.0, 60.0),
            Wait::ChainTimeout => (30.0, 30.0),
            Wait::Zmount => (1.0, 3.0),
            Wait::Network => (2.0, 6.0),
            Wait::VmBoot => (30.0, 60.0),
            Wait::ImagePull => (300.0, 420.0),
            Wait::Gateway => (10.0, 60.0),
            Wait::Reachability => (60.0, 300.0),
            // Downloads were ~30 s of a ~6 min setup; the rest is configuring and starting.
            Wait::InstallDownload => (20.0, 40.0),
            Wait::InstallConfigure => (200.0, 320.0),
            Wait::ProxyLag => (60.0, 60.0),
            Wait::ProxyDownGrace => (80.0 * 60.0, 80.0 * 60.0),
            Wait::CancelCleanup => (60.0, 600.0),
            Wait::NameDrop => (60.0, 600.0),
        }
    }
}

/// One draw of a named duration.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Draw {
    /// What the simulator sleeps: the real-grid figure divided by the time scale (zero on
    /// `instant`).
    pub sleep: Duration,
    /// The real-grid seconds drawn, before dividing by the time scale; `None` when nothing was
    /// drawn (`instant`, or the proxy lag set apart from the profile).
    pub real_secs: Option<f64>,
}

/// The clock of the simulation.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Profile.
    pub profile: Profile,
    /// Realistic durations are divided by this.
    pub scale: f64,
    /// The proxy's lag when set apart from the profile (see `Config::proxy_lag_ms`).
    pub proxy_lag: Option<Duration>,
}

impl Timing {
    /// A clock.
    pub fn new(profile: Profile, scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        Timing {
            profile,
            scale,
            proxy_lag: None,
        }
    }

    /// The same clock with the proxy's lag set apart from the profile.
    pub fn with_proxy_lag(mut self, lag: Option<Duration>) -> Self {
        self.proxy_lag = lag;
        self
    }

    /// True when nothing waits.
    pub fn is_instant(&self) -> bool {
        self.profile == Profile::Instant
    }

    /// Scales a real-grid duration (zero on `instant`).
    pub fn scaled(&self, real: Duration) -> Duration {
        match self.profile {
            Profile::Instant => Duration::ZERO,
            Profile::Realistic => real.div_f64(self.scale),
        }
    }

    /// A draw of a named duration.
    pub fn of(&self, w: Wait) -> Duration {
        self.draw(w).sleep
    }

    /// A draw of a named duration, with the real-grid figure it stands for (so the simulator
    /// can record what it drew: see `state::waits`).
    pub fn draw(&self, w: Wait) -> Draw {
        if let (Wait::ProxyLag, Some(lag)) = (w, self.proxy_lag) {
            return Draw {
                sleep: lag,
                real_secs: None,
            };
        }
        if self.is_instant() {
            return Draw::default();
        }
        let (lo, hi) = w.real_secs();
        let secs = if hi > lo {
            rand::rng().random_range(lo..hi)
        } else {
            lo
        };
        Draw {
            sleep: self.scaled(Duration::from_secs_f64(secs)),
            real_secs: Some(secs),
        }
    }

    /// Waits a named duration (returns at once when it is zero).
    pub async fn wait(&self, w: Wait) {
        self.sleep(self.of(w)).await;
    }

    /// Sleeps unless zero (a zero sleep would still yield, which instant does not need).
    pub async fn sleep(&self, d: Duration) {
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_is_zero_and_realistic_scales() {
        let i = Timing::new(Profile::Instant, 1.0);
        assert_eq!(i.of(Wait::ImagePull), Duration::ZERO);
        let r = Timing::new(Profile::Realistic, 60.0);
        assert_eq!(r.of(Wait::Block), Duration::from_millis(100));
        let d = r.of(Wait::VmBoot);
        assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(1));
    }

    #[test]
    fn a_draw_keeps_the_real_grid_seconds_it_stands_for() {
        assert_eq!(
            Timing::new(Profile::Instant, 60.0).draw(Wait::Reachability),
            Draw::default()
        );
        let r = Timing::new(Profile::Realistic, 60.0);
        for _ in 0..20 {
            let d = r.draw(Wait::Reachability);
            let real = d.real_secs.expect("realistic draws");
            assert!((60.0..=300.0).contains(&real), "{real}");
            assert!((d.sleep.as_secs_f64() - real / 60.0).abs() < 1e-6);
        }
        let lagged = r.with_proxy_lag(Some(Duration::from_secs(1)));
        assert_eq!(lagged.draw(Wait::ProxyLag).real_secs, None);
    }
}
