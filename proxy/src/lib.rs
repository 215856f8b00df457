//! dockhand's data plane: it knows HTTP and nothing of Docker, and serves whatever
//! [`RouteTable`] is current. A request loads the table once ([`TableReader::load`]), clones the
//! `Arc`s it needs and never holds the guard across an `.await`.
//!
//! # Flow
//!
//! providers (Docker containers, …) → route descriptions ([`spec`]) → [`Publisher`] → one
//! [`RouteTable`] swapped in atomically → [`TableReader::load`] by the data plane. Each provider
//! publishes through its own [`ProviderHandle`]; the publisher, the table's only writer, merges
//! the providers per vhost and builds each new table off the request path.
//!
//! # Layout
//!
//! Each module uses only modules listed above it (`.ci/module-cycles.py` fails CI on a cycle).
//!
//! - `spec`: the plain-data route descriptions providers hand over (the `dockhand-spec` crate).
//! - `error`: every failure as an [`ErrorKind`], and the one function mapping it to a status.
//! - `host`, `path`: nginx `server_name` and `location` matching, `VIRTUAL_DEST` rewrites.
//! - `health`: passive health (ejection after connect failures, back-off).
//! - `vars`: nginx variables in `DEFAULT_ROOT` and `LOG_FORMAT`, compiled once.
//! - `policy`: HTTPS_METHOD, HSTS, ACME challenges, basic auth, `NETWORK_ACCESS`.
//! - `config`: [`ProxyConfig`], every data-plane setting and its default.
//! - `pages`: the custom 5xx page (`errors/50x.html`), read when it changes.
//! - `certs`: "does this vhost have a certificate?", whoever loads them.
//! - `balance`: round robin, client-IP affinity, least connections.
//! - `metrics`: Prometheus families and per-vhost handles.
//! - `table`: the immutable route table and per-backend state that outlives it.
//! - `publish`: the table's one writer: merges the providers' descriptions, builds, swaps.
//! - `ejected`: the ejected-backends gauge, read from the table when scraped.
//! - `access`: what is recorded when a response ends (metrics, access log line).
//! - `rewind`: a stream with bytes already read from it put back in front.
//! - `tunnel`: upgraded connections (WebSocket) bridged to their backend.
//! - `conn`: client connections: protocol detection, phases and their deadlines, parking of idle
//!   HTTP/1 connections, eviction, drain.
//! - `flood`: closes HTTP/2 connections flooding the server with control frames.
//! - `forward`: header rewriting between client and backend.
//! - `upstream`: backend connections (pooled HTTP/1.1, h2c) and the request body sent on them.
//! - `body`: the response body, which drives its backend connection.
//! - `service`: the per-request handler: routing, policy, exchange with retries, responses.
//! - `tls`: certificate store and per-handshake certificate choice.
//! - `listener`: the accept loops (HTTP, HTTPS) and shared sockets.
//!
//! # Request lifecycle
//!
//! 1. **Accept** (`listener`): each runtime accepts from its own socket of the port, under its
//!    share of the connection limit; at the limit `conn` closes the idle connections that have
//!    waited longest (then request heads slower than a second) to admit the new client.
//! 2. **Deadlines** (`conn`, `flood`): the connection's task serves it inside a guard that gives
//!    each phase (request head, idle keep-alive, blocked write, lingering close) one deadline.
//! 3. **TLS** (`tls`, HTTPS only): the handshake runs in that task, within the head deadline;
//!    the certificate is chosen per SNI from the store and the current table.
//! 4. **HTTP**: hyper (HTTP/1.1, or HTTP/2) parses the head and calls the connection's
//!    [`ProxyService`]. An HTTP/1 connection idle between requests is parked (`conn`): hyper's
//!    connection and buffers are freed, and a new one reads the next request.
//! 5. **Routing** (`service`): one table load; `host` picks the vhost (or `DEFAULT_HOST`),
//!    `path` the location; malformed requests end here with their status (`error`).
//! 6. **Policy** (`policy`): HTTPS redirect, ACME challenge file, `NETWORK_ACCESS`, basic auth.
//! 7. **Balance** (`balance`, `health`): the candidates in order, ejected backends last.
//! 8. **Rewrite** (`forward`): `Host`, `X-Forwarded-*`, `X-Real-IP`, hop-by-hop headers.
//! 9. **Exchange** (`service::exchange`): the request goes to each candidate in turn: any
//!    request after a connect failure, an idempotent one after a reset before any answer (its
//!    body, `upstream::request`, is taken back untouched); the response head has
//!    `response_timeout`, counted from the end of the client's body.
//! 10. **Upstream** (`upstream`): HTTP/1.1 reuses an idle connection of the pool or opens one,
//!     and the client's task drives it (no task per backend connection); h2c goes through
//!     hyper-util's client. A `101` hands both sides to `tunnel`.
//! 11. **Response** (`body`): the backend's body streams to the client, polling its connection
//!     as it goes; after the last byte the connection goes back to the pool (a body abandoned
//!     half-way closes it instead).
//! 12. **Completion** (`access`): when the body ends or is dropped, the request is counted in
//!     `metrics` and logged, with durations and byte counts covering the whole body.

mod access;
pub mod balance;
pub mod body;
pub mod certs;
mod config;
mod conn;
mod ejected;
pub mod error;
mod flood;
pub mod forward;
mod health;
pub mod host;
pub mod listener;
pub mod metrics;
pub mod pages;
pub mod path;
pub mod policy;
mod publish;
mod rewind;
pub mod service;
pub mod table;
pub mod tls;
mod tunnel;
mod upstream;
pub mod vars;

/// The route descriptions this crate serves, re-exported so that its users need one import.
pub use dockhand_spec as spec;

pub use access::ACCESS_TARGET;
pub use body::ProxyBody;
pub use certs::{CertLookup, NoCerts};
pub use config::{DefaultRoot, LogEscape, LogFormat, ProxyConfig};
pub use ejected::register_ejected_gauge;
pub use error::{status, ErrorKind};
pub use host::{normalize_host, HostMatcher, HostPattern, PatternError};
pub use ipnet::IpNet;
pub use listener::{serve, serve_tls, Listen, ListenerPart, SharedListener};
pub use metrics::Metrics;
pub use path::{PathMatcher, PathPattern, Selected};
pub use policy::auth::BasicAuth;
pub use publish::{ProviderHandle, Publisher};
pub use service::{ClientVerify, ConnInfo, Proxy, ProxyService, VerifyFailure, VerifyResult};
pub use spec::{BackendSpec, Balance, Keepalive, PathSpec, Proto, TableSpec, VhostSpec};
pub use table::{BackendRegistry, BackendState, RouteTable, TableReader};
pub use tls::{server_config, CertStore, ServerConfigs, TlsMetrics, TlsOptions};
