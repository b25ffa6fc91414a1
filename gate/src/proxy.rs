//! Forwarding to an app that listens on its own port (the standalone gate's case).

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures::TryStreamExt as _;
use std::sync::LazyLock;
use std::time::Duration;
use url::Url;

/// The client for upstream apps: no redirects followed (the browser must see them), no
/// overall timeout (responses may stream for long), no decompression (bodies pass as they are).
static UPSTREAM: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("the upstream HTTP client builds with static settings")
});

/// Headers that belong to one connection, not to the request or response (RFC 9110 §7.6.1).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    for name in listed {
        headers.remove(name.as_str());
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// A router that forwards every request to `upstream`, keeping path and query.
pub(crate) fn upstream(upstream: Url) -> Router {
    let base = upstream.as_str().trim_end_matches('/').to_string();
    Router::new().fallback(move |request: Request| forward(base.clone(), request))
}

async fn forward(base: String, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    let result = UPSTREAM
        .request(parts.method, format!("{base}{path_and_query}"))
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    let upstream = match result {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "the upstream app did not answer");
            return crate::pages::upstream_unavailable();
        }
    };
    let mut response = Response::builder().status(upstream.status());
    if let Some(headers) = response.headers_mut() {
        *headers = upstream.headers().clone();
        strip_hop_by_hop(headers);
    }
    response
        .body(Body::from_stream(
            upstream.bytes_stream().map_err(std::io::Error::other),
        ))
        .unwrap_or_else(|_| crate::pages::upstream_unavailable())
}
