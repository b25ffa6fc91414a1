//! The pinned `helm` build (from `hack/build-tools.sh helm`), run with its config, cache and
//! data kept out of the user's home.

use std::{
    path::PathBuf,
    process::{Command, Output},
    sync::OnceLock,
};

use crate::{cluster, repo_root};

/// Path of the pinned helm, building it first when it is not in the tools cache.
pub fn helm_bin() -> &'static PathBuf {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let root = repo_root();
        // A no-op when the pinned build is already in the tools cache.
        let out = Command::new("bash")
            .arg(root.join("hack/build-tools.sh"))
            .arg("helm")
            .output()
            .expect("run hack/build-tools.sh helm");
        assert!(
            out.status.success(),
            "hack/build-tools.sh helm failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = Command::new("bash")
            .args(["-c", "source hack/lib.sh && echo $TOOLS_BIN"])
            .current_dir(&root)
            .output()
            .unwrap();
        PathBuf::from(String::from_utf8_lossy(&bin.stdout).trim()).join("helm")
    })
}

/// Runs helm from the repository root.
pub fn helm(args: &[&str]) -> Output {
    let home = std::env::temp_dir().join("hero-sandbox-helm-home");
    Command::new(helm_bin())
        .args(args)
        .current_dir(repo_root())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("run helm")
}

/// `helm ARGS` against the local control plane.
pub fn helm_cluster(args: &[&str]) -> Output {
    let kubeconfig = cluster().kubeconfig.to_str().unwrap().to_owned();
    let mut all = vec!["--kubeconfig", &kubeconfig];
    all.extend_from_slice(args);
    helm(&all)
}
