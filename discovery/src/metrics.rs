//! Discovery's Prometheus metrics.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Handles to discovery's metrics, registered once at start.
#[derive(Clone, Debug)]
pub struct DiscoveryMetrics {
    pub(crate) events: IntCounterVec,
    pub(crate) engine_up: IntGauge,
    pub(crate) skipped_containers: IntGauge,
    pub(crate) resyncs: IntCounter,
}

impl DiscoveryMetrics {
    /// Registers `dockhand_docker_events_total{type,action}`, `dockhand_docker_up`,
    /// `dockhand_invalid_containers` and `dockhand_docker_resyncs_total` on `registry` (the
    /// route table's generation and swaps are the publisher's).
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            events: IntCounterVec::new(
                Opts::new("dockhand_docker_events_total", "Docker events received"),
                &["type", "action"],
            )?,
            engine_up: IntGauge::new(
                "dockhand_docker_up",
                "1 while the Docker event stream is connected",
            )?,
            skipped_containers: IntGauge::new(
                "dockhand_invalid_containers",
                "Running containers skipped because their settings are invalid",
            )?,
            resyncs: IntCounter::new(
                "dockhand_docker_resyncs_total",
                "Full re-lists of the running containers",
            )?,
        };
        registry.register(Box::new(m.events.clone()))?;
        registry.register(Box::new(m.engine_up.clone()))?;
        registry.register(Box::new(m.skipped_containers.clone()))?;
        registry.register(Box::new(m.resyncs.clone()))?;
        Ok(m)
    }
}
