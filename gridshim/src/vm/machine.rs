//! A simulated VM's machine, for the product's agent ([`agent::machine::Machine`]): its files
//! live under a directory of its own, its services are simulated (a start takes the profile's
//! configure time and can lose its start-up race; health answers the `app_unhealthy` fault).

use std::path::{Path, PathBuf};
use std::sync::Weak;

use agent::machine::Machine;
use futures::future::BoxFuture;
use rand::Rng as _;

use crate::faults::Hit;
use crate::state::Sim;
use crate::timing::Wait;

/// One simulated VM's machine.
#[derive(Debug)]
pub struct SimMachine {
    root: PathBuf,
    sim: Weak<Sim>,
}

impl SimMachine {
    /// The machine rooted at `root`, its services simulated by `sim`.
    pub fn new(root: PathBuf, sim: Weak<Sim>) -> Self {
        SimMachine { root, sim }
    }
}

impl Machine for SimMachine {
    fn root(&self) -> &Path {
        &self.root
    }

    fn start_service<'a>(
        &'a self,
        app: &'a str,
        _version: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let sim = self.sim.upgrade().ok_or("the grid stopped")?;
            sim.timing.wait(Wait::InstallConfigure).await;
            let p = sim.cfg.install.start_race_probability.clamp(0.0, 1.0);
            let lost = sim
                .faults
                .fire(Hit::new("service_start_race", "install").name(Some(app)))
                .is_some()
                || (p > 0.0 && rand::rng().random_bool(p));
            if lost {
                return Err(format!(
                    "{app}.service lost the start-up race (address already in use)"
                ));
            }
            Ok(())
        })
    }

    fn service_health<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let sim = self.sim.upgrade().ok_or("the grid stopped")?;
            if sim
                .faults
                .fire(Hit::new("app_unhealthy", "health").name(Some(app)))
                .is_some()
            {
                return Err("service does not answer".into());
            }
            Ok(())
        })
    }
}
