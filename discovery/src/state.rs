//! The containers discovery knows right now, and publishing their route descriptions.
//!
//! # Concurrency
//! Only the watch task owns a `State`, and it publishes only between events (a burst of them
//! coalesced), so a half-applied event is never described.

use std::collections::{HashMap, HashSet};

use bollard::models::ContainerInspectResponse;
use dockhand_spec::{HttpsPolicy, Publication, Publish, TableSpec, VhostUpdate};
use tracing::{info, warn};

use crate::contract::{self, Addressing, Endpoints, Reach};
use crate::table::{self, RoutedContainer, SpecChanges, SpecIndex};
use crate::{DiscoveryMetrics, Skipped};

pub(crate) struct State {
    /// What is kept of every routed container's `docker inspect`, by ID.
    kept: HashMap<String, Kept>,
    /// Their routes, and the spec they make, kept up to date one container at a time.
    index: SpecIndex,
    /// Running containers skipped for invalid settings (by ID), for the gauge and the
    /// dashboard.
    invalid: HashMap<String, Skipped>,
    /// Containers told to stop (`kill` with their stop signal) that have not died yet: they stay
    /// out of rotation even if another event re-inspects them while they shut down.
    stopping: HashSet<String>,
    reach: Reach,
    addressing: Addressing,
    /// Where the descriptions go (the data plane's publisher, or a test's recorder).
    publisher: Box<dyn Publish>,
    metrics: DiscoveryMetrics,
}

impl State {
    /// No container yet; vhosts whose containers do not set an HTTPS setting take `https`'s.
    pub(crate) fn new(
        publisher: Box<dyn Publish>,
        metrics: DiscoveryMetrics,
        https: HttpsPolicy,
    ) -> Self {
        Self {
            kept: HashMap::new(),
            // `DEFAULT_HOST` is the publisher's: a provider describes its own vhosts only.
            index: SpecIndex::new(None, https),
            invalid: HashMap::new(),
            stopping: HashSet::new(),
            reach: Reach::AnyNetwork,
            addressing: Addressing::default(),
            publisher,
            metrics,
        }
    }

    /// Sets which networks dockhand reaches containers on, and chooses every known container's
    /// address again.
    pub(crate) fn set_reach(&mut self, reach: Reach, addressing: Addressing) {
        self.reach = reach;
        self.addressing = addressing;
        for (id, kept) in &self.kept {
            if let Some(known) = self.index.get(id) {
                let routed = RoutedContainer {
                    routes: known.routes.clone(),
                    address: kept.endpoints.address(&self.reach, &self.addressing),
                    readiness: known.readiness,
                };
                self.index.upsert(id, routed);
            }
        }
    }

    /// Records the current state of one container: routed, skipped, or gone. Swarm task
    /// containers are the Swarm provider's, and never routed here.
    pub(crate) fn upsert(&mut self, inspect: ContainerInspectResponse) {
        let Some(id) = inspect.id.clone() else { return };
        if self.stopping.contains(&id)
            || !contract::is_routable_state(&inspect)
            || contract::is_swarm_task(&inspect)
        {
            self.remove(&id);
            return;
        }
        match contract::parse_container(&inspect) {
            Ok(Some(routes)) => {
                self.invalid.remove(&id);
                let kept = Kept::of(&inspect);
                let routed = RoutedContainer {
                    routes,
                    address: kept.endpoints.address(&self.reach, &self.addressing),
                    readiness: contract::health(&inspect),
                };
                self.index.upsert(&id, routed);
                self.kept.insert(id, kept);
            }
            Ok(None) => self.remove(&id),
            Err(error) => {
                let name = display_name(&inspect);
                warn!(container = %name, %error, "skipping container: invalid settings");
                self.remove(&id);
                let reason = error.to_string();
                self.invalid
                    .insert(id.clone(), Skipped { name, id, reason });
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

    /// Rebuilds the vhosts of the containers that changed and, when any differs, publishes
    /// those (after events). Returns true when something was published.
    pub(crate) fn publish_changes(&mut self) -> bool {
        let updates = self.take_changes();
        if updates.is_empty() {
            return false;
        }
        self.publisher.publish(Publication::Changes(updates));
        true
    }

    /// Publishes every vhost (after a sync or a resync): whatever this provider published
    /// before and is not there any more stops being served. The publisher compares, so a
    /// resync that finds nothing new rebuilds nothing.
    pub(crate) fn publish_full(&mut self) {
        self.take_changes();
        self.publisher
            .publish(Publication::Full(self.index.spec().vhosts));
    }

    /// The vhosts that changed since the last publication, logged one line per route change.
    fn take_changes(&mut self) -> Vec<VhostUpdate> {
        self.metrics
            .skipped_containers
            .set(self.invalid.len() as i64);
        let changes = self.index.take_changes();
        let after = TableSpec {
            vhosts: changes.after().cloned().collect(),
            default_host: None,
        };
        let SpecChanges { before, updates } = changes;
        let before = TableSpec {
            vhosts: before,
            default_host: None,
        };
        for change in table::diff(&before, &after) {
            info!(target: "dockhand::routes", "{change}");
        }
        updates
    }

    /// The container's configured stop signal (`STOPSIGNAL`), if it set one.
    pub(crate) fn stop_signal(&self, id: &str) -> Option<String> {
        self.kept.get(id)?.stop_signal.clone()
    }

    /// The running containers skipped for invalid settings, sorted by name.
    pub(crate) fn skipped(&self) -> Vec<Skipped> {
        let mut skipped: Vec<Skipped> = self.invalid.values().cloned().collect();
        skipped.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        skipped
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

#[cfg(test)]
mod tests;
