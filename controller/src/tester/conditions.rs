//! The Tester's condition types, and the pure rules over them: what `Ready` says, which
//! reasons are progress, and which transitions are worth an Event.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::EventType;

use crate::resources::find_condition;

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
        let owned_by_cleanup = find_condition(conds, READY).is_some_and(|c| {
            c.status == "False" && matches!(c.reason.as_str(), "Deleting" | "Deleted")
        });
        return (!owned_by_cleanup).then(|| Readiness {
            ok: false,
            reason: "Deleting".into(),
            message: "the tester is being deleted".into(),
        });
    }
    let is_true = |t: &str| find_condition(conds, t).is_some_and(|c| c.status == "True");
    Some(match REQUIRED.iter().find(|c| !is_true(c)) {
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

/// The Event a condition transition is worth, if any: a failure is a Warning; `Ready`, the
/// welcome email and a recovery from a failure are Normal; progress is none. A first placement
/// is told by `Ready`'s Event (which names the node) rather than one of its own, so a tester's
/// happy path publishes at most two Events.
pub fn transition_event(
    type_: &str,
    status: &str,
    reason: &str,
    before: Option<&(String, String)>,
) -> Option<EventType> {
    match status {
        "False" if !is_progress(reason) => Some(EventType::Warning),
        "True" if [READY, WELCOME_EMAIL_SENT].contains(&type_) => Some(EventType::Normal),
        "True" if before.is_some_and(|(s, r)| s == "False" && !is_progress(r)) => {
            Some(EventType::Normal)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

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
        REQUIRED
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
        let gate = conds.iter().position(|c| c.type_ == GATE_SECURED).unwrap();
        conds[gate] = cond(GATE_SECURED, "False", "GateDrifted", "x");
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
            READY,
            "False",
            "Deleting",
            "deletion is waiting for: cancelling the VM contract 7: relay unreachable",
        ));
        assert_eq!(readiness(&conds, true), None);
        let mut done = all_steps_true();
        done.push(cond(READY, "False", "Deleted", "nothing left"));
        assert_eq!(readiness(&done, true), None);
    }

    #[test]
    fn progress_is_not_an_event_failures_are_warnings_and_the_happy_path_is_two_normals() {
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
        assert_eq!(happy, [Normal, Normal]);
        let unschedulable = ("False".to_string(), "Unschedulable".to_string());
        assert_eq!(
            transition_event("Scheduled", "True", "Placed", Some(&unschedulable)),
            Some(Normal),
            "a placement after a refusal is told"
        );
    }
}
