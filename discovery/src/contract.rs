//! The nginx-proxy contract: what a container's environment and labels ask dockhand to route.
//!
//! Pure functions over `docker inspect` output. [`parse_container`] reads the settings,
//! [`container_address`] picks the address to connect to, [`is_routable_state`] says whether
//! the container should get traffic at all; [`crate::table`] then groups every container into
//! a route table spec.
//!
//! Settings come from `Config.Env` (`KEY=VALUE`, split at the first `=`; an entry without `=`
//! is ignored; a later duplicate wins) and from `Config.Labels`. A label of the same name wins
//! over the variable, even when empty. A value is trimmed, and a blank value means unset.

mod address;
mod error;
mod host;
mod multiports;
mod options;
mod path;

use std::collections::{BTreeSet, HashMap};

use bollard::models::ContainerInspectResponse;
use dockhand_spec::{Balance, Keepalive, Proto, Readiness, SslPolicy, VerifyClient};

pub use address::{container_address, Addressing, Endpoints, Reach};
pub use error::ContractError;
pub use options::{
    parse_acme_challenge, parse_bool, parse_hsts, parse_https_method, parse_non_get_redirect,
    parse_ssl_policy, AcmeChallenge, Hsts, HttpsMethod, NetworkAccess, NonGetRedirect,
};

/// The label choosing how requests are spread over a path's containers.
pub const LOADBALANCE_LABEL: &str = "com.github.nginx-proxy.nginx-proxy.loadbalance";
/// The label choosing upstream connection reuse.
pub const KEEPALIVE_LABEL: &str = "com.github.nginx-proxy.nginx-proxy.keepalive";
/// The label choosing the HTTP→HTTPS redirect status for methods other than GET and HEAD.
pub const NON_GET_REDIRECT_LABEL: &str = "com.github.nginx-proxy.nginx-proxy.non-get-redirect";
/// The label allowing (or not) `default.crt` to serve a vhost without a certificate of its own.
pub const TRUST_DEFAULT_CERT_LABEL: &str = "com.github.nginx-proxy.nginx-proxy.trust-default-cert";
/// The label turning HTTP/2 (ALPN `h2`) on or off for a vhost (else `ENABLE_HTTP2`).
pub const HTTP2_LABEL: &str = "com.github.nginx-proxy.nginx-proxy.http2.enable";
/// The label answering (or not) `/nginx-proxy-debug` on a vhost.
pub const DEBUG_ENDPOINT_LABEL: &str = "com.github.nginx-proxy.nginx-proxy.debug-endpoint";
/// The label choosing how client certificates are verified (mTLS) for a vhost.
pub const VERIFY_CLIENT_LABEL: &str = "com.github.nginx-proxy.nginx-proxy.ssl_verify_client";

const VIRTUAL_HOST: &str = "VIRTUAL_HOST";
const VIRTUAL_PORT: &str = "VIRTUAL_PORT";
const VIRTUAL_PATH: &str = "VIRTUAL_PATH";
const VIRTUAL_DEST: &str = "VIRTUAL_DEST";
const VIRTUAL_PROTO: &str = "VIRTUAL_PROTO";
const NETWORK_ACCESS: &str = "NETWORK_ACCESS";
const HTTPS_METHOD: &str = "HTTPS_METHOD";
const HSTS: &str = "HSTS";
const CERT_NAME: &str = "CERT_NAME";
const ENABLE_HTTP_ON_MISSING_CERT: &str = "ENABLE_HTTP_ON_MISSING_CERT";
const ACME_HTTP_CHALLENGE_LOCATION: &str = "ACME_HTTP_CHALLENGE_LOCATION";
const SSL_POLICY: &str = "SSL_POLICY";
const SERVER_TOKENS: &str = "SERVER_TOKENS";
const EXTERNAL_HTTP_PORT: &str = "EXTERNAL_HTTP_PORT";
const EXTERNAL_HTTPS_PORT: &str = "EXTERNAL_HTTPS_PORT";

/// The port used when no `VIRTUAL_PORT` is set and the container does not expose exactly one
/// TCP port (even if 80 is not exposed, as nginx-proxy does).
pub const FALLBACK_PORT: u16 = 80;

/// Everything one container contributes, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRoutes {
    /// Full container ID (empty only if the engine sent none).
    pub id: String,
    /// Container name without the leading `/`.
    pub name: String,
    /// Which variable the routes came from.
    pub source: RouteSource,
    /// The virtual hosts, each with at least one path; no host appears twice.
    pub hosts: Vec<HostRoutes>,
    /// The `…loadbalance` label. Default [`Balance::RoundRobin`].
    pub balance: Balance,
    /// The `…keepalive` label. Default [`Keepalive::Auto`].
    pub keepalive: Keepalive,
    /// `NETWORK_ACCESS`. Default [`NetworkAccess::External`].
    pub network_access: NetworkAccess,
    /// `HTTPS_METHOD`. Default: none (the proxy-wide setting).
    pub https_method: Option<HttpsMethod>,
    /// `HSTS`. Default: none (the proxy-wide setting).
    pub hsts: Option<Hsts>,
    /// `CERT_NAME`. Default: none (certificate looked up by host name).
    pub cert_name: Option<String>,
    /// The `…non-get-redirect` label. Default: none (the proxy-wide setting).
    pub non_get_redirect: Option<NonGetRedirect>,
    /// The `…trust-default-cert` label. Default: none (the proxy-wide `TRUST_DEFAULT_CERT`).
    pub trust_default_cert: Option<bool>,
    /// `ENABLE_HTTP_ON_MISSING_CERT`. Default: none (the proxy-wide setting).
    pub http_on_missing_cert: Option<bool>,
    /// `ACME_HTTP_CHALLENGE_LOCATION`. Default: none (the proxy-wide setting).
    pub acme_challenge: Option<AcmeChallenge>,
    /// The `…http2.enable` label. Default: none (the proxy-wide `ENABLE_HTTP2`).
    pub http2: Option<bool>,
    /// `SSL_POLICY`. Default: none (the proxy-wide `SSL_POLICY`).
    pub ssl_policy: Option<SslPolicy>,
    /// `SERVER_TOKENS` (`on`/`build` → true, `off` → false). Default: none (on).
    pub server_tokens: Option<bool>,
    /// The `…debug-endpoint` label. Default: none (the proxy-wide `DEBUG_ENDPOINT`).
    pub debug_endpoint: Option<bool>,
    /// The `…ssl_verify_client` label. Default: none (`on`).
    pub verify_client: Option<VerifyClient>,
}

/// Where a container's routes were declared. Ordered: `Multiports` sorts first, because its
/// per-path settings win over `VIRTUAL_HOST` containers' in nginx-proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteSource {
    /// `VIRTUAL_HOST_MULTIPORTS` (which overrides the variables below when both are set).
    Multiports,
    /// `VIRTUAL_HOST` with `VIRTUAL_PORT`, `VIRTUAL_PATH`, `VIRTUAL_DEST`, `VIRTUAL_PROTO`.
    VirtualHost,
}

/// One virtual host of a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRoutes {
    /// The name in canonical form: lower-cased `exact`, `*.suffix`, `prefix.*`, `[ipv6]`, or
    /// `~regex` verbatim.
    pub host: String,
    /// The locations served on this host; at least one, each path once.
    pub paths: Vec<PathRoute>,
    /// `EXTERNAL_HTTP_PORT`, or `external_http_port` from `VIRTUAL_HOST_MULTIPORTS`.
    /// Default: none (the proxy's port).
    pub external_http_port: Option<u16>,
    /// `EXTERNAL_HTTPS_PORT`, or `external_https_port` from `VIRTUAL_HOST_MULTIPORTS`.
    /// Default: none (the proxy's port).
    pub external_https_port: Option<u16>,
}

/// One location of a host and how to reach the container for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRoute {
    /// The location: `/prefix`, `= /exact`, `^~ /prefix`, or a `~regex` / `~*regex` as written
    /// (see `contract/path.rs`). Default `/`.
    pub path: String,
    /// The container port: `VIRTUAL_PORT` (or the multiports `port`), else the only exposed
    /// TCP port, else [`FALLBACK_PORT`].
    pub port: u16,
    /// `VIRTUAL_PROTO`. Default [`Proto::Http`].
    pub proto: Proto,
    /// `VIRTUAL_DEST`, replacing the matched prefix. Default: none.
    pub dest: Option<String>,
}

/// Reads what `c` asks to be routed.
///
/// `Ok(None)`: the container sets neither `VIRTUAL_HOST` nor `VIRTUAL_HOST_MULTIPORTS` (or they
/// name no host), so it is not proxied. `Err`: a setting is invalid; the container should be
/// skipped, with the error logged once.
pub fn parse_container(
    c: &ContainerInspectResponse,
) -> Result<Option<ContainerRoutes>, ContractError> {
    let config = c.config.as_ref();
    parse_settings(
        c.id.as_deref().unwrap_or_default(),
        &container_name(c),
        config.and_then(|cfg| cfg.env.as_deref()),
        config.and_then(|cfg| cfg.labels.as_ref()),
        default_port(c),
    )
}

/// Reads what a set of settings asks to be routed, as [`parse_container`] does for a
/// container: `env` holds `KEY=VALUE` entries, and a label of the same name wins over the
/// variable. `default_port` is used where no `VIRTUAL_PORT` (or multiports `port`) is set.
///
/// For sources that are not containers (a Swarm service merges its own labels with its
/// container spec's into `labels`); `id` and `name` are copied into the result.
pub fn parse_settings(
    id: &str,
    name: &str,
    env: Option<&[String]>,
    labels: Option<&HashMap<String, String>>,
    default_port: u16,
) -> Result<Option<ContainerRoutes>, ContractError> {
    let settings = Settings::new(env, labels);
    let (source, hosts) = if let Some(raw) = settings.get(multiports::VARIABLE) {
        let hosts = multiports::parse_multiports(raw, default_port)?;
        (RouteSource::Multiports, hosts)
    } else if let Some(raw) = settings.get(VIRTUAL_HOST) {
        let hosts = virtual_host_routes(&settings, raw, default_port)?;
        (RouteSource::VirtualHost, hosts)
    } else {
        return Ok(None);
    };
    if hosts.is_empty() {
        return Ok(None);
    }
    Ok(Some(ContainerRoutes {
        id: id.to_owned(),
        name: name.to_owned(),
        source,
        hosts,
        balance: settings
            .parse(LOADBALANCE_LABEL, options::parse_balance)?
            .unwrap_or_default(),
        keepalive: settings
            .parse(KEEPALIVE_LABEL, options::parse_keepalive)?
            .unwrap_or_default(),
        network_access: settings
            .parse(NETWORK_ACCESS, options::parse_network_access)?
            .unwrap_or_default(),
        https_method: settings.parse(HTTPS_METHOD, options::parse_https_method)?,
        hsts: settings.parse(HSTS, options::parse_hsts)?,
        cert_name: settings.parse(CERT_NAME, options::parse_cert_name)?,
        non_get_redirect: settings
            .parse(NON_GET_REDIRECT_LABEL, options::parse_non_get_redirect)?,
        trust_default_cert: settings.parse(TRUST_DEFAULT_CERT_LABEL, options::parse_bool)?,
        http_on_missing_cert: settings.parse(ENABLE_HTTP_ON_MISSING_CERT, options::parse_bool)?,
        acme_challenge: settings
            .parse(ACME_HTTP_CHALLENGE_LOCATION, options::parse_acme_challenge)?,
        http2: settings.parse(HTTP2_LABEL, options::parse_bool)?,
        ssl_policy: settings.parse(SSL_POLICY, options::parse_ssl_policy)?,
        server_tokens: settings.parse(SERVER_TOKENS, options::parse_server_tokens)?,
        debug_endpoint: settings.parse(DEBUG_ENDPOINT_LABEL, options::parse_bool)?,
        verify_client: settings.parse(VERIFY_CLIENT_LABEL, options::parse_verify_client)?,
    }))
}

/// The container's readiness, from its Docker HEALTHCHECK state: [`Readiness::Unchecked`]
/// without a health check, [`Readiness::Ready`] when healthy, [`Readiness::Failing`] when
/// unhealthy.
pub fn health(c: &ContainerInspectResponse) -> Readiness {
    use bollard::models::HealthStatusEnum as S;
    let status = c
        .state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status);
    match status {
        Some(S::STARTING) => Readiness::Starting,
        Some(S::HEALTHY) => Readiness::Ready,
        Some(S::UNHEALTHY) => Readiness::Failing,
        Some(S::NONE | S::EMPTY) | None => Readiness::Unchecked,
    }
}

/// The label the Swarm orchestrator puts on every task container.
pub const SWARM_TASK_LABEL: &str = "com.docker.swarm.task.id";

/// True when `c` is a Swarm task's container: the Swarm provider routes those (one backend per
/// task), so the containers provider leaves them out.
pub fn is_swarm_task(c: &ContainerInspectResponse) -> bool {
    let labels = c.config.as_ref().and_then(|cfg| cfg.labels.as_ref());
    labels.is_some_and(|l| l.contains_key(SWARM_TASK_LABEL))
}

/// True when `c` should get traffic: running, and neither paused nor restarting (the
/// containers docker-gen lists with `status=running`). Health is separate: see [`health`].
pub fn is_routable_state(c: &ContainerInspectResponse) -> bool {
    let Some(state) = &c.state else { return false };
    state.running == Some(true) && state.paused != Some(true) && state.restarting != Some(true)
}

/// The container's port when nothing names one: its only exposed TCP port, else
/// [`FALLBACK_PORT`].
///
/// Only TCP ports count (nginx-proxy counts UDP ones too): a UDP port can never be proxied, so
/// `--expose 53/udp --expose 8080` meaning 8080 is what users expect.
pub fn default_port(c: &ContainerInspectResponse) -> u16 {
    let exposed = c.config.as_ref().and_then(|cfg| cfg.exposed_ports.as_ref());
    let tcp: BTreeSet<u16> = exposed
        .into_iter()
        .flatten()
        .filter_map(|key| tcp_port(key))
        .collect();
    match (tcp.first(), tcp.len()) {
        (Some(&only), 1) => only,
        _ => FALLBACK_PORT,
    }
}

/// The port of an `ExposedPorts` key such as `8080/tcp` (a bare `8080` is TCP).
fn tcp_port(key: &str) -> Option<u16> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    if !proto.eq_ignore_ascii_case("tcp") {
        return None;
    }
    port.parse().ok().filter(|&p| p != 0)
}

fn container_name(c: &ContainerInspectResponse) -> String {
    let name = c.name.as_deref().unwrap_or_default();
    name.strip_prefix('/').unwrap_or(name).to_owned()
}

/// The routes of a `VIRTUAL_HOST` container: every host gets the same single path.
fn virtual_host_routes(
    settings: &Settings<'_>,
    raw: &str,
    default_port: u16,
) -> Result<Vec<HostRoutes>, ContractError> {
    let location = settings
        .parse(VIRTUAL_PATH, path::parse_path)?
        .unwrap_or_else(|| path::Location {
            canonical: path::ROOT.to_owned(),
            is_regex: false,
        });
    let dest = settings.parse(VIRTUAL_DEST, |d| path::parse_dest(d, &location))?;
    let external_http_port = settings.parse(EXTERNAL_HTTP_PORT, options::parse_port)?;
    let external_https_port = settings.parse(EXTERNAL_HTTPS_PORT, options::parse_port)?;
    let route = PathRoute {
        path: location.canonical.clone(),
        port: settings
            .parse(VIRTUAL_PORT, options::parse_port)?
            .unwrap_or(default_port),
        proto: settings
            .parse(VIRTUAL_PROTO, options::parse_proto)?
            .unwrap_or_default(),
        dest,
    };
    let mut hosts: Vec<HostRoutes> = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let host =
            host::parse_host(entry).map_err(|why| ContractError::new(VIRTUAL_HOST, entry, why))?;
        // nginx-proxy would list the container twice in the upstream, doubling its weight.
        if hosts.iter().any(|h| h.host == host) {
            continue;
        }
        hosts.push(HostRoutes {
            host,
            paths: vec![route.clone()],
            external_http_port,
            external_https_port,
        });
    }
    Ok(hosts)
}

/// Whether `env` (`KEY=VALUE` entries) or `labels` set `name` to something other than blank,
/// as [`parse_settings`] reads them.
pub(crate) fn is_set(
    env: Option<&[String]>,
    labels: Option<&HashMap<String, String>>,
    name: &str,
) -> bool {
    Settings::new(env, labels).get(name).is_some()
}

/// A container's settings: environment variables, overridden by labels of the same name.
struct Settings<'a> {
    env: HashMap<&'a str, &'a str>,
    labels: Option<&'a HashMap<String, String>>,
}

impl<'a> Settings<'a> {
    fn new(env: Option<&'a [String]>, labels: Option<&'a HashMap<String, String>>) -> Self {
        let env = env
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.split_once('='))
            .collect();
        Self { env, labels }
    }

    /// The trimmed value of `name`, or `None` when unset or blank.
    fn get(&self, name: &str) -> Option<&'a str> {
        let label = self.labels.and_then(|l| l.get(name)).map(String::as_str);
        let value = label.or_else(|| self.env.get(name).copied())?.trim();
        (!value.is_empty()).then_some(value)
    }

    /// Parses `name` when set; an error names the setting and the value.
    fn parse<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ContractError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        parse(value)
            .map(Some)
            .map_err(|why| ContractError::new(name, value, why))
    }
}

#[cfg(test)]
pub(crate) mod tests;
