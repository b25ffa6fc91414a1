//! The controller's image, as `make image` and `make image-import` make it: `hack/image.sh`
//! builds the static musl controller and writes `target/image/controller-<version>.oci.tar`
//! without a Docker daemon; the tests read that archive as an OCI image layout, build it a
//! second time for the same digest, and import and run it with the real containerd and runc (a
//! private containerd under `.run/containerd/`, started by the script when none answers).
//!
//! The first run builds the controller for x86_64-unknown-linux-musl in release mode and the
//! image writer (hack/tools/image): several minutes.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use e2e::repo_root;
use serde_json::Value;
use sha2::{Digest, Sha256};

const NAME: &str = "ghcr.io/hero-sandbox/controller";
const NAMESPACE: &str = "hero";
const USER: &str = "65532:65532";

/// What two runs of `hack/image.sh build` gave.
struct Built {
    version: String,
    archive: PathBuf,
    /// The manifest digest each run printed.
    digests: [String; 2],
    /// The sha256 of the archive after each run.
    archive_sums: [String; 2],
}

/// Runs `hack/image.sh ARGS` and returns its stdout; panics with its output when it fails.
fn script(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(repo_root().join("hack/image.sh"))
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run hack/image.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "hack/image.sh {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.trim().to_string()
}

/// Runs a command and returns its stdout; panics with its output when it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn controller_version() -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let meta: Value = serde_json::from_str(&run(Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(repo_root().join("Cargo.toml"))))
    .unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "controller")
        .expect("the controller package")["version"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The image, built twice (once for all the tests of this file).
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let version = controller_version();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"));
        let archive = target
            .join("image")
            .join(format!("controller-{version}.oci.tar"));
        let mut digests = Vec::new();
        let mut sums = Vec::new();
        for i in 1..=2 {
            let start = Instant::now();
            digests.push(script(&["build"]));
            sums.push(sha256_hex(&std::fs::read(&archive).unwrap()));
            eprintln!(
                "build {i}: {} in {:.1?}",
                digests.last().unwrap(),
                start.elapsed()
            );
        }
        Built {
            version,
            archive,
            digests: digests.try_into().unwrap(),
            archive_sums: sums.try_into().unwrap(),
        }
    })
}

/// A fresh scratch directory under target/e2e-image/.
fn scratch(name: &str) -> PathBuf {
    let dir = repo_root()
        .join("target/e2e-image")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("{digest} is not a sha256 digest"));
    layout.join("blobs/sha256").join(hex)
}

#[test]
fn two_builds_give_the_same_digest_and_the_same_archive() {
    let b = built();
    let [d1, d2] = &b.digests;
    assert!(
        d1.len() == 71 && d1.starts_with("sha256:"),
        "hack/image.sh printed {d1:?}, not a digest"
    );
    assert_eq!(d1, d2, "the manifest digest changed between two builds");
    assert_eq!(
        b.archive_sums[0], b.archive_sums[1],
        "the archive's bytes changed between two builds"
    );
    let recorded = b
        .archive
        .with_file_name(format!("controller-{}.digest", b.version));
    assert_eq!(std::fs::read_to_string(recorded).unwrap().trim(), d1);
    eprintln!(
        "{NAME}:{} {d1}, archive sha256:{}, {} bytes",
        b.version,
        b.archive_sums[0],
        std::fs::metadata(&b.archive).unwrap().len()
    );
}

#[test]
fn archive_is_an_oci_layout_of_the_controller_its_ca_bundle_and_its_user() {
    let b = built();
    let dir = scratch("layout");
    let layout = dir.join("layout");
    std::fs::create_dir(&layout).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&b.archive)
        .arg("-C")
        .arg(&layout));

    let oci_layout = json(&layout.join("oci-layout"));
    assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
    // Every blob is named by its own digest.
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(
            sha256_hex(&std::fs::read(entry.path()).unwrap()),
            entry.file_name().to_string_lossy(),
            "blob {} does not match its name",
            entry.path().display()
        );
    }

    let index = json(&layout.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "one manifest in index.json: {index}");
    let desc = &manifests[0];
    assert_eq!(
        desc["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(desc["digest"], b.digests[0].as_str());
    assert_eq!(
        desc["annotations"]["io.containerd.image.name"],
        format!("{NAME}:{}", b.version)
    );
    assert_eq!(
        desc["annotations"]["org.opencontainers.image.ref.name"],
        b.version.as_str()
    );
    assert_eq!(desc["platform"]["os"], "linux");
    assert_eq!(desc["platform"]["architecture"], "amd64");

    let manifest = json(&blob(&layout, b.digests[0].as_str()));
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    let config = json(&blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");
    assert_eq!(config["config"]["User"], USER);
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/controller"])
    );
    assert!(config["config"]["Cmd"].is_null(), "no Cmd: {config}");
    assert!(config["config"]["Env"].is_null(), "no Env: {config}");

    // The layer: exactly these entries, owned by root, with these modes, at time 0.
    let layer = blob(&layout, layers[0]["digest"].as_str().unwrap());
    let diff_id = run(Command::new("sh")
        .arg("-c")
        .arg("gzip -dc \"$0\" | sha256sum")
        .arg(&layer));
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        format!("sha256:{}", diff_id.split_whitespace().next().unwrap())
    );
    let listing = run(Command::new("tar")
        .args(["--numeric-owner", "--full-time", "-tvzf"])
        .arg(&layer));
    let entries: BTreeMap<String, (String, String, String)> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // mode owner size date time name
            (
                f[5].to_string(),
                (
                    f[0].to_string(),
                    f[1].to_string(),
                    format!("{} {}", f[3], f[4]),
                ),
            )
        })
        .collect();
    let expected = [
        ("controller", "-rwxr-xr-x"),
        ("etc/", "drwxr-xr-x"),
        ("etc/group", "-rw-r--r--"),
        ("etc/passwd", "-rw-r--r--"),
        ("etc/ssl/", "drwxr-xr-x"),
        ("etc/ssl/certs/", "drwxr-xr-x"),
        ("etc/ssl/certs/ca-certificates.crt", "-rw-r--r--"),
    ];
    assert_eq!(
        entries.keys().map(String::as_str).collect::<Vec<_>>(),
        expected.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "the layer holds exactly these entries:\n{listing}"
    );
    for (name, mode) in expected {
        let (m, owner, time) = &entries[name];
        assert_eq!(m, mode, "{name}'s mode");
        assert_eq!(owner, "0/0", "{name}'s owner");
        assert_eq!(time, "1970-01-01 00:00:00", "{name}'s time");
    }

    let rootfs = dir.join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&layer)
        .arg("-C")
        .arg(&rootfs));
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("controller:x:65532:65532:")),
        "/etc/passwd:\n{passwd}"
    );
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap();
    assert!(
        group.lines().any(|l| l == "controller:x:65532:"),
        "/etc/group:\n{group}"
    );
    assert_eq!(
        std::fs::read(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap(),
        std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap(),
        "the CA bundle is the host's Debian one"
    );
    let file = run(Command::new("file")
        .arg("-b")
        .arg(rootfs.join("controller")));
    assert!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "/controller is not static: {file}"
    );
    assert!(file.contains("x86-64"), "/controller: {file}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The private containerd (or the one `CONTAINERD_ADDRESS` names); stopped at the end when this
/// test started it.
struct Containerd {
    sock: String,
    started_here: bool,
}

impl Containerd {
    fn up() -> Self {
        let default = repo_root().join(".run/containerd/containerd.sock");
        let sock = std::env::var("CONTAINERD_ADDRESS")
            .unwrap_or_else(|_| default.to_string_lossy().into_owned());
        let answered = Command::new("ctr")
            .args(["-a", &sock, "version"])
            .output()
            .is_ok_and(|o| o.status.success());
        let printed = script(&["containerd"]);
        assert_eq!(printed, sock, "hack/image.sh containerd printed its socket");
        Self {
            sock,
            started_here: !answered,
        }
    }

    fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.args(["-a", &self.sock, "-n", NAMESPACE]);
        cmd
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.started_here {
            let _ = Command::new("bash")
                .arg(repo_root().join("hack/image.sh"))
                .arg("containerd-down")
                .status();
        }
    }
}

/// A container of the image; its task is killed and both are deleted on drop.
struct Container<'a> {
    containerd: &'a Containerd,
    id: String,
}

impl Container<'_> {
    /// The task's host PID and status, from `ctr tasks ls`, while it exists.
    fn task(&self) -> Option<(u32, String)> {
        let ls = run(self.containerd.ctr().args(["tasks", "ls"]));
        ls.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&self.id.as_str())).then(|| (f[1].parse().unwrap(), f[2].into()))
        })
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self
            .containerd
            .ctr()
            .args(["tasks", "delete", "--force", &self.id])
            .output();
        let _ = self
            .containerd
            .ctr()
            .args(["containers", "delete", &self.id])
            .output();
    }
}

/// GET http://ADDR/PATH with a plain HTTP/1.0 request; None while nothing answers.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn containerd_imports_the_image_and_runs_the_controller_as_65532() {
    let b = built();
    let containerd = Containerd::up();
    let image = format!("{NAME}:{}", b.version);

    // `make image-import`: builds (nothing to do by now) and imports into the namespace `hero`.
    script(&["import"]);
    let images = run(containerd
        .ctr()
        .args(["images", "ls", &format!("name=={image}")]));
    assert!(
        images.contains(&b.digests[0]),
        "containerd has {image} at {}:\n{images}",
        b.digests[0]
    );

    // The binary answers --help and --version in the container.
    let id = format!("e2e-image-help-{}", std::process::id());
    let help = run(containerd
        .ctr()
        .args(["run", "--rm", &image, &id, "/controller", "--help"]));
    assert!(
        help.contains("Usage: controller") && help.contains("--grid-url"),
        "controller --help in the container:\n{help}"
    );
    let id = format!("e2e-image-version-{}", std::process::id());
    let version =
        run(containerd
            .ctr()
            .args(["run", "--rm", &image, &id, "/controller", "--version"]));
    assert_eq!(version.trim(), format!("controller {}", b.version));

    // The controller itself, from the image's entrypoint, on the host's network: it serves
    // /healthz, then waits on an API server that accepts connections and never answers (a
    // listener nobody accepts on), which keeps it running while its process is looked at.
    let api = TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let dir = scratch("run");
    let kube = dir.join("kube");
    std::fs::create_dir(&kube).unwrap();
    std::fs::set_permissions(&kube, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        kube.join("config"),
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: e2e\n\
             clusters: [{{name: e2e, cluster: {{server: 'https://{}', insecure-skip-tls-verify: true}}}}]\n\
             users: [{{name: e2e, user: {{token: e2e-image-not-a-secret}}}}]\n\
             contexts: [{{name: e2e, context: {{cluster: e2e, user: e2e}}}}]\n",
            api.local_addr().unwrap()
        ),
    )
    .unwrap();
    std::fs::set_permissions(kube.join("config"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = dir.join("controller.log");
    let container = Container {
        containerd: &containerd,
        id: format!("e2e-image-run-{}", std::process::id()),
    };
    let mut cmd = containerd.ctr();
    cmd.args(["run", "--detach", "--net-host"])
        .arg(format!("--log-uri=file://{}", log.display()))
        .arg(format!(
            "--mount=type=bind,src={},dst=/kube,options=rbind:ro",
            kube.display()
        ));
    for env in [
        "KUBECONFIG=/kube/config".to_string(),
        format!("METRICS_ADDR={metrics}"),
        "GRID_URL=http://127.0.0.1:9".into(),
        "GRID_TWIN_ID=1".into(),
        "GRID_TWIN_SECRET=e2e-image-not-a-secret".into(),
        "GRID_NODE_BUS=http".into(),
        "FORGE_URL=http://127.0.0.1:9".into(),
        "FORGE_TOKEN=e2e-image-not-a-secret".into(),
    ] {
        cmd.arg(format!("--env={env}"));
    }
    run(cmd.arg(&image).arg(&container.id));

    let deadline = Instant::now() + Duration::from_secs(60);
    let pid = loop {
        let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
        match container.task() {
            Some((pid, status)) if status == "RUNNING" => {
                if http_get(&metrics, "/healthz").is_some_and(|r| r.ends_with("ok")) {
                    break pid;
                }
            }
            task => panic!(
                "the controller's task is {task:?}, not running; its output:\n{}",
                log_text()
            ),
        }
        assert!(
            Instant::now() < deadline,
            "the controller in the container did not serve /healthz on {metrics} within 60s; its output:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |key: &str| -> Vec<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(ids("Uid:"), ["65532"; 4], "real, effective, saved, fs uid");
    assert_eq!(ids("Gid:"), ["65532"; 4], "real, effective, saved, fs gid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, b"/controller\0", "the entrypoint alone");
    drop(container);
    let _ = std::fs::remove_dir_all(&dir);
}
