//! A scripted browser: one request at a time, redirects followed by hand, a cookie jar keyed
//! by host (as browsers do: cookies ignore the port).

use anyhow::{Context as _, bail};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION, SET_COOKIE};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use url::Url;

/// One response, read whole.
#[derive(Debug, Clone)]
pub struct Page {
    /// The URL that was requested.
    pub url: Url,
    /// HTTP status code.
    pub status: u16,
    /// The redirect target, resolved against `url`.
    pub location: Option<Url>,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body as text.
    pub body: String,
}

impl Page {
    /// Whether this is a redirect.
    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status) && self.location.is_some()
    }

    /// The `Set-Cookie` header for `name`, whole.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

/// A browser without a screen.
pub struct Browser {
    http: reqwest::Client,
    jar: Mutex<HashMap<String, BTreeMap<String, String>>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// An empty browser.
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            jar: Mutex::new(HashMap::new()),
        }
    }

    /// The value of cookie `name` held for `host`.
    pub fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(host)?.get(name).cloned()
    }

    /// Sets (or, with `None`, removes) cookie `name` for `host`.
    pub fn set_cookie(&self, host: &str, name: &str, value: Option<&str>) {
        let mut jar = self.jar.lock().unwrap();
        let cookies = jar.entry(host.to_string()).or_default();
        match value {
            Some(v) => cookies.insert(name.to_string(), v.to_string()),
            None => cookies.remove(name),
        };
    }

    /// Every cookie held for `host`, as `name=value` pairs.
    pub fn cookies(&self, host: &str) -> BTreeMap<String, String> {
        self.jar
            .lock()
            .unwrap()
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    /// One GET, without following redirects.
    pub async fn get(&self, url: &str) -> anyhow::Result<Page> {
        self.send(reqwest::Method::GET, url, None, &[]).await
    }

    /// One GET with extra request headers.
    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<Page> {
        self.send(reqwest::Method::GET, url, None, headers).await
    }

    /// One form POST, without following redirects.
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> anyhow::Result<Page> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.send(reqwest::Method::POST, url, Some(body), &[]).await
    }

    /// GETs `url` and follows redirects (at most 20) until a page that is not one.
    pub async fn follow(&self, url: &str) -> anyhow::Result<Page> {
        self.follow_from(self.get(url).await?).await
    }

    /// Follows redirects from `page` until a page that is not one.
    pub async fn follow_from(&self, mut page: Page) -> anyhow::Result<Page> {
        for _ in 0..20 {
            match page.location.clone() {
                Some(next) if page.is_redirect() => page = self.get(next.as_str()).await?,
                _ => return Ok(page),
            }
        }
        bail!("more than 20 redirects from {}", page.url)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        form: Option<String>,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Page> {
        let url = Url::parse(url).with_context(|| format!("bad URL {url}"))?;
        let host = url.host_str().unwrap_or_default().to_string();
        let mut request = self.http.request(method, url.clone());
        let cookies = self.cookies(&host);
        if !cookies.is_empty() {
            let header = cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(reqwest::header::COOKIE, header);
        }
        for (name, value) in extra {
            request = request.header(
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        if let Some(body) = form {
            request = request
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("requesting {url}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for set in headers.get_all(SET_COOKIE).iter() {
            let Ok(set) = set.to_str() else { continue };
            let first = set.split(';').next().unwrap_or_default();
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let expired = set.split(';').any(|attr| {
                let attr = attr.trim().to_ascii_lowercase();
                attr == "max-age=0" || attr.starts_with("expires=thu, 01 jan 1970")
            });
            self.set_cookie(
                &host,
                name.trim(),
                (!expired && !value.is_empty()).then_some(value.trim()),
            );
        }
        let location = headers
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url.join(l).ok());
        let body = response.text().await.unwrap_or_default();
        Ok(Page {
            url,
            status,
            location,
            headers,
            body,
        })
    }
}
