//! The machine agent over HTTP at `http://[<private address>]:<port>`, every request signed
//! with the controller's key for the machine's id ([`crate::agent::signing`]). A controller
//! that is not itself on the private network reaches it through an HTTP proxy into that network
//! (gridshim's gateway is one).

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{read, transport};
use crate::{
    ErrorCode, GridError, GridFuture,
    agent::{
        AgentConfigView, AgentTarget, AiKeys, AppHealth, EngineCredentials, GateSettings,
        InstallRequest, InstallStatus, MachineAgent, SshKeys, signing::ControllerKey,
    },
};

/// [`MachineAgent`] over HTTP.
#[derive(Debug, Clone)]
pub struct HttpAgents {
    port: u16,
    http: reqwest::Client,
    key: ControllerKey,
}

impl HttpAgents {
    /// Agents listening on `port`, reached directly or through the HTTP proxy `via`, every
    /// request signed with `key`.
    pub fn new(port: u16, via: Option<&str>, key: ControllerKey) -> Result<Self, GridError> {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            // One VM is reached now and then: no idle connection kept per VM.
            .pool_idle_timeout(Duration::from_secs(5))
            // Never through a proxy from the environment: the private network is reached
            // directly or through `via`, nothing else.
            .no_proxy();
        if let Some(url) = via {
            let proxy = reqwest::Proxy::http(url).map_err(|e| GridError::Fatal {
                code: ErrorCode::Invalid,
                message: format!("private-network proxy {url:?} is not a URL: {e}"),
            })?;
            b = b.proxy(proxy);
        }
        let http = b.build().map_err(|e| GridError::Fatal {
            code: ErrorCode::Internal,
            message: format!("cannot build the agent client: {e}"),
        })?;
        Ok(HttpAgents { port, http, key })
    }

    /// The agent's base URL on the private network.
    pub fn base_url(&self, vm: &AgentTarget) -> String {
        match vm.mycelium_ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(ip)) => format!("http://[{ip}]:{}", self.port),
            _ => format!("http://{}:{}", vm.mycelium_ip, self.port),
        }
    }

    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        vm: &AgentTarget,
        method: Method,
        path: &str,
        body: Option<&B>,
        what: &str,
    ) -> Result<T, GridError> {
        let body = body.map(super::json).unwrap_or_default();
        let signed = self.key.sign(&vm.machine_id, method.as_str(), path, &body);
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base_url(vm)));
        for (name, value) in signed.pairs() {
            req = req.header(name, value);
        }
        if !body.is_empty() {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let resp = req.send().await.map_err(|e| transport(e, what))?;
        read(resp, what).await
    }
}

impl MachineAgent for HttpAgents {
    fn configure_gate<'a>(
        &'a self,
        vm: &'a AgentTarget,
        gate: &'a GateSettings,
    ) -> GridFuture<'a, ()> {
        Box::pin(self.call(vm, Method::PUT, "/v1/gate", Some(gate), "configure gate"))
    }

    fn set_engines<'a>(
        &'a self,
        vm: &'a AgentTarget,
        engines: &'a EngineCredentials,
    ) -> GridFuture<'a, ()> {
        Box::pin(self.call(vm, Method::PUT, "/v1/engines", Some(engines), "set engines"))
    }

    fn set_ssh_keys<'a>(&'a self, vm: &'a AgentTarget, keys: &'a SshKeys) -> GridFuture<'a, ()> {
        Box::pin(self.call(vm, Method::PUT, "/v1/ssh-keys", Some(keys), "set ssh keys"))
    }

    fn set_ai_keys<'a>(&'a self, vm: &'a AgentTarget, keys: &'a AiKeys) -> GridFuture<'a, ()> {
        Box::pin(self.call(vm, Method::PUT, "/v1/ai-keys", Some(keys), "set ai keys"))
    }

    fn config<'a>(&'a self, vm: &'a AgentTarget) -> GridFuture<'a, AgentConfigView> {
        Box::pin(self.call::<_, ()>(vm, Method::GET, "/v1/config", None, "agent config"))
    }

    fn start_install<'a>(
        &'a self,
        vm: &'a AgentTarget,
        req: &'a InstallRequest,
    ) -> GridFuture<'a, InstallStatus> {
        Box::pin(self.call(vm, Method::POST, "/v1/install", Some(req), "start install"))
    }

    fn install_status<'a>(&'a self, vm: &'a AgentTarget) -> GridFuture<'a, InstallStatus> {
        Box::pin(self.call::<_, ()>(vm, Method::GET, "/v1/install", None, "install status"))
    }

    fn app_health<'a>(&'a self, vm: &'a AgentTarget) -> GridFuture<'a, AppHealth> {
        Box::pin(self.call::<_, ()>(vm, Method::GET, "/v1/health", None, "app health"))
    }
}
