//! The immutable route table the request path reads, and the per-backend state that outlives it.
//!
//! The publisher ([`crate::Publisher`]) builds a new [`RouteTable`] from the providers'
//! descriptions off the hot path and swaps it in; requests `load()` it once through a
//! [`TableReader`]. Counters that must survive a swap (in-flight requests for `least_conn`,
//! passive health) live in the [`BackendRegistry`], keyed by address.
//!
//! A table is built from the one it replaces: from a whole spec ([`RouteTable::rebuild`], which
//! compares every vhost's spec) or from the vhosts that changed ([`RouteTable::apply`], which
//! the publisher uses after its first table). Either way vhosts that did not change are shared as
//! they are, so one container event costs work for its own vhosts only (plus one pass that copies
//! pointers into the new snapshot), and an unrelated change never resets another vhost's
//! round-robin position.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use http::uri::Authority;
use http::HeaderValue;
use serde::{Serialize, Serializer};

use crate::health::{self, EjectPolicy, PassiveHealth};
use crate::host::{HostMatcher, HostPattern};
use crate::metrics::{Metrics, VhostMetrics};
use crate::path::{PathMatcher, PathPattern};
use crate::policy::auth::AuthFiles;
use crate::spec::{
    Balance, HttpsPolicy, Keepalive, NetworkAccess, PathSpec, Proto, Readiness, TableSpec,
    VhostSpec, VhostUpdate,
};

/// State of one backend address shared by every table that routes to it.
#[derive(Debug, Default)]
pub struct BackendState {
    in_flight: AtomicUsize,
    health: PassiveHealth,
}

impl BackendState {
    /// Requests (and upgraded tunnels) currently open to this backend.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether passive health currently sets this backend aside after repeated connect failures
    /// (requests try it only after every other backend of the location failed them).
    pub fn is_ejected(&self) -> bool {
        self.health.is_ejected(health::now_ms())
    }

    /// Connect failures (refused, timed out, …) since the last established connection.
    pub fn consecutive_failures(&self) -> u32 {
        self.health.failures()
    }

    /// Time left of the current ejection; zero when not ejected.
    pub fn ejected_for(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.health.remaining_ms(health::now_ms()))
    }

    /// Whether the backend is ejected at `now` (on the [`health::now_ms`] clock).
    pub(crate) fn ejected_at(&self, now: u64) -> bool {
        self.health.is_ejected(now)
    }

    /// Records an established connection (any answer, even a reset): the backend is back.
    pub(crate) fn connected(&self) {
        self.health.succeeded();
    }

    /// Records a connect failure; true when it ejected the backend.
    pub(crate) fn connect_failed(&self, policy: &EjectPolicy) -> bool {
        self.health.failed(health::now_ms(), policy)
    }

    /// Marks one more request in flight until the returned guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// Decrements the backend's in-flight count on drop.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<BackendState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Backend state by address, kept across table swaps.
#[derive(Debug, Default)]
pub struct BackendRegistry {
    states: DashMap<SocketAddr, Registered, foldhash::fast::RandomState>,
}

/// One backend's state, and how many targets of the last table built go to it.
#[derive(Debug, Default)]
struct Registered {
    state: Arc<BackendState>,
    targets: usize,
}

impl BackendRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of `addr`, created on first use.
    pub fn state(&self, addr: SocketAddr) -> Arc<BackendState> {
        self.states.entry(addr).or_default().state.clone()
    }

    /// Drops the state of addresses that `table` does not route to. Tables still in use keep
    /// their own `Arc`s, so requests in flight are unaffected.
    pub fn retain(&self, table: &RouteTable) {
        let mut counts: foldhash::HashMap<SocketAddr, usize> = foldhash::HashMap::default();
        for target in table.targets() {
            *counts.entry(target.addr).or_default() += 1;
        }
        self.states
            .retain(|addr, registered| match counts.get(addr) {
                Some(&targets) => {
                    registered.targets = targets;
                    true
                }
                None => false,
            });
    }

    /// [`BackendRegistry::retain`] after `replaced` vhosts gave way to `added` ones: each
    /// address's count of targets follows, and the addresses no target goes to any more are
    /// dropped, without looking at the rest of the table.
    fn retain_changed<'v>(
        &self,
        replaced: impl Iterator<Item = &'v Arc<Vhost>>,
        added: impl Iterator<Item = &'v Arc<Vhost>>,
    ) {
        // Added first: a backend both replaced and added keeps its count above zero.
        for target in added.flat_map(|v| v.targets()) {
            if let Some(mut registered) = self.states.get_mut(&target.addr) {
                registered.targets += 1;
            }
        }
        for target in replaced.flat_map(|v| v.targets()) {
            if let Entry::Occupied(mut registered) = self.states.entry(target.addr) {
                let targets = &mut registered.get_mut().targets;
                *targets = targets.saturating_sub(1);
                if *targets == 0 {
                    registered.remove();
                }
            }
        }
    }

    /// Number of addresses tracked.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

/// An immutable snapshot of every vhost, path and backend. Serializes as `/api/routes` shows it.
#[derive(Serialize)]
pub struct RouteTable {
    generation: u64,
    default_host: Option<String>,
    vhosts: Vec<Arc<Vhost>>,
    #[serde(skip)]
    hosts: HostMatcher<Arc<Vhost>>,
    /// Two vhost names made equal patterns, so `hosts` holds one of them only (the first by
    /// name, as nginx): the next table is then indexed from scratch, which settles again who
    /// serves the pattern.
    #[serde(skip)]
    shadowed: bool,
    #[serde(skip)]
    default_vhost: Option<Arc<Vhost>>,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("generation", &self.generation)
            .field("default_host", &self.default_host)
            .field(
                "vhosts",
                &self.vhosts.iter().map(|v| &v.host).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// One served virtual host.
#[derive(Serialize)]
pub(crate) struct Vhost {
    pub(crate) host: String,
    /// What this vhost was built from: an equal spec in the next table reuses it whole.
    #[serde(skip)]
    spec: VhostSpec,
    #[serde(skip)]
    pattern: HostPattern,
    pub(crate) https: HttpsPolicy,
    /// `https.hsts` as a header value; `None` when off or not a valid header value.
    #[serde(skip)]
    pub(crate) hsts: Option<HeaderValue>,
    #[serde(rename = "paths")]
    routes: Vec<Arc<Route>>,
    #[serde(skip)]
    pub(crate) locations: PathMatcher<Arc<Route>>,
    #[serde(skip)]
    pub(crate) metrics: Arc<VhostMetrics>,
}

impl Vhost {
    /// Every backend of every location, in order.
    fn targets(&self) -> impl Iterator<Item = &Target> {
        self.routes.iter().flat_map(|r| r.targets.iter())
    }
}

/// One location of a vhost and its backends.
#[derive(Serialize)]
pub(crate) struct Route {
    pub(crate) path: String,
    pub(crate) dest: Option<String>,
    pub(crate) proto: Proto,
    pub(crate) balance: Balance,
    pub(crate) keepalive: Keepalive,
    pub(crate) network_access: NetworkAccess,
    /// The htpasswd files that may protect this location.
    #[serde(skip)]
    pub(crate) auth: AuthFiles,
    backends: Vec<Backend>,
    /// The backends that have an address, the only ones balancing may pick.
    #[serde(skip)]
    pub(crate) targets: Vec<Target>,
    /// Some reachable backend is held back by its health check: with no target left, the
    /// location answers 503 rather than 502.
    #[serde(skip)]
    pub(crate) held_back: bool,
    /// Round-robin position (also the tie breaker of `least_conn`).
    #[serde(skip)]
    pub(crate) cursor: AtomicUsize,
}

/// One backend of a location in `/api/routes`, under the keys it has always had there.
#[derive(Serialize)]
struct Backend {
    #[serde(rename = "container")]
    name: String,
    #[serde(rename = "container_id")]
    id: String,
    addr: Option<SocketAddr>,
    #[serde(flatten)]
    state: StateView,
    reachable: bool,
    #[serde(rename = "health")]
    readiness: Readiness,
}

/// The live part of a backend in `/api/routes`: `in_flight`, `ejected`,
/// `consecutive_failures` and `ejected_for_ms` (all zero or false without an address).
struct StateView(Option<Arc<BackendState>>);

impl Serialize for StateView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let now = health::now_ms();
        let state = self.0.as_deref();
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("in_flight", &state.map_or(0, BackendState::in_flight))?;
        map.serialize_entry("ejected", &state.is_some_and(|st| st.ejected_at(now)))?;
        let failures = state.map_or(0, BackendState::consecutive_failures);
        map.serialize_entry("consecutive_failures", &failures)?;
        let remaining = state.map_or(0, |st| st.health.remaining_ms(now));
        map.serialize_entry("ejected_for_ms", &remaining)?;
        map.end()
    }
}

/// A backend that can be connected to.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    /// `ip:port`, formatted once for the upstream URI.
    pub(crate) authority: Authority,
    pub(crate) state: Arc<BackendState>,
}

impl RouteTable {
    /// A table with no vhost: every request gets 503.
    pub fn empty() -> RouteTable {
        RouteTable {
            generation: 0,
            default_host: None,
            vhosts: Vec::new(),
            hosts: HostMatcher::new(),
            shadowed: false,
            default_vhost: None,
        }
    }

    /// Builds the table for `spec` from nothing: [`RouteTable::empty`] then
    /// [`RouteTable::rebuild`].
    pub fn build(
        spec: &TableSpec,
        generation: u64,
        metrics: &Metrics,
        registry: &BackendRegistry,
    ) -> RouteTable {
        RouteTable::empty().rebuild(spec, generation, metrics, registry)
    }

    /// Builds the table that replaces this one for `spec`, publishes its per-vhost metrics
    /// (backend gauges included) and drops registry entries of backends no longer routed to.
    ///
    /// A vhost whose spec is unchanged is shared with this table; a changed one keeps each
    /// location's round-robin position. Never fails: providers validate their descriptions, and a pattern
    /// that still does not parse is logged and skipped rather than taking every other site down.
    /// Compares every vhost's spec: when the caller knows what changed, [`RouteTable::apply`]
    /// does less.
    pub fn rebuild(
        &self,
        spec: &TableSpec,
        generation: u64,
        metrics: &Metrics,
        registry: &BackendRegistry,
    ) -> RouteTable {
        let mut specs: Vec<&VhostSpec> = spec.vhosts.iter().collect();
        specs.sort_by(|a, b| a.host.cmp(&b.host));
        specs.dedup_by(|a, b| a.host == b.host);
        let parts: Vec<Part<'_>> = specs
            .into_iter()
            .filter_map(|v| self.part(v, registry))
            .collect();
        let counts: Vec<(&str, usize)> = parts.iter().map(Part::count).collect();
        let handles = metrics.publish(&counts);
        let vhosts = parts
            .into_iter()
            .zip(handles)
            .map(|(part, metrics)| part.finish(metrics))
            .collect();
        assemble(vhosts, spec.default_host.clone(), generation, registry)
    }

    /// Builds the table that replaces this one with `updates` applied (the first update of a
    /// name wins), like [`RouteTable::rebuild`] does for a whole spec: every other vhost, its
    /// metric handles and its series are shared untouched, and no other spec is compared. The
    /// rest copies pointers: the vhost list and the host index, whose changed names alone are
    /// hashed; the registry counts the targets of the changed vhosts only.
    /// `DEFAULT_HOST` stays this table's.
    pub fn apply(
        &self,
        updates: &[VhostUpdate],
        generation: u64,
        metrics: &Metrics,
        registry: &BackendRegistry,
    ) -> RouteTable {
        let mut updates: Vec<&VhostUpdate> = updates.iter().collect();
        updates.sort_by(|a, b| a.host().cmp(b.host()));
        updates.dedup_by(|a, b| a.host() == b.host());
        let parts: Vec<(&str, Option<Part<'_>>)> = updates
            .iter()
            .map(|update| match update {
                VhostUpdate::Set(spec) => (update.host(), self.part(spec, registry)),
                VhostUpdate::Remove(host) => (host.as_str(), None),
            })
            .collect();
        let counts: Vec<(&str, usize)> = parts
            .iter()
            .filter_map(|(_, p)| p.as_ref().map(Part::count))
            .collect();
        let removed: Vec<&str> = parts
            .iter()
            .filter(|(host, part)| part.is_none() && self.named(host).is_some())
            .map(|&(host, _)| host)
            .collect();
        // One handle per part, in order.
        let mut handles = metrics.update(&counts, &removed).into_iter();
        let mut vhosts = Vec::with_capacity(self.vhosts.len() + parts.len());
        let mut changes = Vec::with_capacity(parts.len());
        let mut old = self.vhosts.iter().peekable();
        for (host, part) in parts {
            while let Some(kept) = old.next_if(|v| v.host.as_str() < host) {
                vhosts.push(kept.clone());
            }
            // The vhost of this name, if any, is replaced or removed.
            let before = old.next_if(|v| v.host == host);
            let after = part.and_then(|p| handles.next().map(|m| p.finish(m)));
            vhosts.extend(after.clone());
            changes.push((before, after));
        }
        vhosts.extend(old.cloned());
        let default_host = self.default_host.clone();
        let Some(hosts) = self.patched_hosts(&changes) else {
            return assemble(vhosts, default_host, generation, registry);
        };
        let table = indexed(vhosts, hosts, false, default_host, generation);
        let replaced = changes.iter().filter_map(|(before, _)| *before);
        let added = changes.iter().filter_map(|(_, after)| after.as_ref());
        registry.retain_changed(replaced, added);
        table
    }

    /// This table's host index with `changes` (each vhost as it was, if it was, and as it is
    /// now, if it is) made in a copy. `None` when patterns collide, and a full index must decide
    /// which vhost serves them.
    fn patched_hosts(&self, changes: &[Change<'_>]) -> Option<HostMatcher<Arc<Vhost>>> {
        if self.shadowed {
            return None;
        }
        let mut hosts = self.hosts.clone();
        for before in changes.iter().filter_map(|(before, _)| *before) {
            match hosts.remove(&before.pattern) {
                Some(indexed) if Arc::ptr_eq(&indexed, before) => {}
                _ => return None,
            }
        }
        for after in changes.iter().filter_map(|(_, after)| after.as_ref()) {
            if !hosts.insert(after.pattern.clone(), after.clone()) {
                return None;
            }
        }
        Some(hosts)
    }

    /// The vhost of this table named exactly `host` (vhosts are sorted by name).
    fn named(&self, host: &str) -> Option<&Arc<Vhost>> {
        let i = self
            .vhosts
            .binary_search_by(|v| v.host.as_str().cmp(host))
            .ok()?;
        self.vhosts.get(i)
    }

    /// The next table's part for `spec`: this table's vhost when unchanged, else a new one.
    fn part<'s>(&self, spec: &'s VhostSpec, registry: &BackendRegistry) -> Option<Part<'s>> {
        let previous = self.named(&spec.host);
        if let Some(same) = previous.filter(|v| v.spec == *spec) {
            return Some(Part::Same(same.clone()));
        }
        match HostPattern::parse(&spec.host) {
            Ok(pattern) => {
                let (routes, locations) = build_routes(spec, previous, registry);
                Some(Part::New {
                    spec,
                    pattern,
                    routes,
                    locations,
                })
            }
            Err(e) => {
                tracing::warn!(host = %spec.host, error = %e, "skipping vhost with invalid host");
                None
            }
        }
    }

    /// The generation the publisher gave this table (0 for [`RouteTable::empty`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The vhost serving `host` (already normalized): a matching name, else `DEFAULT_HOST`.
    pub(crate) fn vhost(&self, host: &str) -> Option<&Arc<Vhost>> {
        self.hosts.get(host).or(self.default_vhost.as_ref())
    }

    /// The name (as written in `VIRTUAL_HOST`) and HTTPS policy of the vhost a TLS client
    /// reaches with server name `sni` (lower-case): a matching name, else `DEFAULT_HOST`, as
    /// for requests. `None` when neither exists (the fallback server answers).
    pub fn https_vhost(&self, sni: Option<&str>) -> Option<(&str, &HttpsPolicy)> {
        let vhost = match sni {
            Some(name) => self.vhost(name),
            None => self.fallback(),
        };
        vhost.map(|v| (v.host.as_str(), &v.https))
    }

    /// The `DEFAULT_HOST` vhost, for requests that name no host at all.
    pub(crate) fn fallback(&self) -> Option<&Arc<Vhost>> {
        self.default_vhost.as_ref()
    }

    /// Each vhost's name and how many distinct backend addresses of it are ejected at `now`,
    /// for the `dockhand_backends_ejected` gauge (computed when scraped).
    pub(crate) fn ejected(&self, now: u64) -> impl Iterator<Item = (&str, usize)> {
        self.vhosts.iter().map(move |v| {
            let ejected: HashSet<SocketAddr> = v
                .routes
                .iter()
                .flat_map(|r| r.targets.iter())
                .filter(|t| t.state.ejected_at(now))
                .map(|t| t.addr)
                .collect();
            (v.host.as_str(), ejected.len())
        })
    }

    fn targets(&self) -> impl Iterator<Item = &Target> {
        self.vhosts.iter().flat_map(|v| v.targets())
    }
}

/// The table of `vhosts` (sorted by name, each name once): its host index and `DEFAULT_HOST`
/// vhost, after which the registry keeps the backends it routes to only.
fn assemble(
    vhosts: Vec<Arc<Vhost>>,
    default_host: Option<String>,
    generation: u64,
    registry: &BackendRegistry,
) -> RouteTable {
    let mut hosts = HostMatcher::with_capacity(vhosts.len());
    let mut shadowed = false;
    for vhost in &vhosts {
        shadowed |= !hosts.insert(vhost.pattern.clone(), vhost.clone());
    }
    let table = indexed(vhosts, hosts, shadowed, default_host, generation);
    registry.retain(&table);
    table
}

/// The table of `vhosts` found through `hosts`, with its `DEFAULT_HOST` vhost.
fn indexed(
    vhosts: Vec<Arc<Vhost>>,
    hosts: HostMatcher<Arc<Vhost>>,
    shadowed: bool,
    default_host: Option<String>,
    generation: u64,
) -> RouteTable {
    let default_vhost = default_host.as_deref().and_then(|name| {
        vhosts
            .iter()
            .find(|v| v.host.eq_ignore_ascii_case(name))
            .cloned()
    });
    RouteTable {
        generation,
        default_host,
        vhosts,
        hosts,
        shadowed,
        default_vhost,
    }
}

/// One vhost name in [`RouteTable::apply`]: its vhost in the table applied to, and in the new one.
type Change<'t> = (Option<&'t Arc<Vhost>>, Option<Arc<Vhost>>);

/// A vhost of the table being built: shared with the previous table, or built anew.
enum Part<'s> {
    Same(Arc<Vhost>),
    New {
        spec: &'s VhostSpec,
        pattern: HostPattern,
        routes: Vec<Arc<Route>>,
        locations: PathMatcher<Arc<Route>>,
    },
}

impl Part<'_> {
    /// The vhost's name and distinct reachable backends, for [`Metrics::publish`].
    fn count(&self) -> (&str, usize) {
        match self {
            Part::Same(v) => (v.host.as_str(), reachable(&v.routes)),
            Part::New { spec, routes, .. } => (spec.host.as_str(), reachable(routes)),
        }
    }

    fn finish(self, metrics: Arc<VhostMetrics>) -> Arc<Vhost> {
        match self {
            // The metrics cache hands out one handle per name, so the shared vhost's is current.
            Part::Same(v) => v,
            Part::New {
                spec,
                pattern,
                routes,
                locations,
            } => Arc::new(Vhost {
                host: spec.host.clone(),
                spec: spec.clone(),
                pattern,
                https: spec.https.clone(),
                hsts: hsts_value(spec),
                routes,
                locations,
                metrics,
            }),
        }
    }
}

fn build_routes(
    vhost: &VhostSpec,
    previous: Option<&Arc<Vhost>>,
    registry: &BackendRegistry,
) -> (Vec<Arc<Route>>, PathMatcher<Arc<Route>>) {
    let mut paths: Vec<&PathSpec> = vhost.paths.iter().collect();
    paths.sort_by(|a, b| a.path.cmp(&b.path));
    let mut routes = Vec::with_capacity(paths.len());
    let mut locations = PathMatcher::new();
    for spec in paths {
        let pattern = match PathPattern::parse(&spec.path) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(host = %vhost.host, path = %spec.path, error = %e, "skipping invalid path");
                continue;
            }
        };
        let cursor = previous
            .and_then(|v| v.routes.iter().find(|r| r.path == spec.path))
            .map_or(0, |r| r.cursor.load(Ordering::Relaxed));
        let route = Arc::new(build_route(&vhost.host, spec, cursor, registry));
        if locations.insert(pattern, route.clone()) {
            routes.push(route);
        }
    }
    (routes, locations)
}

fn build_route(host: &str, spec: &PathSpec, cursor: usize, registry: &BackendRegistry) -> Route {
    let mut backends = Vec::with_capacity(spec.backends.len());
    let mut targets = Vec::with_capacity(spec.backends.len());
    let mut held_back = false;
    for b in &spec.backends {
        let state = b.addr.map(|addr| registry.state(addr));
        held_back |= state.is_some() && !b.readiness.routable();
        if let (Some(addr), Some(state), true) = (b.addr, &state, b.readiness.routable()) {
            match Authority::try_from(addr.to_string()) {
                Ok(authority) => targets.push(Target {
                    addr,
                    authority,
                    state: state.clone(),
                }),
                Err(e) => tracing::warn!(%addr, error = %e, "unusable backend address"),
            }
        }
        backends.push(Backend {
            name: b.name.clone(),
            id: b.id.clone(),
            addr: b.addr,
            reachable: state.is_some(),
            readiness: b.readiness,
            state: StateView(state),
        });
    }
    Route {
        path: spec.path.clone(),
        dest: spec.dest.clone().filter(|d| !d.is_empty()),
        proto: spec.proto,
        balance: spec.balance,
        keepalive: spec.keepalive,
        network_access: spec.network_access,
        auth: AuthFiles::new(host, &spec.path),
        backends,
        targets,
        held_back,
        cursor: AtomicUsize::new(cursor),
    }
}

/// The vhost's HSTS value as a header, trimmed like nginx-proxy does; an invalid one is logged
/// and dropped rather than failing the whole table.
fn hsts_value(spec: &VhostSpec) -> Option<HeaderValue> {
    let value = spec.https.hsts.as_deref()?.trim();
    match HeaderValue::from_str(value) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(host = %spec.host, hsts = %value, error = %e, "ignoring invalid HSTS value");
            None
        }
    }
}

/// Distinct reachable backend addresses of a vhost, for the `dockhand_backends` gauge.
fn reachable(routes: &[Arc<Route>]) -> usize {
    let addrs: HashSet<SocketAddr> = routes
        .iter()
        .flat_map(|r| r.targets.iter().map(|t| t.addr))
        .collect();
    addrs.len()
}

mod reader;
#[cfg(test)]
mod tests;

pub use reader::TableReader;
