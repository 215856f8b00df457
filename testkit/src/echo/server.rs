//! Listeners, the accept loop and graceful shutdown of the echo server.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::raw::Recorded;
use super::routes::{self, Conn, State};
use super::{tls, Config, DRAIN_TIMEOUT};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A bound echo server; [`Server::run`] serves until the shutdown future completes.
pub struct Server {
    http: Vec<TcpListener>,
    tls: Option<(TcpListener, TlsAcceptor)>,
    state: Arc<State>,
}

/// A connection handed from a listener task to the serving loop.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    tls: bool,
}

/// What every connection task shares.
struct Shared {
    builder: auto::Builder<TokioExecutor>,
    acceptor: Option<TlsAcceptor>,
    state: Arc<State>,
}

impl Server {
    /// Binds every port of `config` (and generates the TLS certificate if a TLS port is set).
    ///
    /// # Errors
    /// A port that cannot be bound, a `name` that is not a valid header value, or a failure to
    /// build the TLS configuration.
    pub async fn bind(config: &Config) -> io::Result<Server> {
        let x_backend = HeaderValue::from_str(&config.name).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("backend name {:?} is not a valid header value", config.name),
            )
        })?;
        let mut http = Vec::with_capacity(config.ports.len());
        for &port in &config.ports {
            http.push(bind_any(port)?);
        }
        let tls = match config.tls_port {
            Some(port) => Some((bind_any(port)?, tls::acceptor(&config.hostname)?)),
            None => None,
        };
        let state = Arc::new(State {
            name: config.name.clone(),
            hostname: config.hostname.clone(),
            x_backend,
            healthy: AtomicBool::new(true),
        });
        Ok(Server { http, tls, state })
    }

    /// Addresses of the plain-HTTP listeners, in the order of [`Config::ports`].
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        self.http
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Address of the TLS listener, if any.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests finish
    /// for at most [`DRAIN_TIMEOUT`].
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (tx, mut rx) = mpsc::channel(64);
        let mut listeners = JoinSet::new();
        for listener in self.http {
            listeners.spawn(accept_loop(listener, false, tx.clone()));
        }
        let mut acceptor = None;
        if let Some((listener, tls)) = self.tls {
            listeners.spawn(accept_loop(listener, true, tx.clone()));
            acceptor = Some(tls);
        }
        drop(tx);

        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let shared = Arc::new(Shared {
            builder,
            acceptor,
            state: self.state,
        });
        // Only this loop owns the GracefulShutdown: it is not `Clone`, so each accepted
        // connection gets its own `Watcher` here.
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = rx.recv() => match accepted {
                    Some(accepted) => {
                        tokio::spawn(serve(accepted, graceful.watcher(), Arc::clone(&shared)));
                    }
                    None => break,
                },
            }
        }
        listeners.abort_all();
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            eprintln!("echo-backend: in-flight requests still running after {DRAIN_TIMEOUT:?}");
        }
    }
}

/// Binds `[::]:port` accepting IPv4 too; falls back to `0.0.0.0:port` where IPv6 is off (a
/// container without IPv6 cannot bind `[::]`).
fn bind_any(port: u16) -> io::Result<TcpListener> {
    match bind_dual_stack(port) {
        Ok(listener) => Ok(listener),
        Err(_) => {
            let std = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
            std.set_nonblocking(true)?;
            TcpListener::from_std(std)
        }
    }
}

fn bind_dual_stack(port: u16) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV6, Type::STREAM, None)?;
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(listener: TcpListener, tls: bool, tx: mpsc::Sender<Accepted>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if tx.send(Accepted { stream, peer, tls }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                eprintln!("echo-backend: accept failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

async fn serve(accepted: Accepted, watcher: Watcher, shared: Arc<Shared>) {
    let Accepted { stream, peer, tls } = accepted;
    let _ = stream.set_nodelay(true);
    let seen = super::raw::Seen::default();
    let conn = Arc::new(Conn {
        local_port: stream.local_addr().map(|a| a.port()).unwrap_or(0),
        // A dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`; tests compare plain IPv4.
        remote: SocketAddr::new(peer.ip().to_canonical(), peer.port()),
        tls,
        seen: seen.clone(),
    });
    let state = Arc::clone(&shared.state);
    let service = hyper::service::service_fn(move |req| {
        routes::handle(req, Arc::clone(&state), Arc::clone(&conn))
    });
    let result = match (&shared.acceptor, tls) {
        (Some(acceptor), true) => {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    // A failed handshake is the client's problem; nothing to serve.
                    _ => return,
                };
            let conn = shared
                .builder
                .serve_connection_with_upgrades(TokioIo::new(Recorded::new(stream, seen)), service);
            watcher.watch(conn.into_owned()).await
        }
        _ => {
            let conn = shared
                .builder
                .serve_connection_with_upgrades(TokioIo::new(Recorded::new(stream, seen)), service);
            watcher.watch(conn.into_owned()).await
        }
    };
    // Clients that vanish mid-request are normal in tests; nothing to report.
    drop(result);
}
