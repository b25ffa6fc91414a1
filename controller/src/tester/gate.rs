//! Step `GateSecured`: the sign-in gate in front of the whole address, configured and proven.

use secrecy::ExposeSecret;
use std::collections::BTreeSet;

use gridapi::agent::{GateSettings, digest};

use super::{
    Flow, Pass,
    conditions::GATE_SECURED,
    grid::{agent, agent_view, forget_agent_view},
};
use crate::error::{Error, Result};

/// The accounts allowed through a tester's gate: the administrators and the tester always (an
/// edit of the spec can never lock them out), plus the spec's extra accounts. Sorted, unique.
pub fn allowed_accounts(admins: &[String], account: &str, extra: &[String]) -> Vec<String> {
    let mut set: BTreeSet<String> = admins.iter().filter(|a| !a.is_empty()).cloned().collect();
    set.insert(account.to_string());
    set.extend(extra.iter().cloned());
    set.into_iter().collect()
}

/// Owns `GateSecured`: configures the VM's gate through the agent when it differs from what it
/// should be, then proves it from outside: an unauthenticated request to the public URL is sent
/// to the configured issuer, and `/health` answers. A gate that stops working later flips this
/// (and so `Ready`) to False and is configured again.
pub async fn gate(pass: &mut Pass<'_>) -> Result<Flow> {
    let target = agent(pass)?;
    let url = pass
        .status
        .url
        .clone()
        .ok_or(Error::MissingField("status.url"))?;
    let cfg = &pass.ctx.config;
    let spec = &pass.tester.spec;
    let sign_in = pass
        .sign_in
        .clone()
        .ok_or(Error::MissingField("the tester's sign-in client"))?;
    let issuer = cfg.issuer();
    let desired = GateSettings {
        issuer: issuer.clone(),
        client_id: sign_in.client_id.clone(),
        client_secret: sign_in.client_secret.expose_secret().to_string(),
        allowed_accounts: allowed_accounts(&cfg.admins, &spec.account_name, &spec.allowed_accounts),
        public_url: url.trim_end_matches('/').to_string(),
    };
    let secret_digest = digest(&desired.client_secret);
    let view = agent_view(pass).await?;
    let current = view.gate.as_ref().map(|g| {
        let mut allowed = g.allowed_accounts.clone();
        allowed.sort();
        (
            g.issuer.clone(),
            g.client_id.clone(),
            allowed,
            g.public_url.clone(),
            g.client_secret_digest.clone(),
        )
    });
    let wanted = (
        desired.issuer.clone(),
        desired.client_id.clone(),
        desired.allowed_accounts.clone(),
        desired.public_url.clone(),
        Some(secret_digest),
    );
    // The client secret cannot be read back, but the agent reports its digest: a renewed
    // secret that has not reached the machine is drift like any other.
    let drifted = current.as_ref() != Some(&wanted);
    if drifted && pass.done_for_generation(GATE_SECURED) {
        // The gate was proven and has changed or gone since: the tester is not safe until it
        // is repaired, and the status says so before the repair starts.
        pass.set(
            GATE_SECURED,
            false,
            "GateDrifted",
            "the machine's sign-in gate no longer has its configuration; repairing it",
        );
        pass.persist().await?;
    }
    if drifted || !pass.done_for_generation(GATE_SECURED) {
        pass.ctx
            .grid(
                "agent_configure_gate",
                pass.ctx.grid.agents.configure_gate(&target, &desired),
            )
            .await?;
        forget_agent_view(pass);
        if drifted {
            tracing::info!(
                tester = %pass.name,
                accounts = desired.allowed_accounts.len(),
                "sign-in gate configured"
            );
        }
    }
    match prove(pass, &url, &issuer, &sign_in.client_id).await {
        Ok(()) => {
            let msg = format!(
                "unauthenticated requests to {url} are sent to sign-in at {issuer} with the tester's own client {}; /health answers",
                sign_in.client_id
            );
            pass.set(GATE_SECURED, true, "Proven", &msg);
            Ok(Flow::Continue)
        }
        Err(observed) => {
            pass.set(
                GATE_SECURED,
                false,
                "GateNotWorking",
                &format!("the sign-in gate at {url} is not proven: {observed}"),
            );
            Ok(Flow::Requeue(pass.backoff(GATE_SECURED)))
        }
    }
}

/// The outside proof with what the status records (a light pass, which reads no Secret);
/// `false` when the gate does not pass it or the status lacks what it needs.
pub async fn prove_recorded(pass: &Pass<'_>) -> bool {
    let (Some(url), Some(client)) = (
        pass.status.url.clone(),
        pass.status
            .sign_in_client
            .as_ref()
            .map(|c| c.client_id.clone()),
    ) else {
        return false;
    };
    match prove(pass, &url, &pass.ctx.config.issuer(), &client).await {
        Ok(()) => true,
        Err(observed) => {
            tracing::info!(tester = %pass.name, %observed, "the gate failed its outside proof; verifying in full");
            false
        }
    }
}

/// Checks the gate from outside, as a stranger would: sent to the Forge with this tester's own
/// client id, and `/health` answers.
async fn prove(pass: &Pass<'_>, url: &str, issuer: &str, client_id: &str) -> Result<(), String> {
    let base = url.trim_end_matches('/');
    let issuer = issuer.trim_end_matches('/');
    let _timer = pass.ctx.outside_timer("gate");
    let resp = pass
        .ctx
        .http
        .get(format!("{base}/"))
        .send()
        .await
        .map_err(|e| format!("GET {base}/ failed: {e}"))?;
    let status = resp.status();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !status.is_redirection() || !location.starts_with(issuer) {
        return Err(format!(
            "GET {base}/ without a session answered {status} (location {location:?}), not a redirect to {issuer}"
        ));
    }
    if !sends_client(&location, client_id) {
        return Err(format!(
            "GET {base}/ is sent to {issuer} without this tester's own client id {client_id}"
        ));
    }
    let health = pass
        .ctx
        .http
        .get(format!("{base}/health"))
        .send()
        .await
        .map_err(|e| format!("GET {base}/health failed: {e}"))?;
    if !health.status().is_success() {
        return Err(format!("GET {base}/health answered {}", health.status()));
    }
    Ok(())
}

/// Whether an authorization redirect names exactly `client_id`.
fn sends_client(location: &str, client_id: &str) -> bool {
    url::Url::parse(location).is_ok_and(|u| {
        let ids: Vec<_> = u
            .query_pairs()
            .filter(|(k, _)| k == "client_id")
            .map(|(_, v)| v.into_owned())
            .collect();
        ids == [client_id]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_must_carry_the_testers_own_client_id() {
        let at = "http://forge/login/oauth/authorize?response_type=code&client_id=abc&state=x";
        assert!(sends_client(at, "abc"));
        assert!(!sends_client(at, "abd"));
        assert!(!sends_client(
            "http://forge/login/oauth/authorize?client_id=abc&client_id=evil",
            "abc"
        ));
        assert!(!sends_client("not a url", "abc"));
    }

    #[test]
    fn administrators_and_the_tester_are_always_allowed() {
        let got = allowed_accounts(
            &["root".into(), "ops".into()],
            "Alice",
            &["bob".into(), "root".into()],
        );
        assert_eq!(got, ["Alice", "bob", "ops", "root"]);
        assert_eq!(allowed_accounts(&[], "alice", &[]), ["alice"]);
    }
}
