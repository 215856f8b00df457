//! The client stream as hyper sees it: it notes progress for the connection's guard, and closes
//! with a lingering read.
//!
//! Lingering close: when hyper closes a connection while the client is still sending (a backend
//! answered an upload before reading it, a request was refused mid-body), closing at once would
//! make the kernel answer the unread bytes with a reset, which can destroy the answer before the
//! client reads it. So, as nginx does, the write side is shut first (the client sees the end of
//! the answer), then what the client still sends is read and thrown away until it closes too,
//! bounded in bytes here and in time by the guard (`lingering_time`, `lingering_timeout`).

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{ConnState, Traffic};

/// At most this much is read and discarded while lingering.
const LINGER_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// What is read at once while lingering (on the stack).
const LINGER_CHUNK: usize = 4096;

/// A client stream that reports to its connection's [`ConnState`].
#[derive(Debug)]
pub(crate) struct GuardedIo<S> {
    inner: S,
    state: Arc<ConnState>,
    /// Takes what the guard has not counted yet when the stream is dropped: the bytes of an
    /// upgraded connection's tunnel, which outlives the guard.
    traffic: Option<Traffic>,
    close: Close,
}

/// How far closing has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    Open,
    /// The write side is shut; the client's remaining bytes are being discarded.
    Lingering {
        discarded: u64,
    },
}

impl<S> GuardedIo<S> {
    pub(crate) fn new(inner: S, state: Arc<ConnState>, traffic: Option<Traffic>) -> GuardedIo<S> {
        GuardedIo {
            inner,
            state,
            traffic,
            close: Close::Open,
        }
    }

    fn wrote(&self, result: &Poll<io::Result<usize>>) {
        self.state.awaiting.store(false, Ordering::Relaxed);
        match result {
            Poll::Ready(Ok(n)) => {
                self.state.written.fetch_add(*n as u64, Ordering::Relaxed);
                self.state.write_blocked.store(false, Ordering::Relaxed);
            }
            Poll::Pending => self.state.write_blocked.store(true, Ordering::Relaxed),
            Poll::Ready(Err(_)) => {}
        }
    }
}

impl<S> Drop for GuardedIo<S> {
    fn drop(&mut self) {
        if let Some(traffic) = &self.traffic {
            traffic.flush(&self.state);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.state
            .awaiting
            .store(polled.is_pending(), Ordering::Relaxed);
        let read = buf.filled().len() - before;
        if read > 0 {
            this.state.read.fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        let blocked = polled.is_pending();
        this.state.write_blocked.store(blocked, Ordering::Relaxed);
        polled
    }

    /// Shuts the write side, then lingers if the client is still sending (see the module
    /// documentation); the guard bounds how long.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state.parking.load(Ordering::Relaxed) {
            // hyper's connection ends, the stream stays open for the next one.
            return Poll::Ready(Ok(()));
        }
        loop {
            match this.close {
                Close::Open => {
                    std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    if !this.state.linger.load(Ordering::Relaxed) {
                        return Poll::Ready(Ok(()));
                    }
                    this.close = Close::Lingering { discarded: 0 };
                    this.state.closing.store(true, Ordering::Relaxed);
                }
                Close::Lingering { discarded } => {
                    let mut chunk = [0u8; LINGER_CHUNK];
                    let mut buf = ReadBuf::new(&mut chunk);
                    match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                        // Nothing waiting before anything was discarded, and no body the
                        // client may still be sending: there is nothing to linger for (nginx
                        // lingers only when its heuristics say the client may still send).
                        // With a body, an empty socket proves nothing: the next chunk may be
                        // on its way (measured: CI lost the answer to a 4 MiB upload).
                        Poll::Pending
                            if discarded == 0 && !this.state.uploading.load(Ordering::Relaxed) =>
                        {
                            return Poll::Ready(Ok(()))
                        }
                        Poll::Pending => return Poll::Pending,
                        // The end of the client's stream, or a broken one: done either way.
                        Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                        Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                            return Poll::Ready(Ok(()))
                        }
                        Poll::Ready(Ok(())) => {
                            let n = buf.filled().len() as u64;
                            this.state.read.fetch_add(n, Ordering::Relaxed);
                            let discarded = discarded + n;
                            if discarded >= LINGER_MAX_BYTES {
                                return Poll::Ready(Ok(()));
                            }
                            this.close = Close::Lingering { discarded };
                        }
                    }
                }
            }
        }
    }
}
