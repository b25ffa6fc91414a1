//! The few pages the gate itself shows a person. Plain HTML, no scripts, no external assets.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}</style>\
         </head><body><h1>{title}</h1>{body_html}</body></html>",
        title = escape(title),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The friendly refusal for an account that signed in but is not on the allow-list.
pub(crate) fn no_access(account: &str, email: Option<&str>, contact: &str) -> Response {
    let email = email
        .filter(|e| *e != account)
        .map(|e| format!(" ({})", escape(e)))
        .unwrap_or_default();
    page(
        StatusCode::FORBIDDEN,
        "No access",
        &format!(
            "<p>You signed in as <strong id=\"account\">{account}</strong>{email}, \
             and this account has no access to this address.</p>\
             <p>If you should have access, ask {contact} to add your account.</p>\
             <p><a href=\"{sign_out}\">Sign out</a> to use another account.</p>",
            account = escape(account),
            contact = escape(contact),
            sign_out = crate::SIGN_OUT_PATH,
        ),
    )
}

/// The page after a failed sign-in: short, with a way to start again.
pub(crate) fn sign_in_failed(status: StatusCode, reason: &str) -> Response {
    page(
        status,
        "Sign-in failed",
        &format!(
            "<p>{}</p><p><a href=\"/\">Try again</a></p>",
            escape(reason)
        ),
    )
}

/// The page when the provider cannot be reached.
pub(crate) fn provider_unavailable() -> Response {
    let mut response = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable",
        "<p>The sign-in service cannot be reached right now. Please try again in a minute.</p>",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// The page for a request path the gate refuses to interpret.
pub(crate) fn bad_path() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Bad address",
        "<p>This address is not valid here.</p>",
    )
}

/// The page after signing out.
pub(crate) fn signed_out() -> Response {
    page(
        StatusCode::OK,
        "Signed out",
        "<p>You are signed out of this address.</p><p><a href=\"/\">Sign in again</a></p>",
    )
}

/// The page when the upstream app does not answer.
pub(crate) fn upstream_unavailable() -> Response {
    page(
        StatusCode::BAD_GATEWAY,
        "App unavailable",
        "<p>The app behind this address is not answering. Please try again in a minute.</p>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_names() {
        assert_eq!(escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }
}
