//! The table publisher: the one writer of the served table.
//!
//! Providers (the Docker containers, later Swarm services) hand it route descriptions through a
//! [`ProviderHandle`], each under its own [`ProviderId`]. The publisher keeps every provider's
//! vhosts apart, merges them per vhost name ([`merge`]), and turns what changed into a new
//! [`RouteTable`] built from the served one: whole the first time ([`RouteTable::rebuild`]),
//! then incrementally ([`RouteTable::apply`]). It alone holds the write half of the table, the
//! per-vhost metric handles ([`Metrics`]) and the [`BackendRegistry`]; everyone else gets a
//! [`TableReader`].
//!
//! # Concurrency
//! Publishing builds and swaps under one lock, in the provider's task: two providers never
//! interleave half a change, readers only ever see whole tables, and the request path never
//! takes the lock.

mod merge;

use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use dockhand_spec::{ProviderId, Publication, Publish, TableSpec, VhostUpdate};
use prometheus::{Gauge, IntCounter, IntGauge, Registry};
use tracing::info;

use crate::metrics::Metrics;
use crate::table::{BackendRegistry, RouteTable, TableReader};
use merge::Routes;

/// Builds and publishes the served table from every provider's descriptions.
pub struct Publisher {
    shared: Arc<Shared>,
}

/// A provider's way to publish: its [`Publish`] implementation builds and swaps the table.
///
/// Handles of one [`ProviderId`] publish as the same provider (a second one replaces what the
/// first published).
pub struct ProviderHandle {
    id: ProviderId,
    shared: Arc<Shared>,
}

struct Shared {
    /// The write half: only [`Shared::publish`] stores into it.
    cell: Arc<ArcSwap<RouteTable>>,
    metrics: Metrics,
    backends: BackendRegistry,
    generation_gauge: IntGauge,
    swaps: IntCounter,
    /// `dockhand_route_table_last_publish_timestamp_seconds`.
    published_at: Gauge,
    state: Mutex<State>,
}

struct State {
    routes: Routes,
    /// `DEFAULT_HOST`, trimmed and lower-cased.
    default_host: Option<String>,
    generation: u64,
    /// Whether a table was published yet: the first is built whole, with `DEFAULT_HOST`.
    built: bool,
}

impl Publisher {
    /// A publisher serving [`RouteTable::empty`] until the first publication; `default_host`
    /// is `DEFAULT_HOST` (trimmed and lower-cased; blank means none). Registers
    /// `dockhand_route_table_generation`, `dockhand_route_table_swaps_total` and
    /// `dockhand_route_table_last_publish_timestamp_seconds` on `registry`;
    /// `metrics` are the data plane's, whose per-vhost handles the tables get.
    ///
    /// Fails when those are already registered there (one publisher per registry).
    pub fn new(
        default_host: Option<&str>,
        metrics: Metrics,
        registry: &Registry,
    ) -> Result<Publisher, prometheus::Error> {
        let generation_gauge = IntGauge::new(
            "dockhand_route_table_generation",
            "Generation of the route table being served",
        )?;
        let swaps = IntCounter::new("dockhand_route_table_swaps_total", "Route tables published")?;
        registry.register(Box::new(generation_gauge.clone()))?;
        registry.register(Box::new(swaps.clone()))?;
        let published_at = Gauge::new(
            "dockhand_route_table_last_publish_timestamp_seconds",
            "When the table being served was published (Unix time); a resync that finds \
             nothing new publishes nothing.",
        )?;
        registry.register(Box::new(published_at.clone()))?;
        let default_host = default_host
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_ascii_lowercase);
        let state = State {
            routes: Routes::default(),
            default_host,
            generation: 0,
            built: false,
        };
        let shared = Shared {
            cell: Arc::new(ArcSwap::from_pointee(RouteTable::empty())),
            metrics,
            backends: BackendRegistry::new(),
            generation_gauge,
            swaps,
            published_at,
            state: Mutex::new(state),
        };
        Ok(Publisher {
            shared: Arc::new(shared),
        })
    }

    /// A read-only handle on the served table.
    pub fn reader(&self) -> TableReader {
        TableReader::new(self.shared.cell.clone())
    }

    /// The handle provider `id` publishes through.
    pub fn provider(&self, id: ProviderId) -> ProviderHandle {
        ProviderHandle {
            id,
            shared: self.shared.clone(),
        }
    }

    /// Backend addresses the served table tracks state for (in flight, passive health).
    pub fn tracked_backends(&self) -> usize {
        self.shared.backends.len()
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl ProviderHandle {
    /// The provider it publishes as.
    pub fn id(&self) -> ProviderId {
        self.id
    }
}

impl Publish for ProviderHandle {
    fn publish(&mut self, publication: Publication) {
        self.shared.publish(self.id, publication);
    }
}

impl std::fmt::Debug for ProviderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Records `publication` as `provider`'s and, when the merged routes change (or no table
    /// was published yet), publishes the next table.
    fn publish(&self, provider: ProviderId, publication: Publication) {
        let mut state = self.state();
        let changed = state.routes.record(provider, publication);
        if state.built && changed.is_empty() {
            return;
        }
        state.generation += 1;
        // Only this function stores, under the lock: the loaded table is the one replaced.
        let served = self.cell.load();
        let built = if state.built {
            let updates: Vec<VhostUpdate> = changed
                .into_iter()
                .map(|host| match state.routes.merged(&host) {
                    Some(vhost) => VhostUpdate::Set(vhost),
                    None => VhostUpdate::Remove(host),
                })
                .collect();
            served.apply(&updates, state.generation, &self.metrics, &self.backends)
        } else {
            if let Some(host) = &state.default_host {
                info!(target: "dockhand::routes", "default host changed: none → {host}");
            }
            let spec = TableSpec {
                vhosts: state.routes.all(),
                default_host: state.default_host.clone(),
            };
            served.rebuild(&spec, state.generation, &self.metrics, &self.backends)
        };
        self.cell.store(Arc::new(built));
        state.built = true;
        self.generation_gauge.set(state.generation as i64);
        self.swaps.inc();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        self.published_at
            .set(now.map_or(0.0, |since| since.as_secs_f64()));
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| {
            // A panic while publishing may have recorded routes that the served table lacks:
            // the next table is built whole, which compares every vhost and settles them.
            self.state.clear_poison();
            let mut state = poisoned.into_inner();
            state.built = false;
            state
        })
    }
}

#[cfg(test)]
mod tests;
