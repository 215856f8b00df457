//! Every routed container → one [`TableSpec`], and what changed between two specs.
//!
//! Pure and deterministic: the same containers, in any order, give the same spec, so the event
//! loop can compare specs and skip swaps that change nothing.
//!
//! Grouping follows nginx-proxy: one vhost per distinct host name, one location per distinct
//! path, and every container serving that (host, path) becomes one backend, whether it declared
//! it with `VIRTUAL_HOST` or `VIRTUAL_HOST_MULTIPORTS` (they share one upstream).
//!
//! When containers sharing a location disagree on its settings (`VIRTUAL_DEST`,
//! `VIRTUAL_PROTO`, the `…loadbalance` and `…keepalive` labels), nginx-proxy takes an
//! effectively random one. dockhand takes the first container in this order:
//! `VIRTUAL_HOST_MULTIPORTS` containers before `VIRTUAL_HOST` ones (nginx-proxy processes them
//! first, so theirs win there too), then by container name, then by ID.

mod diff;
mod index;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use dockhand_spec::{BackendSpec, HttpsPolicy, PathSpec, Readiness, TableSpec, VhostSpec};

use crate::contract::{ContainerRoutes, HostRoutes, Hsts, NonGetRedirect, PathRoute};

pub use diff::{diff, RouteChange};
pub use index::{SpecChanges, SpecIndex};

/// A container to route: its parsed settings and the address dockhand reaches it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutedContainer {
    /// What the container asks to be routed ([`crate::contract::parse_container`]).
    pub routes: ContainerRoutes,
    /// Its address ([`crate::contract::container_address`]); `None` when unreachable, which
    /// makes its backends answer 502.
    pub address: Option<IpAddr>,
    /// Its readiness from its HEALTHCHECK ([`crate::contract::health`]): a container that is starting or
    /// unhealthy stays in the table (its vhost is known) but gets no traffic.
    pub readiness: Readiness,
}

/// Builds the table spec for `containers`, with `default_host` (`DEFAULT_HOST`, trimmed and
/// lower-cased; blank means none) and the proxy-wide HTTPS settings `https` (each vhost takes a
/// setting from its first container that sets it, in the order above, else from `https`).
///
/// Vhosts are sorted by name, paths by path, backends by container name then ID; a container
/// listed twice counts once.
pub fn build_spec<'a>(
    containers: impl IntoIterator<Item = &'a RoutedContainer>,
    default_host: Option<&str>,
    https: &HttpsPolicy,
) -> TableSpec {
    let mut ordered: Vec<&RoutedContainer> = containers.into_iter().collect();
    ordered.sort_by(|a, b| precedence(a).cmp(&precedence(b)));
    let mut vhosts: BTreeMap<&str, BTreeMap<&str, PathSpec>> = BTreeMap::new();
    let mut owners: BTreeMap<&str, Vec<&ContainerRoutes>> = BTreeMap::new();
    for routed in ordered {
        for host in &routed.routes.hosts {
            owners
                .entry(host.host.as_str())
                .or_default()
                .push(&routed.routes);
            let paths = vhosts.entry(host.host.as_str()).or_default();
            for route in &host.paths {
                paths
                    .entry(route.path.as_str())
                    .or_insert_with(|| location(&routed.routes, route))
                    .backends
                    .push(backend(routed, route));
            }
        }
    }
    let vhosts = vhosts
        .into_iter()
        .map(|(host, paths)| {
            let owners = owners.get(host).map_or(&[][..], Vec::as_slice);
            let mut https = policy(owners, https);
            // The first container (in precedence order) that names an external port sets it.
            let named = |port: fn(&HostRoutes) -> Option<u16>| {
                owners
                    .iter()
                    .flat_map(|c| c.hosts.iter().filter(|h| h.host == host))
                    .find_map(port)
            };
            https.external_http_port = named(|h| h.external_http_port);
            https.external_https_port = named(|h| h.external_https_port);
            VhostSpec {
                host: host.to_owned(),
                paths: paths.into_values().map(with_sorted_backends).collect(),
                https,
            }
        })
        .collect();
    let default_host = default_host
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase);
    TableSpec {
        vhosts,
        default_host,
    }
}

/// A vhost's HTTPS settings: each from its first container that sets it, else `defaults`.
fn policy(containers: &[&ContainerRoutes], defaults: &HttpsPolicy) -> HttpsPolicy {
    let hsts = match containers.iter().find_map(|c| c.hsts.as_ref()) {
        Some(Hsts::Off) => None,
        Some(Hsts::Value(value)) => Some(value.clone()),
        None => defaults.hsts.clone(),
    };
    HttpsPolicy {
        method: containers
            .iter()
            .find_map(|c| c.https_method)
            .unwrap_or(defaults.method),
        hsts,
        cert_name: containers.iter().find_map(|c| c.cert_name.clone()),
        trust_default_cert: containers
            .iter()
            .find_map(|c| c.trust_default_cert)
            .unwrap_or(defaults.trust_default_cert),
        non_get_redirect: containers
            .iter()
            .find_map(|c| c.non_get_redirect.map(NonGetRedirect::status))
            .unwrap_or(defaults.non_get_redirect),
        http_on_missing_cert: containers
            .iter()
            .find_map(|c| c.http_on_missing_cert)
            .unwrap_or(defaults.http_on_missing_cert),
        acme_challenge: containers
            .iter()
            .find_map(|c| c.acme_challenge)
            .unwrap_or(defaults.acme_challenge),
        http2: containers
            .iter()
            .find_map(|c| c.http2)
            .unwrap_or(defaults.http2),
        ssl_policy: containers
            .iter()
            .find_map(|c| c.ssl_policy)
            .unwrap_or(defaults.ssl_policy),
        server_tokens: containers
            .iter()
            .find_map(|c| c.server_tokens)
            .unwrap_or(defaults.server_tokens),
        external_http_port: None,
        external_https_port: None,
        debug_endpoint: containers
            .iter()
            .find_map(|c| c.debug_endpoint)
            .unwrap_or(defaults.debug_endpoint),
        verify_client: containers
            .iter()
            .find_map(|c| c.verify_client)
            .unwrap_or(defaults.verify_client),
    }
}

/// The order in which containers get to set a location's settings (see the module docs).
fn precedence(routed: &RoutedContainer) -> impl Ord + '_ {
    let r = &routed.routes;
    (r.source, r.name.as_str(), r.id.as_str(), routed.address)
}

/// A location with the settings of the first container that serves it, and no backend yet.
fn location(routes: &ContainerRoutes, route: &PathRoute) -> PathSpec {
    PathSpec {
        path: route.path.clone(),
        dest: route.dest.clone(),
        proto: route.proto,
        balance: routes.balance,
        keepalive: routes.keepalive,
        network_access: routes.network_access,
        backends: Vec::new(),
    }
}

fn backend(routed: &RoutedContainer, route: &PathRoute) -> BackendSpec {
    BackendSpec {
        addr: routed.address.map(|ip| SocketAddr::new(ip, route.port)),
        name: routed.routes.name.clone(),
        id: routed.routes.id.clone(),
        readiness: routed.readiness,
        origin: dockhand_spec::Origin::Container,
    }
}

fn with_sorted_backends(mut path: PathSpec) -> PathSpec {
    path.backends.sort_by(|a, b| {
        (a.name.as_str(), a.id.as_str(), a.addr).cmp(&(b.name.as_str(), b.id.as_str(), b.addr))
    });
    path.backends.dedup();
    path
}

#[cfg(test)]
mod tests;
