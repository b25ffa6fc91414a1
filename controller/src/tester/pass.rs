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

use super::conditions::{self, readiness, transition_event};
use crate::{
    context::Context,
    error::{Error, KubeContext, Result},
    resources::{ConditionExt, ManagementPolicy, Tester, TesterStatus, find_condition},
};

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

    /// The status as last written (or as the pass found it).
    pub fn written(&self) -> &TesterStatus {
        &self.written
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

    /// How long to wait before looking again at a condition that is not yet true: a quarter of
    /// the time it has been so, at least 250 ms and at most 30 s. What is often ready within a
    /// second (an install on a cached image, a gateway) is seen soon after it is; a VM that
    /// takes minutes to become reachable is polled with backoff (about 30 looks in 10 minutes),
    /// never given up on.
    pub fn backoff(&self, type_: &str) -> Duration {
        Duration::from_secs_f64((self.waited(type_).as_secs_f64() / 4.0).clamp(0.25, 30.0))
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
            if let Some(warm) = &self.status.warm_start {
                let secs = Timestamp::now()
                    .duration_since(warm.claimed_at.0)
                    .as_secs_f64();
                self.ctx.metrics.claim_to_ready.observe(secs);
            }
        }
        let message = match (&self.status.placement, &self.status.url) {
            (Some(p), Some(url)) if ready.ok => {
                format!("{} (node {}, {url})", ready.message, p.node_id)
            }
            _ => ready.message,
        };
        self.set(conditions::READY, ready.ok, &ready.reason, &message);
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
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::debug!(error = %e, "an Event was not written");
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
