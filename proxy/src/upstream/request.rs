//! The client's request body on its way to a backend.
//!
//! It is handed to hyper's client, which polls it while it writes the request; when it fails,
//! hyper reports a failed exchange, which alone cannot tell a backend that broke from a client
//! that sent a malformed chunk, went away, or stalled. The body therefore records a failure of
//! its own side where the exchange can read it ([`Reclaim::client_fault`]), so that the client
//! gets the 400 or 408 and the backend is not blamed (no upstream error, no ejection, no retry).
//!
//! A bodyless request (every plain `GET`) costs nothing of this: no shared state, no timer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::error::{BoxError, ErrorKind};

/// [`Shared::state`] values: flowing (or not polled yet), the two client faults, waiting for
/// the client, and read to its end.
const FINE: u8 = 0;
const BROKEN: u8 = 1;
const STALLED: u8 = 2;
const WAITING: u8 = 3;
const SENT: u8 = 4;

/// How far the client's body has come, for the wait for a response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upload {
    /// Not polled yet, flowing, or held back by the backend: the backend's time.
    Flowing,
    /// Waiting for the client's next bytes: the client's time, bounded by its read timeout.
    Waiting,
    /// Read to its end (or no body at all).
    Sent,
    /// Failed on the client's side.
    Failed,
}

/// A client body shared between the attempts of one request and the exchange sending it.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The body until an attempt takes it, so that an attempt that never got a connection
    /// leaves it untouched for the next one.
    slot: Mutex<Option<Incoming>>,
    /// One of [`FINE`], [`WAITING`], [`SENT`], or the client's fault: [`BROKEN`], [`STALLED`].
    state: AtomicU8,
}

/// A client request body between two attempts: nothing to send, or the untouched stream.
#[derive(Debug)]
pub(crate) enum Pending {
    Empty,
    Stream(Incoming),
}

impl Pending {
    pub(crate) fn new(body: Incoming) -> Pending {
        if body.is_end_stream() {
            Pending::Empty
        } else {
            Pending::Stream(body)
        }
    }

    /// The body for one attempt, failing once the client sends nothing for `read_timeout`,
    /// and what to keep to learn how it went and to send it again.
    ///
    /// A stream costs one `Arc` per attempt; an empty body is simply rebuilt.
    pub(crate) fn attempt(self, read_timeout: Duration) -> (UpstreamBody, Reclaim) {
        match self {
            Pending::Empty => (UpstreamBody::Empty, Reclaim::Empty),
            Pending::Stream(body) => {
                let hint = body.size_hint();
                let shared = Arc::new(Shared {
                    slot: Mutex::new(Some(body)),
                    state: AtomicU8::new(FINE),
                });
                let upstream = ClientBody {
                    shared: shared.clone(),
                    body: None,
                    hint,
                    read_timeout,
                    timer: None,
                    armed: false,
                };
                (
                    UpstreamBody::Client(Box::new(upstream)),
                    Reclaim::Slot(shared),
                )
            }
        }
    }
}

/// What an attempt leaves to the exchange: whether the client's side failed, and the means to
/// get the body back after the attempt failed to connect.
#[derive(Debug)]
pub(crate) enum Reclaim {
    Empty,
    Slot(Arc<Shared>),
}

impl Reclaim {
    /// The client's fault, when the attempt failed because the client's body did: 400 for a
    /// body that broke (malformed chunk, client gone), 408 for one that stalled.
    pub(crate) fn client_fault(&self) -> Option<ErrorKind> {
        match self {
            Reclaim::Empty => None,
            Reclaim::Slot(shared) => fault_kind(shared.state.load(Ordering::Acquire)),
        }
    }

    /// How far the body has come.
    pub(crate) fn upload(&self) -> Upload {
        let Reclaim::Slot(shared) = self else {
            return Upload::Sent;
        };
        match shared.state.load(Ordering::Acquire) {
            FINE => Upload::Flowing,
            WAITING => Upload::Waiting,
            SENT => Upload::Sent,
            _ => Upload::Failed,
        }
    }

    /// The body, if the attempt never started sending it.
    ///
    /// hyper polls a request body only once a connection carries the request, so after a
    /// connect error the slot still holds it; if it does not, the body is gone and `None` tells
    /// the caller not to retry.
    pub(crate) fn reclaim(self) -> Option<Pending> {
        match self {
            Reclaim::Empty => Some(Pending::Empty),
            Reclaim::Slot(shared) => shared
                .slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .map(Pending::Stream),
        }
    }
}

fn fault_kind(fault: u8) -> Option<ErrorKind> {
    match fault {
        BROKEN => Some(ErrorKind::BadBody),
        STALLED => Some(ErrorKind::BodyTimeout),
        _ => None,
    }
}

/// The request body sent to a backend.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    /// No body.
    Empty,
    /// The client's body, streamed as it arrives. Boxed: hyper's client moves the request
    /// (and this body in it) about 17 times per exchange, and most requests have no body
    /// (104 bytes less to copy each time, and under glibc's 256-byte fast path for copies: −2.1%
    /// instructions per request; benches/results/RESULTS.md, 2026-12-06 10:48).
    Client(Box<ClientBody>),
}

/// The client's body as one attempt sends it.
#[derive(Debug)]
pub(crate) struct ClientBody {
    shared: Arc<Shared>,
    /// The body once taken out of the slot, on the first poll.
    body: Option<Incoming>,
    /// Captured up front: hyper asks for it before polling (to pick the framing).
    hint: SizeHint,
    read_timeout: Duration,
    /// Made the first time the client keeps the body waiting, then reset for each wait: most
    /// bodies arrive with their head and never need one.
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer runs for the current wait.
    armed: bool,
}

/// Why a client body failed, as hyper's client sees it.
#[derive(Debug)]
enum ClientBodyError {
    Broken(hyper::Error),
    Stalled(Duration),
    Reclaimed,
}

impl fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientBodyError::Broken(_) => f.write_str("client request body failed"),
            ClientBodyError::Stalled(after) => {
                write!(f, "client sent no request body for {after:?}")
            }
            ClientBodyError::Reclaimed => f.write_str("request body was reclaimed for a retry"),
        }
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientBodyError::Broken(e) => Some(e),
            _ => None,
        }
    }
}

type Polled = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

impl ClientBody {
    fn poll_client(&mut self, cx: &mut Context<'_>) -> Polled {
        if self.body.is_none() {
            self.body = (self.shared.slot.lock())
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
        let Some(body) = &mut self.body else {
            return Poll::Ready(Some(Err(ClientBodyError::Reclaimed.into())));
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => self.fail(BROKEN, ClientBodyError::Broken(e)),
            Poll::Ready(frame) => {
                // hyper stops polling once the body says it ended.
                let ended = frame.is_none() || self.body.as_ref().is_some_and(Body::is_end_stream);
                if ended {
                    self.shared.state.store(SENT, Ordering::Release);
                } else if self.armed {
                    self.shared.state.store(FINE, Ordering::Release);
                }
                self.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => self.wait(cx),
        }
    }

    /// The client keeps the body waiting: fails it once a whole `read_timeout` passes without
    /// a frame since the wait began.
    fn wait(&mut self, cx: &mut Context<'_>) -> Polled {
        if !self.armed {
            // A timeout too long to add to the clock never expires.
            let Some(deadline) = Instant::now().checked_add(self.read_timeout) else {
                return Poll::Pending;
            };
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
            self.shared.state.store(WAITING, Ordering::Release);
        }
        let expired = self
            .timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
        if expired {
            return self.fail(STALLED, ClientBodyError::Stalled(self.read_timeout));
        }
        Poll::Pending
    }

    fn fail(&mut self, fault: u8, error: ClientBodyError) -> Polled {
        self.shared.state.store(fault, Ordering::Release);
        // The body is done with: it is neither sent nor retried.
        self.body = None;
        Poll::Ready(Some(Err(error.into())))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Polled {
        match self.get_mut() {
            UpstreamBody::Empty => Poll::Ready(None),
            UpstreamBody::Client(client) => client.poll_client(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Client(client) => client.body.as_ref().is_some_and(Body::is_end_stream),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Client(client) => {
                client.body.as_ref().map_or(client.hint, Body::size_hint)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_faults_are_reported() {
        assert_eq!(fault_kind(FINE), None);
        assert_eq!(fault_kind(WAITING), None);
        assert_eq!(fault_kind(SENT), None);
        assert_eq!(fault_kind(BROKEN), Some(ErrorKind::BadBody));
        assert_eq!(fault_kind(STALLED), Some(ErrorKind::BodyTimeout));
        assert_eq!(Reclaim::Empty.client_fault(), None);
        assert_eq!(Reclaim::Empty.upload(), Upload::Sent);
    }
}
