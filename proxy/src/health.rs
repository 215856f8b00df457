//! Passive health: a backend whose connects keep failing is set aside ("ejected") for a back-off
//! that doubles while it keeps failing, then given real requests again, the next of which probes
//! it (nginx's `max_fails`/`fail_timeout`, Envoy's outlier detection, without active checks).
//! Set aside, not out: a request that every other backend failed still tries it.
//!
//! The state is three atomics per backend address, kept in [`crate::table::BackendState`] so it
//! survives table swaps. Time is milliseconds on a process-wide monotonic clock so that it fits
//! in an atomic; the hot path reads the clock once per request and allocates nothing.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// When a backend is ejected and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EjectPolicy {
    /// Consecutive connect failures that eject a backend; 0 disables ejection.
    pub(crate) threshold: u32,
    /// First ejection period, in milliseconds (at least 1).
    pub(crate) base_ms: u64,
    /// Longest ejection period, in milliseconds.
    pub(crate) max_ms: u64,
}

impl EjectPolicy {
    /// The policy for these settings (see [`crate::ProxyConfig`]).
    pub(crate) fn new(threshold: u32, base: Duration, max: Duration) -> EjectPolicy {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        let base_ms = ms(base);
        EjectPolicy {
            threshold,
            base_ms,
            max_ms: ms(max).max(base_ms),
        }
    }

    /// The period of the `n`th consecutive ejection (0-based): base, doubling, capped.
    fn period(&self, n: u32) -> u64 {
        let factor = 1u64.checked_shl(n).unwrap_or(u64::MAX);
        self.base_ms.saturating_mul(factor).min(self.max_ms)
    }
}

/// Milliseconds since the first reading of this clock in the process.
pub(crate) fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(Instant::now().saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

/// Connect outcomes of one backend address.
#[derive(Debug, Default)]
pub(crate) struct PassiveHealth {
    /// Connect failures since the last success.
    failures: AtomicU32,
    /// Ejections since the last success: the exponent of the next back-off.
    ejections: AtomicU32,
    /// End of the current (or last) ejection on the [`now_ms`] clock; 0 when never ejected.
    until: AtomicU64,
}

impl PassiveHealth {
    /// Whether the backend is set aside at `now`.
    pub(crate) fn is_ejected(&self, now: u64) -> bool {
        now < self.until.load(Ordering::Relaxed)
    }

    /// Milliseconds left of the current ejection at `now` (0 when not ejected).
    pub(crate) fn remaining_ms(&self, now: u64) -> u64 {
        self.until.load(Ordering::Relaxed).saturating_sub(now)
    }

    /// Connect failures since the last success.
    pub(crate) fn failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Records a connection that was established: the backend is healthy again. Stores only
    /// what changed, so that healthy backends' cache lines stay shared between cores.
    pub(crate) fn succeeded(&self) {
        for counter in [&self.failures, &self.ejections] {
            if counter.load(Ordering::Relaxed) != 0 {
                counter.store(0, Ordering::Relaxed);
            }
        }
        if self.until.load(Ordering::Relaxed) != 0 {
            self.until.store(0, Ordering::Relaxed);
        }
    }

    /// Records a connect failure at `now`; true when it ejected the backend.
    ///
    /// A backend that has not been ejected since its last success needs `threshold` failures in
    /// a row; one whose ejection ran out gets a single chance (the probe), and failing it ejects
    /// it again for twice as long. Failures while ejected (requests sent before the ejection,
    /// or every backend being ejected) change nothing.
    pub(crate) fn failed(&self, now: u64, policy: &EjectPolicy) -> bool {
        let failures = self
            .failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                Some(f.saturating_add(1))
            })
            .map_or(u32::MAX, |f| f.saturating_add(1));
        let until = self.until.load(Ordering::Relaxed);
        if policy.threshold == 0 || now < until {
            return false;
        }
        let ejections = self.ejections.load(Ordering::Relaxed);
        if ejections == 0 && failures < policy.threshold {
            return false;
        }
        let next = now.saturating_add(policy.period(ejections));
        // Of concurrent failures, only one ejects (and doubles the next period).
        if self
            .until
            .compare_exchange(until, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.ejections.fetch_add(1, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> EjectPolicy {
        EjectPolicy::new(3, Duration::from_secs(1), Duration::from_secs(30))
    }

    #[test]
    fn three_failures_in_a_row_eject_for_the_base_period() {
        let h = PassiveHealth::default();
        assert!(!h.failed(100, &policy()));
        assert!(!h.failed(100, &policy()));
        assert!(!h.is_ejected(100));
        assert!(h.failed(100, &policy()));
        assert!(h.is_ejected(100));
        assert_eq!(h.remaining_ms(600), 500);
        assert!(h.is_ejected(1099));
        assert!(!h.is_ejected(1100));
        assert_eq!(h.remaining_ms(1100), 0);
        assert_eq!(h.failures(), 3);
    }

    #[test]
    fn a_success_in_between_resets_the_count() {
        let h = PassiveHealth::default();
        h.failed(0, &policy());
        h.failed(0, &policy());
        h.succeeded();
        assert_eq!(h.failures(), 0);
        assert!(!h.failed(0, &policy()));
        assert!(!h.failed(0, &policy()));
        assert!(!h.is_ejected(0));
    }

    #[test]
    fn a_failed_probe_ejects_again_for_twice_as_long_up_to_the_cap() {
        let h = PassiveHealth::default();
        let p = policy();
        for _ in 0..3 {
            h.failed(0, &p);
        }
        let mut now = 0;
        for expected in [2_000, 4_000, 8_000, 16_000, 30_000, 30_000] {
            now += h.remaining_ms(now);
            assert!(!h.is_ejected(now));
            assert!(h.failed(now, &p), "one failed probe ejects again");
            assert_eq!(h.remaining_ms(now), expected);
        }
    }

    #[test]
    fn failures_while_ejected_do_not_extend_the_ejection() {
        let h = PassiveHealth::default();
        for _ in 0..3 {
            h.failed(0, &policy());
        }
        assert!(!h.failed(500, &policy()));
        assert_eq!(h.remaining_ms(500), 500);
    }

    #[test]
    fn a_successful_probe_restores_the_backend_and_the_base_period() {
        let h = PassiveHealth::default();
        let p = policy();
        for _ in 0..3 {
            h.failed(0, &p);
        }
        h.succeeded();
        assert!(!h.is_ejected(0));
        for _ in 0..2 {
            assert!(!h.failed(10, &p));
        }
        assert!(h.failed(10, &p));
        assert_eq!(h.remaining_ms(10), 1_000);
    }

    #[test]
    fn threshold_zero_disables_ejection() {
        let h = PassiveHealth::default();
        let p = EjectPolicy::new(0, Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..10 {
            assert!(!h.failed(0, &p));
        }
        assert!(!h.is_ejected(0));
        assert_eq!(h.failures(), 10);
    }

    #[test]
    fn periods_are_at_least_a_millisecond_and_never_overflow() {
        let p = EjectPolicy::new(1, Duration::ZERO, Duration::ZERO);
        assert_eq!(p.period(0), 1);
        let p = EjectPolicy::new(1, Duration::from_secs(1), Duration::MAX);
        assert_eq!(p.period(200), u64::MAX);
    }

    #[test]
    fn the_clock_is_monotonic() {
        let a = now_ms();
        assert!(now_ms() >= a);
    }
}
