//! Docker discovery for dockhand: the containers provider. It watches the engine and describes
//! the routes its containers ask for.
//!
//! # Flow
//! provider (this crate) → [`Publish`](dockhand_spec::Publish) → the data plane's publisher, which merges every
//! provider's descriptions and builds and swaps the `RouteTable` → the data plane `load()`s it.
//! Discovery knows Docker and the nginx-proxy contract, and nothing of sockets, HTTP serving,
//! metric handles or the served table: its only output is descriptions ([`dockhand_spec`]),
//! the whole of them after each sync and resync, what changed after events.
//!
//! # Layout
//! - [`check`]: `dockhand check`, every running container as the provider would read it.
//! - [`contract`]: the nginx-proxy contract, container settings → route descriptions (pure).
//! - [`table`]: every routed container → one [`dockhand_spec::TableSpec`] (pure).
//! - [`swarm`]: the Swarm services provider: its contract (pure) and its poll loop.
//! - `engine`: connecting to Docker and telling where dockhand itself runs.
//! - `state`: the containers known right now, and publishing their descriptions.
//! - `status`: what the admin listener reports (readiness, the engine, the Swarm role).
//! - `watch`: the event loop (subscribe, sync, apply events, resync, reconnect).

pub mod check;
pub mod contract;
mod engine;
mod metrics;
mod state;
mod status;
pub mod swarm;
pub mod table;
mod watch;

use std::time::Duration;

pub use engine::{parse_container_filters, validate_docker_tls, validate_host, EngineError};
pub use metrics::DiscoveryMetrics;
pub use status::{NotReady, Skipped, Status};
pub use watch::run;

use dockhand_spec::ProviderId;

/// The id discovery publishes its descriptions under.
pub const PROVIDER: ProviderId = ProviderId::new("containers");

/// Discovery settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Docker endpoint, `unix://…` or `tcp://…`. Default `unix:///var/run/docker.sock`.
    pub docker_host: String,
    /// `DOCKER_TLS_VERIFY`: the folder (`DOCKER_CERT_PATH`) holding `ca.pem`, against which a
    /// `tcp://` engine's certificate is verified, and `cert.pem`/`key.pem`, the client
    /// certificate dockhand presents. Default `None`: plain TCP.
    pub docker_tls: Option<std::path::PathBuf>,
    /// Name or ID of dockhand's own container, when auto-detection is not wanted. Default: detect.
    pub own_container: Option<String>,
    /// Full re-list as a safety net against missed events. Default 60 s.
    pub resync_interval: Duration,
    /// Longest pause between reconnection attempts to the engine. Default 10 s.
    pub max_backoff: Duration,
    /// Proxy-wide HTTPS settings (`HTTPS_METHOD`, `HSTS`, …) for vhosts whose containers do
    /// not set them. Default: nginx-proxy's defaults.
    pub https: dockhand_spec::HttpsPolicy,
    /// Whether the Swarm provider runs (`DOCKHAND_SWARM`). Default [`SwarmMode::Auto`].
    pub swarm: SwarmMode,
    /// How often the Swarm provider lists services and tasks. Default 1 s.
    pub swarm_poll_interval: Duration,
    /// `DOCKER_CONTAINER_FILTERS`: only containers the engine lists under these `docker ps`
    /// filters are routed (see [`engine::parse_container_filters`]). Default: none.
    pub container_filters: Vec<(String, String)>,
    /// `PREFER_IPV6_NETWORK`: reach containers on their network's IPv6 address when they have
    /// one. Default false.
    pub prefer_ipv6: bool,
}

/// `DOCKHAND_SWARM`: whether dockhand follows Swarm services. Default `auto`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SwarmMode {
    /// On when the engine is a Swarm manager (checked each time dockhand connects).
    #[default]
    Auto,
    /// On; a warning says so when the engine is not a manager.
    On,
    /// Off: the Swarm provider does not run.
    Off,
}

impl std::str::FromStr for SwarmMode {
    type Err = String;

    /// `auto`, or a boolean (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`).
    fn from_str(s: &str) -> Result<SwarmMode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(SwarmMode::Auto),
            "true" | "1" | "yes" | "on" => Ok(SwarmMode::On),
            "false" | "0" | "no" | "off" => Ok(SwarmMode::Off),
            _ => Err("expected auto, true or false".to_owned()),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            docker_host: "unix:///var/run/docker.sock".to_owned(),
            docker_tls: None,
            own_container: None,
            resync_interval: Duration::from_secs(60),
            max_backoff: Duration::from_secs(10),
            https: Default::default(),
            swarm: SwarmMode::Auto,
            swarm_poll_interval: Duration::from_secs(1),
            container_filters: Vec::new(),
            prefer_ipv6: false,
        }
    }
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
