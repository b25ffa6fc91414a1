//! The Forge: a real Gitea (built by `hack/build-tools.sh gitea`), started by `hack/forge.sh` in
//! a data folder of its own on a free port, and stopped (its folder removed) when dropped.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, bail};

use crate::repo_root;

/// A running Gitea of this test process.
pub struct Forge {
    /// Its root URL, with the trailing slash (`http://127.0.0.1:PORT/`).
    pub url: String,
    /// Its data folder (`FORGE_DIR`).
    pub dir: PathBuf,
    /// The file `hack/forge.sh` wrote the administrator's API token to.
    pub token_file: PathBuf,
    token: String,
}

/// Builds the pinned Gitea when it is not in the tools cache (a no-op when it is).
fn build_gitea() -> anyhow::Result<()> {
    let out = Command::new("bash")
        .arg(repo_root().join("hack/build-tools.sh"))
        .arg("gitea")
        .output()
        .context("run hack/build-tools.sh gitea")?;
    if !out.status.success() {
        bail!(
            "hack/build-tools.sh gitea failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `hack/forge.sh ARG` on the data folder `dir`, with `FORGE_PORT` when given.
pub fn forge_sh(dir: &Path, arg: &str, port: Option<u16>) -> Output {
    forge_sh_bound(dir, arg, port, None)
}

/// [`forge_sh`] with `FORGE_BIND` (the address Gitea listens on) when given.
pub fn forge_sh_bound(dir: &Path, arg: &str, port: Option<u16>, bind: Option<&str>) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("hack/forge.sh"))
        .arg(arg)
        .current_dir(repo_root())
        .env_remove("FORGE_PORT")
        .env("FORGE_DIR", dir);
    if let Some(p) = port {
        cmd.env("FORGE_PORT", p.to_string());
    }
    if let Some(b) = bind {
        cmd.env("FORGE_BIND", b);
    }
    cmd.output().expect("run hack/forge.sh")
}

/// The `KEY=value` line of `hack/forge.sh`'s output.
pub fn env_value(stdout: &[u8], key: &str) -> Option<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

impl Forge {
    /// Starts a Gitea with its own data folder under the temp dir and a free port; returns once
    /// `hack/forge.sh up` has seen it healthy and minted the admin token.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_bound("127.0.0.1")
    }

    /// [`Forge::start`] listening on `bind` (e.g. `0.0.0.0`, for Pods of the local node); its
    /// URL still names 127.0.0.1.
    pub fn start_bound(bind: &str) -> anyhow::Result<Self> {
        static N: AtomicU32 = AtomicU32::new(0);
        build_gitea()?;
        let dir = std::env::temp_dir().join(format!(
            "e2e-forge-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        // From here on, Drop stops whatever `up` started, even when `up` fails half-way.
        let mut forge = Self {
            url: String::new(),
            dir,
            token_file: PathBuf::new(),
            token: String::new(),
        };
        let out = forge_sh_bound(&forge.dir, "up", Some(free_port()), Some(bind));
        if !out.status.success() {
            bail!(
                "hack/forge.sh up failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        forge.url = env_value(&out.stdout, "FORGE_URL").context("up printed no FORGE_URL")?;
        forge.token_file = env_value(&out.stdout, "FORGE_TOKEN_FILE")
            .context("up printed no FORGE_TOKEN_FILE")?
            .into();
        forge.token = std::fs::read_to_string(&forge.token_file)
            .with_context(|| format!("read {}", forge.token_file.display()))?
            .trim()
            .to_string();
        if forge.token.is_empty() {
            bail!("{} is empty", forge.token_file.display());
        }
        Ok(forge)
    }

    /// `hack/forge.sh up` on this Forge's data folder.
    pub fn up(&self, port: Option<u16>) -> Output {
        forge_sh(&self.dir, "up", port)
    }

    /// The administrator's API token (never print it).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The full URL of `path` (which starts without a slash, e.g. `api/v1/version`).
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path.trim_start_matches('/'))
    }

    /// The PID in the data folder's pid file.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("gitea.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }
}

impl Forge {
    /// The Forge every test stack of this checkout shares (data folder `.run/forge-e2e`),
    /// started on first use and left running like the control plane: `make cluster-down`
    /// stops both. Tests keep to their own account names.
    pub fn shared() -> &'static Forge {
        static SHARED: std::sync::OnceLock<Forge> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            build_gitea().expect("build Gitea");
            let dir = repo_root().join(".run/forge-e2e");
            let out = forge_sh(&dir, "up", None);
            assert!(
                out.status.success(),
                "hack/forge.sh up failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let url = env_value(&out.stdout, "FORGE_URL").expect("up prints FORGE_URL");
            let token_file: PathBuf = env_value(&out.stdout, "FORGE_TOKEN_FILE")
                .expect("up prints FORGE_TOKEN_FILE")
                .into();
            let token = std::fs::read_to_string(&token_file)
                .expect("read the admin token")
                .trim()
                .to_string();
            Forge {
                url,
                dir,
                token_file,
                token,
            }
        })
    }

    /// Makes the account `name` (password `PASSWORD_OF(name)`: `<name>-password`, nothing to
    /// change at first sign-in) unless it exists: the accounts an operator's Forge already has.
    /// Retried when Gitea's SQLite refuses a write under load ("database is locked": a
    /// transaction that read first cannot wait for the lock), as the bench's 1,000 accounts do.
    pub async fn ensure_account(&self, name: &str) -> anyhow::Result<()> {
        use backon::{ExponentialBuilder, Retryable};
        (|| self.make_account(name))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(std::time::Duration::from_millis(50))
                    .with_max_delay(std::time::Duration::from_secs(2))
                    .with_max_times(10)
                    .with_jitter(),
            )
            .when(|e| e.to_string().contains("database is locked"))
            .await
    }

    async fn make_account(&self, name: &str) -> anyhow::Result<()> {
        let resp = reqwest::Client::new()
            .post(self.at("api/v1/admin/users"))
            .header("Authorization", format!("token {}", self.token))
            .json(&serde_json::json!({
                "username": name,
                "email": format!("{}@accounts.forge.test", name.to_lowercase()),
                "password": password_of(name),
                "must_change_password": false,
                "send_notify": false,
            }))
            .send()
            .await?;
        let status = resp.status();
        if status.is_success() || status == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
            return Ok(());
        }
        bail!(
            "making account {name}: HTTP {status}: {}",
            resp.text().await?
        )
    }

    /// An admin API call: `(status, JSON body or Null)`.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new()
            .request(method, self.at(&format!("api/v1/{path}")))
            .header("Authorization", format!("token {}", self.token));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the Forge answers");
        let status = resp.status().as_u16();
        let json = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, json)
    }
}

impl Forge {
    /// Asks Gitea's token endpoint to redeem a made-up code: the error it answers tells whether
    /// it knows the client (`invalid_client`), accepts its secret (else "invalid client
    /// secret") and the redirect URI (else "unexpected redirect URI"); with all three right it
    /// only refuses the code ("client is not authorized").
    pub async fn token_endpoint_error(
        &self,
        client_id: &str,
        secret: &str,
        redirect: &str,
    ) -> serde_json::Value {
        let resp = reqwest::Client::new()
            .post(self.at("login/oauth/access_token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("code", "not-a-code-gitea-issued"),
                ("redirect_uri", redirect),
            ])
            .send()
            .await
            .expect("the token endpoint answers");
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.expect("a JSON error");
        assert!(status.is_client_error(), "{status}: {body}");
        body
    }
}

impl Forge {
    /// The administrator's name and password (from the data folder; never print them).
    fn admin_login(&self) -> (String, String) {
        let password = std::fs::read_to_string(self.dir.join("admin-password"))
            .expect("read the Forge's admin password")
            .trim()
            .to_string();
        ("hero-admin".into(), password)
    }

    /// Mints another admin API token named `name` (Gitea mints tokens only for a password
    /// sign-in), as an operator would for a second controller; see [`Forge::revoke_token`].
    pub async fn mint_token(&self, name: &str) -> String {
        let (user, password) = self.admin_login();
        let resp = reqwest::Client::new()
            .post(self.at(&format!("api/v1/users/{user}/tokens")))
            .basic_auth(&user, Some(&password))
            .json(&serde_json::json!({"name": name, "scopes": ["all"]}))
            .send()
            .await
            .expect("the Forge answers");
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::CREATED,
            "minting {name}"
        );
        let body: serde_json::Value = resp.json().await.expect("a token");
        body["sha1"].as_str().expect("the token").to_string()
    }

    /// Revokes the admin API token named `name`.
    pub async fn revoke_token(&self, name: &str) {
        let (user, password) = self.admin_login();
        let resp = reqwest::Client::new()
            .delete(self.at(&format!("api/v1/users/{user}/tokens/{name}")))
            .basic_auth(&user, Some(&password))
            .send()
            .await
            .expect("the Forge answers");
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::NO_CONTENT,
            "revoking {name}"
        );
    }

    /// Stops this Forge (`hack/forge.sh down`; its data stays for [`Forge::up`]).
    pub fn down(&self) -> Output {
        forge_sh(&self.dir, "down", None)
    }
}

/// The password [`Forge::ensure_account`] gives an account.
pub fn password_of(name: &str) -> String {
    format!("{name}-password")
}

impl Drop for Forge {
    fn drop(&mut self) {
        let _ = forge_sh(&self.dir, "down", None);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
