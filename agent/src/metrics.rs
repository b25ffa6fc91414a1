//! The agent's own metrics (`GET /metrics`, unsigned: counts only, nothing secret).

use prometheus::{Encoder as _, IntCounterVec, Opts, Registry, TextEncoder};

/// One agent's counters.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests refused, by reason ([`crate::trust::Refusal::reason`]).
    pub refused: IntCounterVec,
    /// Requests obeyed, by route.
    pub obeyed: IntCounterVec,
}

impl Metrics {
    /// New counters in a registry of their own.
    pub fn new() -> Self {
        let registry = Registry::new();
        let refused = IntCounterVec::new(
            Opts::new(
                "hero_agent_requests_refused_total",
                "Requests to the agent's API refused, by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let obeyed = IntCounterVec::new(
            Opts::new(
                "hero_agent_requests_total",
                "Signed requests to the agent's API obeyed, by route.",
            ),
            &["route"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(refused.clone()))
            .expect("registered once");
        registry
            .register(Box::new(obeyed.clone()))
            .expect("registered once");
        Metrics {
            registry,
            refused,
            obeyed,
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding never fails");
        String::from_utf8(out).expect("text exposition is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
