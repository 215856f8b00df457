//! Discovery's Prometheus metrics.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Handles to discovery's metrics, registered once at start.
#[derive(Clone, Debug)]
pub struct DiscoveryMetrics {
    pub(crate) events: IntCounterVec,
    pub(crate) engine_up: IntGauge,
    pub(crate) skipped_containers: IntGauge,
    pub(crate) resyncs: IntCounter,
    pub(crate) swarm_polls: IntCounter,
    pub(crate) swarm_poll_errors: IntCounter,
    pub(crate) swarm_tasks_routed: IntGaugeVec,
}

impl DiscoveryMetrics {
    /// Registers `dockhand_docker_events_total{type,action}`, `dockhand_docker_up`,
    /// `dockhand_invalid_containers`, `dockhand_docker_resyncs_total`,
    /// `dockhand_swarm_polls_total`, `dockhand_swarm_poll_errors_total` and
    /// `dockhand_swarm_tasks_routed{vhost}` on `registry` (the route table's generation and
    /// swaps are the publisher's).
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
            swarm_polls: IntCounter::new(
                "dockhand_swarm_polls_total",
                "Polls of the Swarm services and tasks",
            )?,
            swarm_poll_errors: IntCounter::new(
                "dockhand_swarm_poll_errors_total",
                "Swarm polls that failed (the last routes keep serving)",
            )?,
            swarm_tasks_routed: IntGaugeVec::new(
                Opts::new(
                    "dockhand_swarm_tasks_routed",
                    "Swarm tasks routed, per vhost",
                ),
                &["vhost"],
            )?,
        };
        registry.register(Box::new(m.events.clone()))?;
        registry.register(Box::new(m.engine_up.clone()))?;
        registry.register(Box::new(m.skipped_containers.clone()))?;
        registry.register(Box::new(m.resyncs.clone()))?;
        registry.register(Box::new(m.swarm_polls.clone()))?;
        registry.register(Box::new(m.swarm_poll_errors.clone()))?;
        registry.register(Box::new(m.swarm_tasks_routed.clone()))?;
        Ok(m)
    }
}
