//! The order a request's targets are tried in, across its retries.

use crate::balance::Candidates;
use crate::health;
use crate::table::{Route, Target};

/// The order targets are tried in: the balancer's candidates, first those not ejected, then,
/// once every one of those has failed, the ejected ones as a last resort (better a slow answer
/// than a 502 without trying: an ejection is a guess from past connects, and the backends it
/// leaves can stop too, as in a rolling deploy). A target that failed is not tried again, except
/// that after a reset with no other target left the same one is tried once more, on a fresh
/// connection.
pub(super) struct Order {
    /// The request may be sent again after a connection broke (idempotent, no upgrade).
    pub(super) replayable: bool,
    ring: Candidates,
    rest: Candidates,
    /// The clock reading ejection is judged at.
    now: u64,
    /// The second pass over the ring, for the backends the first skipped as ejected.
    last_resort: bool,
    /// Targets that failed this request (allocated only once one fails).
    failed: Vec<usize>,
    /// The target to try again on a fresh connection, next.
    again: Option<usize>,
    /// The fresh-connection retry was used.
    retried_fresh: bool,
}

impl Order {
    pub(super) fn new(candidates: Candidates, replayable: bool) -> Order {
        Order {
            replayable,
            ring: candidates.clone(),
            rest: candidates,
            now: health::now_ms(),
            last_resort: false,
            failed: Vec::new(),
            again: None,
            retried_fresh: false,
        }
    }

    pub(super) fn next<'r>(&mut self, route: &'r Route) -> Option<(usize, &'r Target)> {
        if let Some(index) = self.again.take() {
            return route.targets.get(index).map(|t| (index, t));
        }
        loop {
            let Some(index) = self.rest.next() else {
                if self.last_resort {
                    return None;
                }
                self.last_resort = true;
                self.rest = self.ring.clone();
                continue;
            };
            let Some(target) = route.targets.get(index) else {
                continue;
            };
            if !self.failed.contains(&index) && !self.skips(target) {
                return Some((index, target));
            }
        }
    }

    /// Whether this pass passes over `target`: the first pass skips ejected backends.
    fn skips(&self, target: &Target) -> bool {
        !self.last_resort && target.state.ejected_at(self.now)
    }

    /// A connect failure: the next target comes next.
    pub(super) fn connect_failed(&mut self, index: usize) {
        self.failed.push(index);
    }

    /// After a reset the targets not tried yet come next. Only a target with no other in this
    /// pass is tried again, on a fresh connection (before any ejected one: a reset is most often
    /// a pooled connection the backend had just closed), and only once.
    pub(super) fn after_reset(&mut self, route: &Route, index: usize) {
        self.failed.push(index);
        let alone = !(route.targets.iter().enumerate()).any(|(i, t)| i != index && !self.skips(t));
        if alone && !self.retried_fresh {
            self.again = Some(index);
            self.retried_fresh = true;
        }
    }
}
