//! dockhand's data plane: host and path matching, the immutable route table, load balancing,
//! header rewriting, the pooled upstream client, the HTTP and HTTPS listeners and the
//! certificate store.
//!
//! This crate knows HTTP and nothing of Docker: it serves whatever [`RouteTable`] is current in a
//! [`SharedTable`], which discovery replaces atomically. A request loads the table once, clones the
//! `Arc`s it needs and never holds the guard across an `.await`.

mod access;
pub mod balance;
pub mod body;
pub mod certs;
mod conn;
pub mod error;
mod flood;
pub mod forward;
mod health;
pub mod host;
pub mod listener;
pub mod metrics;
pub mod path;
pub mod policy;
pub mod service;
pub mod spec;
pub mod table;
pub mod tls;
mod tunnel;
mod upstream;

pub use access::ACCESS_TARGET;
pub use body::ProxyBody;
pub use certs::{CertLookup, NoCerts};
pub use error::{status, ErrorKind};
pub use host::{normalize_host, HostMatcher, HostPattern, PatternError};
pub use ipnet::IpNet;
pub use listener::{serve, serve_tls, Listen, ListenerPart, SharedListener};
pub use metrics::Metrics;
pub use path::{PathMatcher, PathPattern, Selected};
pub use policy::auth::BasicAuth;
pub use service::{ConnInfo, Proxy, ProxyConfig, ProxyService};
pub use spec::{BackendSpec, Balance, Keepalive, PathSpec, Proto, TableSpec, VhostSpec};
pub use table::{BackendRegistry, BackendState, RouteTable, SharedTable};
pub use tls::{server_config, CertStore, TlsMetrics};
