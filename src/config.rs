//! dockhand's settings: flags with `DOCKHAND_*` twins, plus nginx-proxy's proxy-level variables.
//!
//! Values that need checking are taken as text and validated together in [`Args::validate`]
//! (in `validate.rs`), so one run reports every bad setting (as linkerd's `parse_config` does),
//! before anything binds.

mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, Subcommand};
use dockhand_proxy::ProxyConfig;

/// A dynamic reverse proxy for Docker: routes containers by their VIRTUAL_HOST, like nginx-proxy.
#[derive(Debug, Parser)]
#[command(version, about, max_term_width = 100)]
pub struct Args {
    /// Port for plain HTTP (and h2c). nginx-proxy's HTTP_PORT.
    #[arg(long, env = "HTTP_PORT", default_value = "80")]
    http_port: String,

    /// Port for HTTPS. nginx-proxy's HTTPS_PORT.
    #[arg(long, env = "HTTPS_PORT", default_value = "443")]
    https_port: String,

    /// Folder of certificates: `<host>.crt`/`.key`, `default.crt`/`.key` (watched for changes).
    #[arg(long, env = "DOCKHAND_CERTS_DIR", default_value = "/etc/nginx/certs")]
    certs_dir: PathBuf,

    /// How often the certificate folder is checked for new, renewed or removed certificates.
    #[arg(long, env = "DOCKHAND_CERTS_POLL_INTERVAL", default_value = "2s")]
    certs_poll_interval: String,

    /// Folder of htpasswd files: `<vhost>` and `<vhost>_<sha1(path)>`.
    #[arg(
        long,
        env = "DOCKHAND_HTPASSWD_DIR",
        default_value = "/etc/nginx/htpasswd"
    )]
    htpasswd_dir: PathBuf,

    /// Web root holding `.well-known/acme-challenge/` files (shared with acme-companion).
    #[arg(
        long,
        env = "DOCKHAND_ACME_WEBROOT",
        default_value = "/usr/share/nginx/html"
    )]
    acme_webroot: PathBuf,

    /// Default HTTPS_METHOD for vhosts: redirect, noredirect, nohttp or nohttps.
    #[arg(long, env = "HTTPS_METHOD", default_value = "redirect")]
    https_method: String,

    /// Default Strict-Transport-Security value on HTTPS responses, or `off`.
    #[arg(long, env = "HSTS", default_value = "max-age=31536000")]
    hsts: String,

    /// Redirect status for methods other than GET/HEAD: 301, 307 or 308.
    #[arg(long, env = "NON_GET_REDIRECT", default_value = "301")]
    non_get_redirect: String,

    /// May `default.crt` serve vhosts that have no certificate of their own?
    #[arg(long, env = "TRUST_DEFAULT_CERT", default_value = "true")]
    trust_default_cert: String,

    /// Without a usable certificate, serve `redirect`/`nohttp` vhosts over plain HTTP instead.
    #[arg(long, env = "ENABLE_HTTP_ON_MISSING_CERT", default_value = "true")]
    enable_http_on_missing_cert: String,

    /// Serve ACME HTTP-01 challenge files on port 80: true, false or legacy.
    #[arg(long, env = "ACME_HTTP_CHALLENGE_LOCATION", default_value = "true")]
    acme_http_challenge_location: String,

    /// What `/` answers on a vhost whose paths do not cover it: a status (`404`), `301 <url>`
    /// (with `$scheme`, `$host`, `$request_uri`, …), or `none`.
    #[arg(long, env = "DEFAULT_ROOT", default_value = "404")]
    default_root: String,

    /// Answer `/nginx-proxy-debug` on every vhost with a JSON description of the routing (the
    /// `…debug-endpoint` label overrides it per container).
    #[arg(long, env = "DEBUG_ENDPOINT", default_value = "false")]
    debug_endpoint: String,

    /// Serve ACME HTTP-01 challenge files for hosts no container names too (instead of 503).
    #[arg(
        long,
        env = "ACME_HTTP_CHALLENGE_ACCEPT_UNKNOWN_HOST",
        default_value = "false"
    )]
    acme_http_challenge_accept_unknown_host: String,

    /// Access log line as an nginx `log_format` (`$remote_addr`, `$host`, `$request`, `$status`,
    /// …). Default: dockhand's structured line.
    #[arg(long, env = "LOG_FORMAT")]
    log_format: Option<String>,

    /// Escaping of LOG_FORMAT values: default, json or none.
    #[arg(long, env = "LOG_FORMAT_ESCAPE", default_value = "default")]
    log_format_escape: String,

    /// Address the public listener binds to. With ENABLE_IPV6=true, `[::]` is used instead.
    #[arg(long, env = "DOCKHAND_BIND", default_value = "0.0.0.0")]
    bind: String,

    /// Listen on IPv6 as well (binds `[::]`, dual-stack). nginx-proxy's ENABLE_IPV6.
    #[arg(long, env = "ENABLE_IPV6", default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    enable_ipv6: bool,

    /// Admin listener (metrics, readiness, routes, dashboard). Never the public port.
    #[arg(
        long,
        global = true,
        env = "DOCKHAND_ADMIN",
        default_value = "127.0.0.1:9180"
    )]
    admin: String,

    /// Docker endpoint: unix:///path/docker.sock or tcp://host:port (e.g. a socket proxy).
    #[arg(
        long,
        global = true,
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    docker_host: String,

    /// Route only containers matching these `docker ps` filters: comma-separated name=value
    /// (e.g. `label=com.example.proxied,network=front`). nginx-proxy's DOCKER_CONTAINER_FILTERS.
    #[arg(long, env = "DOCKER_CONTAINER_FILTERS", default_value = "")]
    docker_container_filters: String,

    /// Reach containers on their network's IPv6 address (GlobalIPv6Address) when they have
    /// one. nginx-proxy's PREFER_IPV6_NETWORK.
    #[arg(long, env = "PREFER_IPV6_NETWORK", default_value = "false")]
    prefer_ipv6_network: String,

    /// The Docker CLI's TLS switch for a `tcp://` engine: any value but empty speaks TLS to
    /// it, verifying its certificate against `ca.pem` and presenting `cert.pem`/`key.pem`, from
    /// DOCKER_CERT_PATH. Ignored with a `unix://` host, as by the Docker CLI. Default: empty.
    #[arg(long, env = "DOCKER_TLS_VERIFY", default_value = "")]
    docker_tls_verify: String,

    /// Folder of `ca.pem`, `cert.pem` and `key.pem` for DOCKER_TLS_VERIFY. Default `~/.docker`.
    #[arg(long, env = "DOCKER_CERT_PATH")]
    docker_cert_path: Option<std::path::PathBuf>,

    /// Name or ID of dockhand's own container, whose networks count as reachable. Default: detect.
    #[arg(long, global = true, env = "DOCKHAND_CONTAINER")]
    container: Option<String>,

    /// Virtual host that answers requests for unknown hosts (otherwise 503).
    #[arg(long, env = "DEFAULT_HOST")]
    default_host: Option<String>,

    /// Keep X-Forwarded-* headers sent by the client (set false when clients connect directly).
    #[arg(long, env = "TRUST_DOWNSTREAM_PROXY", default_value = "true", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    trust_downstream_proxy: bool,

    /// Expect a PROXY protocol header (v1 or v2) from a load balancer at the start of every
    /// connection, HTTP and HTTPS, and use the client address it carries; connections without
    /// one are closed. nginx-proxy's ENABLE_PROXY_PROTOCOL.
    #[arg(long, env = "ENABLE_PROXY_PROTOCOL", default_value = "false")]
    enable_proxy_protocol: String,

    /// Serve HTTP/2 to clients (ALPN h2, h2c by prior knowledge); false serves HTTP/1.1 only.
    /// nginx-proxy's ENABLE_HTTP2.
    #[arg(long, env = "ENABLE_HTTP2", default_value = "true")]
    enable_http2: String,

    /// TLS versions and cipher suites for vhosts without their own SSL_POLICY: Mozilla-Modern,
    /// Mozilla-Intermediate, Mozilla-Old or an AWS-… (ELBSecurityPolicy-…) name.
    #[arg(long, env = "SSL_POLICY", default_value = "Mozilla-Intermediate")]
    ssl_policy: String,

    /// Write logs as JSON lines instead of text.
    #[arg(long, env = "LOG_JSON", default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    log_json: bool,

    /// Keep header names' case on HTTP/1 (client → backend → client), as nginx does; `false`
    /// sends every name in Title-Case, for about 11% fewer instructions per request.
    #[arg(long, env = "DOCKHAND_PRESERVE_HEADER_CASE", default_value = "true", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    preserve_header_case: bool,

    /// Turn off the per-request access log.
    #[arg(long, env = "DISABLE_ACCESS_LOGS", default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    disable_access_logs: bool,

    /// Log filter, in tracing's EnvFilter syntax (e.g. `info`, `dockhand=debug`).
    #[arg(long, env = "DOCKHAND_LOG", default_value = "info")]
    log: String,

    /// Longest wait for a client's request headers.
    #[arg(long, env = "DOCKHAND_HEADER_READ_TIMEOUT", default_value = "30s")]
    header_read_timeout: String,

    /// Idle client connections (no request in flight) are closed after this long; HTTP/2 ones
    /// get a GOAWAY first.
    #[arg(long, env = "DOCKHAND_KEEPALIVE_TIMEOUT", default_value = "60s")]
    keepalive_timeout: String,

    /// A client that accepts no bytes of its response for this long is disconnected.
    #[arg(long, env = "DOCKHAND_SEND_TIMEOUT", default_value = "60s")]
    send_timeout: String,

    /// An upgraded connection (WebSocket) with no byte either way for this long is closed; 0
    /// never closes it.
    #[arg(long, env = "DOCKHAND_TUNNEL_IDLE_TIMEOUT", default_value = "1h")]
    tunnel_idle_timeout: String,

    /// Lingering close: at most this long reading what a client still sends after its answer.
    #[arg(long, env = "DOCKHAND_LINGERING_TIME", default_value = "30s")]
    lingering_time: String,

    /// Lingering close: the longest wait for more bytes from the client.
    #[arg(long, env = "DOCKHAND_LINGERING_TIMEOUT", default_value = "5s")]
    lingering_timeout: String,

    /// Longest gap between two reads of a request body (then 408; nginx's client_body_timeout).
    #[arg(long, env = "DOCKHAND_BODY_READ_TIMEOUT", default_value = "60s")]
    body_read_timeout: String,

    /// Longest wait to connect to a backend before trying the next one.
    #[arg(long, env = "DOCKHAND_CONNECT_TIMEOUT", default_value = "5s")]
    connect_timeout: String,

    /// Longest wait for a backend's response headers once it has the request (then 504).
    #[arg(long, env = "DOCKHAND_RESPONSE_TIMEOUT", default_value = "60s")]
    response_timeout: String,

    /// Idle upstream connections are closed after this long.
    #[arg(long, env = "DOCKHAND_POOL_IDLE_TIMEOUT", default_value = "90s")]
    pool_idle_timeout: String,

    /// Idle connections kept per backend and worker where the `keepalive` label is `auto`: a
    /// number, or `unlimited` (each connection a response frees is kept until the pool idle
    /// timeout, as HAProxy does: no connection churn at any concurrency).
    #[arg(long, env = "DOCKHAND_UPSTREAM_MAX_IDLE", default_value = "unlimited")]
    upstream_max_idle: String,

    /// Largest request header block in bytes (larger gets 431).
    #[arg(long, env = "DOCKHAND_MAX_HEADER_SIZE", default_value = "65536")]
    max_header_size: String,

    /// Consecutive connect failures that eject a backend for a back-off (0 = never eject).
    #[arg(long, env = "DOCKHAND_EJECT_AFTER", default_value = "3")]
    eject_after: String,

    /// First ejection period; doubles while the backend keeps failing.
    #[arg(long, env = "DOCKHAND_EJECT_BACKOFF", default_value = "1s")]
    eject_backoff: String,

    /// Longest ejection period.
    #[arg(long, env = "DOCKHAND_EJECT_BACKOFF_MAX", default_value = "30s")]
    eject_backoff_max: String,

    /// Most client connections served at once per port (split between the workers); more wait
    /// in the accept queue.
    #[arg(long, env = "DOCKHAND_MAX_CONNECTIONS", default_value = "10000")]
    max_connections: String,

    /// HTTP/2 control frames (SETTINGS, PING, PRIORITY, empty or unknown frames) a client
    /// connection may send in a burst before GOAWAY(ENHANCE_YOUR_CALM) closes it (0 = no limit).
    #[arg(long, env = "DOCKHAND_H2_MAX_CONTROL_FRAMES", default_value = "100")]
    h2_max_control_frames: String,

    /// HTTP/2 control frames per second a connection earns back, up to the burst.
    #[arg(
        long,
        env = "DOCKHAND_H2_CONTROL_FRAMES_PER_SECOND",
        default_value = "20"
    )]
    h2_control_frames_per_second: String,

    /// On SIGTERM/SIGINT, how long in-flight requests get to finish.
    #[arg(long, env = "DOCKHAND_SHUTDOWN_GRACE", default_value = "30s")]
    shutdown_grace: String,

    /// Full re-list of containers, as a safety net against missed events.
    #[arg(long, env = "DOCKHAND_RESYNC_INTERVAL", default_value = "60s")]
    resync_interval: String,

    /// Follow Docker Swarm services: auto (on when the engine is a Swarm manager), true or false.
    #[arg(long, env = "DOCKHAND_SWARM", default_value = "auto")]
    swarm: String,

    /// How often Swarm services and tasks are listed (and at once on service and node events).
    #[arg(long, env = "DOCKHAND_SWARM_POLL_INTERVAL", default_value = "1s")]
    swarm_poll_interval: String,

    /// Data-plane worker threads, each with its own runtime (0 = one per core it may use).
    #[arg(long, env = "DOCKHAND_WORKER_THREADS", default_value = "0")]
    worker_threads: String,

    /// Validate the configuration, print it, and exit.
    #[arg(long)]
    pub check: bool,

    /// A tool to run instead of serving (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// dockhand's command-line tools; without one, dockhand serves.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the route table of a running dockhand, from its admin listener.
    ///
    /// Reads `/api/routes` from `--admin` (default 127.0.0.1:9180; an unspecified address such
    /// as 0.0.0.0 means this host). Exit status 1 when it cannot be read.
    Routes {
        /// Print the admin API's JSON (`/api/routes`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print what every running container would route, and every problem; serves nothing.
    ///
    /// Reads the containers as discovery does (`--docker-host`; `--container` names dockhand's
    /// own container, whose networks count as reachable) and tries each port. Exit status 1
    /// when any container is skipped or cannot get traffic, 2 when Docker cannot be reached.
    Check {
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
}

impl Args {
    /// The admin listener address as given (`--admin`, `DOCKHAND_ADMIN`), unvalidated.
    pub fn admin_text(&self) -> &str {
        &self.admin
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Public listener address.
    pub http: SocketAddr,
    /// HTTPS listener address (same IP as `http`).
    pub https: SocketAddr,
    /// Certificate folder.
    pub certs_dir: PathBuf,
    /// Certificate folder poll interval.
    pub certs_poll_interval: Duration,
    /// Admin listener address.
    pub admin: SocketAddr,
    /// Data-plane settings.
    pub proxy: ProxyConfig,
    /// Proxy-wide TLS settings (`ENABLE_HTTP2`, `SSL_POLICY`).
    pub tls: dockhand_proxy::TlsOptions,
    /// Discovery settings.
    pub discovery: dockhand_discovery::Config,
    /// `DEFAULT_HOST`: the vhost serving unknown hosts, whichever provider describes it.
    /// Default: none.
    pub default_host: Option<String>,
    /// Grace period for draining on shutdown.
    pub shutdown_grace: Duration,
    /// Data-plane worker threads (0 = one per core the process may use). Default 0.
    pub worker_threads: usize,
    /// Log filter directive.
    pub log_filter: String,
    /// JSON logs.
    pub log_json: bool,
}

#[cfg(test)]
mod tests;
