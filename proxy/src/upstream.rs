//! Keep-alive connections to the backends: HTTP/1.1, plain or over TLS without verification or
//! SNI (as nginx's `proxy_pass https://`), and HTTP/2 with prior knowledge (h2c, gRPC).
//!
//! HTTP/1.1 goes through dockhand's own [`pool::Pool`] of hyper client connections, each driven
//! by the task of the request using it ([`conn`]): one task per client connection, none per
//! backend connection. h2c multiplexes many requests on one connection, which therefore needs
//! a task of its own; hyper-util's legacy `Client` provides it, and its pool.
//!
//! The request body sent upstream ([`request`]) can be taken back after a connect failure: no
//! connection ever carried the request, so its body is untouched and the next backend can be
//! tried. It also tells the client's faults from the backend's.

mod conn;
mod counted;
mod pool;
mod request;
mod tls;

use std::error::Error as _;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio_rustls::TlsConnector;

pub(crate) use self::conn::Upgraded;
use self::conn::{Conn, Failed, Key};
use self::counted::Counted;
use self::pool::Pool;
use crate::error::ErrorKind;
use crate::metrics::Opened;
use crate::spec::{Keepalive, Proto};

pub(crate) use self::request::{Pending, Reclaim, Upload, UpstreamBody};

/// Pool settings shared by every upstream client.
#[derive(Clone, Debug)]
pub(crate) struct PoolSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_idle_per_host: usize,
    pub(crate) opened: Opened,
    /// `dockhand_upstream_parked_connections`.
    pub(crate) parked: prometheus::IntGauge,
    /// Keep the client's header-name case on backend connections (see
    /// [`crate::ProxyConfig::preserve_header_case`]).
    pub(crate) preserve_header_case: bool,
}

/// The connections of one data-plane runtime to every backend.
pub(crate) struct Upstream {
    settings: PoolSettings,
    pool: Arc<Pool>,
    tls: TlsConnector,
    /// h2c clients by idle limit (`keepalive` label), made on first use: limits are few.
    h2c: DashMap<usize, Client<Counted, UpstreamBody>>,
}

/// Why a request got no response head from its backend.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection: refused, timed out, unreachable, or the TLS handshake failed.
    Connect(io::Error),
    /// The HTTP/1.1 exchange failed.
    Exchange(hyper::Error),
    /// The h2c client failed (connecting or exchanging).
    H2c(hyper_util::client::legacy::Error),
}

/// A backend connection on loan to one response, given back when its body has been read.
///
/// Two pointers (the connection is boxed, and carries its route's idle limit): the lease
/// travels in every proxied response's body, and `http::Response<ProxyBody>` stays within
/// the 256 bytes that glibc copies on its short path (benches/results/RESULTS.md,
/// 2026-12-06 11:00).
pub(crate) struct Lease {
    conn: Box<Conn>,
    pool: Arc<Pool>,
}

impl Upstream {
    pub(crate) fn new(settings: PoolSettings) -> Upstream {
        Upstream {
            pool: Arc::new(Pool::new(settings.idle_timeout, settings.parked.clone())),
            settings,
            tls: TlsConnector::from(Arc::new(tls::client_config())),
            h2c: DashMap::new(),
        }
    }

    /// Sends `req` to the backend at `addr`, on an idle pooled connection unless `fresh`.
    ///
    /// For HTTP/1.1 `req` carries the origin-form URI and the response comes with the
    /// connection it arrived on, to drive while its body streams; for h2c `req` carries the
    /// absolute URI, and there is no lease.
    pub(crate) async fn send(
        &self,
        addr: SocketAddr,
        proto: Proto,
        keepalive: Keepalive,
        req: Request<UpstreamBody>,
        fresh: bool,
    ) -> Result<(Response<Incoming>, Option<Lease>), SendError> {
        let max_idle = match keepalive {
            Keepalive::Auto => self.settings.max_idle_per_host,
            Keepalive::Max(n) => n,
            Keepalive::Disabled => 0,
        };
        let tls = match proto {
            Proto::Http => false,
            Proto::Https => true,
            Proto::H2c => {
                let client = self.h2c_client(max_idle);
                let response = client.request(req).await.map_err(SendError::H2c)?;
                return Ok((response, None));
            }
        };
        let key = Key { addr, tls };
        let (response, mut conn) = self.exchange(key, req, fresh).await?;
        conn.max_idle = max_idle;
        let lease = Lease {
            conn,
            pool: self.pool.clone(),
        };
        Ok((response, Some(lease)))
    }

    /// One HTTP/1.1 exchange. A pooled connection that turns out closed before the request
    /// left is replaced by a fresh one, once: the request was not sent, so nothing is repeated.
    async fn exchange(
        &self,
        key: Key,
        mut req: Request<UpstreamBody>,
        fresh: bool,
    ) -> Result<(Response<Incoming>, Box<Conn>), SendError> {
        let mut pooled = if fresh { None } else { self.pool.checkout(key) };
        loop {
            let reused = pooled.is_some();
            let mut conn = match pooled.take() {
                Some(conn) => conn,
                // Boxed: connecting (with its TLS handshake state) is rare next to reusing a
                // pooled connection, and would make every request's future 1.4 KiB larger,
                // which is copied as the future moves.
                None => {
                    let conn = Box::pin(Conn::open(
                        key,
                        self.settings.connect_timeout,
                        self.settings.preserve_header_case,
                        &self.tls,
                    ))
                    .await
                    .map_err(SendError::Connect)?;
                    self.settings.opened.http1(key.tls).inc();
                    conn
                }
            };
            match conn.exchange(req).await {
                Ok(response) => return Ok((response, conn)),
                Err(Failed {
                    unsent: Some(unsent),
                    ..
                }) if reused => req = unsent,
                Err(Failed {
                    error: Some(error), ..
                }) => return Err(SendError::Exchange(error)),
                // Nothing was sent: as a connection that could not be made.
                Err(Failed { error: None, .. }) => {
                    return Err(SendError::Connect(io::ErrorKind::NotConnected.into()))
                }
            }
        }
    }

    fn h2c_client(&self, max_idle: usize) -> Client<Counted, UpstreamBody> {
        self.h2c
            .entry(max_idle)
            .or_insert_with(|| h2c_client(max_idle, &self.settings))
            .clone()
    }
}

fn h2c_client(max_idle: usize, settings: &PoolSettings) -> Client<Counted, UpstreamBody> {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(settings.connect_timeout));
    tcp.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(settings.idle_timeout)
        .pool_max_idle_per_host(max_idle)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        // The proxy sets `Host` itself (the client's, not the backend address).
        .set_host(false)
        .http2_only(true)
        .build(Counted {
            inner: tcp,
            opened: settings.opened.h2c.clone(),
        })
}

impl Lease {
    /// Lets the connection read more of the response (called as its body is polled).
    pub(crate) fn drive(&mut self, cx: &mut std::task::Context<'_>) {
        self.conn.drive(cx);
    }

    /// Gives the connection back after the response body was read to its end. (A lease
    /// dropped instead closes its connection: a backend half-way through a body cannot take
    /// another request.)
    pub(crate) fn release(self) {
        self.pool.put(self.conn);
    }

    /// The stream of the protocol the backend switched to (`101`), once hyper hands it over.
    pub(crate) fn upgraded(self) -> impl std::future::Future<Output = io::Result<Upgraded>> + Send {
        (*self.conn).upgraded()
    }
}

impl SendError {
    /// What the failure means for the client and for retrying.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            SendError::Connect(io) => connect_kind(io.kind()),
            SendError::Exchange(_) => ErrorKind::UpstreamReset,
            SendError::H2c(e) if !e.is_connect() => ErrorKind::UpstreamReset,
            // The connector's own error wraps the I/O error that tells refused from timed out.
            SendError::H2c(e) => std::iter::successors(e.source(), |e| (*e).source())
                .filter_map(|e| e.downcast_ref::<io::Error>())
                .map(|io| connect_kind(io.kind()))
                .find(|kind| *kind != ErrorKind::ConnectFailed)
                .unwrap_or(ErrorKind::ConnectFailed),
        }
    }

    /// Whether the exchange broke the connection before the backend answered, so that an
    /// idempotent request may be sent again: the connection was reset or closed (including a
    /// pooled one the backend closed as it was reused). Malformed answers, timeouts and errors
    /// of the client's own body are not: the backend may be broken, or the body is gone.
    pub(crate) fn broke_before_answer(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = match self {
            SendError::Connect(_) => return false,
            SendError::Exchange(e) => Some(e),
            SendError::H2c(e) => e.source(),
        };
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
}

fn connect_kind(kind: io::ErrorKind) -> ErrorKind {
    match kind {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
        _ => ErrorKind::ConnectFailed,
    }
}
