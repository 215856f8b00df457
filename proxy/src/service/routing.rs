//! Deciding where a request goes: host → vhost (or `DEFAULT_HOST`) → location → candidates, and
//! rewriting its head for the backend. Synchronous: the table guard never crosses an `.await`.
//! What is refused before routing, whatever the host, is in `wellformed`.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, StatusCode, Version};
use hyper::upgrade::OnUpgrade;

use self::wellformed::{malformed, refused_head, HostSource};
use super::{debug, Conn, Shared, Stamp};
use crate::balance::{self, Candidates};
use crate::config::DefaultRoot;
use crate::error::ErrorKind;
use crate::forward::{self, Forwarding};
use crate::metrics::VhostMetrics;
use crate::path::{encode_path, normalize_path, redirect_location, replace_prefix, Selected};
use crate::policy::network::is_internal;
use crate::policy::{acme, effective_method, gate, hsts_applies, Gate, RequestFacts, ACME_PREFIX};
use crate::spec::{HttpsMethod, Keepalive, NetworkAccess, Proto};
use crate::table::{Route, Vhost};
use crate::vars::Var;

/// The client certificate's verification result (mTLS), nginx's `$ssl_client_verify`.
const X_SSL_CLIENT_VERIFY: http::HeaderName = http::HeaderName::from_static("x-ssl-client-verify");

/// A routed request, ready to be sent.
pub(super) struct Plan {
    pub(super) route: Arc<Route>,
    pub(super) metrics: Arc<VhostMetrics>,
    pub(super) candidates: Candidates,
    pub(super) path_and_query: PathAndQuery,
    /// The client side of a protocol switch the backend is asked for.
    pub(super) upgrade: Option<OnUpgrade>,
    /// The headers every answer gets (`Strict-Transport-Security`, `Server`).
    pub(super) stamp: Stamp,
}

/// How the proxy answers a request itself.
pub(super) enum Refused {
    Error(ErrorKind),
    Redirect(StatusCode, String),
    /// Serve this (validated) ACME challenge token.
    Acme(String),
    /// A `DEFAULT_ROOT` status, with its text as the body.
    Status(StatusCode, Option<Bytes>),
    /// The debug endpoint's JSON.
    Json(Bytes),
}

/// A request the proxy answers itself, the vhost it is accounted to, and its headers.
pub(super) struct Refusal {
    pub(super) refused: Refused,
    pub(super) metrics: Arc<VhostMetrics>,
    pub(super) stamp: Stamp,
}

/// Builds the refusals of one vhost, all accounted to it and carrying its headers.
struct Refuser {
    metrics: Arc<VhostMetrics>,
    stamp: Stamp,
}

impl Refuser {
    fn with(&self, refused: Refused) -> Refusal {
        Refusal {
            refused,
            metrics: self.metrics.clone(),
            stamp: self.stamp.clone(),
        }
    }

    fn error(&self, kind: ErrorKind) -> Refusal {
        self.with(Refused::Error(kind))
    }
}

/// Routes `parts` and rewrites its headers for the backend.
pub(super) fn plan(shared: &Shared, conn: &Conn, parts: &mut Parts) -> Result<Plan, Refusal> {
    let unknown = |kind| unknown(shared, kind);
    if let Some(kind) = malformed(parts) {
        return Err(unknown(kind));
    }
    let source = HostSource::of(parts).map_err(unknown)?;
    let host = match &source {
        Some(source) => Some(
            source
                .normalized()
                .ok_or_else(|| unknown(ErrorKind::BadRequest))?,
        ),
        // HTTP/1.0 may omit the host; it then goes to `DEFAULT_HOST`, like nginx's default server.
        None if parts.version <= Version::HTTP_10 => None,
        None => return Err(unknown(ErrorKind::BadRequest)),
    };
    let vhost = {
        let table = shared.table.load();
        match &host {
            Some(host) => table.vhost(host),
            None => table.fallback(),
        }
        .cloned()
    };
    let vhost = vhost.ok_or_else(|| unknown_host(shared, conn, parts))?;
    let effective = effective(shared, &vhost);
    let refuse = Refuser {
        metrics: vhost.metrics.clone(),
        stamp: Stamp {
            hsts: vhost
                .hsts
                .clone()
                .filter(|_| hsts_applies(effective, conn.info.tls)),
            server_tokens: vhost.https.server_tokens,
        },
    };
    if let Some(kind) = refused_head(parts, shared.config.max_header_size) {
        return Err(refuse.error(kind));
    }
    let host = host.as_deref().unwrap_or(&vhost.host);
    let uri = parts.uri.clone();
    admit(shared, conn, &vhost, effective, parts, host, &refuse)?;
    let external = if conn.info.tls {
        vhost.https.external_https_port
    } else {
        vhost.https.external_http_port
    };
    // A copy, as `parts` is rewritten below (a standard method's copy allocates nothing).
    let method = parts.method.clone();
    let req = Req {
        conn,
        host,
        uri: &uri,
        method: &method,
        port: external.unwrap_or(conn.info.local.port()),
    };
    let (route, path_and_query) = locate(shared, &vhost, &req, &refuse)?;
    permit(shared, conn, &route, &refuse)?;
    let upgrade = rewrite_head(shared, &req, external, parts, &route);
    let candidates = balance::candidates(
        route.balance,
        &route.cursor,
        conn.info.peer.ip(),
        route.targets.len(),
        |i| route.targets[i].state.in_flight(),
    );
    Ok(Plan {
        metrics: vhost.metrics.clone(),
        route,
        candidates,
        path_and_query,
        upgrade,
        stamp: refuse.stamp,
    })
}

/// What a request's answer may depend on once its vhost is known.
struct Req<'a> {
    conn: &'a Conn,
    /// The request host, normalized.
    host: &'a str,
    uri: &'a http::Uri,
    method: &'a Method,
    /// The port the client uses: the vhost's external port for the scheme, else the
    /// listener's.
    port: u16,
}

/// The unknown-host answer family (503 or 400), accounted to no vhost and without HSTS.
fn unknown(shared: &Shared, kind: ErrorKind) -> Refusal {
    Refusal {
        refused: Refused::Error(kind),
        metrics: shared.metrics.unknown(),
        stamp: Stamp::default(),
    }
}

/// The answer for a host no vhost serves: 503, or the ACME challenge file on plain HTTP with
/// `ACME_HTTP_CHALLENGE_ACCEPT_UNKNOWN_HOST` (nginx-proxy's fallback server then has the ACME
/// location too).
fn unknown_host(shared: &Shared, conn: &Conn, parts: &Parts) -> Refusal {
    if shared.config.acme_accept_unknown_host && !conn.info.tls {
        if let Some(token) = parts.uri.path().strip_prefix(ACME_PREFIX) {
            let refused = if acme::is_token(token) {
                Refused::Acme(token.to_owned())
            } else {
                Refused::Error(ErrorKind::NoPath)
            };
            return Refusal {
                refused,
                ..unknown(shared, ErrorKind::UnknownHost)
            };
        }
    }
    unknown(shared, ErrorKind::UnknownHost)
}

/// Applies the vhost's HTTPS policy before location routing: the HTTPS redirect, the ACME
/// location, and schemes the vhost does not serve.
fn admit(
    shared: &Shared,
    conn: &Conn,
    vhost: &Vhost,
    effective: HttpsMethod,
    parts: &Parts,
    host: &str,
    refuse: &Refuser,
) -> Result<(), Refusal> {
    let facts = RequestFacts {
        tls: conn.info.tls,
        method: &parts.method,
        host,
        path_and_query: parts.uri.path_and_query().map_or("/", PathAndQuery::as_str),
        https_port: (vhost.https.external_https_port).unwrap_or(shared.config.https_port),
    };
    let gate = gate(&vhost.https, effective, &facts);
    // nginx-proxy puts the debug location in the vhost's port-80 server (the redirecting one
    // too) and in its HTTPS server.
    if vhost.https.debug_endpoint
        && matches!(gate, Gate::Proxy | Gate::Redirect { .. })
        && parts.uri.path().starts_with(debug::PATH)
    {
        let json = debug::answer(shared, conn, vhost, parts, host);
        return Err(refuse.with(Refused::Json(json)));
    }
    match gate {
        Gate::Proxy => Ok(()),
        Gate::Redirect { status, location } => {
            Err(refuse.with(Refused::Redirect(status, location)))
        }
        Gate::Acme(token) => Err(refuse.with(Refused::Acme(token))),
        Gate::NotFound => Err(refuse.error(ErrorKind::NoPath)),
        Gate::Unknown => Err(unknown(shared, ErrorKind::UnknownHost)),
    }
}

/// Location-level refusals: `NETWORK_ACCESS=internal` for outside clients (403), then no
/// backend to send to: 503 when health checks hold reachable ones back, else 502.
fn permit(shared: &Shared, conn: &Conn, route: &Route, refuse: &Refuser) -> Result<(), Refusal> {
    let internal = &shared.config.network_internal;
    if route.network_access == NetworkAccess::Internal
        && !is_internal(internal, conn.info.peer.ip())
    {
        return Err(refuse.error(ErrorKind::Forbidden));
    }
    if route.targets.is_empty() {
        let kind = if route.held_back {
            ErrorKind::Unhealthy
        } else {
            ErrorKind::NoBackend
        };
        refuse.metrics.error(kind);
        return Err(refuse.error(kind));
    }
    Ok(())
}

/// The vhost's effective `HTTPS_METHOD`; the certificate lookup is asked only when its answer
/// can change the method.
fn effective(shared: &Shared, vhost: &Vhost) -> HttpsMethod {
    let policy = &vhost.https;
    let matters = policy.http_on_missing_cert
        && matches!(policy.method, HttpsMethod::Redirect | HttpsMethod::NoHttp);
    let cert_ok = !matters || shared.certs.load().0.has_usable_cert(&vhost.host, policy);
    effective_method(policy, cert_ok)
}

/// The location serving the request, and the path and query to send it.
fn locate(
    shared: &Shared,
    vhost: &Vhost,
    req: &Req<'_>,
    refuse: &Refuser,
) -> Result<(Arc<Route>, PathAndQuery), Refusal> {
    let (conn, host, uri) = (req.conn, req.host, req.uri);
    let path = normalize_path(uri.path()).ok_or_else(|| refuse.error(ErrorKind::BadRequest))?;
    let (route, matched) = match vhost.locations.select(&path) {
        None => return Err(default_root(&shared.config.default_root, req, refuse)),
        Some(Selected::AddSlash { location }) => {
            let target = redirect_location(conn.info.tls, host, req.port, location, uri.query());
            let status = StatusCode::MOVED_PERMANENTLY;
            return Err(refuse.with(Refused::Redirect(status, target)));
        }
        Some(Selected::Location { value, matched }) => (value.clone(), matched),
    };
    let normalized = matches!(path, Cow::Owned(_));
    let path_and_query = upstream_path(&route, &path, normalized, matched, uri)
        .ok_or_else(|| refuse.error(ErrorKind::BadRequest))?;
    Ok((route, path_and_query))
}

/// `DEFAULT_ROOT`: the answer when no location covers the path (nginx-proxy generates
/// `location / { return <DEFAULT_ROOT>; }` for vhosts without a `/` path).
fn default_root(root: &DefaultRoot, req: &Req<'_>, refuse: &Refuser) -> Refusal {
    let DefaultRoot::Return { status, text } = root else {
        return refuse.error(ErrorKind::NoPath);
    };
    let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::NOT_FOUND);
    let text = text.as_ref().map(|template| {
        let mut out = String::new();
        template.render(&mut out, |var, out| request_var(req, var, out));
        out
    });
    match (status.as_u16(), text) {
        (404, None) => refuse.error(ErrorKind::NoPath),
        (301 | 302 | 303 | 307 | 308, Some(location)) => {
            refuse.with(Refused::Redirect(status, location))
        }
        (_, text) => refuse.with(Refused::Status(status, text.map(Bytes::from))),
    }
}

/// Appends the value of a variable known before the answer (see [`crate::vars::request_var`]).
fn request_var(req: &Req<'_>, var: &Var, out: &mut String) {
    use std::fmt::Write as _;
    let uri = req.uri;
    let _ = match var {
        Var::Scheme => write!(out, "{}", if req.conn.info.tls { "https" } else { "http" }),
        Var::Host => write!(out, "{}", req.host),
        Var::RequestUri => write!(
            out,
            "{}",
            uri.path_and_query().map_or("/", PathAndQuery::as_str)
        ),
        Var::Uri => write!(out, "{}", uri.path()),
        Var::Args => write!(out, "{}", uri.query().unwrap_or_default()),
        Var::ServerPort => write!(out, "{}", req.port),
        Var::RemoteAddr => write!(out, "{}", req.conn.info.peer.ip().to_canonical()),
        Var::RequestMethod => write!(out, "{}", req.method),
        // Refused when `DEFAULT_ROOT` is compiled.
        _ => Ok(()),
    };
}

/// The path and query sent upstream: unchanged, or with the location prefix replaced by
/// `VIRTUAL_DEST` (then from the normalized path, re-encoded, as nginx does).
fn upstream_path(
    route: &Route,
    path: &str,
    normalized: bool,
    matched: Option<usize>,
    uri: &http::Uri,
) -> Option<PathAndQuery> {
    let (Some(dest), Some(matched)) = (&route.dest, matched) else {
        return Some(
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
    };
    let mut target = replace_prefix(path, matched, dest);
    if normalized {
        target = encode_path(&target);
    }
    if let Some(query) = uri.query() {
        target.push('?');
        target.push_str(query);
    }
    PathAndQuery::try_from(target).ok()
}

/// Applies the nginx-proxy header rules; returns the client's upgrade handle when the request
/// asks for a protocol switch that will be forwarded.
fn rewrite_head(
    shared: &Shared,
    req: &Req<'_>,
    external: Option<u16>,
    parts: &mut Parts,
    route: &Route,
) -> Option<OnUpgrade> {
    let conn = req.conn;
    let original = req.uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let original = HeaderValue::from_str(original).unwrap_or(HeaderValue::from_static("/"));
    // `EXTERNAL_HTTP(S)_PORT`: the port clients use, where nginx-proxy's vhost listens.
    let external_value = external.map(HeaderValue::from);
    let forwarding = Forwarding {
        peer_ip: &conn.peer_ip,
        host: req.host,
        server_port: req.port,
        server_port_value: external_value.as_ref().unwrap_or(&conn.port),
        proxied_port: conn.proxied_port.as_ref(),
        https: conn.info.tls,
        trust_downstream: shared.config.trust_downstream_proxy,
        original_uri: &original,
        allow_upgrade: parts.version == Version::HTTP_11 && route.proto != Proto::H2c,
        close: route.keepalive == Keepalive::Disabled,
        h2: route.proto == Proto::H2c,
    };
    if let Some(verify) = conn.info.client_verify {
        // Always set, never the client's own value, as nginx's `$ssl_client_verify` is.
        parts.headers.insert(
            X_SSL_CLIENT_VERIFY,
            HeaderValue::from_static(verify.result.as_str()),
        );
    }
    forward::rewrite_request(&mut parts.headers, &forwarding)?;
    parts.extensions.remove::<OnUpgrade>()
}

mod wellformed;

#[cfg(test)]
mod tests;
