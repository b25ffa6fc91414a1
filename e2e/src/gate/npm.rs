//! The npm OIDC provider (`hack/oidc`), installed by its own script and started as a process.

use super::{Browser, Page, repo_root};
use anyhow::{Context as _, bail};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The client id every gate uses with the npm provider.
pub const CLIENT_ID: &str = "gate";
/// Its secret (a test value; see `hack/oidc/provider.mjs`).
pub const CLIENT_SECRET: &str = "gate-dev-secret";

/// Runs `hack/oidc/install.sh` once per test process (it is itself idempotent and cached).
pub fn install() -> anyhow::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = std::process::Command::new("bash")
            .arg(repo_root().join("hack/oidc/install.sh"))
            .status()
            .map_err(|e| format!("running hack/oidc/install.sh: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("hack/oidc/install.sh failed: {status}"))
        }
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// A running npm provider, stopped when dropped.
pub struct NpmProvider {
    /// Its issuer URL, `http://127.0.0.1:PORT` (with a trailing slash when asked for).
    pub issuer: String,
    child: Child,
    output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl NpmProvider {
    /// Installs (when needed) and starts the provider on any free port.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(0, false).await
    }

    /// Starts the provider on `port` (0: any), publishing the issuer with a trailing slash when
    /// `issuer_slash`.
    pub async fn start_with(port: u16, issuer_slash: bool) -> anyhow::Result<Self> {
        tokio::task::spawn_blocking(install).await??;
        let mut child = Command::new("node")
            .arg(repo_root().join("hack/oidc/provider.mjs"))
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_ISSUER_SLASH", if issuer_slash { "1" } else { "0" })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting node hack/oidc/provider.mjs")?;
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped");
        let sink = output.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = stdout.next_line().await? {
                if let Some(issuer) = line.strip_prefix("OIDC_READY issuer=") {
                    return Ok::<_, std::io::Error>(Some(issuer.trim().to_string()));
                }
            }
            Ok(None)
        })
        .await;
        let issuer = match ready {
            Ok(Ok(Some(issuer))) => issuer,
            _ => bail!(
                "the OIDC provider did not get ready; its output:\n{}",
                output.lock().unwrap().join("\n")
            ),
        };
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        Ok(Self {
            issuer,
            child,
            output,
        })
    }

    /// What the provider wrote on stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// Stops the provider.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Signs in through the npm provider's form: GET `start` on the gate, follow to the form,
/// post `login`/`password`, follow back through the gate's callback to the end.
pub async fn sign_in(
    browser: &Browser,
    start: &str,
    login: &str,
    password: &str,
) -> anyhow::Result<Page> {
    let form = browser.follow(start).await?;
    let action = form_action(&form).with_context(|| {
        format!(
            "no sign-in form at {} ({}): {}",
            form.url, form.status, form.body
        )
    })?;
    let action = form.url.join(&action)?;
    let answer = browser
        .post_form(action.as_str(), &[("login", login), ("password", password)])
        .await?;
    browser.follow_from(answer).await
}

/// The `action` of the provider's sign-in form.
pub fn form_action(page: &Page) -> Option<String> {
    let start = page.body.find("action=\"")? + "action=\"".len();
    let end = page.body[start..].find('"')? + start;
    Some(page.body[start..end].to_string())
}
