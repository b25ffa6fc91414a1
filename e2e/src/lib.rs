//! Shared harness for the end-to-end tests: a real control plane (started once per run, or the
//! cluster `KUBECONFIG` points at), the CRDs installed, and a namespace of its own per test.
//!
//! Nothing here is a stand-in: `kubectl` is the real binary, the API server is the real
//! kube-apiserver (on kine), and the processes under test run as separate processes.

pub mod chart;
pub mod cluster;
pub mod fixtures;
pub mod forge;
pub mod helm;
pub mod probe;
pub mod procs;
pub mod smtp;
pub mod stack;
pub mod wait;

pub use cluster::{Cluster, TestNamespace, cluster, kubectl};
pub use procs::{Process, repo_root, target_bin};
