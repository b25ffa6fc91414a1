//! zos's deployment commands over RMB: [`RmbNodeBus`] implements [`NodeBus`]. Payloads and
//! answers are the JSON of zos's own types; a node's error comes back as text only (zos sends
//! code 0), so it is sorted by the texts zos and the message bus use.

use std::sync::Arc;

use gridapi::{
    ErrorCode, GridError, GridFuture,
    node::{CMD_CHANGES, CMD_DEPLOY, CMD_GET, ContractRef, NodeBus},
    zos::{Deployment, WorkloadChange},
};
use serde::{Serialize, de::DeserializeOwned};

use super::peer::Peer;

/// [`NodeBus`] over an RMB [`Peer`].
#[derive(Debug, Clone)]
pub struct RmbNodeBus {
    peer: Arc<Peer>,
}

impl RmbNodeBus {
    /// The node face of a peer.
    pub fn new(peer: Arc<Peer>) -> Self {
        RmbNodeBus { peer }
    }

    async fn call<T: DeserializeOwned, P: Serialize>(
        &self,
        node_twin: u32,
        command: &str,
        payload: P,
    ) -> Result<T, GridError> {
        let body = serde_json::to_vec(&payload).expect("zos types serialise");
        let answer = self.peer.call(node_twin, command, body).await?;
        let answer: &[u8] = if answer.is_empty() { b"null" } else { &answer };
        serde_json::from_slice(answer).map_err(|e| GridError::Fatal {
            code: ErrorCode::Internal,
            message: format!("{command} to twin {node_twin}: cannot read the answer: {e}"),
        })
    }
}

impl NodeBus for RmbNodeBus {
    fn deploy<'a>(&'a self, node_twin: u32, deployment: &'a Deployment) -> GridFuture<'a, ()> {
        Box::pin(async move {
            let _: serde_json::Value = self.call(node_twin, CMD_DEPLOY, deployment).await?;
            Ok(())
        })
    }

    fn get(&self, node_twin: u32, contract_id: u64) -> GridFuture<'_, Deployment> {
        Box::pin(self.call(node_twin, CMD_GET, ContractRef { contract_id }))
    }

    fn changes(&self, node_twin: u32, contract_id: u64) -> GridFuture<'_, Vec<WorkloadChange>> {
        Box::pin(self.call(node_twin, CMD_CHANGES, ContractRef { contract_id }))
    }
}

/// Sorts a node's error text into what the caller does about it.
pub fn node_error(text: &str, node_twin: u32, command: &str) -> GridError {
    let message = format!("{command} to twin {node_twin}: {text}");
    let has = |s: &str| text.contains(s);
    if has("failed to send request") || has("unreachable") {
        GridError::RetryLater {
            code: ErrorCode::NodeUnreachable,
            message,
        }
    } else if has("context deadline exceeded") || has("timeout") {
        GridError::RetryLater {
            code: ErrorCode::Timeout,
            message,
        }
    } else if has("already exists") || has("already registered") {
        GridError::Conflict {
            code: ErrorCode::Conflict,
            message,
        }
    } else if has("contract") && has("not found") {
        GridError::NotFound {
            code: ErrorCode::ContractNotExists,
            message,
        }
    } else if has("not found") {
        GridError::NotFound {
            code: ErrorCode::NotFound,
            message,
        }
    } else if has("twin id mismatch") {
        GridError::Fatal {
            code: ErrorCode::Unauthorized,
            message,
        }
    } else if has("deletion over the api is disabled") {
        GridError::Fatal {
            code: ErrorCode::DeletionDisabled,
            message,
        }
    } else {
        GridError::Fatal {
            code: ErrorCode::Invalid,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridapi::ErrorCategory::*;

    #[test]
    fn zos_texts_sort_as_the_http_transport_codes_do() {
        let cases = [
            ("failed to send request to node 3 (twin 1003): context deadline exceeded", RetryLater),
            ("context deadline exceeded", RetryLater),
            ("deployment with contract 5 already exists", Conflict),
            ("contract 5 not found", NotFound),
            ("deployment 5 not found", NotFound),
            ("twin id mismatch", Fatal),
            ("deletion over the api is disabled, please cancel your contract instead", Fatal),
            ("deployment hash does not match the contract's hash", Fatal),
        ];
        for (text, want) in cases {
            assert_eq!(node_error(text, 1003, "deploy").category(), want, "{text}");
        }
        assert_eq!(
            node_error("contract 5 not found", 1, "get").code(),
            ErrorCode::ContractNotExists
        );
    }
}
