//! Per-backend state that outlives tables: in-flight requests (for `least_conn`) and passive
//! health, kept by address in the registry while some table routes to the address.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::health::{self, EjectPolicy, PassiveHealth};

use super::{RouteTable, Vhost};

/// State of one backend address shared by every table that routes to it.
#[derive(Debug, Default)]
pub struct BackendState {
    in_flight: AtomicUsize,
    pub(super) health: PassiveHealth,
}

impl BackendState {
    /// Requests (and upgraded tunnels) currently open to this backend.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether passive health currently sets this backend aside after repeated connect failures
    /// (requests try it only after every other backend of the location failed them).
    pub fn is_ejected(&self) -> bool {
        self.health.is_ejected(health::now_ms())
    }

    /// Connect failures (refused, timed out, …) since the last established connection.
    pub fn consecutive_failures(&self) -> u32 {
        self.health.failures()
    }

    /// Time left of the current ejection; zero when not ejected.
    pub fn ejected_for(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.health.remaining_ms(health::now_ms()))
    }

    /// Whether the backend is ejected at `now` (on the [`health::now_ms`] clock).
    pub(crate) fn ejected_at(&self, now: u64) -> bool {
        self.health.is_ejected(now)
    }

    /// Records an established connection (any answer, even a reset): the backend is back.
    pub(crate) fn connected(&self) {
        self.health.succeeded();
    }

    /// Records a connect failure; true when it ejected the backend.
    pub(crate) fn connect_failed(&self, policy: &EjectPolicy) -> bool {
        self.health.failed(health::now_ms(), policy)
    }

    /// Marks one more request in flight until the returned guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// Decrements the backend's in-flight count on drop.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<BackendState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Backend state by address, kept across table swaps.
#[derive(Debug, Default)]
pub struct BackendRegistry {
    pub(super) states: DashMap<SocketAddr, Registered, foldhash::fast::RandomState>,
}

/// One backend's state, and how many targets of the last table built go to it.
#[derive(Debug, Default)]
pub(super) struct Registered {
    state: Arc<BackendState>,
    targets: usize,
}

impl BackendRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of `addr`, created on first use.
    pub fn state(&self, addr: SocketAddr) -> Arc<BackendState> {
        self.states.entry(addr).or_default().state.clone()
    }

    /// Drops the state of addresses that `table` does not route to. Tables still in use keep
    /// their own `Arc`s, so requests in flight are unaffected.
    pub fn retain(&self, table: &RouteTable) {
        let mut counts: foldhash::HashMap<SocketAddr, usize> = foldhash::HashMap::default();
        for target in table.targets() {
            *counts.entry(target.addr).or_default() += 1;
        }
        self.states
            .retain(|addr, registered| match counts.get(addr) {
                Some(&targets) => {
                    registered.targets = targets;
                    true
                }
                None => false,
            });
    }

    /// [`BackendRegistry::retain`] after `replaced` vhosts gave way to `added` ones: each
    /// address's count of targets follows, and the addresses no target goes to any more are
    /// dropped, without looking at the rest of the table.
    pub(super) fn retain_changed<'v>(
        &self,
        replaced: impl Iterator<Item = &'v Arc<Vhost>>,
        added: impl Iterator<Item = &'v Arc<Vhost>>,
    ) {
        // Added first: a backend both replaced and added keeps its count above zero.
        for target in added.flat_map(|v| v.targets()) {
            if let Some(mut registered) = self.states.get_mut(&target.addr) {
                registered.targets += 1;
            }
        }
        for target in replaced.flat_map(|v| v.targets()) {
            if let Entry::Occupied(mut registered) = self.states.entry(target.addr) {
                let targets = &mut registered.get_mut().targets;
                *targets = targets.saturating_sub(1);
                if *targets == 0 {
                    registered.remove();
                }
            }
        }
    }

    /// Number of addresses tracked.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}
