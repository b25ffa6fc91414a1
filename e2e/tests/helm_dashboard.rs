//! The chart's Grafana dashboard (`charts/sandbox-controller/dashboards`): its panels are built
//! on the controller's own metrics, each read the way its type asks, and every metric has a
//! panel.

use std::collections::{BTreeMap, BTreeSet};

use e2e::{chart::*, repo_root};

// ---------------------------------------------------------------------------------------------
// the dashboard

/// Metric → type, as the controller exports them.
const METRICS: &[(&str, &str)] = &[
    ("sandbox_reconcile_total", "counter"),
    ("sandbox_reconcile_errors_total", "counter"),
    ("sandbox_step_duration_seconds", "histogram"),
    ("sandbox_time_to_ready_seconds", "histogram"),
    ("sandbox_testers", "gauge"),
    ("sandbox_grid_request_duration_seconds", "histogram"),
    ("sandbox_grid_errors_total", "counter"),
    ("sandbox_hostpool_fit", "gauge"),
    ("sandbox_apps_unhealthy", "gauge"),
    ("sandbox_remediations_total", "counter"),
    ("sandbox_warm_machines", "gauge"),
    ("sandbox_warm_claims_total", "counter"),
    ("sandbox_cold_starts_total", "counter"),
    ("sandbox_warm_claim_to_ready_seconds", "histogram"),
    ("sandbox_reconcile_duration_seconds", "histogram"),
    ("sandbox_api_request_duration_seconds", "histogram"),
    ("sandbox_api_writes_total", "counter"),
    ("sandbox_outside_request_duration_seconds", "histogram"),
];

/// The metric names the controller defines (`controller/src/metrics.rs`): the list above must
/// hold them all, so a metric added there without a panel fails the test below.
fn defined_metrics() -> BTreeSet<String> {
    let source = std::fs::read_to_string(repo_root().join("controller/src/metrics.rs")).unwrap();
    source
        .match_indices("\"sandbox_")
        .filter_map(|(at, _)| source[at + 1..].split('"').next())
        .map(str::to_owned)
        .collect()
}

fn exprs(panel: &serde_json::Value, out: &mut Vec<String>) {
    for t in panel["targets"].as_array().into_iter().flatten() {
        out.push(
            t["expr"]
                .as_str()
                .expect("every target has a PromQL expr")
                .to_owned(),
        );
    }
    for p in panel["panels"].as_array().into_iter().flatten() {
        exprs(p, out);
    }
}

#[test]
fn dashboard_is_built_on_the_controllers_metrics() {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join(DASHBOARD)).unwrap())
            .expect("dashboard is JSON");
    assert_eq!(json["uid"], "sandbox-controller");
    let panels = json["panels"].as_array().unwrap();
    let ids: BTreeSet<_> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let titles: Vec<_> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for needed in [
        "Testers per phase",
        "Time to Ready",
        "Reconcile errors per step",
        "Grid call latency (p50, p95)",
        "Grid errors",
        "Testers with an app down",
        "Machines moved off unhealthy nodes",
        "Warm machines",
        "Claims and cold starts",
        "Claim to Ready",
        "API writes per second",
        "Outside service latency (p95)",
    ] {
        assert!(
            titles.contains(&needed),
            "{needed:?} panel missing: {titles:?}"
        );
    }
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{} uses the datasource variable",
            p["title"]
        );
    }

    let mut all = Vec::new();
    for p in panels {
        exprs(p, &mut all);
    }
    let known: BTreeMap<_, _> = METRICS.iter().copied().collect();
    assert_eq!(
        known.keys().map(|m| m.to_string()).collect::<BTreeSet<_>>(),
        defined_metrics(),
        "the metrics this test knows are the ones the controller defines"
    );
    let mut used = BTreeSet::new();
    for expr in &all {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("sandbox_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let series = &tail[..end];
            rest = &tail[end..];
            let (metric, suffix) = match series.strip_suffix("_bucket") {
                Some(m) => (m, "_bucket"),
                None => (series, ""),
            };
            let Some(ty) = known.get(metric) else {
                panic!("{expr}: {series} is not a metric of the controller")
            };
            match *ty {
                "histogram" => assert!(
                    suffix == "_bucket" && expr.contains("histogram_quantile("),
                    "{expr}: a histogram is read through its buckets"
                ),
                "counter" => assert!(
                    expr.contains(&format!("rate({series}")),
                    "{expr}: a counter is read as a rate"
                ),
                _ => assert!(suffix.is_empty(), "{expr}"),
            }
            used.insert(metric.to_owned());
        }
    }
    let unused: Vec<_> = known.keys().filter(|m| !used.contains(**m)).collect();
    assert!(unused.is_empty(), "metrics without a panel: {unused:?}");
}
