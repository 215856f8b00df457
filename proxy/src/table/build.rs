//! Building a table: from a whole spec ([`RouteTable::rebuild`]) or from the vhosts that
//! changed ([`RouteTable::apply`]), sharing every vhost that did not change.

use std::sync::atomic::Ordering;

use crate::metrics::Metrics;
use crate::path::PathPattern;
use crate::spec::{PathSpec, TableSpec, VhostUpdate};

use super::*;

impl RouteTable {
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
    pub(super) fn named(&self, host: &str) -> Option<&Arc<Vhost>> {
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
            provider: b.origin.provider(),
            swarm: b.origin.task().cloned(),
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
