//! Client connections of one listener: what each is doing, the deadline of its current phase,
//! and the registry that drains them on shutdown and closes idle ones at the connection limit.
//!
//! Every client connection is served inside a [`Guarded`] future, around hyper's connection,
//! over a [`GuardedIo`] stream; the two share one [`ConnState`]. The stream notes progress (bytes
//! read and written, a write that blocks) and the request handler notes requests in flight; the
//! guard, polled in the connection's own task after hyper, turns that into the phase the
//! connection is in and that phase's deadline (see [`Timeouts`]), so nothing waits forever and
//! no timer is created per request: one sleep per connection, moved as the phases change.
//!
//! The [`Connections`] registry of a listener holds every open connection's state. At the
//! connection limit it closes the idle ones that have waited longest, so that a new client is
//! admitted at once rather than waiting for them to time out (nginx's `ngx_drain_connections`);
//! on shutdown it tells every connection to finish gracefully (HTTP/2 with GOAWAY) and waits.

mod auto;
mod guard;
mod io;

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use slab::Slab;
use tokio_util::task::TaskTracker;

use crate::config::ProxyConfig;

pub(crate) use auto::{AutoConn, Builders};
pub(crate) use guard::{Guarded, Traffic};
pub(crate) use io::GuardedIo;

/// At most this many idle connections are closed to admit one new client (nginx drains up to
/// 32, or an eighth of its reusable connections when fewer).
const MAX_EVICTED_AT_ONCE: usize = 32;

/// With no idle connection to close, a request head still incomplete after this long may be
/// closed instead: a client's head arrives in one round trip, a slowloris head never does.
const SLOW_HEAD: Duration = Duration::from_secs(1);

/// How long an HTTP/1 keep-alive connection stays idle before it is parked: hyper's connection
/// and its buffers are freed until the client sends again ([`AutoConn`]). Long enough that a
/// client sending its next request at once (a browser's next asset, a benchmark) never pays for
/// a new hyper connection; short enough that idle connections hold no buffers for long.
pub(crate) const PARK_AFTER: Duration = Duration::from_millis(250);

/// The deadlines of a client connection, one per phase. Built from
/// [`ProxyConfig`]; see its fields for the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// From accept to the first request's complete head (protocol detection, TLS handshake and
    /// the head itself), and from the first byte of each later HTTP/1 head to its end.
    pub(crate) header_read: Duration,
    /// An idle keep-alive connection (no request in flight) is closed after this long; HTTP/2
    /// gets a GOAWAY.
    pub(crate) keepalive: Duration,
    /// A write that makes no progress for this long closes the connection (nginx's
    /// `send_timeout`: between two successful writes, not for the whole response).
    pub(crate) send: Duration,
    /// Lingering close: the longest time spent reading and discarding what a client still
    /// sends after its answer (nginx's `lingering_time`).
    pub(crate) lingering_time: Duration,
    /// Lingering close: the longest wait for more of it (nginx's `lingering_timeout`).
    pub(crate) lingering_timeout: Duration,
}

impl Timeouts {
    /// The connection deadlines of `config`.
    pub(crate) fn of(config: &ProxyConfig) -> Timeouts {
        Timeouts {
            header_read: config.header_read_timeout,
            keepalive: config.keepalive_timeout,
            send: config.send_timeout,
            lingering_time: config.lingering_time,
            lingering_timeout: config.lingering_timeout,
        }
    }
}

/// What a connection is doing, as last seen by its guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Waiting for a request with nothing received yet: the first one since accept, or the
    /// next one on a keep-alive connection.
    Idle = 0,
    /// An HTTP/1 request head has started to arrive.
    Head = 1,
    /// At least one request is being answered.
    Busy = 2,
    /// Closing: the answer is out and what the client still sends is read and discarded.
    Lingering = 3,
}

/// Why the registry wants a connection to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Signal {
    None = 0,
    /// Close now if still idle: a new client needs the slot.
    Evict = 1,
    /// Finish what is in flight, then close (shutdown).
    Drain = 2,
}

/// The state one connection's stream, request handler and guard share. Every field is only
/// written from the connection's own task or its requests, so relaxed atomics suffice: they
/// order nothing, they only make the values readable by the registry.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    /// Requests being answered (a request counts until its response body has ended).
    active: AtomicUsize,
    /// Requests started so far.
    requests: AtomicU64,
    /// Bytes read from the client so far.
    read: AtomicU64,
    /// Bytes written to the client so far.
    written: AtomicU64,
    /// How much of `read` and `written` the listener's counters hold ([`Traffic`]).
    counted_read: AtomicU64,
    counted_written: AtomicU64,
    /// The last write or flush could not complete (the client is not reading).
    write_blocked: std::sync::atomic::AtomicBool,
    /// The stream began with the HTTP/2 connection preface (set by [`AutoConn`]'s detection).
    h2: std::sync::atomic::AtomicBool,
    /// May the stream linger on close? Only while hyper serves it: once a connection is
    /// upgraded, a tunnel owns the stream and must see every byte.
    linger: std::sync::atomic::AtomicBool,
    /// The stream is closing (its write side is shut): the guard switches to lingering.
    closing: std::sync::atomic::AtomicBool,
    /// hyper's connection is ending so that the stream can be parked ([`AutoConn`]): its
    /// shutdown must leave the stream open.
    parking: std::sync::atomic::AtomicBool,
    /// The last thing done on the stream was a read that found nothing: hyper is waiting for
    /// the client (a connection hyper is closing writes, flushes or shuts down last).
    awaiting: std::sync::atomic::AtomicBool,
    /// The latest request came with a body, which hyper may have left unread: its close
    /// lingers even when no byte is waiting at that instant (nginx's `r->lingering_close`).
    uploading: std::sync::atomic::AtomicBool,
    /// [`Phase`], as last set by the guard.
    phase: AtomicU8,
    /// When the current phase began (idle, or a head started), in milliseconds (see [`millis`]).
    since: AtomicU64,
    /// [`Signal`] from the registry.
    signal: AtomicU8,
    /// Tunnels upgraded out of this connection and still open ([`TunnelHold`]; the one field
    /// other tasks write, hence acquire and release).
    tunnels: AtomicUsize,
    /// The guard's task, woken on a signal.
    waker: AtomicWaker,
}

impl ConnState {
    /// A request starts, with a body to read or not: the connection is busy until
    /// [`ActiveRequest`] is dropped.
    pub(crate) fn begin(self: &Arc<Self>, with_body: bool) -> ActiveRequest {
        self.uploading.store(with_body, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(self.clone())
    }

    fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    fn h2(&self) -> bool {
        self.h2.load(Ordering::Relaxed)
    }

    fn write_blocked(&self) -> bool {
        self.write_blocked.load(Ordering::Relaxed)
    }

    fn set_since(&self, at: Instant) {
        self.since.store(millis(at), Ordering::Relaxed);
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Idle,
            1 => Phase::Head,
            2 => Phase::Busy,
            _ => Phase::Lingering,
        }
    }

    /// Completes once the registry asks the connection to end (an eviction or a drain), for
    /// the phases before hyper serves it (a TLS handshake).
    pub(crate) fn signalled(&self) -> impl std::future::Future<Output = ()> + '_ {
        self.until(|state| state.signal() != Signal::None)
    }

    /// Completes once `done` holds, looking again whenever the connection's waker is woken.
    fn until<'a>(
        &'a self,
        done: impl Fn(&ConnState) -> bool + 'a,
    ) -> impl std::future::Future<Output = ()> + 'a {
        std::future::poll_fn(move |cx| {
            self.waker.register(cx.waker());
            if done(self) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }

    /// A tunnel is upgraded out of this connection: the connection's task, and so its slot
    /// under the connection limit, lasts until every [`TunnelHold`] is dropped
    /// ([`ConnState::tunnels_closed`]).
    pub(crate) fn tunnel_opened(self: &Arc<Self>) -> TunnelHold {
        self.tunnels.fetch_add(1, Ordering::Relaxed);
        TunnelHold(self.clone())
    }

    /// Completes once no tunnel upgraded out of this connection is open.
    pub(crate) fn tunnels_closed(&self) -> impl std::future::Future<Output = ()> + '_ {
        self.until(|state| state.tunnels.load(Ordering::Acquire) == 0)
    }

    fn signal(&self) -> Signal {
        match self.signal.load(Ordering::Relaxed) {
            0 => Signal::None,
            1 => Signal::Evict,
            _ => Signal::Drain,
        }
    }

    fn send(&self, signal: Signal) {
        // A drain is never downgraded to an eviction.
        self.signal.fetch_max(signal as u8, Ordering::Relaxed);
        self.waker.wake();
    }
}

/// Marks one request in flight on its connection; dropped with the response body.
#[derive(Debug)]
pub(crate) struct ActiveRequest(Arc<ConnState>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        // Wakes the guard only if it sleeps on a signal; it is normally polled right after
        // (the body ends inside the connection's task for HTTP/1; HTTP/2 streams wake it to
        // send their last frame).
    }
}

/// Keeps the connection a tunnel was upgraded out of counted as open (its slot under the
/// connection limit, `dockhand_open_connections`) while the tunnel lives.
#[derive(Debug)]
pub(crate) struct TunnelHold(Arc<ConnState>);

impl Drop for TunnelHold {
    fn drop(&mut self) {
        self.0.tunnels.fetch_sub(1, Ordering::Release);
        self.0.waker.wake();
    }
}

/// The open connections of one listener (cheap to clone).
#[derive(Clone, Debug)]
pub(crate) struct Connections {
    inner: Arc<Registry>,
    tracker: TaskTracker,
}

#[derive(Debug, Default)]
struct Registry {
    open: Mutex<Slab<Arc<ConnState>>>,
}

/// A connection's place in the registry; leaving it (drop) removes the connection.
#[derive(Debug)]
pub(crate) struct Entry {
    registry: Arc<Registry>,
    key: usize,
    pub(crate) state: Arc<ConnState>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut open = self
            .registry
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.try_remove(self.key);
    }
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            inner: Arc::default(),
            tracker: TaskTracker::new(),
        }
    }
}

impl Connections {
    /// Registers a new connection, idle since now.
    pub(crate) fn register(&self) -> Entry {
        let state = Arc::new(ConnState::default());
        state.linger.store(true, Ordering::Relaxed);
        state.set_since(Instant::now());
        let key = self
            .inner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(state.clone());
        Entry {
            registry: self.inner.clone(),
            key,
            state,
        }
    }

    /// The task tracker connection tasks are spawned on, so that a drain can wait for them.
    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Connections open now.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// Closes the idle connections that have waited longest, to make room for a new client:
    /// up to 32, or an eighth of them, at least one. With none idle, the request heads that
    /// have been arriving longest (for over a second) are closed instead. Returns how many
    /// were told.
    pub(crate) fn evict_idle(&self) -> usize {
        let open = self.inner.lock();
        let candidates = |phase: Phase, before: u64| -> Vec<(u64, &Arc<ConnState>)> {
            (open.iter().map(|(_, state)| state))
                .filter(|state| state.phase() == phase && state.signal() == Signal::None)
                .map(|state| (state.since.load(Ordering::Relaxed), state))
                .filter(|(since, _)| *since <= before)
                .collect()
        };
        let mut chosen = candidates(Phase::Idle, u64::MAX);
        let slow = millis(Instant::now()).checked_sub(SLOW_HEAD.as_millis() as u64);
        if let (true, Some(slow)) = (chosen.is_empty(), slow) {
            chosen = candidates(Phase::Head, slow);
        }
        let count = (chosen.len() / 8)
            .clamp(1, MAX_EVICTED_AT_ONCE)
            .min(chosen.len());
        if count == 0 {
            return 0;
        }
        if count < chosen.len() {
            chosen.select_nth_unstable_by_key(count - 1, |(since, _)| *since);
        }
        for (_, state) in &chosen[..count] {
            state.send(Signal::Evict);
        }
        count
    }

    /// Tells every open connection to finish what it is answering and close, and waits until
    /// every connection task has ended.
    pub(crate) async fn drain(&self) {
        self.tracker.close();
        for (_, state) in self.inner.lock().iter() {
            state.send(Signal::Drain);
        }
        self.tracker.wait().await;
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slab<Arc<ConnState>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `at` in milliseconds on a clock that fits an atomic: since an hour before the first call, so
/// that an instant a little in the past never saturates to zero.
fn millis(at: Instant) -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| {
        let now = Instant::now();
        now.checked_sub(Duration::from_secs(3600)).unwrap_or(now)
    });
    u64::try_from(at.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
