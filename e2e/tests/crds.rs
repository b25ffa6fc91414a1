//! The CRDs against the real API server: they install, the examples are accepted, bad
//! input is refused at admission with a message that says what is wrong and what is allowed,
//! and `kubectl explain` / `kubectl get` read well.

use e2e::{TestNamespace, cluster, kubectl, repo_root};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A valid Tester with `patch` lines spliced into its spec.
fn tester(name: &str, account: &str, extra: &str) -> String {
    format!(
        "apiVersion: sandbox.hero.dev/v1alpha1\nkind: Tester\nmetadata:\n  name: {name}\nspec:\n  accountName: {account}\n  email: t@example.com\n  hostPool: gent\n{extra}"
    )
}

#[test]
fn crds_install_and_become_established() {
    cluster();
    let out = kubectl(&[
        "get",
        "crd",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Established\")].status} {end}",
    ]);
    let got = stdout(&out);
    for crd in ["testers", "hostpools", "sharedengines"] {
        assert!(
            got.contains(&format!("{crd}.sandbox.hero.dev=True")),
            "{crd} not Established: {got}"
        );
    }
}

#[test]
fn examples_are_accepted() {
    let ns = TestNamespace::new("examples");
    let examples = repo_root().join("examples");
    let out = ns.kubectl(&["apply", "-f", examples.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ns.kubectl(&["get", "testers,hostpools,sharedengines", "-o", "name"]);
    let got = stdout(&out);
    for obj in [
        "tester.sandbox.hero.dev/alice",
        "hostpool.sandbox.hero.dev/gent",
        "hostpool.sandbox.hero.dev/gent-warm",
        "sharedengine.sandbox.hero.dev/embedder",
    ] {
        assert!(got.contains(obj), "{obj} missing from {got}");
    }
}

#[test]
fn account_names_the_identity_provider_allows_are_accepted() {
    let ns = TestNamespace::new("names");
    for (i, account) in ["Bob.Smith_2", "alice-B", "x", "A1", &"a".repeat(40)]
        .iter()
        .enumerate()
    {
        let out = ns.apply(&tester(&format!("ok{i}"), account, ""));
        assert!(out.status.success(), "{account} refused: {}", stderr(&out));
    }
}

const ACCOUNT_RULE: &str = "accountName must be 1-40 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit";

#[test]
fn invalid_objects_are_refused_with_a_clear_message() {
    let ns = TestNamespace::new("invalid");
    let cases: Vec<(&str, String, &str)> = vec![
        ("leading dash", tester("t1", "-x", ""), ACCOUNT_RULE),
        ("trailing dot", tester("t2", "x.", ""), ACCOUNT_RULE),
        ("space", tester("t3", "'a b'", ""), ACCOUNT_RULE),
        ("non-ASCII", tester("t4", "jos\u{e9}", ""), ACCOUNT_RULE),
        ("empty", tester("t5", "''", ""), ACCOUNT_RULE),
        ("41 characters", tester("t6", &"a".repeat(41), ""), "spec.accountName: Too long: may not be more than 40 bytes"),
        (
            "bad email",
            tester("t7", "alice", "").replace("t@example.com", "not-an-email"),
            "email must look like name@example.com",
        ),
        (
            "zero disk",
            tester("t8", "alice", "  resources:\n    diskGiB: 0\n"),
            "diskGiB must be between 1 and 4096",
        ),
        (
            "too much memory",
            tester("t9", "alice", "  resources:\n    memoryGiB: 1000\n"),
            "memoryGiB must be between 1 and 256",
        ),
        (
            "gateway name with upper case",
            tester("t10", "alice", "  gatewayName: Alice01\n"),
            "gatewayName must be 3-36 characters of lowercase letters and digits (no dashes, dots or upper case)",
        ),
        (
            "gateway name with a dash",
            tester("t11", "alice", "  gatewayName: alice-01\n"),
            "gatewayName must be 3-36 characters of lowercase letters and digits (no dashes, dots or upper case)",
        ),
        (
            "unknown channel",
            tester("t12", "alice", "  channel: beta\n"),
            "spec.channel: Unsupported value: \"beta\": supported values: \"stable\", \"prerelease\"",
        ),
        (
            "unknown management policy",
            tester("t19", "alice", "  managementPolicy: Ignore\n"),
            "spec.managementPolicy: Unsupported value: \"Ignore\": supported values: \"Full\", \"ObserveOnly\", \"OrphanOnDelete\"",
        ),
        (
            "unknown app",
            tester("t13", "alice", "  apps: [cockpit, spreadsheet]\n"),
            "Unsupported value: \"spreadsheet\"",
        ),
        (
            "app listed twice",
            tester("t14", "alice", "  apps: [cockpit, cockpit]\n"),
            "spec.apps[1]: Duplicate value: \"cockpit\"",
        ),
        (
            "bad allowed account",
            tester("t15", "alice", "  allowedAccounts: [bob, '-eve']\n"),
            "allowedAccounts entries must be account names",
        ),
        (
            "HostPool with neither nodes nor farm",
            "apiVersion: sandbox.hero.dev/v1alpha1\nkind: HostPool\nmetadata:\n  name: empty\nspec:\n  placement: spread\n".into(),
            "set exactly one of nodes (a list of grid node ids) or farm (a farm id to take nodes from)",
        ),
        (
            "HostPool with an unknown policy",
            "apiVersion: sandbox.hero.dev/v1alpha1\nkind: HostPool\nmetadata:\n  name: p\nspec:\n  nodes: [1]\n  placement: random\n".into(),
            "spec.placement: Unsupported value: \"random\": supported values: \"spread\", \"binpack\"",
        ),
        (
            "HostPool with a remediation delay that is not a duration",
            "apiVersion: sandbox.hero.dev/v1alpha1\nkind: HostPool\nmetadata:\n  name: p\nspec:\n  nodes: [1]\n  remediation:\n    unhealthyAfter: ten minutes\n".into(),
            "unhealthyAfter must be a duration such as 10m, 90s or 1h30m (0s turns remediation off)",
        ),
        (
            "HostPool with maxUnhealthy above 100",
            "apiVersion: sandbox.hero.dev/v1alpha1\nkind: HostPool\nmetadata:\n  name: p\nspec:\n  nodes: [1]\n  remediation:\n    maxUnhealthy: 140\n".into(),
            "maxUnhealthy is a percentage, 0-100",
        ),
        (
            "HostPool with a warm pool above 50",
            "apiVersion: sandbox.hero.dev/v1alpha1\nkind: HostPool\nmetadata:\n  name: p\nspec:\n  nodes: [1]\n  warmPool:\n    size: 51\n".into(),
            "warmPool.size must be between 0 and 50",
        ),
        (
            "HostPool with the deprecated warmPoolSize beside warmPool",
            "apiVersion: sandbox.hero.dev/v1alpha1\nkind: HostPool\nmetadata:\n  name: p\nspec:\n  nodes: [1]\n  warmPoolSize: 2\n  warmPool:\n    size: 2\n".into(),
            "warmPoolSize is deprecated: set warmPool.size only",
        ),
        (
            "HostPool building no warm machine at a time",
            "apiVersion: sandbox.hero.dev/v1alpha1\nkind: HostPool\nmetadata:\n  name: p\nspec:\n  nodes: [1]\n  warmPool:\n    size: 2\n    maxBuilding: 0\n".into(),
            "warmPool.maxBuilding must be between 1 and 10",
        ),
        (
            "HostPool with unknown warm names",
            "apiVersion: sandbox.hero.dev/v1alpha1\nkind: HostPool\nmetadata:\n  name: p\nspec:\n  nodes: [1]\n  warmPool:\n    size: 2\n    names: random\n".into(),
            "spec.warmPool.names: Unsupported value: \"random\": supported values: \"own\", \"neutral\"",
        ),
        (
            "SharedEngine with an upper-case kind",
            "apiVersion: sandbox.hero.dev/v1alpha1\nkind: SharedEngine\nmetadata:\n  name: e\nspec:\n  engine: Embedder\n  url: http://e:9000\n  tokenStore:\n    url: http://e:9000/admin\n".into(),
            "engine must be a lowercase engine kind such as 'embedder' or 'voice'",
        ),
    ];
    let mut failures = Vec::new();
    for (what, yaml, message) in &cases {
        let out = ns.apply(yaml);
        let err = stderr(&out);
        if out.status.success() || !err.contains(message) {
            failures.push(format!(
                "{what}: expected refusal with {message:?}, got success={} {err}",
                out.status.success()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases.len() >= 12);
}

#[test]
fn immutable_fields_cannot_change() {
    let ns = TestNamespace::new("immutable");
    let out = ns.apply(&tester("t", "alice", "  gatewayName: alice01\n"));
    assert!(out.status.success(), "{}", stderr(&out));

    let out = ns.apply(&tester("t", "alice2", "  gatewayName: alice01\n"));
    assert!(
        stderr(&out).contains(
            "accountName is immutable: delete the Tester and create a new one to change it"
        ),
        "{}",
        stderr(&out)
    );

    let out = ns.apply(&tester("t", "alice", "  gatewayName: alice02\n"));
    assert!(
        stderr(&out).contains("gatewayName cannot be added, changed or removed after creation"),
        "{}",
        stderr(&out)
    );

    let out = ns.apply(
        &tester("t", "alice", "  gatewayName: alice01\n")
            .replace("hostPool: gent", "hostPool: other"),
    );
    assert!(
        stderr(&out).contains("hostPool is immutable"),
        "{}",
        stderr(&out)
    );

    // Once placed, the node is part of the Tester's identity on the grid.
    let place = r#"{"status":{"placement":{"nodeId":1,"cpu":1,"memoryBytes":1,"diskBytes":1}}}"#;
    let out = ns.kubectl(&[
        "patch",
        "tester",
        "t",
        "--subresource=status",
        "--type=merge",
        "-p",
        place,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let moved = r#"{"status":{"placement":{"nodeId":2,"cpu":1,"memoryBytes":1,"diskBytes":1}}}"#;
    let out = ns.kubectl(&[
        "patch",
        "tester",
        "t",
        "--subresource=status",
        "--type=merge",
        "-p",
        moved,
    ]);
    assert!(
        stderr(&out).contains("placement.nodeId cannot change once placed"),
        "{}",
        stderr(&out)
    );

    // A warm machine's claim is final: no second tester can take it over, nor can it be undone.
    let warm = |claim: &str| {
        format!(
            "apiVersion: sandbox.hero.dev/v1alpha1\nkind: WarmMachine\nmetadata:\n  name: w\nspec:\n  hostPool: gent\n  resources: {{cpu: 1, memoryGiB: 2, diskGiB: 20}}\n  channel: stable\n  apps: [cockpit]\n{claim}"
        )
    };
    let out = ns.apply(&warm(""));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ns.apply(&warm("  claim: {tester: a, testerUid: u1}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    for other in ["  claim: {tester: b, testerUid: u2}\n", ""] {
        let out = ns.apply(&warm(other));
        assert!(
            stderr(&out).contains("a claim is final: it cannot be changed or removed"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn explain_reads_like_documentation() {
    cluster();
    let out = kubectl(&["explain", "tester.spec"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    for needle in [
        "accountName",
        "The tester's account name at the identity provider",
        "hostPool",
        "sharedEngines",
        "welcomeEmail",
    ] {
        assert!(
            text.contains(needle),
            "{needle:?} missing from kubectl explain:\n{text}"
        );
    }
    let out = kubectl(&["explain", "hostpool.status.nodes", "--recursive"]);
    assert!(stdout(&out).contains("freeDiskBytes"), "{}", stdout(&out));
}

#[test]
fn get_shows_the_printer_columns() {
    let ns = TestNamespace::new("columns");
    let examples = repo_root().join("examples");
    assert!(
        ns.kubectl(&["apply", "-f", examples.to_str().unwrap()])
            .status
            .success()
    );
    let header = |kind: &str| {
        stdout(&ns.kubectl(&["get", kind]))
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        header("testers"),
        ["NAME", "PHASE", "HOST", "URL", "READY", "APPS", "AGE"]
    );
    assert_eq!(
        header("hostpools"),
        [
            "NAME",
            "NODES",
            "ONLINE",
            "FIT",
            "TESTERS",
            "UNHEALTHY",
            "WARM",
            "WARMING",
            "AGE"
        ]
    );
    assert_eq!(
        header("sharedengines"),
        ["NAME", "ENGINE", "AVAILABLE", "TESTERS", "AGE"]
    );
    assert!(
        stdout(&ns.kubectl(&["get", "tst,hp,se", "-o", "name"]))
            .contains("tester.sandbox.hero.dev/alice")
    );
}
