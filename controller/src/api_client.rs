//! The controller's API client, metered on the wire: every request it sends (watches aside) is
//! timed, and every write counted, by verb and resource. What the metrics say the controller
//! costs the API server is what it sent (the finalizer patch, conflicts, retries and lease
//! renewals included), not what the code meant to write.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::http::{Method, Request, header::CONTENT_TYPE};
use hyper_timeout::TimeoutConnector;
use hyper_util::{client::legacy::connect::HttpConnector, rt::TokioExecutor};
use kube::{
    Client, Config,
    client::{ClientBuilder, ConfigExt, retry::RetryPolicy},
};
use tower::{BoxError, Layer, Service, ServiceBuilder, retry::RetryLayer};

use crate::metrics::Metrics;

/// The most a connection's read buffer grows to. hyper's default (~400 KiB) is reached by every
/// connection that once carried a large list, and kept for the connection's life: with dozens
/// of pooled connections that was the controller's largest single use of memory. Answers larger
/// than this are read in several pieces; a response head always fits.
const READ_BUFFER_MAX: usize = 32 * 1024;
/// Idle connections kept to the API server, and for how long: a burst of passes opens many; a
/// few are enough for the steady state (the watches hold their own).
const POOL_MAX_IDLE: usize = 8;
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for the cluster the controller runs against (in-cluster or `KUBECONFIG`), metered
/// into `metrics`.
///
/// kube's own stack (TLS, time-outs, base URI, retries of 429/503/504, authentication, extra
/// headers), with a connection pool bounded in idle connections and read-buffer size. Behind an
/// HTTP proxy (`proxy-url` in the kubeconfig) kube's default stack is used as it is.
pub async fn client(metrics: &Metrics) -> Result<Client, kube::Error> {
    let config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    if config.proxy_url.is_some() {
        return Ok(ClientBuilder::try_from(config)?
            .with_layer(&MeteredLayer(metrics.clone()))
            .build());
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let mut connector = TimeoutConnector::new(config.rustls_https_connector_with_connector(http)?);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let pool = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(POOL_MAX_IDLE)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .http1_max_buf_size(READ_BUFFER_MAX)
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(MeteredLayer(metrics.clone()))
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(pool);
    Ok(Client::new(service, config.default_namespace))
}

/// Wraps a service in [`Metered`].
pub struct MeteredLayer(pub Metrics);

impl<S> Layer<S> for MeteredLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Metered<S> {
        Metered {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// Times each request in `sandbox_api_request_duration_seconds` and counts each write in
/// `sandbox_api_writes_total`.
pub struct Metered<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B> Service<Request<B>> for Metered<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let kind = RequestKind::of(
            req.method(),
            req.uri().path(),
            req.uri().query().unwrap_or_default(),
            req.headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        );
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let response = self.inner.call(req);
        Box::pin(async move {
            let out = response.await;
            if let Some(kind) = kind {
                metrics
                    .api_duration
                    .with_label_values(&[kind.verb, &kind.resource])
                    .observe(started.elapsed().as_secs_f64());
                if kind.is_write() {
                    metrics
                        .api_writes
                        .with_label_values(&[kind.verb, &kind.resource])
                        .inc();
                }
            }
            out
        })
    }
}

/// A request as the API server's own metrics name it: its verb and resource.
#[derive(Debug, PartialEq)]
struct RequestKind {
    /// `get`, `list`, `create`, `update`, `patch`, `apply`, `delete`, `deletecollection`.
    verb: &'static str,
    /// The resource, with its subresource: `testers/status`, `secrets`, `events`.
    resource: String,
}

impl RequestKind {
    /// The kind of a request; `None` for a watch (long-lived, not a cost per call) and for
    /// what is not a resource request (discovery, `/version`).
    fn of(method: &Method, path: &str, query: &str, content_type: &str) -> Option<Self> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        // `/api/v1/...` or `/apis/<group>/<version>/...`.
        let rest = match *segments.first()? {
            "api" => segments.get(2..)?,
            "apis" => segments.get(3..)?,
            _ => return None,
        };
        // `namespaces/<ns>/<resource>...`; `namespaces` or `namespaces/<ns>` alone is the
        // Namespace resource itself.
        let rest = match rest {
            ["namespaces", _, resource, more @ ..] => [&[*resource][..], more].concat(),
            other => other.to_vec(),
        };
        let (resource, named) = match rest.as_slice() {
            [] => return None,
            [resource] => (resource.to_string(), false),
            [resource, _name] => (resource.to_string(), true),
            [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
        };
        let watch = query
            .split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1");
        let verb = match *method {
            Method::GET if watch => return None,
            Method::GET if named => "get",
            Method::GET => "list",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH if content_type.starts_with("application/apply-patch") => "apply",
            Method::PATCH => "patch",
            Method::DELETE if named => "delete",
            Method::DELETE => "deletecollection",
            _ => return None,
        };
        Some(Self { verb, resource })
    }

    fn is_write(&self) -> bool {
        !matches!(self.verb, "get" | "list")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(method: Method, path: &str, query: &str, ct: &str) -> Option<(&'static str, String)> {
        RequestKind::of(&method, path, query, ct).map(|k| (k.verb, k.resource))
    }

    #[test]
    fn requests_are_named_as_the_api_server_names_them() {
        let t = "/apis/sandbox.hero.dev/v1alpha1/namespaces/team/testers";
        assert_eq!(
            kind(Method::GET, t, "", ""),
            Some(("list", "testers".into()))
        );
        assert_eq!(
            kind(Method::GET, t, "watch=true&resourceVersion=5", ""),
            None
        );
        assert_eq!(
            kind(
                Method::PATCH,
                &format!("{t}/alice/status"),
                "fieldManager=x&force=true",
                "application/apply-patch+yaml"
            ),
            Some(("apply", "testers/status".into()))
        );
        assert_eq!(
            kind(
                Method::PATCH,
                &format!("{t}/alice"),
                "",
                "application/json-patch+json"
            ),
            Some(("patch", "testers".into()))
        );
        let s = "/api/v1/namespaces/team/secrets";
        assert_eq!(
            kind(Method::POST, s, "", "application/json"),
            Some(("create", "secrets".into()))
        );
        assert_eq!(
            kind(Method::GET, &format!("{s}/alice-sign-in"), "", ""),
            Some(("get", "secrets".into()))
        );
        assert_eq!(
            kind(Method::DELETE, &format!("{s}/alice-password"), "", ""),
            Some(("delete", "secrets".into()))
        );
        assert_eq!(
            kind(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/team/events",
                "",
                ""
            ),
            Some(("create", "events".into()))
        );
        // Cluster-scoped and the Namespace resource itself.
        assert_eq!(
            kind(Method::GET, "/api/v1/namespaces/team", "", ""),
            Some(("get", "namespaces".into()))
        );
        assert_eq!(
            kind(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/sys/leases/ctl",
                "",
                ""
            ),
            Some(("update", "leases".into()))
        );
        // Discovery is no resource request.
        assert_eq!(kind(Method::GET, "/apis", "", ""), None);
        assert_eq!(kind(Method::GET, "/version", "", ""), None);
    }
}
