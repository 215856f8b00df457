//! Docker discovery for dockhand: watches the engine and publishes route tables.
//!
//! # Layout
//! - [`contract`]: the nginx-proxy contract, container settings → route descriptions (pure).
//! - [`table`]: every routed container → one [`dockhand_proxy::spec::TableSpec`] (pure).
//! - `engine`: connecting to Docker and telling where dockhand itself runs.
//! - `state`: the containers known right now, and the table publisher.
//! - `watch`: the event loop (subscribe, sync, apply events, resync, reconnect).
//!
//! Discovery knows Docker and nothing of sockets or HTTP serving: its only output is a
//! [`dockhand_proxy::RouteTable`] stored into the shared `ArcSwap`.

pub mod contract;
mod engine;
mod metrics;
mod state;
pub mod table;
mod watch;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use engine::{validate_host, EngineError};
pub use metrics::DiscoveryMetrics;
pub use watch::run;

/// Discovery settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Docker endpoint, `unix://…` or `tcp://…`. Default `unix:///var/run/docker.sock`.
    pub docker_host: String,
    /// Name or ID of dockhand's own container, when auto-detection is not wanted. Default: detect.
    pub own_container: Option<String>,
    /// `DEFAULT_HOST`: the vhost serving unknown hosts. Default: none.
    pub default_host: Option<String>,
    /// Full re-list as a safety net against missed events. Default 60 s.
    pub resync_interval: Duration,
    /// Longest pause between reconnection attempts to the engine. Default 10 s.
    pub max_backoff: Duration,
    /// Proxy-wide HTTPS settings (`HTTPS_METHOD`, `HSTS`, …) for vhosts whose containers do
    /// not set them. Default: nginx-proxy's defaults.
    pub https: dockhand_proxy::spec::HttpsPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            docker_host: "unix:///var/run/docker.sock".to_owned(),
            own_container: None,
            default_host: None,
            resync_interval: Duration::from_secs(60),
            max_backoff: Duration::from_secs(10),
            https: Default::default(),
        }
    }
}

/// What the admin listener reports about discovery.
#[derive(Debug, Default)]
pub struct Status {
    ready: AtomicBool,
    engine_up: AtomicBool,
}

impl Status {
    /// A fresh status: not ready, engine down.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// True once the first full sync with Docker has been published.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// True while dockhand holds a working connection (event stream) to the engine.
    pub fn engine_up(&self) -> bool {
        self.engine_up.load(Ordering::Acquire)
    }

    fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    fn set_engine_up(&self, up: bool) {
        self.engine_up.store(up, Ordering::Release);
    }
}

/// Where discovery publishes: the shared table, and what building a table needs.
pub struct TableSink {
    /// The table the data plane serves from.
    pub table: dockhand_proxy::SharedTable,
    /// Per-vhost metric handles are resolved from these when a table is built.
    pub metrics: dockhand_proxy::Metrics,
    /// Per-backend state that outlives table swaps.
    pub backends: dockhand_proxy::BackendRegistry,
}

/// Checks `DEFAULT_HOST`: one host name, as it would appear in a `Host` header (no port).
pub fn validate_default_host(host: &str) -> Result<(), String> {
    let host = host.trim();
    let bad = host.is_empty()
        || host.contains([',', ' ', '/', '~', '*'])
        || host
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    if bad {
        Err("expected one host name such as example.com (no port, wildcard or list)".to_owned())
    } else {
        Ok(())
    }
}
