//! The result: one table on stdout and the same numbers as JSON.

use serde_json::{Map, Value, json};

/// One number (or short text) of a scenario.
#[derive(Clone, Debug)]
pub struct Row {
    /// Scenario, e.g. `1 overhead`.
    pub scenario: String,
    /// What is measured.
    pub metric: String,
    /// The value.
    pub value: Value,
    /// Unit or note.
    pub unit: String,
}

/// Everything a run measured.
#[derive(Default)]
pub struct Report {
    /// Machine, versions, settings.
    pub meta: Map<String, Value>,
    rows: Vec<Row>,
    /// Correctness violations (over-commit, duplicates): the run fails after printing.
    pub violations: Vec<String>,
}

/// Rounds for display and JSON: 3 significant decimals at most.
pub fn round(x: f64) -> Value {
    if !x.is_finite() {
        return Value::Null;
    }
    // `+ 0.0` turns a negative zero (an unchanged counter's delta) into 0.
    let x = x + 0.0;
    let r = if x.abs() >= 100.0 {
        (x * 10.0).round() / 10.0
    } else {
        (x * 1000.0).round() / 1000.0
    };
    json!(r)
}

impl Report {
    /// Adds a number.
    pub fn num(&mut self, scenario: &str, metric: &str, value: f64, unit: &str) {
        self.rows.push(Row {
            scenario: scenario.into(),
            metric: metric.into(),
            value: round(value),
            unit: unit.into(),
        });
    }

    /// Adds any value (text, map).
    pub fn val(&mut self, scenario: &str, metric: &str, value: Value, unit: &str) {
        self.rows.push(Row {
            scenario: scenario.into(),
            metric: metric.into(),
            value,
            unit: unit.into(),
        });
    }

    /// The number recorded as `metric` of `scenario` earlier in this run, if any.
    pub fn value(&self, scenario: &str, metric: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.scenario == scenario && r.metric == metric)?
            .value
            .as_f64()
    }

    /// Records a correctness violation (also as a row).
    pub fn violation(&mut self, scenario: &str, what: String) {
        self.val(scenario, "VIOLATION", json!(what.clone()), "");
        self.violations.push(format!("{scenario}: {what}"));
    }

    /// The table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str("== bench ==\n");
        for (k, v) in &self.meta {
            out.push_str(&format!("{k}: {}\n", plain(v)));
        }
        let w0 = self
            .rows
            .iter()
            .map(|r| r.scenario.len())
            .max()
            .unwrap_or(8);
        let w1 = self.rows.iter().map(|r| r.metric.len()).max().unwrap_or(6);
        out.push_str(&format!(
            "\n| {:w0$} | {:w1$} | value |\n|{}|{}|-------|\n",
            "scenario",
            "metric",
            "-".repeat(w0 + 2),
            "-".repeat(w1 + 2)
        ));
        for r in &self.rows {
            let unit = if r.unit.is_empty() {
                String::new()
            } else {
                format!(" {}", r.unit)
            };
            out.push_str(&format!(
                "| {:w0$} | {:w1$} | {}{unit} |\n",
                r.scenario,
                r.metric,
                plain(&r.value)
            ));
        }
        out
    }

    /// The JSON document: `meta`, `rows`, and `scenarios.{scenario}.{metric}`.
    pub fn json(&self) -> Value {
        let mut scenarios = Map::new();
        for r in &self.rows {
            let s = scenarios
                .entry(r.scenario.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            s[&r.metric] = json!({"value": r.value, "unit": r.unit});
        }
        json!({
            "meta": self.meta,
            "scenarios": scenarios,
            "violations": self.violations,
        })
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", plain(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// A map of numbers as a JSON object (rounded).
pub fn map(m: &std::collections::BTreeMap<String, f64>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), round(*v))).collect())
}
