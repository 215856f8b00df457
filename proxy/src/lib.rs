//! dockhand's data plane: the table publisher, host and path matching, the immutable route
//! table, load balancing, header rewriting, the pooled upstream client, the HTTP and HTTPS
//! listeners and the certificate store.
//!
//! # Flow
//! providers (Docker containers, …) → route descriptions ([`spec`]) → [`Publisher`] → one
//! [`RouteTable`] swapped in atomically → [`TableReader::load`] by the data plane.
//! Each provider publishes through its own [`ProviderHandle`]; the publisher, the table's only
//! writer, merges the providers per vhost and builds each new table off the request path.
//! This crate knows HTTP and nothing of Docker: it serves whatever table is current. A request
//! loads the table once, clones the `Arc`s it needs and never holds the guard across an
//! `.await`.

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
mod publish;
pub mod service;
pub mod table;
pub mod tls;
mod tunnel;
mod upstream;

/// The route descriptions this crate serves, re-exported so that its users need one import.
pub use dockhand_spec as spec;

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
pub use publish::{ProviderHandle, Publisher};
pub use service::{ConnInfo, Proxy, ProxyConfig, ProxyService};
pub use spec::{BackendSpec, Balance, Keepalive, PathSpec, Proto, TableSpec, VhostSpec};
pub use table::{BackendRegistry, BackendState, RouteTable, TableReader};
pub use tls::{server_config, CertStore, TlsMetrics};
