//! The grid proxy's REST API, as tfgrid-sdk-go's `grid-proxy/pkg/client` calls it. A 5xx
//! answer or a dropped connection is retried twice here with a short backoff (reads only: the
//! proxy changes nothing), then is [`crate::ErrorCategory::RetryLater`] for the caller's
//! reconcile loop.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{read, transport};
use crate::{
    GridFuture,
    proxy::{
        COUNT_HEADER, Contract, ContractFilter, Farm, FarmFilter, Limit, Node, NodeFilter,
        NodeWithNestedCapacity, Page, Proxy, Twin, TwinFilter,
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
        (|| self.list_once(path, filter, limit, what))
            .retry(retries())
            .when(crate::GridError::is_retry_later)
            .await
    }

    async fn list_once<T: DeserializeOwned, F: Serialize + ?Sized>(
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

/// Two more tries, 200 ms then about 400 ms apart (with jitter).
fn retries() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_times(2)
        .with_jitter()
}

impl Proxy for HttpProxy {
    fn nodes<'a>(&'a self, filter: &'a NodeFilter, limit: Limit) -> GridFuture<'a, Page<Node>> {
        Box::pin(self.list("/nodes", filter, limit, "list nodes"))
    }

    fn node(&self, node_id: u32) -> GridFuture<'_, NodeWithNestedCapacity> {
        let once = move || async move {
            let what = "get node";
            let resp = self
                .http
                .get(format!("{}/nodes/{node_id}", self.base))
                .send()
                .await
                .map_err(|e| transport(e, what))?;
            read(resp, what).await
        };
        Box::pin(once.retry(retries()).when(crate::GridError::is_retry_later))
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

    fn twins<'a>(&'a self, filter: &'a TwinFilter, limit: Limit) -> GridFuture<'a, Page<Twin>> {
        Box::pin(self.list("/twins", filter, limit, "list twins"))
    }
}
