//! Reading numbers: Prometheus text (the controller's and kube-apiserver's), resident memory
//! from `/proc`, and percentiles.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// One sample of a Prometheus text exposition.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parses the text exposition format (comments skipped; enough for counters and histograms).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.trim().parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)),
        None => (head, BTreeMap::new()),
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    out
}

/// A scrape, for sums and deltas.
#[derive(Clone, Debug, Default)]
pub struct Scrape(pub Vec<Sample>);

impl Scrape {
    /// Parses `text`.
    pub fn of(text: &str) -> Self {
        Self(parse(text))
    }

    /// Sum of `name` over the samples whose labels match every `(key, value)` of `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                filter
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Sums of `name` grouped by the values of the labels `by` (joined with `/`), for the
    /// samples `keep` accepts.
    pub fn by(
        &self,
        name: &str,
        by: &[&str],
        keep: impl Fn(&Sample) -> bool,
    ) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.0.iter().filter(|s| s.name == name).filter(|s| keep(s)) {
            let key = by
                .iter()
                .map(|b| s.labels.get(*b).cloned().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("/");
            *out.entry(key).or_insert(0.0) += s.value;
        }
        out
    }
}

/// `after − before` per key, dropping zeros.
pub fn delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v != 0.0)
        .collect()
}

/// kube-apiserver's own `/metrics` (the admin client certificate may read it).
pub fn apiserver() -> Scrape {
    let out = e2e::kubectl(&["get", "--raw", "/metrics"]);
    Scrape::of(&String::from_utf8_lossy(&out.stdout))
}

/// `apiserver_request_total` by verb.
pub fn requests_by_verb(s: &Scrape) -> BTreeMap<String, f64> {
    s.by("apiserver_request_total", &["verb"], |_| true)
}

/// Requests answered 429 (Too Many Requests).
pub fn throttled(s: &Scrape) -> f64 {
    s.sum("apiserver_request_total", &[("code", "429")])
}

/// Verbs that change something.
pub fn is_write(verb: &str) -> bool {
    !matches!(verb, "GET" | "LIST" | "WATCH" | "WATCHLIST" | "CONNECT")
}

/// Read requests by `verb/resource/subresource`: GET and LIST (a WATCH is not a read here:
/// it is how a client learns of changes without reading).
pub fn reads_by_resource(s: &Scrape) -> BTreeMap<String, f64> {
    s.by(
        "apiserver_request_total",
        &["verb", "resource", "subresource"],
        |x| {
            x.labels
                .get("verb")
                .is_some_and(|v| matches!(v.as_str(), "GET" | "LIST"))
        },
    )
}

/// Write requests by `verb/resource/subresource`.
pub fn writes_by_resource(s: &Scrape) -> BTreeMap<String, f64> {
    s.by(
        "apiserver_request_total",
        &["verb", "resource", "subresource"],
        |x| x.labels.get("verb").is_some_and(|v| is_write(v)),
    )
}

/// The controller's metrics.
pub async fn controller(c: &e2e::stack::Controller) -> Scrape {
    Scrape::of(&c.metrics().await)
}

/// The resident set of `pid` in MiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU seconds (user + system) used so far by every process on the machine, summed by
/// command name (`/proc/<pid>/stat`'s `comm`, at most 15 characters: `kube-apiserver`,
/// `gitea`, `controller`, ...). Processes that ended are not counted.
pub fn cpu_by_command() -> BTreeMap<String, f64> {
    // Linux reports in clock ticks of 1/100 s (USER_HZ) on every platform it runs on here.
    const TICKS: f64 = 100.0;
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: comm may hold spaces, so split at its closing parenthesis.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after `comm`.
        let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        let ticks = u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0);
        *out.entry(comm).or_insert(0.0) += ticks / TICKS;
    }
    out
}

/// Samples a process's RSS in the background until stopped.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    task: std::thread::JoinHandle<Vec<(Duration, f64)>>,
}

impl RssSampler {
    /// Samples `pid` every `every`.
    pub fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let task = std::thread::spawn(move || {
            let start = Instant::now();
            let mut samples = Vec::new();
            while !s.load(Ordering::Relaxed) {
                if let Some(r) = rss_mib(pid) {
                    samples.push((start.elapsed(), r));
                }
                std::thread::sleep(every);
            }
            samples
        });
        Self { stop, task }
    }

    /// Stops; returns the samples (time since start, MiB).
    pub fn stop(self) -> Vec<(Duration, f64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.join().unwrap_or_default()
    }
}

/// The largest sample.
pub fn peak(samples: &[(Duration, f64)]) -> f64 {
    samples.iter().map(|s| s.1).fold(0.0, f64::max)
}

/// Nearest-rank percentile `p` (0–100) of `values` (sorted here).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Polls `done` every 50 ms until it holds or `timeout` passes; returns whether it held. For
/// figures that have no watch (metrics, counts kept by a watch task).
pub async fn poll_until(timeout: std::time::Duration, done: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    done()
}

/// Where the testers' reconcile time went, per tester (the controller's metrics `m`, `n`
/// testers): waiting for the grid, the API server and the other services, what is left (the
/// controller's own work and its queues: rate limiters, the ledger's lock), per step and per
/// grid call; and its API requests by verb and resource.
pub fn where_time_goes(m: &Scrape, n: usize, scenario: &str, r: &mut crate::report::Report) {
    let grid = m.sum("sandbox_grid_request_duration_seconds_sum", &[]);
    // Where a tester's reconcile time goes: waiting for the grid, the API server and the other
    // services, and what is left (the controller's own work and its queues: rate limiters, the
    // ledger's lock).
    let reconcile = m.sum(
        "sandbox_reconcile_duration_seconds_sum",
        &[("controller", "tester")],
    );
    let api = m.sum("sandbox_api_request_duration_seconds_sum", &[]);
    let outside = m.by(
        "sandbox_outside_request_duration_seconds_sum",
        &["service"],
        |_| true,
    );
    let ms = |x: f64| x / n as f64 * 1000.0;
    r.num(
        scenario,
        "reconcile time per tester",
        ms(reconcile),
        "ms (sum of sandbox_reconcile_duration_seconds)",
    );
    r.num(
        scenario,
        "  of which the API server",
        ms(api),
        "ms (sandbox_api_request_duration_seconds, all controllers)",
    );
    for (service, t) in &outside {
        r.num(scenario, &format!("  of which {service}"), ms(*t), "ms");
    }
    r.num(
        scenario,
        "  of which the controller itself",
        ms(reconcile - grid - api - outside.values().sum::<f64>()),
        "ms (reconcile − grid − API − the services above)",
    );
    r.val(
        scenario,
        "API requests per tester, by verb/resource",
        crate::report::map(
            &m.by(
                "sandbox_api_request_duration_seconds_count",
                &["verb", "resource"],
                |_| true,
            )
            .into_iter()
            .map(|(k, v)| (k, v / n as f64))
            .collect(),
        ),
        "",
    );
    // Where the step time goes: per step, and per grid call, in ms per tester.
    let per_tester = |v: std::collections::BTreeMap<String, f64>| {
        v.into_iter()
            .map(|(k, v)| (k, v / n as f64 * 1000.0))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    r.val(
        scenario,
        "step time per tester, by step",
        crate::report::map(&per_tester(m.by(
            "sandbox_step_duration_seconds_sum",
            &["step"],
            |_| true,
        ))),
        "ms",
    );
    r.val(
        scenario,
        "grid time per tester, by call",
        crate::report::map(&per_tester(m.by(
            "sandbox_grid_request_duration_seconds_sum",
            &["call"],
            |_| true,
        ))),
        "ms",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_commas_and_escapes() {
        let s = Scrape::of(
            "# HELP x\nx{a=\"1\",b=\"p,q\"} 3\nx{a=\"2\",b=\"say \\\"hi\\\"\"} 4\ny 7\n",
        );
        assert_eq!(s.sum("x", &[]), 7.0);
        assert_eq!(s.sum("x", &[("b", "p,q")]), 3.0);
        assert_eq!(s.sum("x", &[("b", "say \"hi\"")]), 4.0);
        assert_eq!(s.sum("y", &[]), 7.0);
    }

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[5.0], 95.0), 5.0);
    }
}
