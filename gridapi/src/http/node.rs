//! The nodes' commands over the HTTP transport: `POST /rmb/{node_twin}/{command}` with the
//! command's payload, as RMB carries it to the node's twin.

use std::sync::Arc;

use reqwest::Method;

use super::{json, session::Session};
use crate::{
    GridFuture,
    node::{CMD_CHANGES, CMD_DEPLOY, CMD_GET, ContractRef, NodeBus},
    zos::{Deployment, WorkloadChange},
};

/// The path of `command` to the node whose twin is `node_twin`.
pub fn command_path(node_twin: u32, command: &str) -> String {
    format!("/rmb/{node_twin}/{command}")
}

/// [`NodeBus`] over the HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpNodeBus {
    session: Arc<Session>,
}

impl HttpNodeBus {
    /// The node face of a session.
    pub fn new(session: Arc<Session>) -> Self {
        HttpNodeBus { session }
    }
}

impl NodeBus for HttpNodeBus {
    fn deploy<'a>(&'a self, node_twin: u32, deployment: &'a Deployment) -> GridFuture<'a, ()> {
        Box::pin(async move {
            self.session
                .call(
                    Method::POST,
                    &command_path(node_twin, CMD_DEPLOY),
                    Some(json(deployment)),
                    "deploy",
                )
                .await
        })
    }

    fn get(&self, node_twin: u32, contract_id: u64) -> GridFuture<'_, Deployment> {
        Box::pin(async move {
            self.session
                .call(
                    Method::POST,
                    &command_path(node_twin, CMD_GET),
                    Some(json(&ContractRef { contract_id })),
                    "get deployment",
                )
                .await
        })
    }

    fn changes(&self, node_twin: u32, contract_id: u64) -> GridFuture<'_, Vec<WorkloadChange>> {
        Box::pin(async move {
            self.session
                .call(
                    Method::POST,
                    &command_path(node_twin, CMD_CHANGES),
                    Some(json(&ContractRef { contract_id })),
                    "deployment changes",
                )
                .await
        })
    }
}
