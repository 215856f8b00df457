//! Hand-built route tables.

use std::net::SocketAddr;

use dockhand_proxy::{BackendSpec, Balance, Keepalive, PathSpec, Proto, TableSpec, VhostSpec};

use super::Backend;

/// An empty table to add vhosts to.
pub fn table() -> Table {
    Table(TableSpec::default())
}

/// A table under construction.
pub struct Table(TableSpec);

impl Table {
    /// Adds a vhost with these locations.
    pub fn vhost(mut self, host: &str, paths: Vec<PathSpec>) -> Table {
        self.0.vhosts.push(VhostSpec {
            host: host.to_owned(),
            paths,
            https: Default::default(),
        });
        self
    }

    /// Sets `DEFAULT_HOST`.
    pub fn default_host(mut self, host: &str) -> Table {
        self.0.default_host = Some(host.to_owned());
        self
    }

    /// The finished spec.
    pub fn spec(self) -> TableSpec {
        self.0
    }
}

/// A location served by `backends` (round robin, plain HTTP, default keepalive).
pub fn path(path: &str, backends: &[&Backend]) -> PathSpec {
    PathSpec {
        path: path.to_owned(),
        dest: None,
        proto: Proto::Http,
        balance: Balance::RoundRobin,
        keepalive: Keepalive::Auto,
        network_access: Default::default(),
        backends: backends.iter().map(|b| b.spec()).collect(),
    }
}

/// Fluent tweaks of a location.
pub trait PathExt {
    /// Sets `VIRTUAL_DEST`.
    fn dest(self, dest: &str) -> Self;
    /// Sets `VIRTUAL_PROTO`.
    fn proto(self, proto: Proto) -> Self;
    /// Sets the balancing label.
    fn balance(self, balance: Balance) -> Self;
    /// Sets the keepalive label.
    fn keepalive(self, keepalive: Keepalive) -> Self;
    /// Adds a backend at `addr` (`None`: a container on no shared network).
    fn backend_at(self, name: &str, addr: Option<SocketAddr>) -> Self;
}

impl PathExt for PathSpec {
    fn dest(mut self, dest: &str) -> Self {
        self.dest = Some(dest.to_owned());
        self
    }
    fn proto(mut self, proto: Proto) -> Self {
        self.proto = proto;
        self
    }
    fn balance(mut self, balance: Balance) -> Self {
        self.balance = balance;
        self
    }
    fn keepalive(mut self, keepalive: Keepalive) -> Self {
        self.keepalive = keepalive;
        self
    }
    fn backend_at(mut self, name: &str, addr: Option<SocketAddr>) -> Self {
        self.backends.push(BackendSpec {
            addr,
            name: name.to_owned(),
            id: format!("{name}-id"),
            readiness: Default::default(),
            origin: Default::default(),
        });
        self
    }
}
