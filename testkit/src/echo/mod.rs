//! The echo backend: a small HTTP server that answers every request with a JSON description of
//! what it received, so a test can see exactly what a proxy forwarded.
//!
//! The `echo-backend` binary is a thin wrapper around [`Server`]; the server lives in the library
//! so that tests can also run it in-process on loopback with [`spawn`] (no Docker needed), and so
//! that the JSON format ([`Echo`]) has one definition shared by the server and its readers.
//!
//! Routes (any method):
//! - `/status/<code>`: answers `<code>` (200–999) with the echo body;
//! - `/delay/<ms>`: waits `<ms>` milliseconds (at most [`MAX_DELAY_MS`]), then echoes;
//! - `/stream/<n>`: streams `n` chunks (at most [`MAX_STREAM_CHUNKS`]), [`STREAM_INTERVAL`] apart;
//! - `/health/ok`, `/health/fail`: set the health flag that `/healthz` reports (200 or 500);
//! - `/ws`: WebSocket echo of text and binary messages;
//! - anything else: 200 with the echo body.
//!
//! Every response carries `X-Backend: <name>`.

mod background;
mod raw;
mod routes;
mod server;
mod tls;
mod ws;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use background::{spawn, Running};
pub use server::Server;

/// Line the server prints on stdout once every listener is bound; container helpers wait for it.
pub const READY_LINE: &str = "echo-backend ready";

/// Longest wait `/delay/<ms>` accepts; longer values are clamped to it.
pub const MAX_DELAY_MS: u64 = 600_000;

/// Most chunks `/stream/<n>` sends; larger values are clamped to it.
pub const MAX_STREAM_CHUNKS: u64 = 10_000;

/// Pause between two chunks of `/stream/<n>`.
pub const STREAM_INTERVAL: Duration = Duration::from_millis(100);

/// How long the server waits for in-flight requests after a shutdown signal before it gives up.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the server listens on and how it names itself.
#[derive(Clone, Debug)]
pub struct Config {
    /// Plain-HTTP ports (HTTP/1.1 and h2c), each on IPv6 and IPv4 when the host has IPv6, IPv4
    /// only otherwise. Port 0 picks a free port (see [`Server::http_addrs`]). Default: `[80]`.
    pub ports: Vec<u16>,
    /// Optional HTTPS port (HTTP/1.1 and h2 by ALPN) with a self-signed certificate generated at
    /// start. Default: none.
    pub tls_port: Option<u16>,
    /// Name reported in the `name` field and the `X-Backend` header. Default: the hostname.
    pub name: String,
    /// Hostname reported in the `hostname` field. Default: [`local_hostname`].
    pub hostname: String,
}

impl Default for Config {
    fn default() -> Self {
        let hostname = local_hostname();
        Config {
            ports: vec![80],
            tls_port: None,
            name: hostname.clone(),
            hostname,
        }
    }
}

/// The JSON body of an echo response: what the backend saw of the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// The backend's hostname (in a container: the short container id unless `--hostname`).
    pub hostname: String,
    /// `BACKEND_NAME`, or the hostname when unset.
    pub name: String,
    /// Local port the request arrived on.
    pub port: u16,
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Request target as received (origin form for HTTP/1, absolute for h2).
    pub uri: String,
    /// Path part of the target.
    pub path: String,
    /// Query string without `?`, if any.
    pub query: Option<String>,
    /// Protocol version, e.g. `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Whether the request came over the TLS port.
    pub tls: bool,
    /// Request headers by lower-case name; a header sent several times gives a list.
    pub headers: BTreeMap<String, HeaderValues>,
    /// HTTP/1 request header names exactly as written on the wire (case kept), in order;
    /// empty for HTTP/2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_names: Vec<String>,
    /// Peer address of the connection (the proxy, when proxied).
    pub remote: String,
    /// Length in bytes of the request body.
    pub body_len: u64,
}

/// One header's value(s) in an [`Echo`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValues {
    /// The header appeared once.
    One(String),
    /// The header appeared several times, in order.
    Many(Vec<String>),
}

impl Echo {
    /// First value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    /// Every value of header `name` (case-insensitive), in the order received.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        match self.headers.get(&name.to_ascii_lowercase()) {
            None => Vec::new(),
            Some(HeaderValues::One(v)) => vec![v.as_str()],
            Some(HeaderValues::Many(vs)) => vs.iter().map(String::as_str).collect(),
        }
    }
}

/// The hostname as a container sees it: `/etc/hostname` (which Docker bind-mounts), else the
/// kernel's UTS name, else `unknown`.
pub fn local_hostname() -> String {
    ["/etc/hostname", "/proc/sys/kernel/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_is_case_insensitive_and_keeps_order() {
        let mut headers = BTreeMap::new();
        headers.insert("x-one".to_owned(), HeaderValues::One("1".to_owned()));
        headers.insert(
            "x-many".to_owned(),
            HeaderValues::Many(vec!["a".to_owned(), "b".to_owned()]),
        );
        let echo = Echo {
            hostname: "h".into(),
            name: "n".into(),
            port: 80,
            method: "GET".into(),
            uri: "/".into(),
            path: "/".into(),
            query: None,
            version: "HTTP/1.1".into(),
            tls: false,
            headers,
            header_names: Vec::new(),
            remote: "127.0.0.1:1".into(),
            body_len: 0,
        };
        assert_eq!(echo.header("X-One"), Some("1"));
        assert_eq!(echo.header("x-many"), Some("a"));
        assert_eq!(echo.header_all("X-MANY"), vec!["a", "b"]);
        assert_eq!(echo.header("absent"), None);

        let json = serde_json::to_value(&echo).expect("plain data serializes");
        assert_eq!(json["headers"]["x-one"], "1");
        assert_eq!(json["headers"]["x-many"][1], "b");
        let back: Echo = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, echo);
    }
}
