//! The machine's effects, behind [`Machine`]: files under a root directory and the apps'
//! services. [`HostMachine`] is a real VM (root `/`, services run by zinit); gridshim gives each
//! simulated VM a root directory of its own and simulated services.

use std::io;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;

use crate::settings::APPS_USER;

/// What the agent does to the machine it runs on.
pub trait Machine: Send + Sync + 'static {
    /// The directory every path is under (`/` on a real VM).
    fn root(&self) -> &Path;

    /// Starts (or restarts) an app's service at `version`, whose artifact (checked) is at
    /// `/opt/apps/<app>/<version>/<app>.tar`; `Err` says why it did not start.
    fn start_service<'a>(
        &'a self,
        app: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// Whether an app's service answers; `Err` says why not.
    fn service_health<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<(), String>>;

    /// Makes `user` the owner of `path` (a no-op where users do not matter).
    fn chown(&self, _path: &Path, _user: &str) -> io::Result<()> {
        Ok(())
    }
}

/// Where `path` (absolute in the machine) is on this host.
pub fn host_path(machine: &dyn Machine, path: &str) -> PathBuf {
    machine.root().join(path.trim_start_matches('/'))
}

/// Writes a file of the machine atomically (temporary file, then rename), creating its
/// directories, with `mode`, owned by `owner` when given.
pub fn write_file(
    machine: &dyn Machine,
    path: &str,
    contents: &[u8],
    mode: u32,
    owner: Option<&str>,
) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let target = host_path(machine, path);
    let dir = target.parent().unwrap_or(machine.root());
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file")
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    if let Some(user) = owner {
        machine.chown(&tmp, user)?;
    }
    std::fs::rename(&tmp, &target)
}

/// Reads a file of the machine; `None` when it does not exist.
pub fn read_file(machine: &dyn Machine, path: &str) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(host_path(machine, path)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A real VM: files at their place, the apps' services run by zinit.
#[derive(Debug, Clone)]
pub struct HostMachine {
    root: PathBuf,
    zinit: PathBuf,
}

impl HostMachine {
    /// The machine rooted at `root` (`/` in the VM), its services run by the `zinit` binary.
    pub fn new(root: PathBuf, zinit: PathBuf) -> Self {
        HostMachine { root, zinit }
    }

    async fn zinit(&self, args: &[&str]) -> Result<String, String> {
        let out = tokio::process::Command::new(&self.zinit)
            .args(args)
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", self.zinit.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("zinit {}: {}", args.join(" "), text.trim()))
        }
    }

    /// The uid and gid of `user` in the machine's `/etc/passwd`.
    fn ids(&self, user: &str) -> io::Result<(u32, u32)> {
        let passwd = std::fs::read_to_string(self.root.join("etc/passwd"))?;
        passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 3 && f[0] == user)
            .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no user {user:?}")))
    }
}

impl Machine for HostMachine {
    fn root(&self) -> &Path {
        &self.root
    }

    fn start_service<'a>(
        &'a self,
        app: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let dir = format!("/opt/apps/{app}/{version}");
            let out = tokio::process::Command::new("tar")
                .arg("-xf")
                .arg(host_path(self, &format!("{dir}/{app}.tar")))
                .arg("-C")
                .arg(host_path(self, &dir))
                .output()
                .await
                .map_err(|e| format!("cannot run tar: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "cannot unpack {app} {version}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            // zinit has no user setting: the service drops to the apps' user itself.
            let unit = format!(
                "exec: setpriv --reuid={APPS_USER} --regid={APPS_USER} --init-groups -- {dir}/run\nenv:\n  HERO_ENV: /etc/hero\n"
            );
            write_file(
                self,
                &format!("/etc/zinit/{app}.yaml"),
                unit.as_bytes(),
                0o644,
                None,
            )
            .map_err(|e| format!("cannot write the {app} service: {e}"))?;
            // A monitored service is restarted so it runs the new version.
            if self.zinit(&["status", app]).await.is_ok() {
                self.zinit(&["restart", app]).await.map(drop)
            } else {
                self.zinit(&["monitor", app]).await.map(drop)
            }
        })
    }

    fn service_health<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let status = self.zinit(&["status", app]).await?;
            if status.contains("Running") {
                Ok(())
            } else {
                Err(format!("{app} is not running: {}", status.trim()))
            }
        })
    }

    fn chown(&self, path: &Path, user: &str) -> io::Result<()> {
        let (uid, gid) = self.ids(user)?;
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
    }
}
