//! The accept loop (shaped like tokio-rs/mini-redis `server.rs`) with graceful shutdown, shared
//! by the plain-HTTP and the HTTPS listener.
//!
//! A semaphore bounds the connections served at once: each accepted client needs a permit,
//! moved into its connection task. At the limit the idle connections that have waited longest
//! are closed to admit it (see [`crate::conn`]); only when none is idle does it wait, and the
//! clients behind it in the kernel's accept queue, instead of consuming memory here. Each
//! connection is served by hyper (HTTP/1.1, or HTTP/2 by prior knowledge or ALPN) with upgrades
//! enabled, parked between requests when idle (`conn::AutoConn`), inside a guard that gives
//! every phase of the connection a deadline, behind a `FloodGuard` (`flood.rs`) that closes
//! HTTP/2 connections flooding it with control frames.
//!
//! A [`SharedListener`] lets several runtimes (dockhand's worker threads) serve one port under
//! one connection limit, each accepting from a socket of its own.
//!
//! On shutdown the listener stops accepting, then waits for its connections (hyper's graceful
//! shutdown) and for the tunnels upgraded out of them (which hyper no longer sees), all within
//! one grace period; whatever is still open then is cut.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;

use crate::config::ProxyConfig;
use crate::conn::{AutoConn, Builders, Connections, Guarded, GuardedIo, Timeouts, Traffic};
use crate::flood::{FloodGuard, FloodLimits};
use crate::metrics::{Counted, ListenerMetrics};
use crate::service::{ClientVerify, ConnInfo, Proxy};
use crate::tls::{ServerConfigs, TlsHandshake, TlsMetrics};
use crate::tunnel::Tunnels;

mod proxy_protocol;
mod shared;

pub use shared::{Listen, ListenerPart, SharedListener};

/// Smallest header limit hyper accepts for its HTTP/1 read buffer.
const MIN_HTTP1_BUFFER: usize = 8192;
/// How often a client waiting at the connection limit looks again for a connection to close.
const EVICTION_RETRY: Duration = Duration::from_millis(250);
/// Longest pause after repeated accept failures (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves plain-HTTP clients of `listener` (see [`Listen`]) with `proxy` until `shutdown`
/// completes, then stops accepting, lets open requests and upgraded tunnels (WebSocket) finish
/// for up to `grace`, cuts what is left, and returns.
///
/// Accept errors are logged and retried with a backoff (so `EMFILE` does not spin); the only
/// errors returned are failing to register the socket or to read its own address.
pub async fn serve(
    listener: impl Listen,
    proxy: Proxy,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()> {
    run(listener, proxy, Plain, shutdown, grace).await
}

/// Serves HTTPS clients of `listener` like [`serve`] does plain ones: same connection limit,
/// accept loop and graceful drain. Each connection first completes a TLS handshake with `tls`
/// (see [`crate::tls::server_config`]) within the proxy's `header_read_timeout`; a client
/// naming a host without a certificate is refused with an `unrecognized_name` alert. HTTP/2
/// is served when ALPN selects `h2`, HTTP/1.1 otherwise; requests see `ConnInfo { tls: true }`.
/// Handshake outcomes are counted in `metrics` (usually [`crate::tls::CertStore::metrics`]).
pub async fn serve_tls(
    listener: impl Listen,
    proxy: Proxy,
    tls: Arc<ServerConfigs>,
    metrics: TlsMetrics,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()> {
    let handshake = TlsHandshake::new(tls, metrics, proxy.config().header_read_timeout);
    run(listener, proxy, handshake, shutdown, grace).await
}

/// Turns an accepted TCP connection into the byte stream HTTP is served on.
trait Handshake: Clone + Send + Sync + 'static {
    /// The stream after the handshake.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Whether the stream is TLS (for [`ConnInfo::tls`]).
    const TLS: bool;
    /// The stream and what it learnt of the client's certificate, or `None` when the client
    /// is to be dropped (already logged).
    fn handshake(
        &self,
        tcp: TcpStream,
    ) -> impl Future<Output = Option<(Self::Stream, Option<ClientVerify>)>> + Send;
}

/// Plain HTTP: the TCP stream as it is.
#[derive(Clone, Copy)]
struct Plain;

impl Handshake for Plain {
    type Stream = TcpStream;
    const TLS: bool = false;
    fn handshake(
        &self,
        tcp: TcpStream,
    ) -> impl Future<Output = Option<(TcpStream, Option<ClientVerify>)>> + Send {
        std::future::ready(Some((tcp, None)))
    }
}

impl Handshake for TlsHandshake {
    type Stream = TlsStream<TcpStream>;
    const TLS: bool = true;
    fn handshake(
        &self,
        tcp: TcpStream,
    ) -> impl Future<Output = Option<(Self::Stream, Option<ClientVerify>)>> + Send {
        self.accept(tcp)
    }
}

/// The accept loop shared by both listeners. The handshake runs in the connection's task, so
/// a slow client never holds up accepting others.
async fn run<H: Handshake>(
    listener: impl Listen,
    proxy: Proxy,
    handshake: H,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()> {
    let config = proxy.config().clone();
    let (listener, permits) = listener.open(config.max_connections)?;
    let local = listener.local_addr()?;
    let serving = Serving {
        builders: Arc::new(builders(&config)),
        timeouts: Timeouts::of(&config),
        flood: FloodLimits::new(&config, proxy.metrics().h2_flood_closed()),
        connections: Connections::default(),
        tunnels: Tunnels::default(),
        counters: proxy.metrics().listener(H::TLS),
        proxy,
        handshake,
    };
    tokio::pin!(shutdown);
    tracing::info!(%local, tls = H::TLS, "listening");
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener) => accepted,
        };
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = admit(&permits, &serving.connections) => permit,
        };
        serving.spawn(stream, peer, permit);
    }
    drop(listener);
    drain(local, &serving.connections, &serving.tunnels, grace).await;
    Ok(())
}

/// What the connections of one listener share.
struct Serving<H> {
    proxy: Proxy,
    handshake: H,
    builders: Arc<Builders>,
    timeouts: Timeouts,
    flood: FloodLimits,
    /// Every open connection, for eviction at the limit and the drain.
    connections: Connections,
    /// Tunnels upgraded out of the connections, which outlive them.
    tunnels: Tunnels,
    /// This listener's open connections and bytes.
    counters: ListenerMetrics,
}

impl<H: Handshake> Serving<H> {
    /// Serves one accepted client in a task of its own, holding `permit` until it ends.
    fn spawn(&self, stream: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit) {
        let accepted = Instant::now();
        let conn = match conn_info(&stream, peer, H::TLS) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "dropping connection");
                return;
            }
        };
        // Registered before the handshake, so that a drain also waits for connections
        // mid-handshake (bounded by the handshake timeout) and tells them to close at once.
        let entry = self.connections.register();
        let state = entry.state.clone();
        let (proxy, tunnels) = (self.proxy.clone(), self.tunnels.clone());
        let proxy_protocol = proxy
            .config()
            .proxy_protocol
            .then_some(proxy.config().header_read_timeout);
        let builders = self.builders.clone();
        let handshake = self.handshake.clone();
        let (flood, timeouts) = (self.flood.clone(), self.timeouts);
        let cut = self.tunnels.cut_signal();
        let open = Counted::new(&self.counters.open);
        let parked = self.counters.parked.clone();
        let traffic = Traffic::new(self.counters.received.clone(), self.counters.sent.clone());
        self.connections.tracker().spawn(async move {
            let served = async move {
                let opened = async {
                    let mut stream = stream;
                    let mut conn = conn;
                    if let Some(timeout) = proxy_protocol {
                        if let Some(carried) = client_behind(&mut stream, peer, timeout).await? {
                            conn.peer = carried.source;
                            conn.proxied_port = Some(carried.destination.port());
                        }
                    }
                    let (io, client_verify) = handshake.handshake(stream).await?;
                    conn.client_verify = client_verify;
                    Some((io, conn))
                };
                let opened = tokio::select! {
                    // A handshake that is done (always, for plain HTTP) goes on to hyper, which
                    // reads a request already sent before an eviction can close it.
                    biased;
                    opened = opened => opened,
                    () = state.signalled() => None,
                };
                let Some((io, conn)) = opened else { return };
                let peer = conn.peer;
                let service = proxy
                    .connection_in(conn, tunnels, Some(state.clone()))
                    .into_service();
                let io = GuardedIo::new(io, state.clone(), Some(traffic.clone()));
                let io = FloodGuard::new(io, flood, peer);
                let held = state.clone();
                let connection = AutoConn::new(io, service, builders, state, parked);
                let guarded = Guarded::new(connection, entry, timeouts, accepted, traffic);
                if let Err(e) = guarded.await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                // A tunnel upgraded out of the connection keeps its slot (the permit) and its
                // place in `dockhand_open_connections` until it closes, as nginx counts an
                // upgraded connection in `worker_connections`.
                held.tunnels_closed().await;
            };
            tokio::select! {
                () = served => {}
                () = cut => tracing::debug!(%peer, "connection cut at the end of the grace period"),
            }
            drop(permit);
            drop(open);
        });
    }
}

/// The addresses a load balancer's PROXY header carries (`ENABLE_PROXY_PROTOCOL`): `Some(None)`
/// when it carries none (the connection keeps its TCP peer); `None` (logged) when no valid
/// header came within `timeout`, and the connection is to be closed.
async fn client_behind(
    stream: &mut TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<Option<proxy_protocol::Carried>> {
    match tokio::time::timeout(timeout, proxy_protocol::read_header(stream)).await {
        Ok(Ok(carried)) => Some(carried),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "closing a connection without a valid PROXY header");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, ?timeout, "closing a connection: no PROXY header in time");
            None
        }
    }
}

/// A permit for the client just accepted. At the limit, the idle connections that have waited
/// longest are told to close first, so that it is not kept waiting by idle ones (only one
/// accepted client ever waits here; the others wait in the kernel's accept queue).
async fn admit(permits: &Arc<Semaphore>, connections: &Connections) -> OwnedSemaphorePermit {
    if let Ok(permit) = permits.clone().try_acquire_owned() {
        return permit;
    }
    loop {
        let evicted = connections.evict_idle();
        tracing::debug!(evicted, "connection limit reached");
        // The semaphore is never closed, so acquiring only waits; meanwhile a head can become
        // slow enough to be closed, so look again now and then.
        tokio::select! {
            Ok(permit) = permits.clone().acquire_owned() => return permit,
            () = tokio::time::sleep(EVICTION_RETRY) => {}
        }
    }
}

/// Waits up to `grace` for open connections, then for the tunnels upgraded out of them (a
/// tunnel starts before its connection ends, so none is missed), and cuts what is left.
async fn drain(local: SocketAddr, connections: &Connections, tunnels: &Tunnels, grace: Duration) {
    tracing::info!(%local, open = connections.len(), tunnels = tunnels.len(), "stopped accepting; draining");
    let drained = async {
        connections.drain().await;
        tunnels.drain().await;
    };
    if tokio::time::timeout(grace, drained).await.is_ok() {
        tracing::info!(%local, "drained");
    } else {
        tracing::warn!(%local, ?grace, tunnels = tunnels.len(), "grace period over; closing open connections and tunnels");
    }
    tunnels.cut();
}

fn builders(config: &ProxyConfig) -> Builders {
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        // The connection's guard times request heads (and everything before the first one).
        .header_read_timeout(None)
        // Header names keep the client's case on the way to the backend (and the backend's on
        // the way back), as nginx passes them; the names hyper or dockhand add (`Date`,
        // `Content-Length`, `Server`, ...) go out in canonical Title-Case.
        .preserve_header_case(config.preserve_header_case)
        .title_case_headers(true)
        // hyper answers 431 itself once a request head outgrows the read buffer.
        .max_buf_size(config.max_header_size.max(MIN_HTTP1_BUFFER));
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_size).unwrap_or(u32::MAX));
    Builders { h1, h2 }
}

fn conn_info(stream: &TcpStream, peer: std::net::SocketAddr, tls: bool) -> io::Result<ConnInfo> {
    stream.set_nodelay(true)?;
    Ok(ConnInfo {
        peer,
        local: stream.local_addr()?,
        tls,
        client_verify: None,
        proxied_port: None,
    })
}

/// Accepts one connection, retrying failures: per-connection errors at once, resource
/// exhaustion (`EMFILE`, `ENOBUFS`, …) after a doubling pause.
async fn accept(listener: &TcpListener) -> (TcpStream, std::net::SocketAddr) {
    let mut backoff = Duration::from_millis(5);
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) if is_transient(&e) => tracing::debug!(error = %e, "accept failed"),
            Err(e) => {
                tracing::warn!(error = %e, ?backoff, "accept failed; pausing");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
            }
        }
    }
}

/// Errors about one connection that died before it was accepted.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
