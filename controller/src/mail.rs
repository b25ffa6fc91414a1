//! The mail transport of welcome emails, built once at start-up from `SMTP_URL`.
//!
//! The URL says how to protect the conversation, as lettre reads it: `smtps://host:465` (TLS
//! from the first byte), `smtp://host:587?tls=required` (STARTTLS, refused if the server does
//! not offer it). Plaintext (`smtp://host` without `tls=required`) is accepted only towards a
//! loopback relay: anything else would send the email, and the SMTP password when there is one,
//! across the network in clear. A bad URL stops the controller at start with a message saying
//! what to write instead.

use std::net::IpAddr;

use lettre::{AsyncSmtpTransport, Tokio1Executor, transport::smtp::authentication::Credentials};
use secrecy::ExposeSecret;

use crate::config::Config;

/// The transport welcome emails go through.
pub type Mailer = AsyncSmtpTransport<Tokio1Executor>;

/// Why `SMTP_URL` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MailConfigError {
    /// Not a URL lettre understands.
    #[error("SMTP_URL is not a valid SMTP URL ({0}); write e.g. smtps://mail.example.org:465")]
    Invalid(String),
    /// Plaintext to a host that is not loopback.
    #[error(
        "SMTP_URL {url} would send in plaintext to a host that is not this machine; use smtps://{host}:465 or smtp://{host}:587?tls=required"
    )]
    Plaintext {
        /// The URL without credentials.
        url: String,
        /// Its host.
        host: String,
    },
    /// A user name without a password, or the other way round.
    #[error("SMTP_USERNAME and SMTP_PASSWORD go together; set both or neither")]
    HalfCredentials,
}

/// How the conversation is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// TLS from the first byte (`smtps://`).
    Tls,
    /// STARTTLS required (`tls=required`).
    StartTls,
    /// None: only to a loopback relay.
    LoopbackPlaintext,
}

/// How `url` protects the conversation, or why it may not be used.
pub fn protection(url: &str) -> Result<Protection, MailConfigError> {
    let parsed = url::Url::parse(url).map_err(|e| MailConfigError::Invalid(e.to_string()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| MailConfigError::Invalid("no host".into()))?
        .to_string();
    let tls = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    match (parsed.scheme(), tls.as_deref()) {
        ("smtps", _) => Ok(Protection::Tls),
        ("smtp", Some("required")) => Ok(Protection::StartTls),
        ("smtp", _) if is_loopback(&host) => Ok(Protection::LoopbackPlaintext),
        ("smtp", _) => {
            let mut shown = parsed.clone();
            let _ = shown.set_password(None);
            let _ = shown.set_username("");
            Err(MailConfigError::Plaintext {
                url: shown.to_string(),
                host,
            })
        }
        (other, _) => Err(MailConfigError::Invalid(format!(
            "scheme {other:?} (smtp or smtps)"
        ))),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The transport for `config`, or `None` when no `SMTP_URL` is set.
pub fn mailer(config: &Config) -> Result<Option<Mailer>, MailConfigError> {
    let Some(url) = config.smtp_url.as_deref() else {
        return Ok(None);
    };
    protection(url)?;
    let mut builder = Mailer::from_url(url).map_err(|e| MailConfigError::Invalid(e.to_string()))?;
    match (&config.smtp_username, &config.smtp_password) {
        (Some(user), Some(password)) => {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_string(),
            ));
        }
        (None, None) => {}
        _ => return Err(MailConfigError::HalfCredentials),
    }
    Ok(Some(builder.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_says_how_the_conversation_is_protected() {
        assert_eq!(
            protection("smtps://mail.example.org:465"),
            Ok(Protection::Tls)
        );
        assert_eq!(
            protection("smtp://mail.example.org:587?tls=required"),
            Ok(Protection::StartTls)
        );
        for loopback in [
            "smtp://127.0.0.1:2525",
            "smtp://localhost:25",
            "smtp://[::1]:25",
        ] {
            assert_eq!(
                protection(loopback),
                Ok(Protection::LoopbackPlaintext),
                "{loopback}"
            );
        }
    }

    #[test]
    fn plaintext_across_the_network_is_refused_with_what_to_write_instead() {
        for url in [
            "smtp://mail.example.org:587",
            "smtp://mail.example.org:587?tls=opportunistic",
            "smtp://user:hunter2@10.0.0.5:25",
        ] {
            let err = protection(url).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, MailConfigError::Plaintext { .. }), "{url}");
            assert!(
                msg.contains("tls=required") && msg.contains("smtps://"),
                "{msg}"
            );
            assert!(
                !msg.contains("hunter2"),
                "no credential in the message: {msg}"
            );
        }
        assert!(matches!(
            protection("http://mail.example.org"),
            Err(MailConfigError::Invalid(_))
        ));
    }
}
