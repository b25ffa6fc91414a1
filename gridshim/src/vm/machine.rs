//! A simulated VM's machine, for the product's agent ([`agent::machine::Machine`]): its files
//! live under a directory of its own, its services are simulated (a start takes the profile's
//! configure time, recorded on the VM, and can lose its start-up race; health answers the
//! `app_unhealthy` fault).

use std::path::{Path, PathBuf};
use std::sync::Weak;

use agent::machine::Machine;
use futures::future::BoxFuture;
use rand::Rng as _;

use crate::faults::Hit;
use crate::state::Sim;
use crate::timing::Wait;
use crate::wire::WaitFor;

/// One simulated VM's machine.
#[derive(Debug)]
pub struct SimMachine {
    /// The VM's key (`contract/workload`), to record the waits drawn on it.
    key: String,
    root: PathBuf,
    sim: Weak<Sim>,
}

impl SimMachine {
    /// The machine of the VM `key`, rooted at `root`, its services simulated by `sim`.
    pub fn new(key: &str, root: PathBuf, sim: Weak<Sim>) -> Self {
        SimMachine {
            key: key.to_string(),
            root,
            sim,
        }
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
            let configure = sim.timing.draw(Wait::InstallConfigure);
            sim.note_vm_wait(&self.key, WaitFor::InstallConfigure, Some(app), configure);
            sim.timing.sleep(configure.sleep).await;
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
