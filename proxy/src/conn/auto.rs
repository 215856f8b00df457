//! The HTTP connection a client gets, and the parking of idle HTTP/1 connections.
//!
//! Like hyper-util's auto builder, [`AutoConn`] serves HTTP/2 to a client that opens with the
//! connection preface (prior knowledge, or after ALPN `h2`) and HTTP/1.1 with upgrades to any
//! other. Unlike it, an HTTP/1 connection that its guard finds idle (see `PARK_AFTER`)
//! is *parked*: hyper's connection is ended without closing the stream, which frees its
//! buffers (at least 8 KiB to read, 8 KiB for heads: hyper keeps both while it waits for the
//! next request and has no setting to shrink them), and a new one is made over the same stream
//! when the client sends again, with the bytes read meanwhile put back in front. nginx frees its
//! buffers the same way between keep-alive requests. Measured: an idle keep-alive connection
//! went from 22 KiB to 3.6 KiB of RSS once jemalloc purged the freed pages
//! (benches/results/RESULTS.md, 2026-12-06).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::guard::GracefulConn;
use super::ConnState;
use crate::metrics::Counted;
use crate::rewind::Rewind;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a parked connection reads at once when the client sends again (on the stack; the rest
/// of the request is read by the new hyper connection).
const WAKE_CHUNK: usize = 1024;

/// What a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// What the first bytes of a stream say: HTTP/2 once they are the whole preface, HTTP/1 as
/// soon as they stop matching it; `None` until then.
fn protocol(first: &[u8]) -> Option<Protocol> {
    let n = first.len().min(H2_PREFACE.len());
    if first[..n] != H2_PREFACE[..n] {
        Some(Protocol::Http1)
    } else if n == H2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// A client stream hyper can serve from the connection's task.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// What hyper asks of a service it serves over HTTP/1 (with upgrades) and HTTP/2.
pub(crate) trait ConnService:
    HttpService<
        Incoming,
        ResBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Clone
    + Unpin
    + Send
    + 'static
{
}

impl<S> ConnService for S where
    S: HttpService<
            Incoming,
            ResBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
            Future: Send + 'static,
            Error: Into<BoxError>,
        > + Clone
        + Unpin
        + Send
        + 'static
{
}

/// How hyper serves each protocol (built once per listener).
#[derive(Clone, Debug)]
pub(crate) struct Builders {
    pub(crate) h1: http1::Builder,
    pub(crate) h2: http2::Builder<TokioExecutor>,
}

/// One client connection over the stream `I`, served by `S` (see the module documentation).
pub(crate) struct AutoConn<I, S>
where
    S: HttpService<Incoming>,
{
    stage: Stage<I, S>,
    builders: Arc<Builders>,
    state: Arc<ConnState>,
    /// The listener's `dockhand_parked_connections`.
    parked: prometheus::IntGauge,
}

enum Stage<I, S>
where
    S: HttpService<Incoming>,
{
    /// Reading the first bytes, until they are enough to tell HTTP/2 from HTTP/1.
    Detecting {
        io: I,
        service: S,
        first: [u8; H2_PREFACE.len()],
        len: usize,
    },
    /// `parking`: told to end so that the stream can be parked. hyper's connections are boxed,
    /// so that a parked or detecting connection's task holds only the stream.
    Http1 {
        conn: Box<http1::UpgradeableConnection<TokioIo<Rewind<I>>, S>>,
        parking: bool,
    },
    Http2(Box<http2::Connection<TokioIo<Rewind<I>>, S, TokioExecutor>>),
    /// Waiting for the client's next request with no hyper connection.
    Parked {
        io: Rewind<I>,
        service: S,
        _counted: Counted,
    },
    Done,
}

impl<I, S> AutoConn<I, S>
where
    S: HttpService<Incoming>,
{
    /// Serves `io` with `service`, noting progress in `state`; `parked` counts it while parked.
    pub(crate) fn new(
        io: I,
        service: S,
        builders: Arc<Builders>,
        state: Arc<ConnState>,
        parked: prometheus::IntGauge,
    ) -> Self {
        AutoConn {
            stage: Stage::Detecting {
                io,
                service,
                first: [0; H2_PREFACE.len()],
                len: 0,
            },
            builders,
            state,
            parked,
        }
    }
}

impl<I: Stream, S: ConnService> AutoConn<I, S> {
    /// Reads the first bytes until they match the HTTP/2 preface or stop matching it; `None`
    /// when the client closed first.
    fn poll_detect(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Stage<I, S>>>> {
        let Stage::Detecting { io, first, len, .. } = &mut self.stage else {
            unreachable!("detecting only in its stage")
        };
        while protocol(&first[..*len]).is_none() {
            let mut buf = ReadBuf::new(&mut first[*len..]);
            ready!(Pin::new(&mut *io).poll_read(cx, &mut buf))?;
            let n = buf.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(None));
            }
            *len += n;
        }
        let Stage::Detecting {
            io,
            service,
            first,
            len,
        } = std::mem::replace(&mut self.stage, Stage::Done)
        else {
            unreachable!("detecting only in its stage")
        };
        let io = TokioIo::new(Rewind::new(io, Bytes::copy_from_slice(&first[..len])));
        Poll::Ready(Ok(Some(match protocol(&first[..len]) {
            Some(Protocol::Http2) => {
                self.state.h2.store(true, Ordering::Relaxed);
                Stage::Http2(Box::new(self.builders.h2.serve_connection(io, service)))
            }
            _ => self.http1(io, service),
        })))
    }

    fn http1(&self, io: TokioIo<Rewind<I>>, service: S) -> Stage<I, S> {
        Stage::Http1 {
            conn: Box::new(
                self.builders
                    .h1
                    .serve_connection(io, service)
                    .with_upgrades(),
            ),
            parking: false,
        }
    }

    /// Waits on a parked stream for the client's next bytes; `None` when it closed instead.
    fn poll_parked(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Stage<I, S>>>> {
        let Stage::Parked { io, .. } = &mut self.stage else {
            unreachable!("parked only in its stage")
        };
        if io.prefix.is_empty() {
            let mut chunk = [0u8; WAKE_CHUNK];
            let mut buf = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut io.inner).poll_read(cx, &mut buf))?;
            if buf.filled().is_empty() {
                return Poll::Ready(Ok(None));
            }
            io.prefix = Bytes::copy_from_slice(buf.filled());
        }
        let Stage::Parked { io, service, .. } = std::mem::replace(&mut self.stage, Stage::Done)
        else {
            unreachable!("parked only in its stage")
        };
        Poll::Ready(Ok(Some(self.http1(TokioIo::new(io), service))))
    }

    /// After hyper ended an HTTP/1 connection told to park: the stream and the service, back
    /// from hyper, with whatever hyper had read past its last request.
    fn park_stream(&mut self) -> Option<Stage<I, S>> {
        self.state.parking.store(false, Ordering::Relaxed);
        let Stage::Http1 { conn, .. } = std::mem::replace(&mut self.stage, Stage::Done) else {
            unreachable!("parking only from HTTP/1")
        };
        // `None`: upgraded after all; the tunnel owns the stream.
        let parts = (*conn).into_parts()?;
        let mut io = parts.io.into_inner();
        if !parts.read_buf.is_empty() {
            // Copied: the slice would keep hyper's whole read buffer alive.
            io.prefix = Bytes::copy_from_slice(&parts.read_buf);
        }
        Some(Stage::Parked {
            io,
            service: parts.service,
            _counted: Counted::new(&self.parked),
        })
    }
}

impl<I: Stream, S: ConnService> Future for AutoConn<I, S> {
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            let next = match &mut this.stage {
                Stage::Detecting { .. } => ready!(this.poll_detect(cx))?,
                Stage::Http1 { conn, parking } => {
                    let done = ready!(Pin::new(&mut **conn).poll(cx));
                    if !*parking || done.is_err() {
                        this.stage = Stage::Done;
                        return Poll::Ready(done.map_err(Into::into));
                    }
                    this.park_stream()
                }
                Stage::Http2(conn) => {
                    let done = ready!(Pin::new(&mut **conn).poll(cx));
                    this.stage = Stage::Done;
                    return Poll::Ready(done.map_err(Into::into));
                }
                Stage::Parked { .. } => ready!(this.poll_parked(cx))?,
                Stage::Done => return Poll::Ready(Ok(())),
            };
            this.stage = next.unwrap_or(Stage::Done);
        }
    }
}

impl<I: Stream, S: ConnService> GracefulConn for AutoConn<I, S> {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        let this = self.get_mut();
        match &mut this.stage {
            // Nothing was asked yet, or nothing is being asked: there is nothing to finish.
            Stage::Detecting { .. } | Stage::Parked { .. } => this.stage = Stage::Done,
            Stage::Http1 { conn, parking } => {
                // Ending for good: hyper must shut the stream after all.
                *parking = false;
                this.state.parking.store(false, Ordering::Relaxed);
                Pin::new(&mut **conn).graceful_shutdown();
            }
            Stage::Http2(conn) => Pin::new(&mut **conn).graceful_shutdown(),
            Stage::Done => {}
        }
    }

    fn park(self: Pin<&mut Self>) {
        let this = self.get_mut();
        if let Stage::Http1 { conn, parking } = &mut this.stage {
            // Only a connection waiting for its next request: one hyper is closing (after a
            // `Connection: close`, say) must be closed, not kept.
            if !*parking && this.state.awaiting.load(Ordering::Relaxed) {
                *parking = true;
                // hyper shuts the stream when its connection ends; not this time.
                this.state.parking.store(true, Ordering::Relaxed);
                // An idle HTTP/1 connection ends at once, writing nothing.
                Pin::new(&mut **conn).graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{protocol, Protocol, H2_PREFACE};

    #[test]
    fn the_first_bytes_tell_http2_from_http1() {
        assert_eq!(protocol(H2_PREFACE), Some(Protocol::Http2));
        assert_eq!(protocol(b""), None);
        assert_eq!(protocol(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(protocol(b"POST / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(protocol(b"PRIX"), Some(Protocol::Http1));
        assert_eq!(protocol(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http1));
    }
}
