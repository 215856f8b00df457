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

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use http::uri::Authority;
use http::HeaderValue;
use serde::{Serialize, Serializer};

use crate::health::{self};
use crate::host::{HostMatcher, HostPattern};
use crate::metrics::VhostMetrics;
use crate::path::PathMatcher;
use crate::policy::auth::AuthFiles;
use crate::spec::{
    Balance, HttpsPolicy, Keepalive, NetworkAccess, Proto, Readiness, TaskOrigin, VhostSpec,
};

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
    /// `docker` or `swarm`.
    provider: &'static str,
    /// The Swarm service, task, slot and node; left out for a container.
    #[serde(skip_serializing_if = "Option::is_none")]
    swarm: Option<TaskOrigin>,
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

    /// Each vhost's name and HTTPS settings, in name order (for the dashboard).
    pub fn https_policies(&self) -> impl Iterator<Item = (&str, &HttpsPolicy)> {
        self.vhosts.iter().map(|v| (v.host.as_str(), &v.https))
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

    /// Each (vhost, backend name) and whether it may get requests at `now`: it has an address,
    /// its health check (if any) passes and passive health has not ejected it. A backend
    /// serving several paths of a vhost is up when it is up on any.
    pub(crate) fn backends_up(&self, now: u64) -> BTreeMap<(&str, &str), bool> {
        let mut up = BTreeMap::new();
        for vhost in &self.vhosts {
            for backend in vhost.routes.iter().flat_map(|r| r.backends.iter()) {
                let ejected = (backend.state.0.as_deref()).is_some_and(|st| st.ejected_at(now));
                let serving = backend.reachable && backend.readiness.routable() && !ejected;
                *up.entry((vhost.host.as_str(), backend.name.as_str()))
                    .or_insert(false) |= serving;
            }
        }
        up
    }

    fn targets(&self) -> impl Iterator<Item = &Target> {
        self.vhosts.iter().flat_map(|v| v.targets())
    }
}

mod backend;
mod build;
mod reader;
#[cfg(test)]
mod tests;

pub(crate) use backend::InFlight;
pub use backend::{BackendRegistry, BackendState};
pub use reader::TableReader;
