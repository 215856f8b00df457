//! Header rewriting between client and backend, exactly as nginx-proxy's `proxy.conf` does it.
//!
//! Pure functions over a `HeaderMap`, so every rule is unit-tested with hand-written inputs.
//! The map is edited in place: a request whose headers need no change allocates nothing here
//! beyond the values the proxy adds.

use bytes::BytesMut;
use http::header::{
    HeaderName, HeaderValue, CONNECTION, EXPECT, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::HeaderMap;

/// `X-Real-IP`: the TCP peer.
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Port`.
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
/// `X-Forwarded-Ssl`: `on` when the final `X-Forwarded-Proto` is `https`.
pub const X_FORWARDED_SSL: HeaderName = HeaderName::from_static("x-forwarded-ssl");
/// `X-Original-URI`: the request URI as the client sent it.
pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");

/// How many headers `rewrite_request` may add: `X-Real-IP`, `X-Forwarded-For`, `-Host`,
/// `-Proto`, `-Ssl`, `-Port`, `X-Original-URI`, and `Connection` or `TE`.
const ADDED_HEADERS: usize = 8;

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// `Proxy` is removed against httpoxy (CGI backends turn it into `HTTP_PROXY`).
const PROXY: HeaderName = HeaderName::from_static("proxy");

/// Everything about the client connection and the route that the rewrite needs.
#[derive(Clone, Debug)]
pub struct Forwarding<'a> {
    /// The TCP peer's IP, formatted (`X-Real-IP`, and the `X-Forwarded-For` hop).
    pub peer_ip: &'a HeaderValue,
    /// The request host, normalized: lower-case, no port.
    pub host: &'a str,
    /// The port the client connected to.
    pub server_port: u16,
    /// `server_port`, formatted.
    pub server_port_value: &'a HeaderValue,
    /// With PROXY protocol (`ENABLE_PROXY_PROTOCOL`): the port the client connected to at the
    /// balancer, formatted. Then, when `trust_downstream`, `X-Forwarded-For` is `peer_ip` (the
    /// carried client) alone and `X-Forwarded-Port` this port, whatever the client sent, as
    /// nginx-proxy sets them (`$proxy_protocol_addr`, `$proxy_protocol_server_port`). `None`
    /// otherwise.
    pub proxied_port: Option<&'a HeaderValue>,
    /// Whether the client connection is TLS.
    pub https: bool,
    /// `TRUST_DOWNSTREAM_PROXY`: keep the client's `X-Forwarded-*` values and append to its
    /// `X-Forwarded-For`.
    pub trust_downstream: bool,
    /// The request URI as received (path and query), for `X-Original-URI`.
    pub original_uri: &'a HeaderValue,
    /// Whether an `Upgrade` may be tunnelled (HTTP/1.1 requests only).
    pub allow_upgrade: bool,
    /// Keepalive `disabled`: send `Connection: close` to the backend.
    pub close: bool,
    /// The backend speaks HTTP/2 (h2c, gRPC): keep `TE: trailers`.
    pub h2: bool,
}

/// Rewrites client request headers into backend request headers.
///
/// Returns the `Upgrade` value forwarded when the client asks for a protocol switch (then
/// `Connection: upgrade` is sent too), `None` otherwise.
pub fn rewrite_request(headers: &mut HeaderMap, fwd: &Forwarding<'_>) -> Option<HeaderValue> {
    let mut found = Found::scan(headers);
    let upgrade = found
        .upgrade
        .then(|| headers.get(UPGRADE))
        .flatten()
        .filter(|v| fwd.allow_upgrade && !v.is_empty() && !offers_h2c(v))
        .cloned();
    let trailers = fwd.h2 && found.te && asks_for_trailers(headers);
    if found.hop_by_hop || found.doomed {
        strip_client_only(headers, &found);
        // A `Connection` list may have named a forwarded header: look again at what is left.
        found = Found::scan(headers);
    }

    // Room for the headers added below at once, instead of growing the map twice on the way
    // (a client's ~5 headers fit the map hyper parsed them into). A map that is already at
    // hyper's limit just grows as usual, or fails where `insert` would.
    let _ = headers.try_reserve(ADDED_HEADERS);
    set_host(headers, fwd);
    headers.insert(X_REAL_IP, fwd.peer_ip.clone());
    set_x_forwarded(headers, fwd, &found);
    headers.insert(X_ORIGINAL_URI, fwd.original_uri.clone());

    if let Some(value) = &upgrade {
        headers.insert(UPGRADE, value.clone());
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else if fwd.close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    upgrade
}

/// Whether a `TE` header of the client's asks for `trailers` (kept for HTTP/2 backends: gRPC
/// needs it).
fn asks_for_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(TE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    })
}

/// Removes what `found` says is meant for dockhand alone: hop-by-hop headers, and `Expect`,
/// `Proxy` and underscored names.
fn strip_client_only(headers: &mut HeaderMap, found: &Found) {
    if found.hop_by_hop {
        strip_hop_by_hop(headers);
    }
    if found.doomed {
        headers.remove(EXPECT);
        headers.remove(PROXY);
        strip_underscored(headers);
    }
}

/// `X-Forwarded-For/-Host/-Proto/-Ssl/-Port`: the client's values are kept only when trusted
/// (`TRUST_DOWNSTREAM_PROXY`) and present, as `found` in the stripped headers.
fn set_x_forwarded(headers: &mut HeaderMap, fwd: &Forwarding<'_>, found: &Found) {
    let trusted = |present: bool| fwd.trust_downstream && present;
    // Behind a PROXY-protocol balancer, what it carries replaces the client's own values.
    let proxied = fwd.proxied_port.filter(|_| fwd.trust_downstream);
    set_forwarded_for(
        headers,
        fwd,
        proxied.is_none() && trusted(found.forwarded_for),
    );
    if !trusted(found.forwarded_host) {
        match HeaderValue::from_str(fwd.host) {
            Ok(v) => headers.insert(X_FORWARDED_HOST, v),
            // The host was validated by normalization; nothing sensible to send otherwise.
            Err(_) => headers.remove(X_FORWARDED_HOST),
        };
    }
    let ssl = if trusted(found.forwarded_proto) {
        headers.get(X_FORWARDED_PROTO).is_some_and(|p| p == "https")
    } else {
        let proto = if fwd.https { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        fwd.https
    };
    headers.insert(
        X_FORWARDED_SSL,
        HeaderValue::from_static(if ssl { "on" } else { "off" }),
    );
    if let Some(port) = proxied {
        headers.insert(X_FORWARDED_PORT, port.clone());
    } else if !trusted(found.forwarded_port) {
        headers.insert(X_FORWARDED_PORT, fwd.server_port_value.clone());
    }
}

/// Whether an `Upgrade` list offers `h2c`. Such a request is forwarded without the upgrade:
/// a backend that switched would carry an HTTP/2 connection through the tunnel, whose requests
/// dockhand never sees, bypassing its routing, access rules and logs ("h2c smuggling"); and
/// RFC 9113 §3.1 deprecates the upgrade anyway.
fn offers_h2c(upgrade: &HeaderValue) -> bool {
    upgrade.to_str().is_ok_and(|list| {
        list.split(',')
            .any(|p| p.trim().eq_ignore_ascii_case("h2c"))
    })
}

/// Rewrites backend response headers for the client: hop-by-hop headers go, except that a
/// `101 Switching Protocols` keeps `Upgrade` and `Connection: upgrade`.
pub fn rewrite_response(headers: &mut HeaderMap, switching: bool) {
    let upgrade = if switching {
        headers.get(UPGRADE).cloned()
    } else {
        None
    };
    if Found::scan(headers).hop_by_hop {
        strip_hop_by_hop(headers);
    }
    if let Some(value) = upgrade {
        headers.insert(UPGRADE, value);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// What one pass over the header names found. Most heads carry none of the headers the rewrite
/// removes or keeps from the client, and one scan of the names costs less than a hashed lookup
/// per name (callgrind: the eight removals per request were 3% of the proxy's instructions, the
/// six lookups of forwarded headers and `Upgrade` 2%).
#[derive(Default)]
struct Found {
    /// `Connection` or a standard hop-by-hop header.
    hop_by_hop: bool,
    /// `Expect`, `Proxy` or a name with an underscore.
    doomed: bool,
    upgrade: bool,
    te: bool,
    forwarded_for: bool,
    forwarded_host: bool,
    forwarded_proto: bool,
    forwarded_port: bool,
}

impl Found {
    /// One `match` on each (lower-case) name: it compiles to a switch on the length, then one
    /// comparison. Comparing each name with the `HeaderName` constants in turn, and a `memchr`
    /// for `_` in every name, cost 250 instructions more per request (callgrind, 0.5%;
    /// benches/results/RESULTS.md, 2026-12-06 10:03).
    fn scan(headers: &HeaderMap) -> Found {
        let mut found = Found::default();
        for name in headers.keys() {
            match name.as_str() {
                "connection" | "keep-alive" | "proxy-connection" | "trailer"
                | "transfer-encoding" => found.hop_by_hop = true,
                "te" => (found.hop_by_hop, found.te) = (true, true),
                "upgrade" => (found.hop_by_hop, found.upgrade) = (true, true),
                "expect" | "proxy" => found.doomed = true,
                "x-forwarded-for" => found.forwarded_for = true,
                "x-forwarded-host" => found.forwarded_host = true,
                "x-forwarded-proto" => found.forwarded_proto = true,
                "x-forwarded-port" => found.forwarded_port = true,
                other => found.doomed |= other.bytes().any(|b| b == b'_'),
            }
        }
        found
    }
}

/// The standard hop-by-hop headers, removed whatever `Connection` says (`Found::scan` knows
/// them too).
const HOP_BY_HOP: [HeaderName; 6] = [
    KEEP_ALIVE,
    PROXY_CONNECTION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes `Connection`, the headers it names, and the standard hop-by-hop headers.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let (first, more) = {
        let mut values = headers.get_all(CONNECTION).iter();
        (values.next().cloned(), values.next().is_some())
    };
    if let Some(first) = first {
        if more {
            let all: Vec<HeaderValue> = headers.get_all(CONNECTION).iter().cloned().collect();
            all.iter().for_each(|v| remove_listed(headers, v));
        } else {
            remove_listed(headers, &first);
        }
        headers.remove(CONNECTION);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn remove_listed(headers: &mut HeaderMap, connection: &HeaderValue) {
    let Ok(list) = connection.to_str() else {
        return;
    };
    for token in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        // `&str` keys are matched case-insensitively without allocating; invalid names are no-ops.
        headers.remove(token);
    }
}

/// nginx drops header names containing `_` (`underscores_in_headers off`): they would collide
/// with dash names once a CGI-style backend maps both to `HTTP_X_…`.
fn strip_underscored(headers: &mut HeaderMap) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().contains('_'))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// `Host: host[:port]`, the port only when it is not 80 or 443 (nginx-proxy's `$host$host_port`).
/// Reuses the client's value when it is already exactly that.
fn set_host(headers: &mut HeaderMap, fwd: &Forwarding<'_>) {
    let with_port = !matches!(fwd.server_port, 80 | 443);
    let same = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| match v.strip_prefix(fwd.host) {
            Some("") => !with_port,
            Some(rest) => {
                with_port && rest.strip_prefix(':') == fwd.server_port_value.to_str().ok()
            }
            None => false,
        });
    if same {
        return;
    }
    let value = if with_port {
        // Assembled by hand: `format!` costs twice as much, on every request to a port other
        // than 80 and 443.
        let port = fwd.server_port_value.as_bytes();
        let mut value = BytesMut::with_capacity(fwd.host.len() + 1 + port.len());
        value.extend_from_slice(fwd.host.as_bytes());
        value.extend_from_slice(b":");
        value.extend_from_slice(port);
        HeaderValue::from_maybe_shared(value.freeze())
    } else {
        HeaderValue::from_str(fwd.host)
    };
    if let Ok(value) = value {
        headers.insert(HOST, value);
    }
}

/// `X-Forwarded-For`: the peer, appended to the client's list when `keep` (trusted and present).
fn set_forwarded_for(headers: &mut HeaderMap, fwd: &Forwarding<'_>, keep: bool) {
    let prior = if keep {
        let mut values = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok());
        values.next().map(|first| {
            let mut joined = first.to_owned();
            for v in values {
                joined.push_str(", ");
                joined.push_str(v);
            }
            joined
        })
    } else {
        None
    };
    let value = match prior {
        Some(mut chain) => {
            chain.push_str(", ");
            // The peer IP value is ASCII by construction.
            chain.push_str(fwd.peer_ip.to_str().unwrap_or_default());
            HeaderValue::from_str(&chain).unwrap_or_else(|_| fwd.peer_ip.clone())
        }
        None => fwd.peer_ip.clone(),
    };
    headers.insert(X_FORWARDED_FOR, value);
}

#[cfg(test)]
mod tests;
