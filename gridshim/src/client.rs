//! The typed client of the grid.
//!
//! [`Grid`] is the one interface a reconciler talks to. Its methods return boxed futures
//! ([`GridFuture`]) rather than `async fn`, so the trait is object safe: a controller can hold an
//! `Arc<dyn Grid>` and tests can swap in any implementation. [`HttpGrid`] implements it against
//! gridshim; a client for the real grid would implement the same trait over the proxy, the chain
//! and the node message bus.
//!
//! Errors ([`GridError`]) are sorted into what a reconciler does with them
//! ([`ErrorCategory`]): retry later, conflict / already exists, not found, capacity, fatal. Each
//! carries the grid's own text.
//!
//! The chain and node faces are used through a session (the real client's long-lived
//! connection). When the session goes stale ("background task closed, restart required")
//! [`HttpGrid`] opens a new one and retries the call once, so callers never see that error
//! unless reconnecting fails too.
//!
//! [`Admin`] drives gridshim's own admin API (faults, leftover names, node conditions, catalog,
//! inspection); it exists only for tests and has no counterpart on the real grid.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::*;

/// The future every [`Grid`] method returns.
pub type GridFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, GridError>> + Send + 'a>>;

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

/// Everything a controller does on a grid. Object safe: use it as `Arc<dyn Grid>`.
///
/// Calls are made as one twin ([`Grid::twin_id`]). Methods that change the chain may return
/// [`GridError::RetryLater`] after they landed (a timeout does not mean nothing happened): look
/// before creating again.
pub trait Grid: Send + Sync {
    /// The twin every call is made as.
    fn twin_id(&self) -> u32;

    // --- proxy face (lags reality) ---

    /// Lists nodes matching the filter (one page).
    fn list_nodes<'a>(&'a self, filter: &'a NodeFilter) -> GridFuture<'a, NodePage>;
    /// One node; `NotFound` when unknown.
    fn get_node(&self, node_id: u32) -> GridFuture<'_, Node>;

    // --- chain face (each call waits for a block) ---

    /// Creates a node contract. `Conflict(ContractIsNotUnique)` when the same node and hash are
    /// already under contract; `Fatal(ContractMetadataTooLong)` past 512 bytes.
    fn create_node_contract<'a>(&'a self, req: &'a NodeContractRequest)
    -> GridFuture<'a, Contract>;
    /// Creates a name contract. `NameExists` (with the owner twin) when taken; `Fatal` with
    /// `NameNotValid` / `NameContractNameTooShort` / `NameContractNameTooLong` for its shape.
    fn create_name_contract<'a>(&'a self, name: &'a str) -> GridFuture<'a, Contract>;
    /// Cancels a contract. `NotFound(ContractNotExists)` when already gone;
    /// `Fatal(TwinNotAuthorizedToCancelContract)` when not ours; `RetryLater(BadGateway)`.
    fn cancel_contract(&self, contract_id: u64) -> GridFuture<'_, ()>;
    /// One contract; `NotFound(ContractNotExists)` when gone.
    fn get_contract(&self, contract_id: u64) -> GridFuture<'_, Contract>;
    /// Which contract holds a name; `None` when the name is free.
    fn name_owner<'a>(&'a self, name: &'a str) -> GridFuture<'a, Option<NameOwner>>;
    /// Every live contract of our twin (node and name), to adopt deployments by their metadata.
    fn list_my_contracts(&self) -> GridFuture<'_, Vec<Contract>>;

    // --- node face (message bus) ---

    /// Sends a deployment to a node; returns once queued. Results come later through
    /// [`Grid::get_deployment`] / [`Grid::deployment_changes`]. `deployment.contract_id` must be
    /// a node contract of ours on this node whose hash is [`Deployment::challenge_hash`].
    fn deploy<'a>(&'a self, node_id: u32, deployment: &'a Deployment) -> GridFuture<'a, ()>;
    /// The deployment with its workloads' current results.
    fn get_deployment(&self, node_id: u32, contract_id: u64) -> GridFuture<'_, Deployment>;
    /// Every state change of every workload, oldest first.
    fn deployment_changes(
        &self,
        node_id: u32,
        contract_id: u64,
    ) -> GridFuture<'_, Vec<WorkloadChange>>;

    // --- VM agent (over the private network, with the deployer's key) ---

    /// Configures the VM's sign-in gate.
    fn agent_configure_gate<'a>(
        &'a self,
        vm: &'a AgentTarget,
        gate: &'a GateSettings,
    ) -> GridFuture<'a, ()>;
    /// Sets the engine URL + token pairs (replaces the set).
    fn agent_set_engines<'a>(
        &'a self,
        vm: &'a AgentTarget,
        engines: &'a [EngineCredential],
    ) -> GridFuture<'a, ()>;
    /// Sets the SSH keys (replaces the set; empty disables SSH).
    fn agent_set_ssh_keys<'a>(
        &'a self,
        vm: &'a AgentTarget,
        keys: &'a [String],
    ) -> GridFuture<'a, ()>;
    /// Sets the AI-provider keys, provider → key (replaces the set). Never logged.
    fn agent_set_ai_keys<'a>(
        &'a self,
        vm: &'a AgentTarget,
        keys: &'a BTreeMap<String, String>,
    ) -> GridFuture<'a, ()>;
    /// What the agent holds, without secrets.
    fn agent_config<'a>(&'a self, vm: &'a AgentTarget) -> GridFuture<'a, AgentConfigView>;
    /// Starts an install (asynchronous). `Conflict` while one is running.
    fn agent_start_install<'a>(
        &'a self,
        vm: &'a AgentTarget,
        req: &'a InstallRequest,
    ) -> GridFuture<'a, InstallStatus>;
    /// Install status with the per-step log and the recorded component versions.
    fn agent_install_status<'a>(&'a self, vm: &'a AgentTarget) -> GridFuture<'a, InstallStatus>;
    /// Per-app health.
    fn agent_app_health<'a>(&'a self, vm: &'a AgentTarget) -> GridFuture<'a, AppHealth>;

    // --- shared engines (admin machine) ---

    /// The engines, their URLs and whether they listen.
    fn list_engines(&self) -> GridFuture<'_, Vec<EngineInfo>>;
    /// Registers (or replaces) the token of a tester identity on an engine.
    fn register_engine_token<'a>(
        &'a self,
        engine: &'a str,
        tester: &'a str,
        token: &'a str,
    ) -> GridFuture<'a, ()>;
    /// Revokes a tester's token on an engine. Idempotent: revoking an absent token is `Ok`.
    fn revoke_engine_token<'a>(&'a self, engine: &'a str, tester: &'a str) -> GridFuture<'a, ()>;
    /// Calls an engine's endpoint as a tester, with a token. Refusals are `Fatal` with
    /// `Unauthenticated` (401) or `Unauthorized` (403).
    fn call_engine<'a>(
        &'a self,
        engine: &'a str,
        tester: &'a str,
        token: &'a str,
        body: &'a serde_json::Value,
    ) -> GridFuture<'a, serde_json::Value>;

    // --- release catalog ---

    /// Newest version per app per channel.
    fn catalog(&self) -> GridFuture<'_, Catalog>;
}

/// The [`Grid`] over gridshim's HTTP API.
pub struct HttpGrid {
    base: String,
    twin_id: u32,
    secret: String,
    http: reqwest::Client,
    session: Mutex<Option<String>>,
}

impl std::fmt::Debug for HttpGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGrid")
            .field("base", &self.base)
            .field("twin_id", &self.twin_id)
            .finish_non_exhaustive()
    }
}

/// Turns a transport failure into a retry-later error.
fn transport(e: reqwest::Error, what: &str) -> GridError {
    let code = if e.is_timeout() {
        ErrorCode::Timeout
    } else {
        ErrorCode::NodeUnreachable
    };
    GridError::RetryLater {
        code,
        message: format!("{what}: {e}"),
    }
}

/// Reads an answer: JSON `T` on success, an [`ErrorBody`] otherwise.
async fn read<T: DeserializeOwned>(resp: reqwest::Response, what: &str) -> Result<T, GridError> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| transport(e, what))?;
    if status.is_success() {
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        return serde_json::from_slice(bytes).map_err(|e| GridError::Fatal {
            code: ErrorCode::Internal,
            message: format!("{what}: cannot decode answer: {e}"),
        });
    }
    if let Ok(body) = serde_json::from_slice::<ErrorBody>(&bytes) {
        return Err(GridError::from_body(body));
    }
    // Not one of ours: a proxy in between or a bare HTTP error. 5xx are transient.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let message = format!("{what}: HTTP {status}: {text}");
    Err(match status.as_u16() {
        502..=504 => GridError::RetryLater {
            code: ErrorCode::BadGateway,
            message,
        },
        404 => GridError::NotFound {
            code: ErrorCode::NotFound,
            message,
        },
        401 => GridError::Fatal {
            code: ErrorCode::Unauthenticated,
            message,
        },
        403 => GridError::Fatal {
            code: ErrorCode::Unauthorized,
            message,
        },
        s if s >= 500 => GridError::RetryLater {
            code: ErrorCode::Busy,
            message,
        },
        _ => GridError::Fatal {
            code: ErrorCode::Invalid,
            message,
        },
    })
}

impl HttpGrid {
    /// A client of the gridshim at `base_url` (e.g. `http://127.0.0.1:8800`), acting as a twin.
    pub fn new(base_url: impl Into<String>, twin_id: u32, secret: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            // Longer than any simulated wait (the node face's 60 s timeout, scaled or not).
            .timeout(Duration::from_secs(120))
            .build()
            .expect("reqwest client without TLS always builds");
        Self::with_http_client(base_url, twin_id, secret, http)
    }

    /// Same, with a caller-built HTTP client.
    pub fn with_http_client(
        base_url: impl Into<String>,
        twin_id: u32,
        secret: impl Into<String>,
        http: reqwest::Client,
    ) -> Self {
        HttpGrid {
            base: base_url.into().trim_end_matches('/').to_string(),
            twin_id,
            secret: secret.into(),
            http,
            session: Mutex::new(None),
        }
    }

    /// The gridshim base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Opens a new session (drops the old one).
    pub async fn connect(&self) -> Result<String, GridError> {
        let resp = self
            .http
            .post(format!("{}/session", self.base))
            .json(&SessionRequest {
                twin_id: self.twin_id,
                secret: self.secret.clone(),
            })
            .send()
            .await
            .map_err(|e| transport(e, "open session"))?;
        let s: Session = read(resp, "open session").await?;
        *self.session.lock().expect("session lock") = Some(s.session.clone());
        Ok(s.session)
    }

    async fn session(&self) -> Result<String, GridError> {
        let current = self.session.lock().expect("session lock").clone();
        match current {
            Some(s) => Ok(s),
            None => self.connect().await,
        }
    }

    /// A chain or node call with the session; reconnects and retries once on a stale session.
    async fn with_session<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        what: &str,
    ) -> Result<T, GridError> {
        let mut retried = false;
        loop {
            let session = self.session().await?;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{}", self.base, path))
                .header(SESSION_HEADER, &session);
            if let Some(b) = &body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.clone());
            }
            let resp = req.send().await.map_err(|e| transport(e, what))?;
            match read::<T>(resp, what).await {
                Err(e)
                    if !retried
                        && matches!(
                            e.code(),
                            ErrorCode::StaleConnection | ErrorCode::Unauthenticated
                        ) =>
                {
                    // The connection's background task died (or gridshim restarted and forgot
                    // the session): the real client must be rebuilt; do it once, then retry.
                    tracing::info!(what, error = %e, "grid session stale, reconnecting");
                    retried = true;
                    self.session.lock().expect("session lock").take();
                }
                other => return other,
            }
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, what: &str) -> Result<T, GridError> {
        let resp = self
            .http
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .map_err(|e| transport(e, what))?;
        read(resp, what).await
    }

    async fn send_json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        what: &str,
    ) -> Result<T, GridError> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| transport(e, what))?;
        read(resp, what).await
    }

    /// gridshim's ports and profile (gridshim only; a real-grid client has no such call).
    pub async fn info(&self) -> Result<GridInfo, GridError> {
        self.get("/info", "info").await
    }

    /// Where a mycelium address is reachable on this machine.
    pub async fn resolve_private(&self, mycelium_ip: &str) -> Result<PrivateRoute, GridError> {
        self.get(
            &format!("/private/{}", encode(mycelium_ip)),
            "resolve private address",
        )
        .await
    }

    async fn agent<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        vm: &AgentTarget,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        what: &str,
    ) -> Result<T, GridError> {
        let route = self.resolve_private(&vm.mycelium_ip).await?;
        let mut req = self
            .http
            .request(method, format!("{}{}", route.agent_url(), path))
            .bearer_auth(&vm.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| transport(e, what))?;
        read(resp, what).await
    }

    async fn engine_info(&self, engine: &str) -> Result<EngineInfo, GridError> {
        let engines: Vec<EngineInfo> = self.get("/engines", "list engines").await?;
        engines
            .into_iter()
            .find(|e| e.name == engine)
            .ok_or_else(|| GridError::NotFound {
                code: ErrorCode::NotFound,
                message: format!("no engine {engine:?}"),
            })
    }
}

/// Percent-encodes a path segment (names and IPv6 addresses only need a few characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Serialises a wire type.
fn json<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("wire types always serialise")
}

use reqwest::Method;

impl Grid for HttpGrid {
    fn twin_id(&self) -> u32 {
        self.twin_id
    }

    fn list_nodes<'a>(&'a self, filter: &'a NodeFilter) -> GridFuture<'a, NodePage> {
        Box::pin(async move {
            let resp = self
                .http
                .get(format!("{}/proxy/nodes", self.base))
                .query(filter)
                .send()
                .await
                .map_err(|e| transport(e, "list nodes"))?;
            read(resp, "list nodes").await
        })
    }

    fn get_node(&self, node_id: u32) -> GridFuture<'_, Node> {
        Box::pin(async move {
            self.get(&format!("/proxy/nodes/{node_id}"), "get node")
                .await
        })
    }

    fn create_node_contract<'a>(
        &'a self,
        req: &'a NodeContractRequest,
    ) -> GridFuture<'a, Contract> {
        Box::pin(async move {
            self.with_session(
                Method::POST,
                "/chain/contracts/node",
                Some(json(req)),
                "create node contract",
            )
            .await
        })
    }

    fn create_name_contract<'a>(&'a self, name: &'a str) -> GridFuture<'a, Contract> {
        Box::pin(async move {
            let req = NameContractRequest {
                name: name.to_string(),
            };
            self.with_session(
                Method::POST,
                "/chain/contracts/name",
                Some(json(&req)),
                "create name contract",
            )
            .await
            .map_err(|e| match e {
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
            })
        })
    }

    fn cancel_contract(&self, contract_id: u64) -> GridFuture<'_, ()> {
        Box::pin(async move {
            self.with_session(
                Method::DELETE,
                &format!("/chain/contracts/{contract_id}"),
                None,
                "cancel contract",
            )
            .await
        })
    }

    fn get_contract(&self, contract_id: u64) -> GridFuture<'_, Contract> {
        Box::pin(async move {
            self.with_session(
                Method::GET,
                &format!("/chain/contracts/{contract_id}"),
                None,
                "get contract",
            )
            .await
        })
    }

    fn name_owner<'a>(&'a self, name: &'a str) -> GridFuture<'a, Option<NameOwner>> {
        Box::pin(async move {
            self.with_session(
                Method::GET,
                &format!("/chain/names/{}", encode(name)),
                None,
                "look up name",
            )
            .await
        })
    }

    fn list_my_contracts(&self) -> GridFuture<'_, Vec<Contract>> {
        Box::pin(async move {
            self.with_session(Method::GET, "/chain/contracts", None, "list contracts")
                .await
        })
    }

    fn deploy<'a>(&'a self, node_id: u32, deployment: &'a Deployment) -> GridFuture<'a, ()> {
        Box::pin(async move {
            self.with_session(
                Method::POST,
                &format!("/nodes/{node_id}/deployments"),
                Some(json(deployment)),
                "deploy",
            )
            .await
        })
    }

    fn get_deployment(&self, node_id: u32, contract_id: u64) -> GridFuture<'_, Deployment> {
        Box::pin(async move {
            self.with_session(
                Method::GET,
                &format!("/nodes/{node_id}/deployments/{contract_id}"),
                None,
                "get deployment",
            )
            .await
        })
    }

    fn deployment_changes(
        &self,
        node_id: u32,
        contract_id: u64,
    ) -> GridFuture<'_, Vec<WorkloadChange>> {
        Box::pin(async move {
            self.with_session(
                Method::GET,
                &format!("/nodes/{node_id}/deployments/{contract_id}/changes"),
                None,
                "deployment changes",
            )
            .await
        })
    }

    fn agent_configure_gate<'a>(
        &'a self,
        vm: &'a AgentTarget,
        gate: &'a GateSettings,
    ) -> GridFuture<'a, ()> {
        Box::pin(async move {
            self.agent(vm, Method::PUT, "/v1/gate", Some(gate), "configure gate")
                .await
        })
    }

    fn agent_set_engines<'a>(
        &'a self,
        vm: &'a AgentTarget,
        engines: &'a [EngineCredential],
    ) -> GridFuture<'a, ()> {
        Box::pin(async move {
            let body = EngineCredentials {
                engines: engines.to_vec(),
            };
            self.agent(vm, Method::PUT, "/v1/engines", Some(&body), "set engines")
                .await
        })
    }

    fn agent_set_ssh_keys<'a>(
        &'a self,
        vm: &'a AgentTarget,
        keys: &'a [String],
    ) -> GridFuture<'a, ()> {
        Box::pin(async move {
            let body = SshKeys {
                keys: keys.to_vec(),
            };
            self.agent(vm, Method::PUT, "/v1/ssh-keys", Some(&body), "set ssh keys")
                .await
        })
    }

    fn agent_set_ai_keys<'a>(
        &'a self,
        vm: &'a AgentTarget,
        keys: &'a BTreeMap<String, String>,
    ) -> GridFuture<'a, ()> {
        Box::pin(async move {
            let body = AiKeys { keys: keys.clone() };
            self.agent(vm, Method::PUT, "/v1/ai-keys", Some(&body), "set ai keys")
                .await
        })
    }

    fn agent_config<'a>(&'a self, vm: &'a AgentTarget) -> GridFuture<'a, AgentConfigView> {
        Box::pin(async move {
            self.agent::<_, ()>(vm, Method::GET, "/v1/config", None, "agent config")
                .await
        })
    }

    fn agent_start_install<'a>(
        &'a self,
        vm: &'a AgentTarget,
        req: &'a InstallRequest,
    ) -> GridFuture<'a, InstallStatus> {
        Box::pin(async move {
            self.agent(vm, Method::POST, "/v1/install", Some(req), "start install")
                .await
        })
    }

    fn agent_install_status<'a>(&'a self, vm: &'a AgentTarget) -> GridFuture<'a, InstallStatus> {
        Box::pin(async move {
            self.agent::<_, ()>(vm, Method::GET, "/v1/install", None, "install status")
                .await
        })
    }

    fn agent_app_health<'a>(&'a self, vm: &'a AgentTarget) -> GridFuture<'a, AppHealth> {
        Box::pin(async move {
            self.agent::<_, ()>(vm, Method::GET, "/v1/health", None, "app health")
                .await
        })
    }

    fn list_engines(&self) -> GridFuture<'_, Vec<EngineInfo>> {
        Box::pin(async move { self.get("/engines", "list engines").await })
    }

    fn register_engine_token<'a>(
        &'a self,
        engine: &'a str,
        tester: &'a str,
        token: &'a str,
    ) -> GridFuture<'a, ()> {
        Box::pin(async move {
            let body = TokenRegistration {
                token: token.to_string(),
            };
            self.send_json(
                Method::PUT,
                &format!("/engines/{}/tokens/{}", encode(engine), encode(tester)),
                Some(&body),
                "register engine token",
            )
            .await
        })
    }

    fn revoke_engine_token<'a>(&'a self, engine: &'a str, tester: &'a str) -> GridFuture<'a, ()> {
        Box::pin(async move {
            self.send_json::<(), ()>(
                Method::DELETE,
                &format!("/engines/{}/tokens/{}", encode(engine), encode(tester)),
                None,
                "revoke engine token",
            )
            .await
        })
    }

    fn call_engine<'a>(
        &'a self,
        engine: &'a str,
        tester: &'a str,
        token: &'a str,
        body: &'a serde_json::Value,
    ) -> GridFuture<'a, serde_json::Value> {
        Box::pin(async move {
            let info = self.engine_info(engine).await?;
            let resp = self
                .http
                .post(format!("{}{}", info.url, info.call_path))
                .bearer_auth(token)
                .header(TESTER_HEADER, tester)
                .json(body)
                .send()
                .await
                .map_err(|e| transport(e, "call engine"))?;
            read(resp, "call engine").await
        })
    }

    fn catalog(&self) -> GridFuture<'_, Catalog> {
        Box::pin(async move { self.get("/catalog", "catalog").await })
    }
}

/// gridshim's admin API (tests only; the real grid has nothing like it).
#[derive(Debug, Clone)]
pub struct Admin {
    base: String,
    http: reqwest::Client,
}

impl Admin {
    /// Admin client of the gridshim at `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        Admin {
            base: base_url.into().trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, GridError> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| transport(e, path))?;
        read(resp, path).await
    }

    /// Injects a fault.
    pub async fn inject(&self, spec: &FaultSpec) -> Result<Fault, GridError> {
        self.call(Method::POST, "/admin/faults", Some(spec)).await
    }
    /// Lists injected faults (with how often each fired).
    pub async fn faults(&self) -> Result<Vec<Fault>, GridError> {
        self.call::<_, ()>(Method::GET, "/admin/faults", None).await
    }
    /// Removes one fault.
    pub async fn remove_fault(&self, id: u64) -> Result<(), GridError> {
        self.call::<_, ()>(Method::DELETE, &format!("/admin/faults/{id}"), None)
            .await
    }
    /// Removes every fault.
    pub async fn clear_faults(&self) -> Result<(), GridError> {
        self.call::<_, ()>(Method::DELETE, "/admin/faults", None)
            .await
    }
    /// Creates a leftover name registration owned by any twin.
    pub async fn leftover_name(&self, name: &str, twin_id: u32) -> Result<Contract, GridError> {
        let body = LeftoverName {
            name: name.to_string(),
            twin_id,
        };
        self.call(Method::POST, "/admin/names", Some(&body)).await
    }
    /// Changes a node's condition (e.g. take it down).
    pub async fn set_node(&self, node_id: u32, cond: &NodeCondition) -> Result<(), GridError> {
        self.call(Method::POST, &format!("/admin/nodes/{node_id}"), Some(cond))
            .await
    }
    /// Makes an engine's token store (un)available.
    pub async fn set_token_store(&self, engine: &str, available: bool) -> Result<(), GridError> {
        self.call(
            Method::POST,
            &format!("/admin/engines/{}/token-store", encode(engine)),
            Some(&serde_json::json!({ "available": available })),
        )
        .await
    }
    /// Replaces the release catalog.
    pub async fn set_catalog(&self, catalog: &Catalog) -> Result<(), GridError> {
        self.call(Method::PUT, "/admin/catalog", Some(catalog))
            .await
    }
    /// Publishes one app version in a channel.
    pub async fn publish(
        &self,
        channel: Channel,
        app: &str,
        version: &str,
    ) -> Result<(), GridError> {
        self.call(
            Method::POST,
            "/admin/catalog/publish",
            Some(&serde_json::json!({ "channel": channel, "app": app, "version": version })),
        )
        .await
    }
    /// How many requests the grid's faces served so far.
    pub async fn requests(&self) -> Result<RequestCount, GridError> {
        self.call::<_, ()>(Method::GET, "/admin/requests", None)
            .await
    }

    /// Everything live.
    pub async fn inspect(&self) -> Result<Inspection, GridError> {
        self.call::<_, ()>(Method::GET, "/inspect", None).await
    }
}
