//! Idle keep-alive connections to backends, per backend address.
//!
//! A connection is checked out for one exchange (request, response head and body) and put back
//! once its response body has been read to the end and it is idle. The most recently used one is
//! taken first (its buffers and the backend's worker are warm). With a limit (the route's
//! `keepalive` label, or `DOCKHAND_UPSTREAM_MAX_IDLE`) the least recently used one is closed
//! when more are idle, as nginx's `keepalive` does; by default there is none, as in HAProxy.
//!
//! Nothing polls an idle connection, so a reaper task looks at them every few seconds: it closes
//! those the backend closed and those idle for longer than the idle timeout, and parks those
//! idle for [`PARK_AFTER`] (see [`super::conn`]: only the stream is kept). A checkout also
//! checks the one it takes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use prometheus::IntGauge;

use super::conn::{Conn, Key};

/// Longest time between two reaper passes. Besides closing connections the backends closed,
/// the reaper's timer keeps tokio's time driver from planning its next wake-up far ahead: a
/// header-read timer armed before that wake-up would cost a write to the driver's eventfd on
/// every keep-alive request (seen with `strace` at one connection).
const MAX_REAP_INTERVAL: Duration = Duration::from_secs(5);

/// How long a connection waits in the pool before it is parked (at the reaper's next pass).
/// Under steady load connections come back and leave again within milliseconds and are never
/// parked; a burst's extra connections are.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// The idle connections of one data-plane runtime.
pub(crate) struct Pool {
    idle: Mutex<HashMap<Key, VecDeque<Idle>, RandomState>>,
    idle_timeout: Duration,
    reaper: std::sync::Once,
    /// `dockhand_upstream_parked_connections`.
    parked: IntGauge,
}

struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

impl Idle {
    /// Not idle for `timeout` yet, and still open.
    fn is_usable(&mut self, timeout: Duration) -> bool {
        self.since.elapsed() < timeout && self.conn.is_reusable()
    }

    /// Parks the connection once idle for [`PARK_AFTER`]; returns whether it is still usable.
    fn park_if_idle(&mut self, gauge: &IntGauge) -> bool {
        self.since.elapsed() < PARK_AFTER || self.conn.park(gauge)
    }
}

impl Pool {
    /// A pool closing connections idle for `idle_timeout`, counting the parked ones in
    /// `parked`.
    pub(crate) fn new(idle_timeout: Duration, parked: IntGauge) -> Pool {
        Pool {
            idle: Mutex::default(),
            idle_timeout,
            reaper: std::sync::Once::new(),
            parked,
        }
    }

    /// An idle connection to `key` that is still open, if any.
    pub(crate) fn checkout(&self, key: Key) -> Option<Box<Conn>> {
        let mut idle = self.lock();
        let list = idle.get_mut(&key)?;
        while let Some(mut entry) = list.pop_back() {
            if entry.is_usable(self.idle_timeout) {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Keeps `conn` for reuse if it is idle, closing the least recently used connection to
    /// the same backend when its `max_idle` are already idle (0 keeps none).
    pub(crate) fn put(self: &Arc<Self>, conn: Box<Conn>) {
        let max_idle = conn.max_idle;
        if max_idle == 0 || !conn.is_idle() {
            return;
        }
        self.start_reaper();
        let mut idle = self.lock();
        let list = idle.entry(conn.key()).or_default();
        while list.len() >= max_idle {
            list.pop_front();
        }
        list.push_back(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Closes the idle connections that expired or that the backend closed, and parks those
    /// idle for a while.
    fn reap(&self) {
        let mut idle = self.lock();
        idle.retain(|_, list| {
            list.retain_mut(|entry| {
                entry.is_usable(self.idle_timeout) && entry.park_if_idle(&self.parked)
            });
            !list.is_empty()
        });
    }

    /// Starts the reaper on the current runtime, once. It holds the pool weakly and ends with
    /// it. Outside a runtime (never the case for a connection's owner) nothing is started.
    fn start_reaper(self: &Arc<Self>) {
        self.reaper.call_once(|| {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let pool = Arc::downgrade(self);
            let every = self
                .idle_timeout
                .clamp(Duration::from_millis(10), MAX_REAP_INTERVAL);
            runtime.spawn(reap_every(pool, every));
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Idle>, RandomState>> {
        // The map stays consistent whatever panicked while holding it.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn reap_every(pool: Weak<Pool>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        pool.reap();
    }
}
