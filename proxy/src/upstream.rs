//! Pooled keep-alive clients to the backends: plain HTTP/1.1, HTTPS without verification or SNI
//! (as nginx's `proxy_pass https://`), and HTTP/2 with prior knowledge (h2c, gRPC).
//!
//! hyper-util's legacy `Client` provides the pool (idle timeout, per-host idle limit, readiness
//! checks, h2 multiplexing, upgrades). Its one gap for a proxy, giving the request back after a
//! connect failure so that the next backend can be tried, is covered by [`crate::body`]: a
//! connect error means no connection ever carried the request, so the body is still unpolled in
//! its slot and can be reclaimed without buffering anything.

mod tls;

use std::error::Error as _;
use std::io;
use std::time::Duration;

use dashmap::DashMap;
use http::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, Error, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::UpstreamBody;
use crate::error::ErrorKind;
use crate::spec::{Keepalive, Proto};

/// Pool settings shared by every upstream client.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_idle_per_host: usize,
}

/// The upstream clients, one pool per protocol and idle limit.
pub(crate) struct Upstream {
    settings: PoolSettings,
    http: Pool,
    https: Pool,
    h2c: Pool,
    /// Pools for routes with a `keepalive` label (`Max(n)`, or `Disabled` as 0), made on first
    /// use: labels are few.
    custom: DashMap<(Proto, usize), Pool>,
}

#[derive(Clone)]
enum Pool {
    Plain(Client<HttpConnector, UpstreamBody>),
    Tls(Client<HttpsConnector<HttpConnector>, UpstreamBody>),
}

impl Upstream {
    pub(crate) fn new(settings: PoolSettings) -> Upstream {
        let max = settings.max_idle_per_host;
        Upstream {
            settings,
            http: Pool::new(Proto::Http, max, &settings),
            https: Pool::new(Proto::Https, max, &settings),
            h2c: Pool::new(Proto::H2c, max, &settings),
            custom: DashMap::new(),
        }
    }

    /// Sends `req` (whose URI names the backend) on a pooled connection.
    pub(crate) fn send(
        &self,
        proto: Proto,
        keepalive: Keepalive,
        req: Request<UpstreamBody>,
    ) -> ResponseFuture {
        let max_idle = match keepalive {
            Keepalive::Auto => {
                return match proto {
                    Proto::Http => self.http.request(req),
                    Proto::Https => self.https.request(req),
                    Proto::H2c => self.h2c.request(req),
                }
            }
            Keepalive::Max(n) => n,
            Keepalive::Disabled => 0,
        };
        let pool = self
            .custom
            .entry((proto, max_idle))
            .or_insert_with(|| Pool::new(proto, max_idle, &self.settings))
            .clone();
        pool.request(req)
    }
}

impl Pool {
    fn new(proto: Proto, max_idle: usize, settings: &PoolSettings) -> Pool {
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(settings.connect_timeout));
        tcp.set_keepalive(Some(Duration::from_secs(60)));
        // The https connector wraps this one and needs it to accept `https://` URIs.
        tcp.enforce_http(false);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(settings.idle_timeout)
            .pool_max_idle_per_host(max_idle)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // The proxy sets `Host` itself (the client's, not the backend address).
            .set_host(false);
        match proto {
            Proto::Http => Pool::Plain(builder.build(tcp)),
            Proto::H2c => Pool::Plain(builder.http2_only(true).build(tcp)),
            Proto::Https => Pool::Tls(builder.build(tls::connector(tcp))),
        }
    }

    fn request(&self, req: Request<UpstreamBody>) -> ResponseFuture {
        match self {
            Pool::Plain(client) => client.request(req),
            Pool::Tls(client) => client.request(req),
        }
    }
}

/// What a failed upstream exchange means for the client and for retrying.
pub(crate) fn classify(err: &Error) -> ErrorKind {
    if !err.is_connect() {
        return ErrorKind::UpstreamReset;
    }
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return ErrorKind::ConnectRefused,
                io::ErrorKind::TimedOut => return ErrorKind::ConnectTimeout,
                _ => {}
            }
        }
        source = e.source();
    }
    ErrorKind::ConnectFailed
}

/// Whether a failed exchange broke the connection before the backend answered, so that an
/// idempotent request may be sent again: the connection was reset or closed (including a pooled
/// one the backend closed as it was reused). Malformed answers, timeouts and errors of the
/// client's own body are not: the backend may be broken, or the body is gone.
pub(crate) fn broke_before_answer(err: &Error) -> bool {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            if hyper.is_incomplete_message() || hyper.is_canceled() || hyper.is_closed() {
                return true;
            }
            if hyper.is_parse() || hyper.is_user() || hyper.is_timeout() {
                return false;
            }
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            );
        }
        source = e.source();
    }
    false
}
