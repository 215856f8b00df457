//! One HTTP/1.1 connection to a backend, driven by the task that is using it.
//!
//! hyper's client connection is a future that does the connection's reading and writing. The
//! usual way is to spawn it, and talk to it through channels from the request's task. Here the
//! request's own task polls it: while waiting for the response head, then (from the response
//! body, [`crate::body::ProxyBody`]) while the body streams to the client. A request and its
//! backend connection thus cost one task and no hand-over between tasks, and an idle connection
//! costs no task at all while it waits in the [`super::pool::Pool`].
//!
//! A connection that has waited in the pool for a while is *parked*: hyper's connection, with
//! its read and write buffers, is freed and only the stream is kept, until a request takes the
//! connection again and a new hyper connection is made over the same stream (no I/O: hyper's
//! client handshake only sets up its state). An idle pooled connection cost 38 KiB of RSS
//! before (benches/results/RESULTS.md, 2026-12-06 04:30), which a burst of requests multiplies
//! by the connections it opened.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use prometheus::IntGauge;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::either::Either;

use super::request::UpstreamBody;
use crate::metrics::Counted;
use crate::rewind::Rewind;

/// Where a connection goes: the backend's address, and whether it speaks TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: bool,
}

/// TCP keep-alive probes on backend connections, so that a backend host that vanished is
/// noticed on idle pooled connections too.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// hyper's connection future. Boxed: it is large, and moves with the connection in and out of
/// the pool.
type Driver = Box<http1::Connection<TokioIo<Stream>, UpstreamBody>>;

/// A backend connection.
pub(crate) struct Conn {
    state: State,
    key: Key,
    /// Whether hyper keeps header-name case (see [`Conn::open`]), for the hyper connection
    /// made when a parked connection is taken again.
    preserve_case: bool,
    /// How many idle connections to this backend the pool may keep when this one comes back:
    /// the limit of the route it last served (its `keepalive` label, or the default).
    pub(crate) max_idle: usize,
}

enum State {
    /// hyper's connection: the handle requests are sent through, and the connection future.
    Live {
        send: SendRequest<UpstreamBody>,
        driver: Driver,
    },
    /// Only the stream, while idle in the pool (counted in
    /// `dockhand_upstream_parked_connections`).
    Parked { stream: Stream, _counted: Counted },
    /// The connection future completed: the connection closed, or (after a `101`) it is the
    /// stream of the protocol the backend switched to. Never polled again.
    Ended(Driver),
    /// Failed or given away.
    Gone,
}

/// Why an exchange failed, and the request when it never left (so it can go elsewhere).
pub(crate) struct Failed {
    /// hyper's error; `None` when the connection had ended before the request was given to it.
    pub(crate) error: Option<hyper::Error>,
    pub(crate) unsent: Option<Request<UpstreamBody>>,
}

/// The stream of a backend that switched protocols (`101`), with the bytes it sent behind the
/// response head.
pub(crate) type Upgraded = Rewind<Stream>;

impl Conn {
    /// Connects to `key` within `timeout` (and completes the TLS handshake when `key.tls`).
    /// `preserve_case`: write the client's header names as it did (from the request's case
    /// map) and record the backend's for the client.
    pub(crate) async fn open(
        key: Key,
        timeout: Duration,
        preserve_case: bool,
        tls: &TlsConnector,
    ) -> io::Result<Box<Conn>> {
        let stream = match tokio::time::timeout(timeout, connect(key, tls)).await {
            Ok(stream) => stream?,
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        };
        let state = live(stream, preserve_case)
            .await
            .map_err(io::Error::other)?;
        // Boxed for its whole life: leases, the pool and the response body move it by
        // pointer (see `Lease`).
        Ok(Box::new(Conn {
            state,
            key,
            preserve_case,
            max_idle: 0,
        }))
    }

    pub(crate) fn key(&self) -> Key {
        self.key
    }

    /// Sends `req` and drives the connection until the response head arrives.
    pub(crate) async fn exchange(
        &mut self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, Failed> {
        if let State::Parked { .. } = self.state {
            let State::Parked { stream, .. } = std::mem::replace(&mut self.state, State::Gone)
            else {
                // Matched just above.
                return Err(Failed {
                    error: None,
                    unsent: Some(req),
                });
            };
            match live(stream, self.preserve_case).await {
                Ok(state) => self.state = state,
                Err(error) => {
                    let unsent = Some(req);
                    return Err(Failed {
                        error: Some(error),
                        unsent,
                    });
                }
            }
        }
        let State::Live { send, .. } = &mut self.state else {
            // The pool hands out live or parked connections only.
            return Err(Failed {
                error: None,
                unsent: Some(req),
            });
        };
        let mut response = std::pin::pin!(send.try_send_request(req));
        std::future::poll_fn(|cx| {
            // The connection first: it writes the request, or reads what the backend sent.
            self.drive(cx);
            response.as_mut().poll(cx)
        })
        .await
        .map_err(|mut e| Failed {
            unsent: e.take_message(),
            error: Some(e.into_error()),
        })
    }

    /// Lets the connection do what it can: write, read, or notice that it closed. Returns
    /// whether it is still open.
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let State::Live { driver, .. } = &mut self.state else {
            return matches!(self.state, State::Parked { .. });
        };
        // Without shutdown: after a `101` the stream goes on, to the tunnel.
        match driver.poll_without_shutdown(cx) {
            Poll::Pending => true,
            Poll::Ready(result) => {
                let state = std::mem::replace(&mut self.state, State::Gone);
                match (result, state) {
                    (Ok(()), State::Live { driver, .. }) => self.state = State::Ended(driver),
                    // An error also reaches the response or body it broke; this is the same news.
                    (Err(e), _) => {
                        tracing::trace!(backend = %self.key.addr, error = %e, "backend connection ended");
                    }
                    (Ok(()), _) => {}
                }
                false
            }
        }
    }

    /// Whether the connection can carry another request, as of its last poll: open, idle, and
    /// not told to close. Right after the response it carried has been read, that poll just
    /// happened.
    pub(crate) fn is_idle(&self) -> bool {
        match &self.state {
            State::Live { send, .. } => send.is_ready(),
            State::Parked { .. } => true,
            State::Ended(_) | State::Gone => false,
        }
    }

    /// Whether a connection that sat in the pool can carry another request: one poll first
    /// lets it notice that the backend closed it meanwhile (the waker is a no-op: nobody needs
    /// waking for an idle connection). A parked stream must have nothing to read: a backend
    /// that closed it, or sent what nobody asked for, has ended this connection.
    pub(crate) fn is_reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match &mut self.state {
            State::Parked { stream, .. } => {
                let mut byte = [0u8; 1];
                let mut buf = ReadBuf::new(&mut byte);
                Pin::new(stream).poll_read(&mut cx, &mut buf).is_pending()
            }
            _ => self.drive(&mut cx) && self.is_idle(),
        }
    }

    /// Frees hyper's connection and buffers, keeping the stream, if the connection is idle;
    /// `gauge` counts it while parked. Returns whether it can still be reused (a connection with
    /// bytes the backend sent unasked cannot).
    pub(crate) fn park(&mut self, gauge: &IntGauge) -> bool {
        if !matches!(&self.state, State::Live { send, .. } if send.is_ready()) {
            return self.is_idle();
        }
        let State::Live { driver, .. } = std::mem::replace(&mut self.state, State::Gone) else {
            // Matched just above.
            return false;
        };
        let parts = driver.into_parts();
        if !parts.read_buf.is_empty() {
            return false;
        }
        self.state = State::Parked {
            stream: parts.io.into_inner(),
            _counted: Counted::new(gauge),
        };
        true
    }

    /// The stream of the protocol the backend switched to, once hyper has handed the
    /// connection over (usually in the very poll that read the `101`).
    pub(crate) async fn upgraded(mut self) -> io::Result<Upgraded> {
        std::future::poll_fn(|cx| {
            if self.drive(cx) {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        match self.state {
            State::Ended(driver) => {
                let parts = driver.into_parts();
                Ok(Rewind::new(parts.io.into_inner(), parts.read_buf))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "backend connection failed during the upgrade",
            )),
        }
    }
}

/// hyper's client connection over `stream`. The handshake of hyper's HTTP/1 client does no
/// I/O: it cannot fail on a live stream. The client's header names go out as the client wrote
/// them (the case map hyper's server recorded travels in the request's extensions), the ones
/// dockhand adds in Title-Case (`X-Forwarded-For`); the backend's response names are recorded
/// the same way for the client.
async fn live(stream: Stream, preserve_case: bool) -> hyper::Result<State> {
    let (send, driver) = http1::Builder::new()
        .preserve_header_case(preserve_case)
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await?;
    Ok(State::Live {
        send,
        driver: Box::new(driver),
    })
}

async fn connect(key: Key, tls: &TlsConnector) -> io::Result<Stream> {
    let tcp = TcpStream::connect(key.addr).await?;
    tcp.set_nodelay(true)?;
    SockRef::from(&tcp).set_tcp_keepalive(&TcpKeepalive::new().with_time(TCP_KEEPALIVE))?;
    if !key.tls {
        return Ok(Either::Left(tcp));
    }
    // No SNI is sent (see `tls`); rustls still wants a name, and the address is one.
    let name = rustls::pki_types::ServerName::IpAddress(key.addr.ip().into());
    let stream = tls.connect(name, tcp).await?;
    Ok(Either::Right(Box::new(stream)))
}

/// A backend connection's byte stream: plain TCP, or TLS over it.
pub(crate) type Stream = Either<TcpStream, Box<TlsStream<TcpStream>>>;
