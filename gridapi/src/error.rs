//! Errors of every face: the wire codes (chain errors by their pallet names), the JSON error
//! body of the HTTP transport, and [`GridError`], sorted by what a caller does about it.

use serde::{Deserialize, Serialize};

/// Error codes on the wire; chain codes carry the chain's own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Name taken.
    NameExists,
    /// Same node and hash already under contract.
    ContractIsNotUnique,
    /// No such contract.
    ContractNotExists,
    /// Not the owner.
    TwinNotAuthorizedToCancelContract,
    /// Name has characters outside `[a-z0-9-_]`.
    NameNotValid,
    /// Name shorter than 3.
    NameContractNameTooShort,
    /// Name longer than 64.
    NameContractNameTooLong,
    /// Metadata longer than 512 bytes.
    ContractMetadataTooLong,
    /// No such node.
    NodeNotExists,
    /// Node rented by another twin or dedicated.
    NodeNotAvailableToDeploy,
    /// The call timed out; it may still have happened.
    Timeout,
    /// The node cannot be reached over the message bus.
    NodeUnreachable,
    /// Relay or proxy answered 502.
    BadGateway,
    /// The session is stale: reconnect.
    StaleConnection,
    /// Unknown session or wrong secret.
    Unauthenticated,
    /// Wrong key, or not the owner.
    Unauthorized,
    /// Something asked for does not exist.
    NotFound,
    /// Already exists / conflicting state.
    Conflict,
    /// Node refuses for capacity.
    Capacity,
    /// Request fails validation.
    Invalid,
    /// Deletion through the node is disabled.
    DeletionDisabled,
    /// Busy, try later.
    Busy,
    /// Bug in gridshim.
    Internal,
}

/// The JSON body of every error answer of gridshim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Code.
    pub code: ErrorCode,
    /// The grid's error text.
    pub message: String,
    /// For `NameExists`: the owner twin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_twin: Option<u32>,
    /// For `NameExists`: the contract holding the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<u64>,
}

impl ErrorBody {
    /// A body with a code and a text (no owner).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            owner_twin: None,
            contract_id: None,
        }
    }
}

/// What a caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// Transient (timeout, 502, unreachable, busy): retry later; the call may have landed.
    RetryLater,
    /// Already exists / conflicting state: look at what exists and adopt or choose another.
    Conflict,
    /// The thing is gone or never was.
    NotFound,
    /// The node refuses for capacity: place elsewhere.
    Capacity,
    /// Will not succeed by retrying (validation, authorization).
    Fatal,
}

/// An error of a grid call. Every variant carries the grid's error text in `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    /// Timeouts, HTTP 502, node unreachable, busy, stale connection after reconnecting.
    #[error("retry later ({code:?}): {message}")]
    RetryLater {
        /// The grid's code.
        code: ErrorCode,
        /// The grid's text.
        message: String,
    },
    /// A gateway name is already held by a contract.
    #[error(
        "NameExists: name {name:?} is held by contract {contract_id} of twin {owner_twin}: {message}"
    )]
    NameExists {
        /// The name.
        name: String,
        /// Owner twin of the holding contract (may be us: a leftover).
        owner_twin: u32,
        /// The holding contract.
        contract_id: u64,
        /// The grid's text.
        message: String,
    },
    /// Other conflicts (`ContractIsNotUnique`, deployment exists, domain already registered).
    #[error("conflict ({code:?}): {message}")]
    Conflict {
        /// The grid's code.
        code: ErrorCode,
        /// The grid's text.
        message: String,
    },
    /// `ContractNotExists`, unknown deployment, unknown VM, unknown node.
    #[error("not found ({code:?}): {message}")]
    NotFound {
        /// The grid's code.
        code: ErrorCode,
        /// The grid's text.
        message: String,
    },
    /// The node refuses for capacity.
    #[error("capacity: {message}")]
    Capacity {
        /// The grid's text.
        message: String,
    },
    /// Validation or authorization failures, and answers that cannot be understood.
    #[error("fatal ({code:?}): {message}")]
    Fatal {
        /// The grid's code.
        code: ErrorCode,
        /// The grid's text.
        message: String,
    },
}

impl GridError {
    /// What to do about it.
    pub fn category(&self) -> ErrorCategory {
        match self {
            GridError::RetryLater { .. } => ErrorCategory::RetryLater,
            GridError::NameExists { .. } | GridError::Conflict { .. } => ErrorCategory::Conflict,
            GridError::NotFound { .. } => ErrorCategory::NotFound,
            GridError::Capacity { .. } => ErrorCategory::Capacity,
            GridError::Fatal { .. } => ErrorCategory::Fatal,
        }
    }

    /// The grid's code.
    pub fn code(&self) -> ErrorCode {
        match self {
            GridError::RetryLater { code, .. }
            | GridError::Conflict { code, .. }
            | GridError::NotFound { code, .. }
            | GridError::Fatal { code, .. } => *code,
            GridError::NameExists { .. } => ErrorCode::NameExists,
            GridError::Capacity { .. } => ErrorCode::Capacity,
        }
    }

    /// The grid's text.
    pub fn message(&self) -> &str {
        match self {
            GridError::RetryLater { message, .. }
            | GridError::NameExists { message, .. }
            | GridError::Conflict { message, .. }
            | GridError::NotFound { message, .. }
            | GridError::Capacity { message }
            | GridError::Fatal { message, .. } => message,
        }
    }

    /// A [`GridError::NameExists`] about `name` (the chain's error does not say which name);
    /// any other error unchanged.
    pub fn for_name(self, name: &str) -> GridError {
        match self {
            GridError::NameExists {
                owner_twin,
                contract_id,
                message,
                ..
            } => GridError::NameExists {
                name: name.to_string(),
                owner_twin,
                contract_id,
                message,
            },
            other => other,
        }
    }

    /// Shorthand for `category() == RetryLater`.
    pub fn is_retry_later(&self) -> bool {
        self.category() == ErrorCategory::RetryLater
    }

    /// Sorts a wire error into a variant.
    pub fn from_body(body: ErrorBody) -> GridError {
        let ErrorBody {
            code,
            message,
            owner_twin,
            contract_id,
        } = body;
        match code {
            ErrorCode::Timeout
            | ErrorCode::NodeUnreachable
            | ErrorCode::BadGateway
            | ErrorCode::StaleConnection
            | ErrorCode::Busy => GridError::RetryLater { code, message },
            ErrorCode::NameExists => GridError::NameExists {
                name: String::new(),
                owner_twin: owner_twin.unwrap_or_default(),
                contract_id: contract_id.unwrap_or_default(),
                message,
            },
            ErrorCode::ContractIsNotUnique | ErrorCode::Conflict => {
                GridError::Conflict { code, message }
            }
            ErrorCode::ContractNotExists | ErrorCode::NodeNotExists | ErrorCode::NotFound => {
                GridError::NotFound { code, message }
            }
            ErrorCode::Capacity => GridError::Capacity { message },
            ErrorCode::TwinNotAuthorizedToCancelContract
            | ErrorCode::NameNotValid
            | ErrorCode::NameContractNameTooShort
            | ErrorCode::NameContractNameTooLong
            | ErrorCode::ContractMetadataTooLong
            | ErrorCode::NodeNotAvailableToDeploy
            | ErrorCode::Unauthenticated
            | ErrorCode::Unauthorized
            | ErrorCode::Invalid
            | ErrorCode::DeletionDisabled
            | ErrorCode::Internal => GridError::Fatal { code, message },
        }
    }

    /// Classifies a workload error text of a node (capacity refusals are recognised by the
    /// node's own wording), for callers that read `result.message` of a failed workload.
    pub fn from_workload_message(message: &str) -> GridError {
        let capacity = message.contains("not enough space left in pools")
            || message.contains("cannot fulfil required memory size");
        let transient =
            message.contains("context deadline exceeded") || message.contains("timeout");
        if capacity {
            GridError::Capacity {
                message: message.to_string(),
            }
        } else if transient {
            GridError::RetryLater {
                code: ErrorCode::Timeout,
                message: message.to_string(),
            }
        } else if message.contains("domain already registered") {
            GridError::Conflict {
                code: ErrorCode::Conflict,
                message: message.to_string(),
            }
        } else {
            GridError::Fatal {
                code: ErrorCode::Invalid,
                message: message.to_string(),
            }
        }
    }
}
