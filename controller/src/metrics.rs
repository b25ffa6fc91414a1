//! Prometheus metrics: what dashboards and benchmarks read.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric the controller exports, registered in its own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles per controller (`tester`, `hostpool`, `sharedengine`).
    pub reconciles: IntCounterVec,
    /// Reconcile errors per controller, step and error kind.
    pub errors: IntCounterVec,
    /// Duration of each reconcile per controller, from start to its requeue decision.
    pub reconcile_duration: HistogramVec,
    /// Duration of each Tester step, grid calls included.
    pub step_duration: HistogramVec,
    /// Time spent inside grid calls, per call.
    pub grid_duration: HistogramVec,
    /// Grid call errors per call and category.
    pub grid_errors: IntCounterVec,
    /// From a Tester's creation to its first Ready.
    pub time_to_ready: Histogram,
    /// Testers per phase.
    pub testers: IntGaugeVec,
    /// How many more testers fit per HostPool.
    pub hostpool_fit: IntGaugeVec,
    /// API writes sent, per verb and resource, counted on the wire (steady state must show
    /// none).
    pub api_writes: IntCounterVec,
    /// Time waiting for the API server, per verb and resource (watches not counted).
    pub api_duration: HistogramVec,
    /// Time waiting for the services other than the grid and the API server, per service
    /// (`forge`, `agent`, `engine`, `mail`, `gate`).
    pub outside_duration: HistogramVec,
    /// Machines moved off an unhealthy node, per HostPool.
    pub remediations: IntCounterVec,
    /// Testers on which an app does not answer its health check, per app.
    pub apps_unhealthy: IntGaugeVec,
    /// Warm machines per pool and state (desired, ready, warming, outdated).
    pub warm_machines: IntGaugeVec,
    /// Warm machines claimed by new Testers.
    pub warm_claims: IntCounterVec,
    /// New Testers on a pool with a warm pool that started cold, by reason.
    pub cold_starts: IntCounterVec,
    /// From a warm machine's claim to its Tester's Ready.
    pub claim_to_ready: Histogram,
}

fn buckets() -> Vec<f64> {
    vec![
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
        600.0, 1200.0,
    ]
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("sandbox_reconcile_total", "Reconciles"),
            &["controller"],
        )
        .unwrap();
        let errors = IntCounterVec::new(
            Opts::new("sandbox_reconcile_errors_total", "Reconcile errors"),
            &["controller", "step", "error"],
        )
        .unwrap();
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "sandbox_reconcile_duration_seconds",
                "Duration of each reconcile, per controller",
            )
            .buckets(buckets()),
            &["controller"],
        )
        .unwrap();
        let step_duration = HistogramVec::new(
            HistogramOpts::new(
                "sandbox_step_duration_seconds",
                "Duration of each Tester step",
            )
            .buckets(buckets()),
            &["step"],
        )
        .unwrap();
        let grid_duration = HistogramVec::new(
            HistogramOpts::new(
                "sandbox_grid_request_duration_seconds",
                "Duration of grid calls",
            )
            .buckets(buckets()),
            &["call"],
        )
        .unwrap();
        let grid_errors = IntCounterVec::new(
            Opts::new("sandbox_grid_errors_total", "Grid call errors"),
            &["call", "kind"],
        )
        .unwrap();
        let time_to_ready = Histogram::with_opts(
            HistogramOpts::new("sandbox_time_to_ready_seconds", "From creation to Ready")
                .buckets(buckets()),
        )
        .unwrap();
        let testers = IntGaugeVec::new(
            Opts::new("sandbox_testers", "Testers per phase"),
            &["phase"],
        )
        .unwrap();
        let hostpool_fit = IntGaugeVec::new(
            Opts::new("sandbox_hostpool_fit", "How many more testers fit"),
            &["namespace", "hostpool"],
        )
        .unwrap();
        let api_writes = IntCounterVec::new(
            Opts::new(
                "sandbox_api_writes_total",
                "Kubernetes API writes sent by the controller",
            ),
            &["verb", "resource"],
        )
        .unwrap();
        let api_duration = HistogramVec::new(
            HistogramOpts::new(
                "sandbox_api_request_duration_seconds",
                "Time waiting for the Kubernetes API server, per request (watches not counted)",
            )
            .buckets(buckets()),
            &["verb", "resource"],
        )
        .unwrap();
        let outside_duration = HistogramVec::new(
            HistogramOpts::new(
                "sandbox_outside_request_duration_seconds",
                "Time waiting for a service other than the grid and the API server",
            )
            .buckets(buckets()),
            &["service"],
        )
        .unwrap();
        let remediations = IntCounterVec::new(
            Opts::new(
                "sandbox_remediations_total",
                "Machines rebuilt on another node because theirs was unhealthy",
            ),
            &["namespace", "hostpool"],
        )
        .unwrap();
        let apps_unhealthy = IntGaugeVec::new(
            Opts::new(
                "sandbox_apps_unhealthy",
                "Testers on which the app does not answer its health check",
            ),
            &["app"],
        )
        .unwrap();
        let warm_machines = IntGaugeVec::new(
            Opts::new(
                "sandbox_warm_machines",
                "Warm machines per pool and state (desired, ready, warming, outdated)",
            ),
            &["namespace", "hostpool", "state"],
        )
        .unwrap();
        let warm_claims = IntCounterVec::new(
            Opts::new(
                "sandbox_warm_claims_total",
                "Warm machines claimed by new Testers",
            ),
            &["namespace", "hostpool"],
        )
        .unwrap();
        let cold_starts = IntCounterVec::new(
            Opts::new(
                "sandbox_cold_starts_total",
                "New Testers on a pool with a warm pool that started cold, by reason",
            ),
            &["namespace", "hostpool", "reason"],
        )
        .unwrap();
        let claim_to_ready = Histogram::with_opts(
            HistogramOpts::new(
                "sandbox_warm_claim_to_ready_seconds",
                "From a warm machine's claim to its Tester's Ready",
            )
            .buckets(buckets()),
        )
        .unwrap();
        for c in [
            &warm_claims,
            &cold_starts,
            &reconciles,
            &errors,
            &grid_errors,
            &api_writes,
            &remediations,
        ] {
            registry.register(Box::new(c.clone())).unwrap();
        }
        registry.register(Box::new(time_to_ready.clone())).unwrap();
        registry.register(Box::new(claim_to_ready.clone())).unwrap();
        for h in [
            &reconcile_duration,
            &step_duration,
            &grid_duration,
            &api_duration,
            &outside_duration,
        ] {
            registry.register(Box::new(h.clone())).unwrap();
        }
        for g in [&testers, &hostpool_fit, &apps_unhealthy, &warm_machines] {
            registry.register(Box::new(g.clone())).unwrap();
        }
        Self {
            registry,
            reconciles,
            errors,
            reconcile_duration,
            step_duration,
            grid_duration,
            grid_errors,
            time_to_ready,
            testers,
            hostpool_fit,
            api_writes,
            api_duration,
            outside_duration,
            remediations,
            apps_unhealthy,
            warm_machines,
            warm_claims,
            cold_starts,
            claim_to_ready,
        }
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encode metrics");
        String::from_utf8(buf).expect("metrics are UTF-8")
    }
}
