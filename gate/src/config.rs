//! A gate's configuration and what is wrong with one.

use super::*;

/// Everything a gate needs to know. Build it with [`GateConfig::new`] and set the public
/// fields; nothing here is fetched or checked against the network.
#[derive(Clone)]
pub struct GateConfig {
    /// The provider's issuer URL (with or without a trailing slash; both are accepted).
    pub issuer: String,
    /// The OAuth2 client id the gate signs in as.
    pub client_id: String,
    /// The client's secret. Never logged, never shown.
    pub client_secret: String,
    /// Usernames or email addresses that may pass (the tester, and any extra accounts).
    pub allowed_accounts: Vec<String>,
    /// Administrators: always allowed, whatever `allowed_accounts` says.
    pub admins: Vec<String>,
    /// The external base URL of the address (`https://NAME.<gateway domain>`); the redirect
    /// URI is this plus [`CALLBACK_PATH`]. An `https` URL makes the cookies `Secure`.
    pub public_url: Url,
    /// The key that seals the cookies. Give the same key again to keep sessions across a
    /// restart; the default is random.
    pub session_key: SessionKey,
    /// How long a session lasts after sign-in, whatever happens.
    pub session_max_age: Duration,
    /// Whom a refused account should ask, shown on the "no access" page.
    pub contact: String,
    /// Peers whose `X-Forwarded-*` and `Forwarded` headers are passed on to the app. From any
    /// other peer those headers are removed. Empty by default.
    pub trusted_proxies: Vec<IpAddr>,
    /// Accept ID tokens signed with HS256/384/512 (keyed with the client secret). Off by default.
    pub allow_hmac_id_tokens: bool,
}

impl GateConfig {
    /// A configuration with no allowed accounts yet, a random session key, a 12-hour session
    /// and "the administrator" as the contact.
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        public_url: Url,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            allowed_accounts: Vec::new(),
            admins: Vec::new(),
            public_url,
            session_key: SessionKey::random(),
            session_max_age: Duration::from_secs(12 * 3600),
            contact: "the administrator".into(),
            trusted_proxies: Vec::new(),
            allow_hmac_id_tokens: false,
        }
    }
}

impl fmt::Debug for GateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("allowed_accounts", &self.allowed_accounts)
            .field("admins", &self.admins)
            .field("public_url", &self.public_url.as_str())
            .field("session_max_age", &self.session_max_age)
            .field("contact", &self.contact)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("allow_hmac_id_tokens", &self.allow_hmac_id_tokens)
            .finish_non_exhaustive()
    }
}

/// Why a configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The issuer is not an absolute URL.
    #[error("the issuer is not a valid URL: {0}")]
    Issuer(#[source] url::ParseError),
    /// The public URL is not an `http`/`https` origin without query or fragment.
    #[error("the public URL must be an http(s) URL with no path, query or fragment: {0}")]
    PublicUrl(String),
    /// The client id is empty.
    #[error("the client id is empty")]
    ClientId,
}
