//! The grid proxy's REST API, as tfgrid-sdk-go's `grid-proxy/pkg/client` calls it. A 5xx
//! answer is [`crate::ErrorCategory::RetryLater`]: the caller's reconcile loop retries it with
//! backoff.

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{read, transport};
use crate::{
    GridFuture,
    proxy::{
        COUNT_HEADER, Contract, ContractFilter, Farm, FarmFilter, Limit, Node, NodeFilter,
        NodeWithNestedCapacity, Page, Proxy,
    },
};

/// [`Proxy`] over the grid proxy's REST API.
#[derive(Debug, Clone)]
pub struct HttpProxy {
    base: String,
    http: reqwest::Client,
}

impl HttpProxy {
    /// A client of the proxy at `base` (e.g. `https://gridproxy.grid.tf`).
    pub fn new(base: &str) -> Self {
        Self::with_client(base, super::client())
    }

    /// Same, with a caller-built HTTP client.
    pub fn with_client(base: &str, http: reqwest::Client) -> Self {
        HttpProxy {
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    async fn list<T: DeserializeOwned, F: Serialize + ?Sized>(
        &self,
        path: &str,
        filter: &F,
        limit: Limit,
        what: &str,
    ) -> Result<Page<T>, crate::GridError> {
        let resp = self
            .http
            .request(Method::GET, format!("{}{path}", self.base))
            .query(filter)
            .query(&limit)
            .send()
            .await
            .map_err(|e| transport(e, what))?;
        let count = resp
            .headers()
            .get(COUNT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let items = read(resp, what).await?;
        Ok(Page { items, count })
    }
}

impl Proxy for HttpProxy {
    fn nodes<'a>(&'a self, filter: &'a NodeFilter, limit: Limit) -> GridFuture<'a, Page<Node>> {
        Box::pin(self.list("/nodes", filter, limit, "list nodes"))
    }

    fn node(&self, node_id: u32) -> GridFuture<'_, NodeWithNestedCapacity> {
        Box::pin(async move {
            let what = "get node";
            let resp = self
                .http
                .get(format!("{}/nodes/{node_id}", self.base))
                .send()
                .await
                .map_err(|e| transport(e, what))?;
            read(resp, what).await
        })
    }

    fn gateways<'a>(&'a self, filter: &'a NodeFilter, limit: Limit) -> GridFuture<'a, Page<Node>> {
        Box::pin(self.list("/gateways", filter, limit, "list gateways"))
    }

    fn contracts<'a>(
        &'a self,
        filter: &'a ContractFilter,
        limit: Limit,
    ) -> GridFuture<'a, Page<Contract>> {
        Box::pin(self.list("/contracts", filter, limit, "list contracts"))
    }

    fn farms<'a>(&'a self, filter: &'a FarmFilter, limit: Limit) -> GridFuture<'a, Page<Farm>> {
        Box::pin(self.list("/farms", filter, limit, "list farms"))
    }
}
