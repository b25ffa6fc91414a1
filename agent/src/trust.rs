//! Checks every request to the agent's API: signed by the controller's key, for this machine,
//! fresh, never seen before, not too large ([`gridapi::agent::signing`] is the scheme). Each
//! refusal is counted by reason ([`crate::metrics::Metrics`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gridapi::agent::signing::{self, ControllerPublicKey, MAX_SKEW};

use crate::Agent;

/// The largest request body the API accepts (settings documents are a few KiB).
pub const MAX_BODY: usize = 64 * 1024;
/// How many nonces are remembered at most (each for twice [`MAX_SKEW`]).
const MAX_NONCES: usize = 100_000;

/// Why a request was refused (the `reason` label of the refusal counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No signature headers.
    Unsigned,
    /// Signed for another machine.
    WrongMachine,
    /// The signature does not verify (another key, or the request changed after signing).
    BadSignature,
    /// The timestamp is too far from the agent's clock.
    Stale,
    /// The nonce was seen before.
    Replayed,
    /// The body is larger than [`MAX_BODY`].
    Oversized,
    /// The settings document cannot be read.
    Malformed,
    /// The request would remove or weaken the gate.
    Downgrade,
}

impl Refusal {
    /// The counter's label.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Unsigned => "unsigned",
            Refusal::WrongMachine => "wrong_machine",
            Refusal::BadSignature => "bad_signature",
            Refusal::Stale => "stale",
            Refusal::Replayed => "replayed",
            Refusal::Oversized => "oversized",
            Refusal::Malformed => "malformed",
            Refusal::Downgrade => "downgrade",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Refusal::Unsigned | Refusal::BadSignature | Refusal::Stale | Refusal::Replayed => {
                StatusCode::UNAUTHORIZED
            }
            Refusal::WrongMachine => StatusCode::FORBIDDEN,
            Refusal::Oversized => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Malformed => StatusCode::BAD_REQUEST,
            Refusal::Downgrade => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    fn code(self) -> gridapi::ErrorCode {
        use gridapi::ErrorCode as C;
        match self {
            Refusal::Unsigned | Refusal::BadSignature | Refusal::Stale | Refusal::Replayed => {
                C::Unauthenticated
            }
            Refusal::WrongMachine => C::Unauthorized,
            Refusal::Oversized | Refusal::Malformed | Refusal::Downgrade => C::Invalid,
        }
    }
}

/// A refused request: counted, logged without any header value, answered with the grid's
/// error body.
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub why: Refusal,
    /// What to tell the caller (never a secret).
    pub message: String,
}

impl Refused {
    /// A refusal.
    pub fn new(why: Refusal, message: impl Into<String>) -> Self {
        Refused {
            why,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = gridapi::ErrorBody::new(self.why.code(), self.message);
        (self.why.status(), axum::Json(body)).into_response()
    }
}

/// Who may call, and the nonces already used.
#[derive(Debug)]
pub struct Verifier {
    key: ControllerPublicKey,
    machine: String,
    nonces: Mutex<HashMap<String, u64>>,
}

impl Verifier {
    /// Requests signed by `key` for `machine`.
    pub fn new(key: ControllerPublicKey, machine: String) -> Self {
        Verifier {
            key,
            machine,
            nonces: Mutex::new(HashMap::new()),
        }
    }

    /// This machine's id.
    pub fn machine(&self) -> &str {
        &self.machine
    }

    /// Checks a request's headers against its method, path and body, at time `now`.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: u64,
    ) -> Result<(), Refused> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(machine), Some(ts), Some(nonce), Some(sig)) = (
            header(signing::MACHINE_HEADER),
            header(signing::TIMESTAMP_HEADER),
            header(signing::NONCE_HEADER),
            header(signing::SIGNATURE_HEADER),
        ) else {
            return Err(Refused::new(
                Refusal::Unsigned,
                "the request is not signed: the agent only obeys its controller's signed requests",
            ));
        };
        if machine != self.machine {
            return Err(Refused::new(
                Refusal::WrongMachine,
                "the request was signed for another machine",
            ));
        }
        let ts: u64 = ts
            .parse()
            .map_err(|_| Refused::new(Refusal::Stale, "the timestamp is not a number"))?;
        if ts.abs_diff(now) > MAX_SKEW {
            return Err(Refused::new(
                Refusal::Stale,
                format!(
                    "the request was signed {}s away from this machine's clock (at most {MAX_SKEW}s): check both clocks",
                    ts.abs_diff(now)
                ),
            ));
        }
        if nonce.len() < 16 || nonce.len() > 64 {
            return Err(Refused::new(
                Refusal::BadSignature,
                "the nonce is malformed",
            ));
        }
        let message = signing::message(machine, method, path, body, ts, nonce);
        if !self.key.verifies(&message, sig) {
            return Err(Refused::new(
                Refusal::BadSignature,
                "the signature does not match the controller's key and this request",
            ));
        }
        let mut nonces = self.nonces.lock().expect("nonce lock");
        nonces.retain(|_, expires| *expires > now);
        if nonces.contains_key(nonce) {
            return Err(Refused::new(
                Refusal::Replayed,
                "the request was already received",
            ));
        }
        if nonces.len() >= MAX_NONCES {
            return Err(Refused::new(
                Refusal::Replayed,
                "too many requests in the replay window; retry later",
            ));
        }
        nonces.insert(nonce.to_string(), ts + 2 * MAX_SKEW);
        Ok(())
    }
}

/// Middleware of the API: reads the body (at most [`MAX_BODY`]), checks the signature, counts
/// refusals, and hands the request on with its body.
pub async fn require_signature(
    State(agent): State<Arc<Agent>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let checked = match to_bytes(body, MAX_BODY).await {
        Err(_) => Err(Refused::new(
            Refusal::Oversized,
            format!("the body is larger than {MAX_BODY} bytes"),
        )),
        Ok(bytes) => agent
            .verifier
            .check(
                parts.method.as_str(),
                &path,
                &parts.headers,
                &bytes,
                signing::now_secs(),
            )
            .map(|()| bytes),
    };
    match checked {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(refused) => agent.refuse(refused, parts.method.as_str(), &path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridapi::agent::signing::ControllerKey;

    fn headers(h: &signing::SignedHeaders) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in h.pairs() {
            m.insert(k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn each_bad_request_is_refused_for_its_reason() {
        let key = ControllerKey::generate();
        let v = Verifier::new(key.public(), "m-a".into());
        let now = 1_000_000;
        let ok = key.sign_at("m-a", "PUT", "/v1/gate", b"{}", now, "00112233445566778899");
        assert!(
            v.check("PUT", "/v1/gate", &headers(&ok), b"{}", now)
                .is_ok()
        );
        let why = |r: Result<(), Refused>| r.unwrap_err().why;
        assert_eq!(
            why(v.check("PUT", "/v1/gate", &headers(&ok), b"{}", now)),
            Refusal::Replayed
        );
        assert_eq!(
            why(v.check("PUT", "/v1/gate", &HeaderMap::new(), b"{}", now)),
            Refusal::Unsigned
        );
        let other = key.sign_at("m-b", "PUT", "/v1/gate", b"{}", now, "aa112233445566778899");
        assert_eq!(
            why(v.check("PUT", "/v1/gate", &headers(&other), b"{}", now)),
            Refusal::WrongMachine
        );
        let fresh = key.sign_at("m-a", "PUT", "/v1/gate", b"{}", now, "bb112233445566778899");
        assert_eq!(
            why(v.check("PUT", "/v1/gate", &headers(&fresh), b"{\"x\":1}", now)),
            Refusal::BadSignature
        );
        assert_eq!(
            why(v.check("PUT", "/v1/engines", &headers(&fresh), b"{}", now)),
            Refusal::BadSignature
        );
        let old = key.sign_at(
            "m-a",
            "PUT",
            "/v1/gate",
            b"{}",
            now - 600,
            "cc112233445566778899",
        );
        assert_eq!(
            why(v.check("PUT", "/v1/gate", &headers(&old), b"{}", now)),
            Refusal::Stale
        );
        let stranger = ControllerKey::generate().sign_at(
            "m-a",
            "PUT",
            "/v1/gate",
            b"{}",
            now,
            "dd112233445566778899",
        );
        assert_eq!(
            why(v.check("PUT", "/v1/gate", &headers(&stranger), b"{}", now)),
            Refusal::BadSignature
        );
        // A nonce expires with the window, so the cache does not grow for ever.
        let later = now + 3 * MAX_SKEW;
        let again = key.sign_at(
            "m-a",
            "PUT",
            "/v1/gate",
            b"{}",
            later,
            "ee112233445566778899",
        );
        assert!(
            v.check("PUT", "/v1/gate", &headers(&again), b"{}", later)
                .is_ok()
        );
        assert_eq!(v.nonces.lock().unwrap().len(), 1);
    }
}
