//! The release catalog over HTTP: `GET <url>` answers the whole [`Catalog`].

use super::{read, transport};
use crate::{
    GridFuture,
    catalog::{Catalog, ReleaseCatalog},
};

/// [`ReleaseCatalog`] at one URL.
#[derive(Debug, Clone)]
pub struct HttpCatalog {
    url: String,
    http: reqwest::Client,
}

impl HttpCatalog {
    /// The catalog published at `url`.
    pub fn with_client(url: &str, http: reqwest::Client) -> Self {
        HttpCatalog {
            url: url.to_string(),
            http,
        }
    }
}

impl ReleaseCatalog for HttpCatalog {
    fn catalog(&self) -> GridFuture<'_, Catalog> {
        Box::pin(async move {
            let resp = self
                .http
                .get(&self.url)
                .send()
                .await
                .map_err(|e| transport(e, "catalog"))?;
            read(resp, "catalog").await
        })
    }
}
