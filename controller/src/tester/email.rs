//! Step `WelcomeEmailSent`: one email, once, when the tester is Ready.
//!
//! "Never twice" wins over "always": the condition is set to `Sending` and written before the
//! email goes out. A controller killed between the two finds `Sending` on restart and reports
//! `Interrupted` instead of sending again.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, api::DeleteParams};
use lettre::{AsyncTransport, Message, message::header::ContentType};
use tracing::info;

use super::{
    Flow, Pass,
    conditions::{READY, WELCOME_EMAIL_SENT},
    secrets::ensure_secret,
};
use crate::{
    config::Config,
    error::{Error, KubeContext, Result},
    mail::Mailer,
    resources::AccountType,
};

/// The Secret holding a new account's one-time password until the email has gone.
pub fn password_secret_name(tester: &str) -> String {
    format!("{tester}-welcome")
}

/// Owns `WelcomeEmailSent`.
pub async fn welcome_email(pass: &mut Pass<'_>) -> Result<Flow> {
    if !pass.tester.spec.welcome_email {
        pass.set(
            WELCOME_EMAIL_SENT,
            false,
            "Disabled",
            "the welcome email is off for this tester",
        );
        return Ok(Flow::Continue);
    }
    let (status, reason) = pass
        .condition(WELCOME_EMAIL_SENT)
        .map(|c| (c.status.clone(), c.reason.clone()))
        .unwrap_or_default();
    match (status.as_str(), reason.as_str()) {
        ("True", _) | (_, "NoProvider") | (_, "Interrupted") => return Ok(Flow::Continue),
        (_, "Sending") => {
            pass.set(
                WELCOME_EMAIL_SENT,
                false,
                "Interrupted",
                "the controller stopped while sending; the email may have gone out, so it is not sent again",
            );
            return Ok(Flow::Continue);
        }
        _ => {}
    }
    if !pass.is_true(READY) {
        pass.set_status(
            WELCOME_EMAIL_SENT,
            "Unknown",
            "WaitingForReady",
            "sent once the tester is Ready",
        );
        return Ok(Flow::Continue);
    }
    let password = match pass.tester.spec.account_type {
        AccountType::New => {
            Some(ensure_secret(pass, &password_secret_name(&pass.name), "password", 20).await?)
        }
        AccountType::Existing => None,
    };
    let url = pass.status.url.clone().unwrap_or_default();
    let Some(mailer) = pass.ctx.mailer.clone() else {
        info!(tester = %pass.name, "welcome email not sent: no mail provider configured");
        pass.set(
            WELCOME_EMAIL_SENT,
            false,
            "NoProvider",
            &format!("not sent (no provider configured); the tester's address is {url}"),
        );
        return Ok(Flow::Continue);
    };

    pass.set_status(
        WELCOME_EMAIL_SENT,
        "Unknown",
        "Sending",
        "sending the welcome email",
    );
    pass.persist().await?;
    let email = compose(
        &pass.ctx.config,
        &pass.tester.spec.email,
        &pass.tester.spec.account_name,
        &url,
        password.as_deref(),
    )?;
    let timer = pass.ctx.outside_timer("mail");
    let sent = send(&mailer, email).await;
    drop(timer);
    match sent {
        Ok(()) => {
            pass.set(
                WELCOME_EMAIL_SENT,
                true,
                "Sent",
                &format!("welcome email sent to {}", pass.tester.spec.email),
            );
            if password.is_some() {
                erase_password(pass).await?;
            }
            Ok(Flow::Continue)
        }
        Err(e) => {
            pass.set(WELCOME_EMAIL_SENT, false, "SendFailed", &e.to_string());
            Ok(Flow::Requeue(pass.backoff(WELCOME_EMAIL_SENT)))
        }
    }
}

/// Builds the email: username, link, and the one-time password or a reminder to use theirs.
pub fn compose(
    config: &Config,
    to: &str,
    account: &str,
    url: &str,
    password: Option<&str>,
) -> Result<Message> {
    let sign_in = match password {
        Some(p) => format!(
            "Your one-time password is: {p}\nYou will be asked to choose your own when you first sign in."
        ),
        None => "Sign in with your existing password.".to_string(),
    };
    let body = format!(
        "Welcome to the sandbox!\n\nYour machine is ready at {url}\nSign in as: {account}\n{sign_in}\nThe first time, the sign-in page also asks you to authorize the sandbox's application: choose \"Authorize Application\".\n\nIf something does not work, reply to this email.\n"
    );
    Message::builder()
        .from(
            config
                .smtp_from
                .parse()
                .map_err(|e| Error::Email(format!("invalid sender address: {e}")))?,
        )
        .to(to
            .parse()
            .map_err(|e| Error::Email(format!("invalid recipient address: {e}")))?)
        .subject("Your sandbox is ready")
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| Error::Email(format!("cannot build the email: {e}")))
}

async fn send(mailer: &Mailer, email: Message) -> Result<()> {
    mailer
        .send(email)
        .await
        .map_err(|e| Error::Email(format!("the SMTP server refused or failed: {e}")))?;
    Ok(())
}

async fn erase_password(pass: &Pass<'_>) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    pass.ctx.kube_turn().await;
    match secrets
        .delete(&password_secret_name(&pass.name), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e).kube("erasing the one-time password"),
    }
}
