//! From tfchain's errors to [`GridError`]: pallet errors (`DispatchError::Module`) by their names
//! in the metadata, other dispatch errors, transaction-pool refusals, and connection losses.

use gridapi::{ErrorBody, ErrorCode, GridError};
use subxt::error::{DispatchError, ModuleError};

/// The message of a block-wait time-out: the extrinsic may still land.
pub const TIMEOUT_MESSAGE: &str = "extrinsic timeout waiting for block: it may still land";

/// A pallet error, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PalletError {
    /// The pallet (`SmartContractModule`, `TfgridModule`, ...).
    pub pallet: String,
    /// The error variant's name (`NameExists`, ...).
    pub name: String,
}

/// The names of a module error, from the metadata it was decoded with.
pub fn pallet_error(err: &ModuleError) -> PalletError {
    match err.details() {
        Ok(d) => PalletError {
            pallet: d.pallet.name().to_string(),
            name: d.variant.name.clone(),
        },
        Err(_) => PalletError {
            pallet: format!("pallet#{}", err.pallet_index()),
            name: format!("error#{}", err.error_index()),
        },
    }
}

/// The gridapi code of a pallet error name, where one matches. `None`: unknown (Fatal).
pub fn code_for(name: &str) -> Option<ErrorCode> {
    Some(match name {
        "NameExists" => ErrorCode::NameExists,
        "ContractIsNotUnique" => ErrorCode::ContractIsNotUnique,
        "ContractNotExists" => ErrorCode::ContractNotExists,
        "TwinNotAuthorizedToCancelContract" => ErrorCode::TwinNotAuthorizedToCancelContract,
        "NameNotValid" => ErrorCode::NameNotValid,
        "NameContractNameTooShort" => ErrorCode::NameContractNameTooShort,
        "NameContractNameTooLong" => ErrorCode::NameContractNameTooLong,
        "NodeNotExists" => ErrorCode::NodeNotExists,
        "NodeNotAvailableToDeploy" | "NodeHasRentContract" => ErrorCode::NodeNotAvailableToDeploy,
        "NotEnoughResourcesOnNode"
        | "FarmHasNotEnoughPublicIPs"
        | "FarmHasNotEnoughPublicIPsFree" => ErrorCode::Capacity,
        "TwinNotExists"
        | "TwinNotAuthorized"
        | "TwinNotAuthorizedToUpdateContract"
        | "NodeNotAuthorizedToDeployContract" => ErrorCode::Unauthorized,
        "CannotUpdateContractInGraceState" => ErrorCode::Conflict,
        _ => return None,
    })
}

/// What a pallet error becomes, apart from `NameExists`, which needs the holder (the caller looks
/// it up and uses [`name_exists`]). `context` says what was attempted.
pub fn from_pallet_error(err: &PalletError, context: &str) -> GridError {
    let message = format!("{}: {context} ({}::{})", err.name, err.pallet, err.name);
    match code_for(&err.name) {
        Some(code) => GridError::from_body(ErrorBody::new(code, message)),
        None => GridError::Fatal {
            code: ErrorCode::Invalid,
            message,
        },
    }
}

/// `NameExists` with its holder.
pub fn name_exists(name: &str, owner_twin: u32, contract_id: u64) -> GridError {
    let mut body = ErrorBody::new(
        ErrorCode::NameExists,
        format!("NameExists: name {name:?} is held by contract {contract_id} of twin {owner_twin}"),
    );
    body.owner_twin = Some(owner_twin);
    body.contract_id = Some(contract_id);
    GridError::from_body(body).for_name(name)
}

/// A dispatch error: the pallet error by name, or a Fatal with the error's text.
pub fn from_dispatch_error(err: &DispatchError, context: &str) -> Result<GridError, PalletError> {
    match err {
        DispatchError::Module(m) => Err(pallet_error(m)),
        other => Ok(GridError::Fatal {
            code: ErrorCode::Invalid,
            message: format!("{context}: dispatch error {other:?}"),
        }),
    }
}

/// A refusal of the transaction pool (`author_submitExtrinsic` errors, `Invalid`/`Dropped`
/// statuses). Stale nonces and pool congestion are retried later; fees that cannot be paid are
/// Fatal (the account needs TFT).
pub fn from_pool_refusal(text: &str, context: &str) -> GridError {
    let lower = text.to_ascii_lowercase();
    let message = format!("{context}: transaction refused: {text}");
    if lower.contains("inability to pay some fees") || lower.contains("balance too low") {
        GridError::Fatal {
            code: ErrorCode::Invalid,
            message: format!("{message} (the account needs TFT to pay for transactions)"),
        }
    } else if lower.contains("priority is too low")
        || lower.contains("outdated")
        || lower.contains("stale")
        || lower.contains("already imported")
        || lower.contains("temporarily banned")
        || lower.contains("dropped")
        || lower.contains("immediately dropped")
        || lower.contains("exhausts the resources")
    {
        GridError::RetryLater {
            code: ErrorCode::Busy,
            message,
        }
    } else {
        GridError::Fatal {
            code: ErrorCode::Invalid,
            message,
        }
    }
}

/// Whether an error (or one of its sources) says the RPC connection is gone: jsonrpsee's
/// "background task closed ... restart required", subxt's "reconnect initiated", a closed socket.
pub fn is_connection_lost(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(rpc) = e.downcast_ref::<subxt::rpcs::Error>()
            && rpc.is_disconnected_will_reconnect()
        {
            return true;
        }
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("restart required")
            || text.contains("restart needed")
            || text.contains("background task closed")
            || text.contains("connection closed")
            || text.contains("connection reset")
            || text.contains("reconnect")
            || text.contains("broken pipe")
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The text of an error and its sources, on one line.
pub fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cur = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gridapi::ErrorCategory;
    use subxt::Metadata;

    use super::*;
    use crate::chain::runtime::METADATA;

    fn metadata() -> Arc<Metadata> {
        Arc::new(Metadata::decode_from(METADATA).expect("vendored metadata decodes"))
    }

    /// The SCALE bytes of `DispatchError::Module(ModuleError { index, error: [i, 0, 0, 0] })`
    /// for the named error of SmartContractModule, the index read from the metadata.
    fn module_error_bytes(md: &Metadata, pallet: &str, name: &str) -> Vec<u8> {
        let p = md.pallet_by_name(pallet).expect("pallet");
        let variant = p
            .error_variants()
            .expect("pallet has errors")
            .iter()
            .find(|v| v.name == name)
            .expect("error variant");
        // DispatchError::Module is variant 3 of sp_runtime::DispatchError.
        vec![3, p.error_index(), variant.index, 0, 0, 0]
    }

    fn decode(md: &Arc<Metadata>, pallet: &str, name: &str) -> DispatchError {
        DispatchError::decode_from(module_error_bytes(md, pallet, name), md.clone())
            .expect("dispatch error decodes")
    }

    #[test]
    fn module_errors_decode_to_their_names_and_codes() {
        let md = metadata();
        let cases = [
            ("ContractIsNotUnique", ErrorCategory::Conflict),
            ("ContractNotExists", ErrorCategory::NotFound),
            ("TwinNotAuthorizedToCancelContract", ErrorCategory::Fatal),
            ("NameNotValid", ErrorCategory::Fatal),
            ("NameContractNameTooShort", ErrorCategory::Fatal),
            ("NameContractNameTooLong", ErrorCategory::Fatal),
            ("NodeNotAvailableToDeploy", ErrorCategory::Fatal),
            ("NodeNotExists", ErrorCategory::NotFound),
            ("NotEnoughResourcesOnNode", ErrorCategory::Capacity),
        ];
        for (name, category) in cases {
            let err = decode(&md, "SmartContractModule", name);
            let pe = from_dispatch_error(&err, "create_node_contract").unwrap_err();
            assert_eq!(pe.pallet, "SmartContractModule");
            assert_eq!(pe.name, name);
            let g = from_pallet_error(&pe, "create_node_contract");
            assert_eq!(g.category(), category, "{name}");
            assert!(g.message().starts_with(&format!("{name}: ")), "{g}");
            if category != ErrorCategory::Capacity {
                assert_eq!(format!("{:?}", g.code()), name);
            }
        }
    }

    #[test]
    fn name_exists_carries_the_holder() {
        let md = metadata();
        let err = decode(&md, "SmartContractModule", "NameExists");
        let pe = from_dispatch_error(&err, "create_name_contract").unwrap_err();
        assert_eq!(code_for(&pe.name), Some(ErrorCode::NameExists));
        let g = name_exists("alice-sandbox", 7, 99);
        assert_eq!(
            g,
            GridError::NameExists {
                name: "alice-sandbox".into(),
                owner_twin: 7,
                contract_id: 99,
                message: "NameExists: name \"alice-sandbox\" is held by contract 99 of twin 7"
                    .into(),
            }
        );
        assert_eq!(g.category(), ErrorCategory::Conflict);
    }

    #[test]
    fn unknown_pallet_errors_are_fatal_with_their_name() {
        let md = metadata();
        let err = decode(&md, "SmartContractModule", "MethodIsDeprecated");
        let pe = from_dispatch_error(&err, "cancel_contract").unwrap_err();
        let g = from_pallet_error(&pe, "cancel_contract");
        assert_eq!(g.category(), ErrorCategory::Fatal);
        assert!(g.message().contains("MethodIsDeprecated"), "{g}");
        let err = decode(&md, "Balances", "InsufficientBalance");
        let pe = from_dispatch_error(&err, "cancel_contract").unwrap_err();
        assert_eq!(pe.pallet, "Balances");
        assert_eq!(from_pallet_error(&pe, "x").category(), ErrorCategory::Fatal);
    }

    #[test]
    fn other_dispatch_errors_are_fatal() {
        let md = metadata();
        // DispatchError::BadOrigin is variant 2.
        let err = DispatchError::decode_from(vec![2u8], md).unwrap();
        let g = from_dispatch_error(&err, "cancel_contract").unwrap();
        assert_eq!(g.category(), ErrorCategory::Fatal);
        assert!(g.message().contains("BadOrigin"), "{g}");
    }

    #[test]
    fn pool_refusals() {
        let fees = from_pool_refusal(
            "Invalid Transaction: Inability to pay some fees (e.g. account balance too low)",
            "create_name_contract",
        );
        assert_eq!(fees.category(), ErrorCategory::Fatal);
        let stale = from_pool_refusal("Priority is too low: (1 vs 1)", "cancel_contract");
        assert_eq!(stale.category(), ErrorCategory::RetryLater);
    }

    #[test]
    fn connection_loss_is_recognised() {
        #[derive(Debug, thiserror::Error)]
        #[error(
            "RPC error: client error: The background task closed connection closed; restart required"
        )]
        struct Closed;
        #[derive(Debug, thiserror::Error)]
        #[error("storage fetch failed")]
        struct Outer(#[source] Closed);
        assert!(is_connection_lost(&Outer(Closed)));
        let rpc = subxt::rpcs::Error::DisconnectedWillReconnect("gone".into());
        assert!(is_connection_lost(&rpc));
        #[derive(Debug, thiserror::Error)]
        #[error("cannot decode value")]
        struct Decode;
        assert!(!is_connection_lost(&Decode));
        assert_eq!(
            chain_text(&Outer(Closed)),
            "storage fetch failed: RPC error: client error: The background task closed connection closed; restart required"
        );
    }
}
