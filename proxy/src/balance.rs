//! Backend selection: round robin, client-IP affinity and least connections.
//!
//! A choice is an ordered list of candidates, the first choice then the others in ring order,
//! so forwarding can fail over to the next backend without a second decision. Only backends with
//! an address are ever candidates. No allocation: [`Candidates`] walks the ring by index.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::spec::Balance;

/// Indices into a route's targets, in the order they should be tried.
#[derive(Clone, Debug)]
pub struct Candidates {
    start: usize,
    len: usize,
    next: usize,
}

impl Iterator for Candidates {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.next >= self.len {
            return None;
        }
        let i = (self.start + self.next) % self.len;
        self.next += 1;
        Some(i)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.len - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Candidates {}

/// Orders `len` targets for one request from `client`; `in_flight(i)` is target `i`'s load.
///
/// `cursor` is the route's round-robin position: advanced by round robin, and used by
/// least-conn to break ties so that equally loaded backends share the work.
pub fn candidates(
    balance: Balance,
    cursor: &AtomicUsize,
    client: IpAddr,
    len: usize,
    in_flight: impl Fn(usize) -> usize,
) -> Candidates {
    let start = if len == 0 {
        0
    } else {
        match balance {
            Balance::RoundRobin => cursor.fetch_add(1, Ordering::Relaxed) % len,
            Balance::ClientIp => affinity(client) % len,
            Balance::LeastConn => {
                let from = cursor.fetch_add(1, Ordering::Relaxed) % len;
                // Ring order from `from`, strict `<`: the first of equally idle backends wins.
                (0..len)
                    .map(|k| (from + k) % len)
                    .min_by_key(|&i| in_flight(i))
                    .unwrap_or(from)
            }
        }
    };
    Candidates {
        start,
        len,
        next: 0,
    }
}

/// A hash of the client address that is the same in every process and table generation
/// (`DefaultHasher::new()` uses fixed keys), so a client sticks to a backend while the set of
/// reachable backends is unchanged.
fn affinity(client: IpAddr) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    client.hash(&mut hasher);
    // Truncation on 32-bit targets only drops hash bits.
    hasher.finish() as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::BackendState;
    use std::sync::Arc;

    fn states(n: usize) -> Vec<Arc<BackendState>> {
        (0..n).map(|_| Arc::new(BackendState::default())).collect()
    }

    fn order(
        balance: Balance,
        cursor: &AtomicUsize,
        ip: &str,
        s: &[Arc<BackendState>],
    ) -> Vec<usize> {
        candidates(balance, cursor, ip.parse().unwrap(), s.len(), |i| {
            s[i].in_flight()
        })
        .collect()
    }

    #[test]
    fn round_robin_rotates_and_lists_every_backend_once() {
        let s = states(3);
        let cursor = AtomicUsize::new(0);
        assert_eq!(
            order(Balance::RoundRobin, &cursor, "1.1.1.1", &s),
            [0, 1, 2]
        );
        assert_eq!(
            order(Balance::RoundRobin, &cursor, "1.1.1.1", &s),
            [1, 2, 0]
        );
        assert_eq!(
            order(Balance::RoundRobin, &cursor, "1.1.1.1", &s),
            [2, 0, 1]
        );
        assert_eq!(
            order(Balance::RoundRobin, &cursor, "1.1.1.1", &s),
            [0, 1, 2]
        );
    }

    #[test]
    fn round_robin_spreads_evenly() {
        let s = states(4);
        let cursor = AtomicUsize::new(0);
        let mut hits = [0; 4];
        for _ in 0..400 {
            hits[order(Balance::RoundRobin, &cursor, "1.1.1.1", &s)[0]] += 1;
        }
        assert_eq!(hits, [100; 4]);
    }

    #[test]
    fn client_ip_is_sticky_and_spreads_clients() {
        let s = states(3);
        let cursor = AtomicUsize::new(0);
        let first = order(Balance::ClientIp, &cursor, "10.0.0.7", &s);
        for _ in 0..10 {
            assert_eq!(order(Balance::ClientIp, &cursor, "10.0.0.7", &s), first);
        }
        let mut used = std::collections::HashSet::new();
        for i in 0..64 {
            used.insert(order(Balance::ClientIp, &cursor, &format!("10.0.1.{i}"), &s)[0]);
        }
        assert_eq!(used.len(), 3, "64 clients should reach all 3 backends");
        let v6 = order(Balance::ClientIp, &cursor, "fd00::1", &s);
        assert_eq!(v6, order(Balance::ClientIp, &cursor, "fd00::1", &s));
    }

    #[test]
    fn least_conn_prefers_the_idlest_and_rotates_ties() {
        let s = states(3);
        let cursor = AtomicUsize::new(0);
        let _busy0 = s[0].begin();
        let _busy0b = s[0].begin();
        let _busy1 = s[1].begin();
        assert_eq!(order(Balance::LeastConn, &cursor, "1.1.1.1", &s)[0], 2);
        let _busy2 = s[2].begin();
        // 1 and 2 tie with one request each: the cursor alternates between them.
        let firsts: Vec<usize> = (0..4)
            .map(|_| order(Balance::LeastConn, &cursor, "1.1.1.1", &s)[0])
            .collect();
        assert!(firsts.iter().all(|&i| i == 1 || i == 2), "{firsts:?}");
        assert!(firsts.contains(&1) && firsts.contains(&2), "{firsts:?}");
    }

    #[test]
    fn least_conn_lists_the_others_after_the_choice() {
        let s = states(3);
        let _busy = s[0].begin();
        let cursor = AtomicUsize::new(0);
        let o = order(Balance::LeastConn, &cursor, "1.1.1.1", &s);
        assert_eq!(o.len(), 3);
        assert_eq!(o[0], 1);
    }

    #[test]
    fn no_targets_no_candidates() {
        let cursor = AtomicUsize::new(0);
        for balance in [Balance::RoundRobin, Balance::ClientIp, Balance::LeastConn] {
            assert!(order(balance, &cursor, "1.1.1.1", &[]).is_empty());
        }
    }
}
