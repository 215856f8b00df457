//! Closes HTTP/2 connections that flood the server with control frames.
//!
//! h2 answers every SETTINGS and PING and parses every PRIORITY, empty DATA frame or frame of an
//! unknown type, with no limit of its own on how many a client sends (it has limits for rapid
//! resets, CONTINUATION floods and header lists, which stay as they are). A client that reads
//! the answers can keep a server core busy from one connection indefinitely.
//!
//! [`FloodGuard`] sits between the client's byte stream (TCP or TLS) and hyper. It recognises
//! the HTTP/2 client preface in the first bytes read; after it, it walks the frame headers of
//! everything read (never buffering payloads) and takes a token from a per-connection bucket for
//! each costly frame (see [`frames::Header::is_costly`]). When the bucket is empty the client
//! gets a GOAWAY with ENHANCE_YOUR_CALM, as h2 sends for rapid resets, and the connection ends.
//! Any other protocol makes it a pass-through: one branch per read or write.

mod frames;

use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::ProxyConfig;
use frames::{FrameReader, TokenBucket, ENHANCE_YOUR_CALM, HEADERS};

/// What every HTTP/2 client sends first (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A listener's control-frame budget, shared by its connections (cheap to clone).
#[derive(Clone, Debug)]
pub(crate) struct FloodLimits {
    /// Bucket size; 0 turns the guard off.
    burst: u32,
    /// Tokens earned back per second.
    rate: u32,
    /// `dockhand_h2_flood_closed_total`.
    closed: IntCounter,
    /// `ENABLE_HTTP2`: false ends a connection at its HTTP/2 preface, in the stream, before
    /// the connection's protocol detection sees it.
    h2: bool,
}

impl FloodLimits {
    /// The limits of `config`, counting closed connections in `closed`.
    pub(crate) fn new(config: &ProxyConfig, closed: IntCounter) -> FloodLimits {
        FloodLimits {
            burst: config.h2_max_control_frames,
            rate: config.h2_control_frames_per_second,
            closed,
            h2: config.http2,
        }
    }
}

/// A client byte stream watched for HTTP/2 control-frame floods.
pub(crate) struct FloodGuard<T> {
    io: T,
    state: State,
    limits: FloodLimits,
    peer: SocketAddr,
}

enum State {
    /// This many bytes of the preface have been read so far.
    Sniff(u8),
    /// Not HTTP/2, or the guard is off.
    Plain,
    H2(H2),
    /// A flood was stopped; the connection is ending.
    Closed,
    /// An HTTP/2 preface with HTTP/2 turned off; the connection is ending.
    Refused,
}

/// What is followed of an HTTP/2 connection.
struct H2 {
    /// Frames read from the client.
    inbound: FrameReader,
    /// Frames hyper wrote, so that the GOAWAY goes between two of them.
    outbound: FrameReader,
    bucket: TokenBucket,
    /// Highest stream the client opened in what hyper has been given.
    last_stream: u32,
}

impl<T> FloodGuard<T> {
    /// Watches `io`, the stream of client `peer`, under `limits`.
    pub(crate) fn new(io: T, limits: FloodLimits, peer: SocketAddr) -> FloodGuard<T> {
        let state = if limits.burst == 0 && limits.h2 {
            State::Plain
        } else {
            State::Sniff(0)
        };
        FloodGuard {
            io,
            state,
            limits,
            peer,
        }
    }
}

/// The error hyper gets instead of an HTTP/2 preface when HTTP/2 is off.
fn h2_off_error() -> io::Error {
    io::Error::other("HTTP/2 preface refused: ENABLE_HTTP2=false")
}

/// The error hyper gets instead of the bytes that emptied the bucket.
fn flood_error() -> io::Error {
    io::Error::other("HTTP/2 control-frame flood; closed with GOAWAY(ENHANCE_YOUR_CALM)")
}

impl<T: AsyncRead + AsyncWrite + Unpin> FloodGuard<T> {
    /// Looks at `fresh`, the bytes just read; `Break` when they overflow the budget.
    fn inspect(&mut self, fresh: &[u8]) -> ControlFlow<()> {
        let rest = match &mut self.state {
            State::Sniff(matched) => {
                let at = usize::from(*matched);
                let n = fresh.len().min(PREFACE.len() - at);
                if fresh[..n] != PREFACE[at..at + n] {
                    self.state = State::Plain;
                    return ControlFlow::Continue(());
                }
                if at + n < PREFACE.len() {
                    // n <= 24.
                    *matched += n as u8;
                    return ControlFlow::Continue(());
                }
                if !self.limits.h2 {
                    self.state = State::Refused;
                    return ControlFlow::Break(());
                }
                self.state = State::H2(H2 {
                    inbound: FrameReader::default(),
                    outbound: FrameReader::default(),
                    bucket: TokenBucket::full(self.limits.burst),
                    last_stream: 0,
                });
                &fresh[n..]
            }
            _ => fresh,
        };
        let State::H2(h2) = &mut self.state else {
            return ControlFlow::Continue(());
        };
        let (burst, rate) = (self.limits.burst, self.limits.rate);
        let mut last_stream = h2.last_stream;
        // The clock is read once per read that holds costly frames, not per frame.
        let mut now = None;
        let bucket = &mut h2.bucket;
        h2.inbound.feed(rest, |header| {
            if header.kind == HEADERS && header.stream % 2 == 1 {
                last_stream = last_stream.max(header.stream);
            }
            if header.is_costly()
                && !bucket.take(*now.get_or_insert_with(Instant::now), burst, rate)
            {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })?;
        // Only streams of reads handed to hyper count: the read that overflows is dropped.
        h2.last_stream = last_stream;
        ControlFlow::Continue(())
    }

    /// Tells the client why, if that can be done without corrupting hyper's output, and marks
    /// the connection closed.
    fn stop(&mut self, cx: &mut Context<'_>) {
        let state = std::mem::replace(&mut self.state, State::Closed);
        self.limits.closed.inc();
        let State::H2(h2) = state else { return };
        tracing::warn!(peer = %self.peer, last_stream = h2.last_stream, "HTTP/2 control-frame flood; closing the connection");
        if !h2.outbound.at_boundary() {
            // Mid-frame: a GOAWAY now would corrupt it; the close alone has to do.
            return;
        }
        let frame = frames::goaway(h2.last_stream, ENHANCE_YOUR_CALM);
        // Best effort, never waited for: a client that does not read its socket gets no reason.
        if let Poll::Ready(Ok(n)) = Pin::new(&mut self.io).poll_write(cx, &frame) {
            if n == frame.len() {
                let _ = Pin::new(&mut self.io).poll_flush(cx);
            }
        }
    }

    /// Follows the frames of the `written` bytes of `bufs`.
    fn wrote(&mut self, bufs: &[io::IoSlice<'_>], mut written: usize) {
        if let State::H2(h2) = &mut self.state {
            for buf in bufs {
                if written == 0 {
                    break;
                }
                let n = buf.len().min(written);
                written -= n;
                let _: ControlFlow<()> = h2.outbound.feed(&buf[..n], |_| ControlFlow::Continue(()));
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for FloodGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.state {
            State::Plain => return Pin::new(&mut this.io).poll_read(cx, buf),
            State::Closed => return Poll::Ready(Err(flood_error())),
            State::Refused => return Poll::Ready(Err(h2_off_error())),
            State::Sniff(_) | State::H2(_) => {}
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if this.inspect(&buf.filled()[before..]).is_break() {
            buf.set_filled(before);
            if let State::Refused = this.state {
                return Poll::Ready(Err(h2_off_error()));
            }
            this.stop(cx);
            return Poll::Ready(Err(flood_error()));
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for FloodGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.state {
            State::Plain | State::Sniff(_) => Pin::new(&mut this.io).poll_write(cx, buf),
            State::Closed | State::Refused => Poll::Ready(Err(flood_error())),
            State::H2(_) => {
                let n = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
                this.wrote(&[io::IoSlice::new(buf)], n);
                Poll::Ready(Ok(n))
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.state {
            State::Plain | State::Sniff(_) => Pin::new(&mut this.io).poll_write_vectored(cx, bufs),
            State::Closed | State::Refused => Poll::Ready(Err(flood_error())),
            State::H2(_) => {
                let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
                this.wrote(bufs, n);
                Poll::Ready(Ok(n))
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    fn guard(burst: u32) -> (FloodGuard<DuplexStream>, DuplexStream, IntCounter) {
        let (ours, client) = tokio::io::duplex(1 << 16);
        let closed = IntCounter::new("closed", "closed").expect("valid name");
        let limits = FloodLimits {
            burst,
            rate: 0,
            closed: closed.clone(),
            h2: true,
        };
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        (FloodGuard::new(ours, limits, peer), client, closed)
    }

    fn frame(kind: u8, flags: u8, stream: u32, len: u8) -> Vec<u8> {
        let mut bytes = vec![0, 0, len, kind, flags];
        bytes.extend(stream.to_be_bytes());
        bytes.extend(std::iter::repeat_n(0, usize::from(len)));
        bytes
    }

    fn ping() -> Vec<u8> {
        frame(frames::PING, 0, 0, 8)
    }

    /// Sends `bytes` as one piece and reads them through the guard.
    async fn pass(
        guard: &mut FloodGuard<DuplexStream>,
        client: &mut DuplexStream,
        bytes: &[u8],
    ) -> io::Result<Vec<u8>> {
        client.write_all(bytes).await?;
        let mut buf = vec![0; bytes.len()];
        let n = guard.read(&mut buf).await?;
        buf.truncate(n);
        Ok(buf)
    }

    /// What the guard wrote to the client so far.
    async fn written(client: &mut DuplexStream) -> Vec<u8> {
        let mut buf = vec![0; 1024];
        let n = client.read(&mut buf).await.expect("readable");
        buf.truncate(n);
        buf
    }

    #[tokio::test]
    async fn http1_passes_through_uncounted() {
        let (mut guard, mut client, closed) = guard(1);
        let head = b"POST / HTTP/1.1\r\nhost: a\r\n\r\n";
        assert_eq!(
            pass(&mut guard, &mut client, head).await.expect("read"),
            head
        );
        // Bytes shaped like PING frames are only a body here.
        for _ in 0..10 {
            let body = ping();
            assert_eq!(
                pass(&mut guard, &mut client, &body).await.expect("read"),
                body
            );
        }
        assert!(matches!(guard.state, State::Plain));
        assert_eq!(closed.get(), 0);
    }

    #[tokio::test]
    async fn a_preface_in_pieces_then_a_flood_is_stopped_with_goaway() {
        for cut in 0..=PREFACE.len() {
            let (mut guard, mut client, closed) = guard(3);
            pass(&mut guard, &mut client, &PREFACE[..cut])
                .await
                .expect("read");
            let mut rest = PREFACE[cut..].to_vec();
            rest.extend(frame(frames::SETTINGS, 0, 0, 0));
            rest.extend(frame(frames::HEADERS, 0x5, 3, 4));
            pass(&mut guard, &mut client, &rest).await.expect("read");
            // hyper's SETTINGS, whole: the GOAWAY may follow it.
            let settings = frame(frames::SETTINGS, 0, 0, 6);
            guard.write_all(&settings).await.expect("write");
            assert_eq!(written(&mut client).await, settings);
            pass(&mut guard, &mut client, &ping()).await.expect("read");
            let mut pings = ping();
            pings.extend(ping());
            let flood = pass(&mut guard, &mut client, &pings).await;
            assert!(flood.is_err(), "cut at {cut}");
            assert_eq!(
                written(&mut client).await,
                frames::goaway(3, ENHANCE_YOUR_CALM)
            );
            assert_eq!(closed.get(), 1);
            // The connection stays refused, both ways.
            assert!(guard.read(&mut [0; 8]).await.is_err());
            assert!(guard.write_all(&settings).await.is_err());
        }
    }

    #[tokio::test]
    async fn no_goaway_is_written_into_the_middle_of_a_frame() {
        let (mut guard, mut client, closed) = guard(1);
        pass(&mut guard, &mut client, PREFACE).await.expect("read");
        // Half a header of hyper's, the rest not yet written.
        guard.write_all(&[0, 0, 8, 6, 1]).await.expect("write");
        let mut pings = ping();
        pings.extend(ping());
        assert!(pass(&mut guard, &mut client, &pings).await.is_err());
        assert_eq!(closed.get(), 1);
        drop(guard);
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.expect("readable");
        assert_eq!(out, [0, 0, 8, 6, 1]);
    }

    #[tokio::test]
    async fn a_zero_burst_leaves_http2_unwatched() {
        let (mut guard, mut client, _) = guard(0);
        pass(&mut guard, &mut client, PREFACE).await.expect("read");
        for _ in 0..100 {
            pass(&mut guard, &mut client, &ping()).await.expect("read");
        }
        assert!(matches!(guard.state, State::Plain));
    }

    #[tokio::test]
    async fn the_preface_is_refused_when_http2_is_off() {
        let (ours, mut client) = tokio::io::duplex(1 << 16);
        let closed = IntCounter::new("closed", "closed").expect("valid name");
        let limits = FloodLimits {
            burst: 0,
            rate: 0,
            closed: closed.clone(),
            h2: false,
        };
        let mut guard = FloodGuard::new(ours, limits, SocketAddr::from(([127, 0, 0, 1], 1)));
        let error = pass(&mut guard, &mut client, PREFACE).await.unwrap_err();
        assert!(error.to_string().contains("ENABLE_HTTP2"), "{error}");
        assert_eq!(closed.get(), 0, "not a flood");

        let (ours, mut client) = tokio::io::duplex(1 << 16);
        let limits = FloodLimits {
            burst: 0,
            rate: 0,
            closed,
            h2: false,
        };
        let mut guard = FloodGuard::new(ours, limits, SocketAddr::from(([127, 0, 0, 1], 1)));
        let request = b"GET / HTTP/1.1\r\n";
        assert_eq!(
            pass(&mut guard, &mut client, request).await.unwrap(),
            request
        );
    }
}
