//! The client of gridshim's admin API (faults, leftover names, node conditions, engines,
//! catalog, inspection) and of its simulator-only answers (`/info`, `/private`). Tests use it;
//! the controller never does.

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use gridapi::{
    ErrorCode, GridError,
    catalog::{Catalog, Channel},
    engines::{EngineInfo, TESTER_HEADER, TokenRegistration},
    http::{encode, read, transport},
};

use crate::wire::*;

/// gridshim's admin API and its simulator-only answers (tests only; the real grid has nothing
/// like it).
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
    pub async fn leftover_name(&self, name: &str, twin_id: u32) -> Result<ContractRec, GridError> {
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

    /// gridshim's ports and profile.
    pub async fn info(&self) -> Result<GridInfo, GridError> {
        self.call::<_, ()>(Method::GET, "/info", None).await
    }

    /// Where a private (mycelium) address is reachable on this machine.
    pub async fn resolve_private(&self, mycelium_ip: &str) -> Result<PrivateRoute, GridError> {
        self.call::<_, ()>(
            Method::GET,
            &format!("/private/{}", encode(mycelium_ip)),
            None,
        )
        .await
    }

    /// The shared engines gridshim runs.
    pub async fn engines(&self) -> Result<Vec<EngineInfo>, GridError> {
        self.call::<_, ()>(Method::GET, "/engines", None).await
    }

    /// One engine by name.
    pub async fn engine(&self, engine: &str) -> Result<EngineInfo, GridError> {
        self.engines()
            .await?
            .into_iter()
            .find(|e| e.name == engine)
            .ok_or_else(|| GridError::NotFound {
                code: ErrorCode::NotFound,
                message: format!("no engine {engine:?}"),
            })
    }

    /// Registers a tester's token with an engine through gridshim's registry.
    pub async fn register_engine_token(
        &self,
        engine: &str,
        tester: &str,
        token: &str,
    ) -> Result<(), GridError> {
        let body = TokenRegistration {
            token: token.to_string(),
        };
        self.call(
            Method::PUT,
            &format!("/engines/{}/tokens/{}", encode(engine), encode(tester)),
            Some(&body),
        )
        .await
    }

    /// Revokes a tester's token at an engine through gridshim's registry.
    pub async fn revoke_engine_token(&self, engine: &str, tester: &str) -> Result<(), GridError> {
        self.call::<_, ()>(
            Method::DELETE,
            &format!("/engines/{}/tokens/{}", encode(engine), encode(tester)),
            None,
        )
        .await
    }

    /// Calls an engine as a tester would (`POST <engine url><call path>`).
    pub async fn call_engine(
        &self,
        engine: &str,
        tester: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, GridError> {
        let info = self.engine(engine).await?;
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
    }
}
