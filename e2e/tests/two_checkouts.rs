//! Two checkouts on one machine: each brings up its own control plane side by side (the second
//! one picks a free port and records it), each sees only its own objects, a port asked for
//! that another checkout holds is refused in one line naming it and how to stop it, and
//! stopping one leaves the other running.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use e2e::{cluster, repo_root};

/// `hack/cluster.sh ARG` on its own data folder, ignoring the KUBECONFIG of this test process.
fn cluster_sh(dir: &Path, arg: &str, port: Option<u16>) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("hack/cluster.sh"))
        .arg(arg)
        .current_dir(repo_root())
        .env_remove("KUBECONFIG")
        .env_remove("CLUSTER_PORT")
        .env("CLUSTER_DIR", dir);
    if let Some(p) = port {
        cmd.env("CLUSTER_PORT", p.to_string());
    }
    cmd.output().expect("run hack/cluster.sh")
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(cluster().tools_bin.join("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl")
}

fn port_of(kubeconfig: &Path) -> u16 {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no server port in {}", kubeconfig.display()))
}

/// Stops and removes a second control plane, even when the test fails.
struct Second(PathBuf);

impl Drop for Second {
    fn drop(&mut self) {
        let _ = cluster_sh(&self.0, "down", None);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_second_checkouts_control_plane_runs_beside_the_first() {
    let first = cluster();
    let first_port = port_of(&first.kubeconfig);
    let dir = std::env::temp_dir().join(format!("e2e-second-cluster-{}", std::process::id()));
    let second = Second(dir.clone());

    let up = cluster_sh(&second.0, "up", None);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let kubeconfig = dir.join("kubeconfig");
    let second_port = port_of(&kubeconfig);
    assert_ne!(second_port, first_port);
    assert_eq!(
        std::fs::read_to_string(dir.join("port")).unwrap().trim(),
        second_port.to_string(),
        "the port is recorded in the run folder"
    );
    // Each answers, and each sees only its own objects.
    let ns = format!("only-in-second-{}", std::process::id());
    assert!(
        kubectl(&kubeconfig, &["create", "namespace", &ns])
            .status
            .success()
    );
    assert!(
        kubectl(&kubeconfig, &["get", "namespace", &ns])
            .status
            .success()
    );
    assert!(
        !kubectl(&first.kubeconfig, &["get", "namespace", &ns])
            .status
            .success()
    );

    // Asking for the first one's port is refused in one line that names who holds it.
    let third = std::env::temp_dir().join(format!("e2e-third-cluster-{}", std::process::id()));
    let refused = cluster_sh(&third, "up", Some(first_port));
    let _ = std::fs::remove_dir_all(&third);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr).into_owned();
    let line = message
        .lines()
        .find(|l| l.contains(&format!("port {first_port}")))
        .unwrap_or_else(|| panic!("no line about port {first_port}: {message}"));
    assert!(
        line.contains("kube-apiserver") && line.contains("stop it with:"),
        "{line}"
    );
    if first.kubeconfig.starts_with(repo_root().join(".run")) {
        assert!(
            line.contains(&format!("make -C {} cluster-down", repo_root().display())),
            "{line}"
        );
    }

    // Stopping the second leaves the first running.
    let down = cluster_sh(&second.0, "down", None);
    assert!(down.status.success());
    assert!(
        !kubectl(
            &kubeconfig,
            &["--request-timeout=3s", "get", "--raw", "/readyz"]
        )
        .status
        .success()
    );
    assert!(
        kubectl(&first.kubeconfig, &["get", "--raw", "/readyz"])
            .status
            .success()
    );
    drop(second);
}
