//! The request heads as they arrived on the wire, so that the echo can report header names in
//! the case the client (a proxy) wrote them: hyper lower-cases names in its `HeaderMap`.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most recent bytes read on a connection kept for [`header_names`]: a request head is
/// read before its body, so it is among the last bytes read when the handler runs.
const KEPT: usize = 1 << 20;

/// What a connection has read and not yet matched to a request.
pub(super) type Seen = Arc<Mutex<Vec<u8>>>;

/// A stream whose reads are also appended to a [`Seen`] buffer.
pub(super) struct Recorded<S> {
    inner: S,
    seen: Seen,
}

impl<S> Recorded<S> {
    pub(super) fn new(inner: S, seen: Seen) -> Recorded<S> {
        Recorded { inner, seen }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.extend_from_slice(&buf.filled()[before..]);
            if seen.len() > KEPT {
                let excess = seen.len() - KEPT;
                seen.drain(..excess);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The header names of the HTTP/1 request whose request line is `request_line` (`GET /x
/// HTTP/1.1`), as written on the wire and in order; the bytes up to the end of that head are
/// forgotten. Empty when no such head was read (HTTP/2).
pub(super) fn header_names(seen: &Seen, request_line: &str) -> Vec<String> {
    let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    let needle = format!("{request_line}\r\n");
    // The last occurrence: what comes before it is an earlier request's body.
    let Some(start) = last_position(&seen, needle.as_bytes()) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut at = start + needle.len();
    while let Some(len) = seen[at..].windows(2).position(|w| w == b"\r\n") {
        let line = &seen[at..at + len];
        at += len + 2;
        if line.is_empty() {
            break;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            names.push(String::from_utf8_lossy(&line[..colon]).into_owned());
        }
    }
    seen.drain(..at);
    names
}

/// Where the last occurrence of `needle` begins.
fn last_position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    (0..=haystack.len().checked_sub(needle.len())?)
        .rev()
        .find(|&i| haystack[i..].starts_with(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_case_and_order() {
        let seen: Seen = Arc::default();
        seen.lock().unwrap().extend_from_slice(
            b"body of beforeGET /x HTTP/1.1\r\nHost: a\r\nx-lower: 1\r\nX-Real-IP: 2\r\n\r\nbody",
        );
        assert_eq!(
            header_names(&seen, "GET /x HTTP/1.1"),
            vec!["Host", "x-lower", "X-Real-IP"]
        );
        assert_eq!(seen.lock().unwrap().as_slice(), b"body");
        assert!(header_names(&seen, "GET /x HTTP/1.1").is_empty());
    }
}
