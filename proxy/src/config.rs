//! The data plane's settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::policy::network::default_internal_networks;
use crate::vars::{request_var, Template};

/// `DEFAULT_ROOT`: the answer on a vhost whose locations do not cover the path (nginx-proxy's
/// generated `location / { return …; }` for vhosts without a `/` path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DefaultRoot {
    /// `none`: no such location; the request gets dockhand's 404.
    None,
    /// `<status> [text]`, as nginx's `return`: for 301, 302, 303, 307 and 308 the text is the
    /// `Location` (with `$scheme`, `$host`, `$request_uri`, … expanded); for other statuses it
    /// is the body (`text/plain`), else dockhand's page for the status.
    Return {
        /// The status, 200 to 599.
        status: u16,
        /// The `Location` or body, compiled.
        text: Option<Template>,
    },
}

impl Default for DefaultRoot {
    /// nginx-proxy's default: `404`.
    fn default() -> Self {
        DefaultRoot::Return {
            status: 404,
            text: None,
        }
    }
}

impl DefaultRoot {
    /// Parses a `DEFAULT_ROOT` value: `none`, `<status>` or `<status> <text>` (variables known
    /// before the answer: `$scheme`, `$host`, `$request_uri`, `$uri`, `$args`, `$server_port`,
    /// `$remote_addr`, `$request_method`).
    pub fn parse(raw: &str) -> Result<DefaultRoot, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("none") {
            return Ok(DefaultRoot::None);
        }
        let (code, text) = raw.split_once(char::is_whitespace).unwrap_or((raw, ""));
        let status = code
            .parse::<u16>()
            .ok()
            .filter(|s| (200..=599).contains(s))
            .ok_or("expected `none`, a status from 200 to 599, or `<status> <url or text>`")?;
        let text = text.trim();
        let text = match text.trim_matches(|c| c == '"' || c == '\'') {
            "" => None,
            text => Some(Template::compile(text, request_var)?),
        };
        Ok(DefaultRoot::Return { status, text })
    }
}

/// `LOG_FORMAT` and `LOG_FORMAT_ESCAPE`: the access log line as an nginx `log_format`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFormat {
    /// The line, compiled once.
    pub template: Template,
    /// How variable values are escaped.
    pub escape: LogEscape,
}

/// `LOG_FORMAT_ESCAPE`, as nginx's `log_format … escape=`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogEscape {
    /// `default`: `"`, `\` and bytes outside printable ASCII as `\xHH`.
    #[default]
    Default,
    /// `json`: JSON string escapes.
    Json,
    /// `none`: values as they are.
    None,
}

impl LogEscape {
    /// Parses `default`, `json` or `none`.
    pub fn parse(raw: &str) -> Result<LogEscape, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "default" => Ok(LogEscape::Default),
            "json" => Ok(LogEscape::Json),
            "none" => Ok(LogEscape::None),
            _ => Err("supported: default, json, none".to_owned()),
        }
    }
}

/// Settings of the data plane. Every field is public; [`Default`] gives the documented values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Time a client has to send a complete request head: the first request's from accept
    /// (protocol detection and TLS handshake included), a later HTTP/1 request's from its first
    /// byte. Default 30 s (nginx's `client_header_timeout` is 60 s).
    pub header_read_timeout: Duration,
    /// An idle client connection (no request in flight) is closed after this long; HTTP/2
    /// connections are sent a GOAWAY first. Default 60 s (nginx's `keepalive_timeout` 75 s).
    pub keepalive_timeout: Duration,
    /// A client that accepts no bytes of its response for this long is disconnected (measured
    /// between two successful writes, not over the whole response). Default 60 s (nginx's
    /// `send_timeout`).
    pub send_timeout: Duration,
    /// An upgraded connection (WebSocket, or another `Upgrade` protocol) through which no byte
    /// has moved either way for this long is closed; zero never closes it. Default 1 h
    /// (HAProxy's usual `timeout tunnel`; nginx closes one after `proxy_read_timeout`, 60 s,
    /// without a byte from the backend).
    pub tunnel_idle_timeout: Duration,
    /// Lingering close: after answering a client that is still sending (an upload the backend
    /// answered early), what it sends is read and discarded for at most this long before the
    /// connection is closed, so that it can read the answer. Default 30 s (nginx's
    /// `lingering_time`).
    pub lingering_time: Duration,
    /// Lingering close: the longest wait for more bytes while lingering. Default 5 s (nginx's
    /// `lingering_timeout`).
    pub lingering_timeout: Duration,
    /// Longest gap between two successive reads of a request body while it is forwarded
    /// (nginx's `client_body_timeout`; not a limit on the whole body): a client that sends
    /// nothing for this long gets 408, and the backend is not blamed. Default 60 s.
    pub body_read_timeout: Duration,
    /// Time to establish a TCP (and TLS) connection to a backend before trying the next one.
    /// Default 5 s.
    pub connect_timeout: Duration,
    /// Time the backend has for its response head once it has the whole request; then 504.
    /// While the client is still sending the body, waiting is the client's time (see
    /// `body_read_timeout`). Default 60 s (nginx's `proxy_read_timeout`).
    pub response_timeout: Duration,
    /// Largest request header block accepted, request line included; larger gets 431.
    /// Default 64 KiB (at least 8 KiB is enforced for HTTP/1).
    pub max_header_size: usize,
    /// How long an idle pooled backend connection is kept. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per backend and per worker runtime for routes whose `keepalive`
    /// is `auto`. Default `usize::MAX`: no cap, as HAProxy reuses. A connection is idle only
    /// after a response freed it, so the pool never holds more than the peak number of requests
    /// in flight to that backend, and the idle timeout closes what a burst left. A fixed cap
    /// below the requests in flight makes every response beyond it close its connection and the
    /// next request open one: at 256 client connections per worker, the former default of 64
    /// opened a backend connection for most requests (measured in `benches/results/RESULTS.md`).
    pub pool_max_idle_per_host: usize,
    /// `TRUST_DOWNSTREAM_PROXY`: keep client `X-Forwarded-*` values. Default true.
    pub trust_downstream_proxy: bool,
    /// Write one `dockhand::access` log line per request. Default true.
    pub access_log: bool,
    /// Client connections served at once per listener (split evenly between the runtimes of a
    /// [`crate::SharedListener`]). At the limit the idle connections that have waited longest
    /// are closed to admit a new client; only when none is idle do new clients wait in the
    /// accept backlog. Default 10 000.
    pub max_connections: usize,
    /// `HTTPS_PORT`: the public HTTPS port written into HTTP → HTTPS redirects (omitted when
    /// 443). Default 443.
    pub https_port: u16,
    /// Folder whose `.well-known/acme-challenge/<token>` files answer ACME HTTP-01 challenges.
    /// Default `/usr/share/nginx/html`.
    pub acme_webroot: PathBuf,
    /// Folder of htpasswd files (`<vhost>`, `<vhost>_<sha1(path)>`). Default `/etc/nginx/htpasswd`.
    pub htpasswd_dir: PathBuf,
    /// Client networks allowed on `NETWORK_ACCESS=internal` locations; others get 403. Default
    /// nginx-proxy's `network_internal.conf` plus IPv6 loopback and link-local: 127.0.0.0/8,
    /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, ::1/128, fc00::/7, fe80::/10.
    pub network_internal: Vec<IpNet>,
    /// Passive health: consecutive connect failures (refused, timed out, …) after which a
    /// backend is ejected, i.e. skipped by balancing while its location has another backend
    /// that is not ejected. 0 disables ejection. Default 3.
    pub eject_after: u32,
    /// First ejection period; after it the next request probes the backend, and a failed probe
    /// ejects it again for twice as long. Default 1 s.
    pub eject_backoff: Duration,
    /// Longest ejection period. Default 30 s.
    pub eject_backoff_max: Duration,
    /// HTTP/2 control frames (SETTINGS, PING, PRIORITY, empty DATA/HEADERS/CONTINUATION,
    /// unknown types) a client connection may send in a burst; beyond it and its refill the
    /// connection is closed with GOAWAY(ENHANCE_YOUR_CALM). 0 turns the limit off. Default 100:
    /// a browser sends a handful per connection.
    pub h2_max_control_frames: u32,
    /// Control frames per second a connection earns back, up to `h2_max_control_frames`; 0
    /// makes that burst a budget for the connection's lifetime. Default 20: keep-alive PINGs come
    /// seconds apart, the BDP PINGs of adaptive-window clients about ten a second at most.
    pub h2_control_frames_per_second: u32,
    /// `ENABLE_PROXY_PROTOCOL`: every connection (HTTP and HTTPS) starts with a PROXY protocol
    /// header (v1 or v2) from a load balancer in front, whose source address is the client's
    /// address from then on; a connection without a valid header within
    /// `header_read_timeout` is closed. Default false.
    pub proxy_protocol: bool,
    /// `ENABLE_HTTP2`: serve HTTP/2 to clients (ALPN `h2` over TLS, prior knowledge on plain
    /// HTTP). False serves HTTP/1.1 only. Default true.
    pub http2: bool,
    /// HTTP/1: header names keep the case the client (and the backend, for responses) wrote
    /// them in, as nginx passes them; the ones dockhand adds are Title-Case either way. `false`
    /// sends every name in Title-Case and saves about 11% of the instructions per proxied
    /// request (`benches/results/RESULTS.md`, 2026-12-05). Default true.
    pub preserve_header_case: bool,
    /// `DEFAULT_ROOT`. Default `404`.
    pub default_root: DefaultRoot,
    /// `ACME_HTTP_CHALLENGE_ACCEPT_UNKNOWN_HOST`: serve ACME challenge files on plain HTTP for
    /// hosts no vhost names too. Default false (503).
    pub acme_accept_unknown_host: bool,
    /// `DEBUG_ENDPOINT`, the proxy-wide default (vhosts carry their own, in their policy);
    /// reported in the debug answer. Default false.
    pub debug_endpoint: bool,
    /// `LOG_FORMAT`: the access log line; `None` keeps dockhand's structured line. Default none.
    /// Shared: each logged request holds it until its line is written.
    pub log_format: Option<Arc<LogFormat>>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            header_read_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            tunnel_idle_timeout: Duration::from_secs(3600),
            lingering_time: Duration::from_secs(30),
            lingering_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            max_header_size: 64 * 1024,
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: usize::MAX,
            trust_downstream_proxy: true,
            access_log: true,
            max_connections: 10_000,
            https_port: 443,
            acme_webroot: PathBuf::from("/usr/share/nginx/html"),
            htpasswd_dir: PathBuf::from("/etc/nginx/htpasswd"),
            network_internal: default_internal_networks(),
            eject_after: 3,
            eject_backoff: Duration::from_secs(1),
            eject_backoff_max: Duration::from_secs(30),
            h2_max_control_frames: 100,
            h2_control_frames_per_second: 20,
            proxy_protocol: false,
            http2: true,
            preserve_header_case: true,
            default_root: DefaultRoot::default(),
            acme_accept_unknown_host: false,
            debug_endpoint: false,
            log_format: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_root_values() {
        assert_eq!(DefaultRoot::parse("none"), Ok(DefaultRoot::None));
        assert_eq!(
            DefaultRoot::parse("418"),
            Ok(DefaultRoot::Return {
                status: 418,
                text: None
            })
        );
        let DefaultRoot::Return { status, text } =
            DefaultRoot::parse("301 http://$host/web1$request_uri").unwrap()
        else {
            panic!("a return")
        };
        assert_eq!(status, 301);
        let mut out = String::new();
        text.unwrap()
            .render(&mut out, |v, out| out.push_str(&format!("{v:?}")));
        assert_eq!(out, "http://Host/web1RequestUri");
        for bad in ["", "abc", "99", "600", "301 $status", "200 $nope"] {
            assert!(DefaultRoot::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_escapes() {
        assert_eq!(LogEscape::parse("JSON"), Ok(LogEscape::Json));
        assert_eq!(LogEscape::parse("none"), Ok(LogEscape::None));
        assert_eq!(LogEscape::parse("default"), Ok(LogEscape::Default));
        assert!(LogEscape::parse("yaml").is_err());
    }
}
