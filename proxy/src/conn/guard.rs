//! The deadline of each phase of a client connection, enforced around hyper's connection.
//!
//! The guard is polled in the connection's task right after hyper, so it sees every read,
//! write and request as it happens and needs no wake-ups of its own. From what changed it
//! derives the [`Phase`] and that phase's deadline, and moves its one sleep there. Moving a
//! tokio sleep later is an atomic store; only a deadline that moves earlier (a partial HTTP/1
//! head) re-registers it with the timer.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::time::Sleep;

use super::{ConnState, Entry, Phase, Signal, Timeouts, PARK_AFTER};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connection that can be asked to finish gracefully (hyper's: HTTP/2 sends GOAWAY, an idle
/// HTTP/1 connection closes, a busy one closes after its response).
pub(crate) trait GracefulConn: Future<Output = Result<(), BoxError>> {
    fn graceful_shutdown(self: Pin<&mut Self>);

    /// Frees what an idle connection need not hold until the client sends again (an HTTP/1
    /// connection's buffers: see [`super::AutoConn`]); a connection that cannot ignores it.
    fn park(self: Pin<&mut Self>) {}
}

pin_project_lite::pin_project! {
    /// hyper's connection `C`, closed when the deadline of its current phase passes.
    pub(crate) struct Guarded<C> {
        #[pin]
        conn: C,
        #[pin]
        sleep: Sleep,
        entry: Entry,
        timeouts: Timeouts,
        watch: Watch,
    }

    impl<C> PinnedDrop for Guarded<C> {
        fn drop(this: Pin<&mut Self>) {
            // An upgraded stream now belongs to a tunnel, which must see every byte. (The
            // stream, dropped after this or with the tunnel, adds the bytes not yet counted.)
            this.entry.state.linger.store(false, Ordering::Relaxed);
        }
    }
}

/// What the guard has seen so far.
#[derive(Debug)]
struct Watch {
    phase: Phase,
    /// When the current phase began.
    since: Instant,
    /// The deadline the sleep is set to.
    deadline: Instant,
    /// Counters as last seen, to tell what changed.
    requests: u64,
    read: u64,
    written: u64,
    /// When reading last made progress (for lingering).
    read_at: Instant,
    /// Since when a write has been blocked without progress.
    blocked_since: Option<Instant>,
    /// hyper was asked to finish gracefully, at this time, because the connection was idle:
    /// `lingering_timeout` bounds how long that may take (a silent HTTP/2 client never answers
    /// the GOAWAY's ping).
    finishing: Option<Instant>,
    /// The registry asked hyper to finish gracefully (shutdown); its grace period bounds it.
    drained: bool,
    /// Parked since it became idle (see [`GracefulConn::park`]).
    parked: bool,
    /// The listener's byte counters, added to when the connection goes idle and when it ends.
    traffic: Traffic,
}

/// A connection's bytes, added to its listener's counters in steps: once per request that
/// leaves the connection idle and at the end, rather than per read and write, so that workers
/// do not contend on the shared counters. The guard adds while hyper serves the connection; the
/// stream adds the rest when it is dropped, which for an upgraded connection is when its tunnel
/// ends.
#[derive(Clone, Debug)]
pub(crate) struct Traffic {
    received: prometheus::IntCounter,
    sent: prometheus::IntCounter,
}

impl Traffic {
    pub(crate) fn new(received: prometheus::IntCounter, sent: prometheus::IntCounter) -> Self {
        Traffic { received, sent }
    }

    /// Adds what `state` counted since the last flush, from whichever task flushes.
    pub(crate) fn flush(&self, state: &ConnState) {
        let add = |total: &AtomicU64, counted: &AtomicU64, counter: &prometheus::IntCounter| {
            let total = total.load(Ordering::Relaxed);
            // `fetch_max`: a flush that read an older total never moves the mark back.
            let before = counted.fetch_max(total, Ordering::Relaxed);
            counter.inc_by(total.saturating_sub(before));
        };
        add(&state.read, &state.counted_read, &self.received);
        add(&state.written, &state.counted_written, &self.sent);
    }
}

/// What to do when a deadline passes.
enum Expiry {
    /// Close the connection now.
    Close(&'static str),
    /// Ask hyper to finish gracefully (HTTP/2: GOAWAY), within `lingering_timeout`.
    Finish,
    /// Park the idle connection (it stays open).
    Park,
    /// Nothing to do: look again later.
    Continue,
}

impl<C: GracefulConn> Guarded<C> {
    /// Guards `conn`, accepted at `accepted` and registered as `entry`.
    /// Its bytes go to `traffic`.
    pub(crate) fn new(
        conn: C,
        entry: Entry,
        timeouts: Timeouts,
        accepted: Instant,
        traffic: Traffic,
    ) -> Self {
        let deadline = accepted + timeouts.header_read;
        Guarded {
            conn,
            sleep: tokio::time::sleep_until(deadline.into()),
            entry,
            timeouts,
            watch: Watch {
                phase: Phase::Idle,
                since: accepted,
                deadline,
                requests: 0,
                read: 0,
                written: 0,
                read_at: accepted,
                blocked_since: None,
                finishing: None,
                drained: false,
                parked: false,
                traffic,
            },
        }
    }
}

impl<C: GracefulConn> Future for Guarded<C> {
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let state = &this.entry.state;
        state.waker.register(cx.waker());
        loop {
            if let Poll::Ready(done) = this.conn.as_mut().poll(cx) {
                return Poll::Ready(done);
            }
            let now = Instant::now();
            this.watch.observe(state, this.timeouts, now);
            // Signals are read after hyper had its turn: a connection evicted while its first
            // request was already on its way has become busy, and is spared.
            match state.signal() {
                Signal::Evict if matches!(this.watch.phase, Phase::Idle | Phase::Head) => {
                    tracing::debug!(phase = ?this.watch.phase, "connection closed to admit a new client");
                    return Poll::Ready(Ok(()));
                }
                Signal::Drain if !this.watch.drained => {
                    this.watch.drained = true;
                    if this.watch.phase == Phase::Idle {
                        this.watch.finishing = Some(now);
                    }
                    this.conn.as_mut().graceful_shutdown();
                    continue;
                }
                _ => {}
            }
            if now < this.watch.deadline {
                if this.sleep.deadline() != this.watch.deadline.into() {
                    this.sleep.as_mut().reset(this.watch.deadline.into());
                }
                if this.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            match this.watch.expired(state, this.timeouts, now) {
                Expiry::Close(why) => {
                    tracing::debug!(phase = ?this.watch.phase, why, "closing client connection");
                    return Poll::Ready(Ok(()));
                }
                Expiry::Finish => this.conn.as_mut().graceful_shutdown(),
                Expiry::Park => this.conn.as_mut().park(),
                Expiry::Continue => {}
            }
        }
    }
}

impl Watch {
    /// Updates the phase and the deadline from the connection's counters.
    fn observe(&mut self, state: &ConnState, timeouts: &Timeouts, now: Instant) {
        let requests = state.requests.load(Ordering::Relaxed);
        let read = state.read.load(Ordering::Relaxed);
        let written = state.written.load(Ordering::Relaxed);
        let phase = if state.closing.load(Ordering::Relaxed) {
            Phase::Lingering
        } else if state.active() > 0 || state.write_blocked() {
            // An answer still being written counts as a request in flight.
            Phase::Busy
        } else if requests != self.requests || self.phase == Phase::Busy {
            // A request ended since the last look (possibly one answered within one poll).
            Phase::Idle
        } else if self.phase == Phase::Idle && read != self.read && !state.h2() {
            Phase::Head
        } else {
            self.phase
        };
        if phase != self.phase || requests != self.requests {
            self.parked = false;
            self.enter(state, phase, now);
            if phase == Phase::Idle {
                self.traffic.flush(state);
            }
        }
        self.requests = requests;
        if read != self.read {
            self.read = read;
            self.read_at = now;
        }
        self.blocked_since = match (state.write_blocked(), self.blocked_since) {
            (false, _) => None,
            (true, Some(since)) if written == self.written => Some(since),
            (true, _) => Some(now),
        };
        self.written = written;
        self.deadline = self.deadline(state, timeouts, now);
    }

    fn enter(&mut self, state: &ConnState, phase: Phase, now: Instant) {
        self.phase = phase;
        self.since = now;
        state.phase.store(phase as u8, Ordering::Relaxed);
        if matches!(phase, Phase::Idle | Phase::Head) {
            state.set_since(now);
        }
    }

    /// The earliest deadline of the current phase and of a blocked write.
    fn deadline(&self, state: &ConnState, timeouts: &Timeouts, now: Instant) -> Instant {
        let phase = match self.phase {
            _ if self.finishing.is_some() => {
                self.finishing.unwrap_or(now).max(self.read_at) + timeouts.lingering_timeout
            }
            // Before the first request the whole of detection, handshake and head counts.
            Phase::Idle if self.requests == 0 => self.since + timeouts.header_read,
            Phase::Idle if self.parks(state) => {
                (self.since + PARK_AFTER).min(self.since + timeouts.keepalive)
            }
            Phase::Idle => self.since + timeouts.keepalive,
            Phase::Head => self.since + timeouts.header_read,
            // Nothing bounds a request being answered but its own timeouts (response, body,
            // send); look again now and then, in case a request ended unseen.
            Phase::Busy if self.deadline > now => self.deadline,
            Phase::Busy => now + timeouts.keepalive,
            // The wait for more starts when lingering does, not at the last read before it.
            Phase::Lingering => (self.since + timeouts.lingering_time)
                .min(self.since.max(self.read_at) + timeouts.lingering_timeout),
        };
        match self.blocked_since {
            Some(since) => phase.min(since + timeouts.send),
            None => phase,
        }
    }

    /// Whether the idle connection is still to be parked: HTTP/1, between requests.
    fn parks(&self, state: &ConnState) -> bool {
        !self.parked && !state.h2() && self.requests > 0
    }

    /// What the passed deadline means.
    fn expired(&mut self, state: &ConnState, timeouts: &Timeouts, now: Instant) -> Expiry {
        if self
            .blocked_since
            .is_some_and(|since| now >= since + timeouts.send)
        {
            return Expiry::Close("send timeout: the client stopped reading");
        }
        match self.phase {
            _ if self.finishing.is_some() => {
                Expiry::Close("did not finish in time after being told to")
            }
            Phase::Idle if state.h2() => {
                // GOAWAY first: a client between requests learns not to start another.
                self.finishing = Some(now);
                self.deadline = self.deadline(state, timeouts, now);
                Expiry::Finish
            }
            Phase::Idle if self.requests == 0 => Expiry::Close("no request in time"),
            Phase::Idle if self.parks(state) && now < self.since + timeouts.keepalive => {
                self.parked = true;
                self.deadline = self.deadline(state, timeouts, now);
                Expiry::Park
            }
            Phase::Idle => Expiry::Close("keep-alive timeout"),
            Phase::Head => Expiry::Close("request head timeout"),
            Phase::Busy => {
                self.deadline = now + timeouts.keepalive;
                Expiry::Continue
            }
            Phase::Lingering => Expiry::Close("lingering close over"),
        }
    }
}
