//! What changed between two table specs, one log line per change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;

use dockhand_spec::{Origin, PathSpec, TableSpec};

/// One route change, for the log. `Display` gives the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteChange {
    /// `DEFAULT_HOST` changed.
    DefaultHost {
        /// Before; `None` when unset.
        from: Option<String>,
        /// After; `None` when unset.
        to: Option<String>,
    },
    /// A vhost appeared (its backends follow as [`RouteChange::BackendAdded`]).
    VhostAdded {
        /// The vhost name.
        host: String,
    },
    /// A vhost disappeared (after its backends, as [`RouteChange::BackendRemoved`]).
    VhostRemoved {
        /// The vhost name.
        host: String,
    },
    /// A container started serving a location (or serves it on a new address).
    BackendAdded {
        /// The vhost name.
        host: String,
        /// The location.
        path: String,
        /// The container name.
        container: String,
        /// The full container ID (a re-created container keeps its name, not its ID).
        container_id: String,
        /// Its address; `None` when unreachable.
        addr: Option<SocketAddr>,
        /// Which provider it comes from (a Swarm task's service, task and node).
        origin: Origin,
    },
    /// A container stopped serving a location (or no longer on this address).
    BackendRemoved {
        /// The vhost name.
        host: String,
        /// The location.
        path: String,
        /// The container name.
        container: String,
        /// The full container ID (a re-created container keeps its name, not its ID).
        container_id: String,
        /// Its former address; `None` when it was unreachable.
        addr: Option<SocketAddr>,
        /// Which provider it comes from (a Swarm task's service, task and node).
        origin: Origin,
    },
    /// A location that stays has new settings (dest, protocol, balancing or keepalive).
    PathSettings {
        /// The vhost name.
        host: String,
        /// The location.
        path: String,
        /// What changed, e.g. `proto Http → Https`.
        changes: String,
    },
}

impl fmt::Display for RouteChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DefaultHost { from, to } => {
                let show = |h: &Option<String>| h.clone().unwrap_or_else(|| "none".to_owned());
                write!(f, "default host changed: {} → {}", show(from), show(to))
            }
            Self::VhostAdded { host } => write!(f, "vhost added: {host}"),
            Self::VhostRemoved { host } => write!(f, "vhost removed: {host}"),
            Self::BackendAdded {
                host,
                path,
                container,
                container_id,
                addr,
                origin,
            } => {
                let id = Short(container_id);
                write!(
                    f,
                    "backend added: {host} {path} → {container} ({id}) at {}{}",
                    Addr(addr),
                    From(origin)
                )
            }
            Self::BackendRemoved {
                host,
                path,
                container,
                container_id,
                addr,
                origin,
            } => {
                let id = Short(container_id);
                write!(
                    f,
                    "backend removed: {host} {path} → {container} ({id}) at {}{}",
                    Addr(addr),
                    From(origin)
                )
            }
            Self::PathSettings {
                host,
                path,
                changes,
            } => write!(f, "settings changed: {host} {path}: {changes}"),
        }
    }
}

struct Addr<'a>(&'a Option<SocketAddr>);

/// Where a backend comes from, after its address: nothing for a container, for a Swarm task
/// ` [swarm service web task <12> slot 1 node <12>]`.
struct From<'a>(&'a Origin);

impl fmt::Display for From<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(task) = self.0.task() else {
            return Ok(());
        };
        write!(
            f,
            " [{} service {} task {}",
            self.0.provider(),
            task.service,
            Short(&task.task)
        )?;
        if let Some(slot) = task.slot {
            write!(f, " slot {slot}")?;
        }
        match &task.node {
            Some(node) => write!(f, " node {}]", Short(node)),
            None => f.write_str(" unassigned]"),
        }
    }
}

/// A container ID cut to the 12 characters `docker ps` shows.
struct Short<'a>(&'a str);

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self
            .0
            .char_indices()
            .nth(12)
            .map_or(self.0.len(), |(i, _)| i);
        f.write_str(&self.0[..end])
    }
}

impl fmt::Display for Addr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("(unreachable)"),
        }
    }
}

/// The changes from `old` to `new`, sorted by host then path; empty when they route alike.
pub fn diff(old: &TableSpec, new: &TableSpec) -> Vec<RouteChange> {
    let mut out = Vec::new();
    if old.default_host != new.default_host {
        out.push(RouteChange::DefaultHost {
            from: old.default_host.clone(),
            to: new.default_host.clone(),
        });
    }
    let (before, after) = (index(old), index(new));
    let hosts: BTreeSet<&str> = before.keys().chain(after.keys()).copied().collect();
    let none = BTreeMap::new();
    for host in hosts {
        let (was, is) = (before.get(host), after.get(host));
        if was.is_none() {
            out.push(RouteChange::VhostAdded { host: host.into() });
        }
        diff_paths(host, was.unwrap_or(&none), is.unwrap_or(&none), &mut out);
        if is.is_none() {
            out.push(RouteChange::VhostRemoved { host: host.into() });
        }
    }
    out
}

type Paths<'a> = BTreeMap<&'a str, &'a PathSpec>;

fn index(spec: &TableSpec) -> BTreeMap<&str, Paths<'_>> {
    spec.vhosts
        .iter()
        .map(|v| {
            let paths = v.paths.iter().map(|p| (p.path.as_str(), p)).collect();
            (v.host.as_str(), paths)
        })
        .collect()
}

fn diff_paths(host: &str, before: &Paths<'_>, after: &Paths<'_>, out: &mut Vec<RouteChange>) {
    let paths: BTreeSet<&str> = before.keys().chain(after.keys()).copied().collect();
    for path in paths {
        let (was, is) = (before.get(path), after.get(path));
        let (old, new) = (backends(was.copied()), backends(is.copied()));
        for &(container, id, addr, origin) in old.difference(&new) {
            out.push(RouteChange::BackendRemoved {
                host: host.into(),
                path: path.into(),
                container: container.into(),
                container_id: id.into(),
                addr,
                origin: origin.clone(),
            });
        }
        for &(container, id, addr, origin) in new.difference(&old) {
            out.push(RouteChange::BackendAdded {
                host: host.into(),
                path: path.into(),
                container: container.into(),
                container_id: id.into(),
                addr,
                origin: origin.clone(),
            });
        }
        if let (Some(was), Some(is)) = (was, is) {
            if let Some(changes) = settings_changes(was, is) {
                out.push(RouteChange::PathSettings {
                    host: host.into(),
                    path: path.into(),
                    changes,
                });
            }
        }
    }
}

/// A location's backends as (name, ID, address, origin), sorted.
fn backends(path: Option<&PathSpec>) -> BTreeSet<Backend<'_>> {
    path.into_iter()
        .flat_map(|p| &p.backends)
        .map(|b| (b.name.as_str(), b.id.as_str(), b.addr, &b.origin))
        .collect()
}

type Backend<'a> = (&'a str, &'a str, Option<SocketAddr>, &'a Origin);

fn settings_changes(was: &PathSpec, is: &PathSpec) -> Option<String> {
    let mut changes = Vec::new();
    if was.dest != is.dest {
        let show = |d: &Option<String>| d.clone().unwrap_or_else(|| "none".to_owned());
        changes.push(format!("dest {} → {}", show(&was.dest), show(&is.dest)));
    }
    if was.proto != is.proto {
        changes.push(format!("proto {:?} → {:?}", was.proto, is.proto));
    }
    if was.balance != is.balance {
        changes.push(format!("balance {:?} → {:?}", was.balance, is.balance));
    }
    if was.keepalive != is.keepalive {
        changes.push(format!(
            "keepalive {:?} → {:?}",
            was.keepalive, is.keepalive
        ));
    }
    (!changes.is_empty()).then(|| changes.join(", "))
}
