//! The custom resources of the `sandbox.hero.dev` API group, as Rust types.
//!
//! These types are the source of truth: `crdgen` renders them into `crds/*.yaml`, and their doc
//! comments become what `kubectl explain` prints.

mod condition;
mod hostpool;
mod sharedengine;
mod tester;
mod tester_status;
mod warmmachine;

pub use condition::{ConditionExt, condition_status, find_condition};
pub use hostpool::{
    HostPool, HostPoolSpec, HostPoolStatus, NodeCapacity, PlacementPolicy, Remediation,
    TesterResources,
};
pub use sharedengine::{
    SecretKeyRef, SharedEngine, SharedEngineSpec, SharedEngineStatus, TokenStore,
};
pub use tester::{
    AccountDeletionPolicy, AccountStatus, AccountType, App, AppStatus, Channel, InstalledVersions,
    MachineStatus, ManagementPolicy, Placement, RegisteredEngine, ResourceOverrides,
    SignInClientStatus, Tester, TesterSpec, TesterStatus,
};
pub use warmmachine::{
    WarmClaim, WarmMachine, WarmMachineSpec, WarmMachineStatus, WarmNames, WarmPhase, WarmPool,
    WarmPoolStatus, WarmStart,
};

/// The API group of every resource here.
pub const GROUP: &str = "sandbox.hero.dev";

/// Annotation on a Tester: setting it to any new value rebuilds the machine.
pub const REBUILD_ANNOTATION: &str = "sandbox.hero.dev/rebuild";

/// Annotation on a Tester or a HostPool that stops the controller from touching it (no grid
/// call, no write but its `Paused` condition) until it is removed.
pub const PAUSED_ANNOTATION: &str = "sandbox.hero.dev/paused";

/// Renders every CRD of the group, in a stable order.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![
        HostPool::crd(),
        SharedEngine::crd(),
        Tester::crd(),
        WarmMachine::crd(),
    ]
}
