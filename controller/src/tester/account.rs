//! Step `AccountReady`: the tester's account at the Forge, before anything is made on the grid.
//!
//! `Existing`: the account must be there (else `AccountNotFound`). `New`: the account is made
//! with a one-time password and must-change-password set; the password is kept in a Secret
//! owned by the Tester until the welcome email has gone. An account this Tester did not make is
//! never overwritten (`AccountExists`). Whether this Tester made it is recorded in the status;
//! a controller stopped between making it and writing the status finds out again by signing in
//! with the one-time password it kept.

use secrecy::SecretString;
use tracing::info;

use super::{
    Flow, Pass, conditions::ACCOUNT_READY, email::password_secret_name, secrets::ensure_secret,
};
use crate::{
    error::{Error, Result},
    forge::{ForgeError, NewAccount},
    resources::{AccountStatus, AccountType},
};

/// Length of a one-time password.
const PASSWORD_LEN: usize = 20;

/// Owns `AccountReady`.
pub async fn account(pass: &mut Pass<'_>) -> Result<Flow> {
    if pass.done_for_generation(ACCOUNT_READY) {
        return Ok(Flow::Continue);
    }
    let name = pass.tester.spec.account_name.clone();
    let forge = pass.ctx.forge.clone();
    let at = forge.url().to_string();
    let user = forge.user(&name).await?;
    match pass.tester.spec.account_type {
        AccountType::Existing => match user {
            Some(_) => {
                record(pass, &name, false);
                let msg = format!("the account {name} exists at the Forge {at}");
                pass.set(ACCOUNT_READY, true, "Exists", &msg);
                Ok(Flow::Continue)
            }
            None => refuse(
                pass,
                "AccountNotFound",
                &format!(
                    "there is no account {name} at the Forge {at}: create it there, or set accountType: New to have it made with a one-time password; nothing is made on the grid until then"
                ),
            ),
        },
        AccountType::New => {
            let created = pass.status.account.as_ref().is_some_and(|a| a.created);
            match (created, user.is_some()) {
                (true, true) => {}
                (true, false) => {
                    return refuse(
                        pass,
                        "AccountDeleted",
                        &format!(
                            "the account {name} this Tester made at the Forge {at} was deleted there; delete and re-create the Tester to make a new one"
                        ),
                    );
                }
                (false, exists) => {
                    let password = SecretString::from(
                        ensure_secret(
                            pass,
                            &password_secret_name(&pass.name),
                            "password",
                            PASSWORD_LEN,
                        )
                        .await?,
                    );
                    if exists {
                        // Made by this Tester when its one-time password opens it (a pass
                        // stopped before it could record so); anyone else's is left alone.
                        if !forge.password_matches(&name, &password).await? {
                            return refuse(
                                pass,
                                "AccountExists",
                                &format!(
                                    "an account {name} already exists at the Forge {at} and was not made by this Tester; it is never overwritten: set accountType: Existing to give this machine to its owner, or delete this Tester and choose another accountName"
                                ),
                            );
                        }
                    } else {
                        let email = pass.tester.spec.email.clone();
                        let new = NewAccount {
                            name: &name,
                            email: &email,
                            password: &password,
                        };
                        match forge.create_user(&new).await {
                            Ok(()) => {
                                info!(tester = %pass.name, account = %name, "account made at the Forge")
                            }
                            Err(ForgeError::Refused {
                                status, message, ..
                            }) if status == 422 || status == 400 => {
                                return refuse(
                                    pass,
                                    "AccountRefused",
                                    &format!(
                                        "the Forge {at} refused to make the account {name}: {message}; change accountName or email (a new Tester), nothing is made on the grid"
                                    ),
                                );
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
            record(pass, &name, true);
            let msg = format!(
                "the account {name} was made at the Forge {at} with a one-time password (in Secret {}, until the welcome email has gone); it must be changed at first sign-in",
                password_secret_name(&pass.name)
            );
            pass.set(ACCOUNT_READY, true, "Created", &msg);
            Ok(Flow::Continue)
        }
    }
}

fn record(pass: &mut Pass<'_>, name: &str, created: bool) {
    pass.status.account = Some(AccountStatus {
        name: name.to_string(),
        created,
    });
}

/// Stops the pass: the operator must act; looked at again after a back-off or at a change.
fn refuse(pass: &mut Pass<'_>, reason: &str, message: &str) -> Result<Flow> {
    pass.set(ACCOUNT_READY, false, reason, message);
    Ok(Flow::Requeue(pass.backoff(ACCOUNT_READY)))
}

/// Removes what deleting the Tester removes at the Forge: the account, when this Tester made
/// it and `accountDeletionPolicy` is `Delete`.
pub async fn delete_account(pass: &Pass<'_>) -> Result<()> {
    use crate::resources::AccountDeletionPolicy;
    let Some(account) = pass.status.account.as_ref() else {
        return Ok(());
    };
    if account.created && pass.tester.spec.account_deletion_policy == AccountDeletionPolicy::Delete
    {
        pass.ctx
            .forge
            .delete_user(&account.name)
            .await
            .map_err(Error::from)?;
        info!(tester = %pass.name, account = %account.name, "account deleted at the Forge");
    }
    Ok(())
}
