//! The response body sent to the client, which drives the backend connection it arrives on,
//! gives that connection back to its pool, and records the exchange when it ends. (The request
//! body sent to the backend belongs to the upstream client, next to the connections it is sent
//! on.)

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::access::Completion;
use crate::conn::ActiveRequest;
use crate::upstream::Lease;

pub use crate::error::BoxError;

/// The response body sent to the client: the backend's stream or a short page of the proxy's.
///
/// Polling it also polls the HTTP/1.1 backend connection the body arrives on, which goes back
/// to its pool as soon as the last byte is read. When it ends (or is dropped: client gone,
/// `HEAD`, upgrade) it counts the request in the metrics and writes the access log line, so
/// durations and byte counts cover the whole body.
pub struct ProxyBody {
    inner: Inner,
    bytes: u64,
    done: Option<Completion>,
    /// Keeps the request counted on its client connection until the body ends.
    active: Option<ActiveRequest>,
}

enum Inner {
    /// The backend's body, and for HTTP/1.1 the connection it arrives on: polling the body
    /// drives the connection, which goes back to its pool once the body has been read.
    Upstream(Incoming, Option<Lease>),
    Full(Option<Bytes>),
}

impl std::fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyBody")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl ProxyBody {
    /// Streams a backend response body, driving `lease`'s connection while it does.
    pub(crate) fn upstream(body: Incoming, lease: Option<Lease>) -> ProxyBody {
        ProxyBody {
            inner: Inner::Upstream(body, lease),
            bytes: 0,
            done: None,
            active: None,
        }
    }

    /// A complete body known up front (error pages, redirects).
    pub(crate) fn full(bytes: Bytes) -> ProxyBody {
        ProxyBody {
            inner: Inner::Full(Some(bytes).filter(|b| !b.is_empty())),
            bytes: 0,
            done: None,
            active: None,
        }
    }

    /// Counts the request on its client connection until the body ends (or is dropped).
    pub(crate) fn hold(mut self, active: Option<ActiveRequest>) -> ProxyBody {
        self.active = active;
        self
    }

    pub(crate) fn on_end(mut self, completion: Completion) -> ProxyBody {
        self.done = Some(completion);
        self
    }

    fn finish(&mut self) {
        if let Some(done) = self.done.take() {
            done.finish(self.bytes);
        }
    }

    /// Frees the backend connection: back to its pool when the body was read to its end
    /// (`ended`, or known from its length), closed otherwise (client gone, body failed).
    fn release(&mut self, ended: bool) {
        if let Inner::Upstream(body, lease) = &mut self.inner {
            if let Some(lease) = lease.take() {
                if ended || body.is_end_stream() {
                    lease.release();
                }
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::Upstream(body, lease) => {
                if let Some(lease) = lease {
                    lease.drive(cx);
                }
                Pin::new(body).poll_frame(cx).map_err(BoxError::from)
            }
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                // The last frame: the connection can serve another request right away.
                if this.is_end_stream() {
                    this.release(true);
                }
            }
            Poll::Ready(None) => {
                this.release(true);
                this.finish();
                this.active = None;
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Upstream(body, _) => body.is_end_stream(),
            Inner::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Upstream(body, _) => body.size_hint(),
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        self.release(false);
        self.finish();
    }
}
