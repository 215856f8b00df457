//! The containers discovery knows right now, and publishing them as one route table.
//!
//! # Concurrency
//! Only the watch task owns a `State`; readers see nothing but the `RouteTable` snapshots it
//! stores, so a half-applied event is never visible.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bollard::models::ContainerInspectResponse;
use dockhand_proxy::spec::{HttpsPolicy, TableSpec};
use tracing::{info, warn};

use crate::contract::{self, ContainerRoutes, Reach};
use crate::table::{self, RoutedContainer};
use crate::{DiscoveryMetrics, TableSink};

/// A routed container: its parsed settings and what address selection needs.
struct Known {
    routes: ContainerRoutes,
    inspect: ContainerInspectResponse,
}

pub(crate) struct State {
    containers: HashMap<String, Known>,
    /// Running containers skipped for invalid settings (by ID), for the gauge.
    invalid: HashSet<String>,
    /// Containers told to stop (`kill` with their stop signal) that have not died yet: they stay
    /// out of rotation even if another event re-inspects them while they shut down.
    stopping: HashSet<String>,
    reach: Reach,
    default_host: Option<String>,
    https: HttpsPolicy,
    published: Option<TableSpec>,
    generation: u64,
    sink: TableSink,
    metrics: DiscoveryMetrics,
}

impl State {
    pub(crate) fn new(
        sink: TableSink,
        metrics: DiscoveryMetrics,
        default_host: Option<String>,
        https: HttpsPolicy,
    ) -> Self {
        Self {
            containers: HashMap::new(),
            invalid: HashSet::new(),
            stopping: HashSet::new(),
            reach: Reach::AnyNetwork,
            default_host,
            https,
            published: None,
            generation: sink.table.load().generation(),
            sink,
            metrics,
        }
    }

    pub(crate) fn set_reach(&mut self, reach: Reach) {
        self.reach = reach;
    }

    /// Records the current state of one container: routed, skipped, or gone.
    pub(crate) fn upsert(&mut self, inspect: ContainerInspectResponse) {
        let Some(id) = inspect.id.clone() else { return };
        if self.stopping.contains(&id) || !contract::is_routable_state(&inspect) {
            self.remove(&id);
            return;
        }
        match contract::parse_container(&inspect) {
            Ok(Some(routes)) => {
                self.invalid.remove(&id);
                self.containers.insert(id, Known { routes, inspect });
            }
            Ok(None) => self.remove(&id),
            Err(error) => {
                let name = display_name(&inspect);
                warn!(container = %name, %error, "skipping container: invalid settings");
                self.remove(&id);
                self.invalid.insert(id);
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &str) {
        self.containers.remove(id);
        self.invalid.remove(id);
    }

    /// Takes a container out of rotation until it dies or starts again.
    pub(crate) fn mark_stopping(&mut self, id: &str) {
        self.remove(id);
        self.stopping.insert(id.to_owned());
    }

    /// The container died or started again: it is no longer "stopping".
    pub(crate) fn clear_stopping(&mut self, id: &str) {
        self.stopping.remove(id);
    }

    /// Replaces everything with a full listing (initial sync and resyncs).
    pub(crate) fn replace_all(&mut self, running: Vec<ContainerInspectResponse>) {
        self.containers.clear();
        self.invalid.clear();
        let alive: HashSet<&str> = running.iter().filter_map(|c| c.id.as_deref()).collect();
        self.stopping.retain(|id| alive.contains(id.as_str()));
        for inspect in running {
            self.upsert(inspect);
        }
    }

    /// Builds the table spec and, when it differs from the served one, publishes a new table.
    ///
    /// Returns true when a new table was stored.
    pub(crate) fn publish(&mut self) -> bool {
        self.metrics
            .skipped_containers
            .set(self.invalid.len() as i64);
        let routed: Vec<RoutedContainer> = self
            .containers
            .values()
            .map(|k| RoutedContainer {
                routes: k.routes.clone(),
                address: contract::container_address(&k.inspect, &self.reach),
                health: contract::health(&k.inspect),
            })
            .collect();
        let spec = table::build_spec(&routed, self.default_host.as_deref(), &self.https);
        if self.published.as_ref() == Some(&spec) {
            return false;
        }
        let empty = TableSpec::default();
        for change in table::diff(self.published.as_ref().unwrap_or(&empty), &spec) {
            info!(target: "dockhand::routes", "{change}");
        }
        self.generation += 1;
        // Only this task stores tables, so the loaded one is the one being replaced.
        let built = self.sink.table.load().rebuild(
            &spec,
            self.generation,
            &self.sink.metrics,
            &self.sink.backends,
        );
        self.sink.table.store(Arc::new(built));
        self.metrics.generation.set(self.generation as i64);
        self.metrics.swaps.inc();
        self.published = Some(spec);
        true
    }

    /// The container's configured stop signal (`STOPSIGNAL`), if it set one.
    pub(crate) fn stop_signal(&self, id: &str) -> Option<String> {
        self.containers
            .get(id)?
            .inspect
            .config
            .as_ref()?
            .stop_signal
            .clone()
    }

    pub(crate) fn container_count(&self) -> usize {
        self.containers.len()
    }
}

pub(crate) fn display_name(inspect: &ContainerInspectResponse) -> String {
    match (&inspect.name, &inspect.id) {
        (Some(name), _) => name.trim_start_matches('/').to_owned(),
        (None, Some(id)) => id.chars().take(12).collect(),
        (None, None) => "<unnamed>".to_owned(),
    }
}
