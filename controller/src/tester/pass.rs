//! One reconcile pass over a Tester: the working copy of its status, condition setting, and the
//! single place where status is written and Events are published.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use serde_json::json;

use crate::{
    context::Context,
    error::{Error, KubeContext, Result},
    resources::{ConditionExt, ManagementPolicy, Tester, TesterStatus, find_condition},
};

/// Condition types of a Tester, in step order.
pub mod conditions {
    /// The tester's account exists at the Forge (made for them when `accountType: New`).
    pub const ACCOUNT_READY: &str = "AccountReady";
    /// A node was chosen by real free disk and memory.
    pub const SCHEDULED: &str = "Scheduled";
    /// The VM is deployed and answers on the private network.
    pub const MACHINE_READY: &str = "MachineReady";
    /// The public gateway name routes to the VM.
    pub const GATEWAY_READY: &str = "GatewayReady";
    /// The tester's own OAuth2 application exists at the Forge, its secret in a Secret.
    pub const SIGN_IN_CLIENT_READY: &str = "SignInClientReady";
    /// The sign-in gate is configured and proven to work.
    pub const GATE_SECURED: &str = "GateSecured";
    /// The engine token is registered and proven; keys and access are on the machine.
    pub const TOKENS_REGISTERED: &str = "TokensRegistered";
    /// The app stack is installed from the chosen channel.
    pub const INSTALLED: &str = "Installed";
    /// Everything above holds, checked in this pass.
    pub const READY: &str = "Ready";
    /// The welcome email went out (or why not).
    pub const WELCOME_EMAIL_SENT: &str = "WelcomeEmailSent";
    /// The release catalog has newer versions than those installed.
    pub const UPDATE_AVAILABLE: &str = "UpdateAvailable";
    /// Every installed app answers its health check (not required for `Ready`: the machine
    /// and sign-in still work when an app is down).
    pub const APPS_HEALTHY: &str = "AppsHealthy";
    /// The operator stopped the controller from touching this tester (present only once it
    /// has been paused).
    pub const PAUSED: &str = "Paused";

    /// The conditions `Ready` requires, in order.
    pub const REQUIRED: [&str; 8] = [
        ACCOUNT_READY,
        SCHEDULED,
        MACHINE_READY,
        GATEWAY_READY,
        SIGN_IN_CLIENT_READY,
        GATE_SECURED,
        TOKENS_REGISTERED,
        INSTALLED,
    ];
    /// Every condition a Tester carries from its first reconcile.
    pub const ALL: [&str; 11] = [
        ACCOUNT_READY,
        SCHEDULED,
        MACHINE_READY,
        GATEWAY_READY,
        SIGN_IN_CLIENT_READY,
        GATE_SECURED,
        TOKENS_REGISTERED,
        INSTALLED,
        READY,
        WELCOME_EMAIL_SENT,
        UPDATE_AVAILABLE,
    ];
}

/// The field manager of every write the controller makes.
pub const MANAGER: &str = "sandbox-controller";

/// A pass over one Tester.
pub struct Pass<'a> {
    /// Shared context.
    pub ctx: &'a Context,
    /// The Tester as the watch delivered it.
    pub tester: &'a Tester,
    /// Its namespace.
    pub ns: String,
    /// Its name.
    pub name: String,
    /// Its UID: the key of everything the controller makes for it on the grid.
    pub uid: String,
    /// The status being built.
    pub status: TesterStatus,
    written: TesterStatus,
    /// The version of the object this pass's writes build on: a pass that started from a stale
    /// cached copy must not write its view of the status over a newer one.
    resource_version: Option<String>,
    events: Vec<Event>,
    /// What the machine's agent reported in this pass, by its address: read once, shared by
    /// the steps, forgotten when a step changes the machine.
    pub agent_view: Option<(String, gridapi::agent::AgentConfigView)>,
    /// The tester's sign-in client as the `SignInClientReady` step found it in this pass, for
    /// the gate step.
    pub sign_in: Option<SignIn>,
}

/// A tester's OAuth2 client at the Forge. `Debug` shows no secret.
#[derive(Clone)]
pub struct SignIn {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: secrecy::SecretString,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl<'a> Pass<'a> {
    /// Starts a pass from the Tester's current status; every condition is present (Unknown
    /// until its step says otherwise).
    pub fn new(tester: &'a Tester, ctx: &'a Context) -> Result<Self> {
        let written = tester.status.clone().unwrap_or_default();
        let mut status = written.clone();
        let now = Time(Timestamp::now());
        for type_ in conditions::ALL {
            if find_condition(&status.conditions, type_).is_none() {
                status.conditions.set_condition(
                    condition(type_, "Unknown", "Pending", "not checked yet", tester),
                    now.clone(),
                );
            }
        }
        Ok(Self {
            ctx,
            tester,
            ns: tester
                .namespace()
                .ok_or(Error::MissingField("metadata.namespace"))?,
            name: tester.name_any(),
            uid: tester.uid().ok_or(Error::MissingField("metadata.uid"))?,
            status,
            written,
            resource_version: tester.metadata.resource_version.clone(),
            events: Vec::new(),
            agent_view: None,
            sign_in: None,
        })
    }

    /// The Tester API of this namespace.
    pub fn api(&self) -> Api<Tester> {
        Api::namespaced(self.ctx.client.clone(), &self.ns)
    }

    /// Sets a condition to True or False; a transition worth telling is also published as an
    /// Event (see [`transition_event`]).
    pub fn set(&mut self, type_: &str, ok: bool, reason: &str, message: &str) {
        self.set_status(type_, if ok { "True" } else { "False" }, reason, message);
    }

    /// Sets a condition to any status (`True`, `False`, `Unknown`).
    pub fn set_status(&mut self, type_: &str, status: &str, reason: &str, message: &str) {
        let before = find_condition(&self.status.conditions, type_)
            .map(|c| (c.status.clone(), c.reason.clone()));
        let changed = before
            .as_ref()
            .is_none_or(|(s, r)| s != status || r != reason);
        self.status.conditions.set_condition(
            condition(type_, status, reason, message, self.tester),
            Time(Timestamp::now()),
        );
        if changed && let Some(kind) = transition_event(type_, status, reason, before.as_ref()) {
            self.event(kind, reason, &format!("{type_}={status}: {message}"));
        }
    }

    /// Whether a condition is True.
    pub fn is_true(&self, type_: &str) -> bool {
        find_condition(&self.status.conditions, type_).is_some_and(|c| c.status == "True")
    }

    /// The current condition of `type_`.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        find_condition(&self.status.conditions, type_)
    }

    /// Whether a condition is True and was confirmed for the current generation: a step uses
    /// this to skip re-configuring what it already configured (it still verifies).
    pub fn done_for_generation(&self, type_: &str) -> bool {
        self.condition(type_).is_some_and(|c| {
            c.status == "True" && c.observed_generation == self.tester.metadata.generation
        })
    }

    /// Metadata of an object the controller makes for this tester (a Secret, a ConfigMap):
    /// labelled with the tester and owned by it, so it goes when the Tester goes.
    pub fn owned_meta(&self, name: &str) -> Result<ObjectMeta> {
        Ok(ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.ns.clone()),
            labels: Some(BTreeMap::from([(
                "sandbox.hero.dev/tester".to_string(),
                self.name.clone(),
            )])),
            owner_references: Some(vec![
                self.tester
                    .controller_owner_ref(&())
                    .ok_or(Error::MissingField("metadata.uid"))?,
            ]),
            ..Default::default()
        })
    }

    /// Queues an Event about this Tester (published after the status is written).
    pub fn event(&mut self, type_: EventType, reason: &str, note: &str) {
        self.events.push(Event {
            type_,
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        });
    }

    /// How long to wait before looking again at a condition that is not yet true: grows with
    /// the time it has been so (1 s at first, at most 30 s), so a VM that takes minutes to
    /// become reachable is polled with backoff, never given up on.
    pub fn backoff(&self, type_: &str) -> Duration {
        Duration::from_secs_f64((self.waited(type_).as_secs_f64() / 4.0).clamp(1.0, 30.0))
    }

    /// How long a condition has had its current status.
    pub fn waited(&self, type_: &str) -> Duration {
        self.condition(type_)
            .map(|c| {
                Timestamp::now()
                    .duration_since(c.last_transition_time.0)
                    .as_secs_f64()
            })
            .map_or(Duration::ZERO, |s| Duration::from_secs_f64(s.max(0.0)))
    }

    /// Sets `Ready` from the required conditions (see [`readiness`]); records time-to-Ready once,
    /// on the transition to True.
    pub fn mark_ready(&mut self) {
        if self.tester.spec.management_policy == ManagementPolicy::ObserveOnly {
            self.set(
                conditions::READY,
                false,
                "ObserveOnly",
                "observing only: the machine is reported, nothing is created, changed or deleted on the grid",
            );
            return;
        }
        let deleting = self.tester.metadata.deletion_timestamp.is_some();
        let Some(ready) = readiness(&self.status.conditions, deleting) else {
            return;
        };
        if ready.ok
            && !self.is_true(conditions::READY)
            && let Some(created) = self.tester.meta().creation_timestamp.as_ref()
        {
            let secs = Timestamp::now().duration_since(created.0).as_secs_f64();
            self.ctx.metrics.time_to_ready.observe(secs);
        }
        self.set(conditions::READY, ready.ok, &ready.reason, &ready.message);
    }

    /// Writes the status if it changed (server-side apply of the whole status, owned by the
    /// controller). Used at the end of a pass and before any grid call whose result must not be
    /// lost (a placement, a contract id).
    pub async fn persist(&mut self) -> Result<()> {
        // Every write is consistent: `Ready` and `phase` follow the conditions being written.
        self.mark_ready();
        self.status.phase = Some(self.phase().to_string());
        self.status.observed_generation = self.tester.metadata.generation;
        if self.status == self.written {
            return Ok(());
        }
        self.ctx.kube_turn().await;
        let patch = json!({
            "apiVersion": "sandbox.hero.dev/v1alpha1",
            "kind": "Tester",
            "metadata": {"name": self.name, "resourceVersion": self.resource_version},
            "status": self.status,
        });
        let params = PatchParams::apply(MANAGER).force();
        match self
            .api()
            .patch_status(&self.name, &params, &Patch::Apply(&patch))
            .await
        {
            Ok(written) => {
                if let Some(v) = written.metadata.resource_version.clone() {
                    self.ctx
                        .written_versions
                        .lock()
                        .map_err(|_| Error::Poisoned("written versions"))?
                        .insert(self.uid.clone(), v);
                }
                self.resource_version = written.metadata.resource_version;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => return Err(Error::Stale),
            // Deleted while this pass ran (its finalizer was released by an earlier pass).
            Err(kube::Error::Api(s))
                if s.code == 404 && self.tester.metadata.deletion_timestamp.is_some() =>
            {
                return Ok(());
            }
            Err(e) => return Err(e).kube("writing the Tester status"),
        }
        self.ctx.count_write("patch", "testers/status");
        self.written = self.status.clone();
        Ok(())
    }

    /// Ends the pass: `Ready` and `phase` from the conditions, one status write if anything
    /// changed, then the Events.
    pub async fn conclude(&mut self) -> Result<()> {
        let written = self.persist().await;
        // What the pass did on the grid happened even when its status write was refused.
        self.publish_events().await;
        written
    }

    /// Publishes the queued Events (best effort: an Event that cannot be written is dropped).
    pub async fn publish_events(&mut self) {
        if self.events.is_empty() {
            return;
        }
        let reference = self.tester.object_ref(&());
        let recorder = self.ctx.recorder();
        for event in std::mem::take(&mut self.events) {
            self.ctx.kube_turn().await;
            if recorder.publish(&event, &reference).await.is_ok() {
                self.ctx.count_write("create", "events");
            }
        }
    }

    fn phase(&self) -> &'static str {
        use conditions::*;
        if self.is_true(PAUSED) {
            return "Paused";
        }
        if self.tester.metadata.deletion_timestamp.is_some() {
            return "Deleting";
        }
        if self.tester.spec.management_policy == ManagementPolicy::ObserveOnly {
            return "Observed";
        }
        match conditions::REQUIRED
            .iter()
            .find(|c| !self.is_true(c))
            .copied()
        {
            None => "Ready",
            Some(ACCOUNT_READY) => "Pending",
            Some(SCHEDULED) if self.status.placement.is_none() => "Pending",
            Some(SCHEDULED | MACHINE_READY) => "Provisioning",
            Some(INSTALLED) => "Installing",
            Some(_) => "Configuring",
        }
    }
}

/// What `Ready` should say.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// Whether the tester is Ready.
    pub ok: bool,
    /// The condition's reason.
    pub reason: String,
    /// The condition's message.
    pub message: String,
}

/// `Ready` from the step conditions: True only when every required condition is True and the
/// tester is not being deleted. While deleting, `Ready` is owned by the cleanup (it says what
/// deletion waits for), so this returns `None` once cleanup has set it, and a plain "Deleting"
/// otherwise: a tester being deleted is never Ready.
pub fn readiness(conds: &[Condition], deleting: bool) -> Option<Readiness> {
    if deleting {
        let owned_by_cleanup = find_condition(conds, conditions::READY).is_some_and(|c| {
            c.status == "False" && matches!(c.reason.as_str(), "Deleting" | "Deleted")
        });
        return (!owned_by_cleanup).then(|| Readiness {
            ok: false,
            reason: "Deleting".into(),
            message: "the tester is being deleted".into(),
        });
    }
    let is_true = |t: &str| find_condition(conds, t).is_some_and(|c| c.status == "True");
    Some(match conditions::REQUIRED.iter().find(|c| !is_true(c)) {
        None => Readiness {
            ok: true,
            reason: "AllStepsReady".into(),
            message: "every step holds: the tester can sign in and work".into(),
        },
        Some(c) => {
            let why = find_condition(conds, c)
                .map(|c| c.reason.clone())
                .unwrap_or_default();
            Readiness {
                ok: false,
                reason: format!("{c}NotReady"),
                message: format!("waiting for {c} ({why})"),
            }
        }
    })
}

/// Reasons that say a step is on its way, not that something failed: they live in the
/// conditions only, never in an Event.
const PROGRESS: [&str; 17] = [
    "Pending",
    "Deploying",
    "Provisioning",
    "Configuring",
    "Installing",
    "Sending",
    "Rebuilding",
    "Remediating",
    "WaitingForReady",
    "UpToDate",
    "NewerVersions",
    "Disabled",
    "Deleting",
    "Deleted",
    "Observed",
    "ObserveOnly",
    "Resumed",
];

/// Whether `reason` is progress rather than a failure (`Ready`'s own reason names the first
/// step that does not hold yet, `<Step>NotReady`: progress too).
pub fn is_progress(reason: &str) -> bool {
    PROGRESS.contains(&reason) || reason.ends_with("NotReady")
}

/// The Event a condition transition is worth, if any: a failure is a Warning; the placement,
/// `Ready`, the welcome email and a recovery from a failure are Normal; progress is none. A
/// tester's happy path publishes at most three Events.
pub fn transition_event(
    type_: &str,
    status: &str,
    reason: &str,
    before: Option<&(String, String)>,
) -> Option<EventType> {
    use conditions::{READY, SCHEDULED, WELCOME_EMAIL_SENT};
    match status {
        "False" if !is_progress(reason) => Some(EventType::Warning),
        "True" if [SCHEDULED, READY, WELCOME_EMAIL_SENT].contains(&type_) => {
            Some(EventType::Normal)
        }
        "True" if before.is_some_and(|(s, r)| s == "False" && !is_progress(r)) => {
            Some(EventType::Normal)
        }
        _ => None,
    }
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, tester: &Tester) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.chars().take(2000).collect(),
        observed_generation: tester.metadata.generation,
        last_transition_time: Time(Timestamp::now()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(1),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    fn all_steps_true() -> Vec<Condition> {
        conditions::REQUIRED
            .iter()
            .map(|t| cond(t, "True", "Ok", "fine"))
            .collect()
    }

    #[test]
    fn ready_when_every_step_holds() {
        let r = readiness(&all_steps_true(), false).unwrap();
        assert!(r.ok);
        assert_eq!(r.reason, "AllStepsReady");
    }

    #[test]
    fn ready_names_the_first_step_that_does_not_hold() {
        let mut conds = all_steps_true();
        let gate = conds
            .iter()
            .position(|c| c.type_ == conditions::GATE_SECURED)
            .unwrap();
        conds[gate] = cond(conditions::GATE_SECURED, "False", "GateDrifted", "x");
        let r = readiness(&conds, false).unwrap();
        assert!(!r.ok);
        assert_eq!(r.reason, "GateSecuredNotReady");
        assert_eq!(r.message, "waiting for GateSecured (GateDrifted)");
    }

    #[test]
    fn a_tester_being_deleted_is_never_ready_and_keeps_what_deletion_waits_for() {
        // Every step still holds, but the Tester is being deleted: never Ready.
        let r = readiness(&all_steps_true(), true).unwrap();
        assert!(!r.ok);
        assert_eq!(r.reason, "Deleting");
        // Once cleanup has said what it waits for, the Ready recomputation leaves it alone.
        let mut conds = all_steps_true();
        conds.push(cond(
            conditions::READY,
            "False",
            "Deleting",
            "deletion is waiting for: cancelling the VM contract 7: relay unreachable",
        ));
        assert_eq!(readiness(&conds, true), None);
        let mut done = all_steps_true();
        done.push(cond(conditions::READY, "False", "Deleted", "nothing left"));
        assert_eq!(readiness(&done, true), None);
    }

    #[test]
    fn progress_is_not_an_event_failures_are_warnings_and_the_happy_path_is_three_normals() {
        use kube::runtime::events::EventType::{Normal, Warning};
        let t = |status, reason| transition_event("MachineReady", status, reason, None);
        assert_eq!(t("False", "Deploying"), None);
        assert_eq!(t("False", "Pending"), None);
        assert_eq!(
            transition_event("Ready", "False", "MachineReadyNotReady", None),
            None
        );
        assert_eq!(t("False", "Unreachable"), Some(Warning));
        assert_eq!(
            t("True", "Reachable"),
            None,
            "a step done is in the conditions"
        );
        let failed = ("False".to_string(), "Unreachable".to_string());
        assert_eq!(
            transition_event("MachineReady", "True", "Reachable", Some(&failed)),
            Some(Normal),
            "a recovery is told"
        );
        let happy: Vec<_> = ["Scheduled", "MachineReady", "GatewayReady", "GateSecured"]
            .into_iter()
            .chain(["TokensRegistered", "Installed", "Ready", "WelcomeEmailSent"])
            .filter_map(|c| transition_event(c, "True", "Done", None))
            .collect();
        assert_eq!(happy, [Normal, Normal, Normal]);
    }
}
