//! One HTTP/1.1 connection to a backend, driven by the task that is using it.
//!
//! hyper's client connection is a future that does the connection's reading and writing. The
//! usual way is to spawn it, and talk to it through channels from the request's task. Here the
//! request's own task polls it: while waiting for the response head, then (from the response
//! body, [`crate::body::ProxyBody`]) while the body streams to the client. A request and its
//! backend connection thus cost one task and no hand-over between tasks, and an idle connection
//! costs no task at all while it waits in the [`super::pool::Pool`].

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
use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::either::Either;

use super::request::UpstreamBody;

/// Where a connection goes: the backend's address, and whether it speaks TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: bool,
}

/// TCP keep-alive probes on backend connections, so that a backend host that vanished is
/// noticed on idle pooled connections too.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// hyper's connection future, with upgrades (its type cannot be named).
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// A backend connection: the handle requests are sent through, and the connection future.
pub(crate) struct Conn {
    send: SendRequest<UpstreamBody>,
    /// `None` once the connection future completed (closed, failed or upgraded): it must not be
    /// polled again.
    driver: Option<Driver>,
    key: Key,
}

/// Why an exchange failed, and the request when it never left (so it can go elsewhere).
pub(crate) struct Failed {
    pub(crate) error: hyper::Error,
    pub(crate) unsent: Option<Request<UpstreamBody>>,
}

impl Conn {
    /// Connects to `key` within `timeout` (and completes the TLS handshake when `key.tls`).
    /// `preserve_case`: write the client's header names as it did (from the request's case
    /// map) and record the backend's for the client.
    pub(crate) async fn open(
        key: Key,
        timeout: Duration,
        preserve_case: bool,
        tls: &TlsConnector,
    ) -> io::Result<Conn> {
        let stream = match tokio::time::timeout(timeout, connect(key, tls)).await {
            Ok(stream) => stream?,
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        };
        // The handshake of hyper's HTTP/1 client does no I/O: it cannot fail on a live stream.
        // The client's header names go out as the client wrote them (the case map hyper's
        // server recorded travels in the request's extensions), the ones dockhand adds in
        // Title-Case (`X-Forwarded-For`); the backend's response names are recorded the same
        // way for the client.
        let (send, driver) = http1::Builder::new()
            .preserve_header_case(preserve_case)
            .title_case_headers(true)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        Ok(Conn {
            send,
            driver: Some(Box::pin(driver.with_upgrades())),
            key,
        })
    }

    pub(crate) fn key(&self) -> Key {
        self.key
    }

    /// Sends `req` and drives the connection until the response head arrives.
    pub(crate) async fn exchange(
        &mut self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, Failed> {
        let mut response = std::pin::pin!(self.send.try_send_request(req));
        std::future::poll_fn(|cx| {
            // The connection first: it writes the request, or reads what the backend sent.
            self.drive(cx);
            response.as_mut().poll(cx)
        })
        .await
        .map_err(|mut e| Failed {
            unsent: e.take_message(),
            error: e.into_error(),
        })
    }

    /// Lets the connection do what it can: write, read, or notice that it closed. Returns
    /// whether it is still open.
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(driver) = &mut self.driver else {
            return false;
        };
        match driver.as_mut().poll(cx) {
            Poll::Pending => true,
            Poll::Ready(result) => {
                // An error also reaches the response or body it broke; this is the same news.
                if let Err(e) = result {
                    tracing::trace!(backend = %self.key.addr, error = %e, "backend connection ended");
                }
                self.driver = None;
                false
            }
        }
    }

    /// Whether the connection can carry another request, as of its last poll: open, idle, and
    /// not told to close. Right after the response it carried has been read, that poll just
    /// happened.
    pub(crate) fn is_idle(&self) -> bool {
        self.driver.is_some() && self.send.is_ready()
    }

    /// Whether a connection that sat in the pool can carry another request: one poll first
    /// lets it notice that the backend closed it meanwhile (the waker is a no-op: nobody needs
    /// waking for an idle connection).
    pub(crate) fn is_reusable(&mut self) -> bool {
        self.drive(&mut Context::from_waker(Waker::noop())) && self.send.is_ready()
    }

    /// Drives the connection to its end in a task of its own: after a `101`, so that the
    /// upgrade completes (hyper usually completes it in the very poll that read the response).
    pub(crate) fn finish_in_background(mut self) {
        if self.driver.is_some() {
            tokio::spawn(std::future::poll_fn(move |cx| {
                if self.drive(cx) {
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            }));
        }
    }
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
