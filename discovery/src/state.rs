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

use crate::contract::{self, Endpoints, Reach};
use crate::table::{self, RoutedContainer, SpecIndex};
use crate::{DiscoveryMetrics, TableSink};

pub(crate) struct State {
    /// What is kept of every routed container's `docker inspect`, by ID.
    kept: HashMap<String, Kept>,
    /// Their routes, and the spec they make, kept up to date one container at a time.
    index: SpecIndex,
    /// Running containers skipped for invalid settings (by ID), for the gauge.
    invalid: HashSet<String>,
    /// Containers told to stop (`kill` with their stop signal) that have not died yet: they stay
    /// out of rotation even if another event re-inspects them while they shut down.
    stopping: HashSet<String>,
    reach: Reach,
    /// Whether a table was published yet: the first one is built whole, with `DEFAULT_HOST`.
    published: bool,
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
            kept: HashMap::new(),
            index: SpecIndex::new(default_host.as_deref(), https),
            invalid: HashSet::new(),
            stopping: HashSet::new(),
            reach: Reach::AnyNetwork,
            published: false,
            generation: sink.table.load().generation(),
            sink,
            metrics,
        }
    }

    /// Sets which networks dockhand reaches containers on, and chooses every known container's
    /// address again.
    pub(crate) fn set_reach(&mut self, reach: Reach) {
        self.reach = reach;
        for (id, kept) in &self.kept {
            if let Some(known) = self.index.get(id) {
                let routed = RoutedContainer {
                    routes: known.routes.clone(),
                    address: kept.endpoints.address(&self.reach),
                    health: known.health,
                };
                self.index.upsert(id, routed);
            }
        }
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
                let kept = Kept::of(&inspect);
                let routed = RoutedContainer {
                    routes,
                    address: kept.endpoints.address(&self.reach),
                    health: contract::health(&inspect),
                };
                self.index.upsert(&id, routed);
                self.kept.insert(id, kept);
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
        self.kept.remove(id);
        self.index.remove(id);
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

    /// Replaces everything with a full listing (initial sync and resyncs). Containers that did
    /// not change leave their vhosts alone, so a resync that finds nothing new rebuilds nothing.
    pub(crate) fn replace_all(&mut self, running: Vec<ContainerInspectResponse>) {
        self.invalid.clear();
        let alive: HashSet<&str> = running.iter().filter_map(|c| c.id.as_deref()).collect();
        self.stopping.retain(|id| alive.contains(id.as_str()));
        let gone: Vec<String> = (self.kept.keys())
            .filter(|id| !alive.contains(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            self.remove(&id);
        }
        for inspect in running {
            self.upsert(inspect);
        }
    }

    /// Rebuilds the vhosts of the containers that changed and, when any differs, publishes a new
    /// table that shares every other vhost with the served one.
    ///
    /// Returns true when a new table was stored.
    pub(crate) fn publish(&mut self) -> bool {
        self.metrics
            .skipped_containers
            .set(self.invalid.len() as i64);
        let changes = self.index.take_changes();
        if self.published && changes.is_empty() {
            return false;
        }
        let default_host = self.index.default_host().map(str::to_owned);
        let after = TableSpec {
            vhosts: changes.after().cloned().collect(),
            default_host: default_host.clone(),
        };
        let before = TableSpec {
            vhosts: changes.before,
            default_host: default_host.filter(|_| self.published),
        };
        for change in table::diff(&before, &after) {
            info!(target: "dockhand::routes", "{change}");
        }
        self.generation += 1;
        // Only this task stores tables, so the loaded one is the one being replaced.
        let served = self.sink.table.load();
        let (metrics, backends) = (&self.sink.metrics, &self.sink.backends);
        let built = if self.published {
            served.apply(&changes.updates, self.generation, metrics, backends)
        } else {
            served.rebuild(&self.index.spec(), self.generation, metrics, backends)
        };
        self.sink.table.store(Arc::new(built));
        self.metrics.generation.set(self.generation as i64);
        self.metrics.swaps.inc();
        self.published = true;
        true
    }

    /// The container's configured stop signal (`STOPSIGNAL`), if it set one.
    pub(crate) fn stop_signal(&self, id: &str) -> Option<String> {
        self.kept.get(id)?.stop_signal.clone()
    }

    pub(crate) fn container_count(&self) -> usize {
        self.index.len()
    }
}

/// What is kept of a routed container's `docker inspect`: its networks, to choose its address
/// again when dockhand's own networks change, and its stop signal. (The whole inspect, about
/// 9 KiB, was most of discovery's memory per container.)
struct Kept {
    endpoints: Endpoints,
    stop_signal: Option<String>,
}

impl Kept {
    fn of(inspect: &ContainerInspectResponse) -> Kept {
        Kept {
            endpoints: Endpoints::of(inspect),
            stop_signal: inspect.config.as_ref().and_then(|c| c.stop_signal.clone()),
        }
    }
}

pub(crate) fn display_name(inspect: &ContainerInspectResponse) -> String {
    match (&inspect.name, &inspect.id) {
        (Some(name), _) => name.trim_start_matches('/').to_owned(),
        (None, Some(id)) => id.chars().take(12).collect(),
        (None, None) => "<unnamed>".to_owned(),
    }
}
