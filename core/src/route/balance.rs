//! Endpoint choice within one destination, shared by every worker thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rand::Rng;

use crate::config::LbPolicy;

use super::{Destination, UpstreamAddr};

/// Load-balancing state of one destination. Counters are relaxed atomics:
/// balancing needs to be roughly fair, not linearizable.
#[derive(Debug)]
pub struct Balancer {
    policy: LbPolicy,
    next: AtomicUsize,
    in_flight: Box<[AtomicUsize]>,
}

impl Balancer {
    /// `endpoints` is at least 1 (compilation refuses empty destinations).
    pub(super) fn new(policy: LbPolicy, endpoints: usize) -> Self {
        Balancer {
            policy,
            next: AtomicUsize::new(0),
            in_flight: (0..endpoints.max(1)).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    pub fn policy(&self) -> LbPolicy {
        self.policy
    }

    /// Index of the endpoint the next request should use.
    pub fn next_index(&self) -> usize {
        let n = self.in_flight.len();
        if n == 1 {
            return 0;
        }
        match self.policy {
            // A consistent-hash request without its key is spread evenly.
            LbPolicy::RoundRobin | LbPolicy::ConsistentHash => {
                self.next.fetch_add(1, Ordering::Relaxed) % n
            }
            LbPolicy::Random => rand::thread_rng().gen_range(0..n),
            LbPolicy::LeastRequest => {
                // Envoy's power of two choices: two distinct random
                // endpoints, the one with fewer requests in flight wins.
                let mut rng = rand::thread_rng();
                let a = rng.gen_range(0..n);
                let b = (a + rng.gen_range(1..n)) % n;
                if self.in_flight(b) < self.in_flight(a) {
                    b
                } else {
                    a
                }
            }
        }
    }

    /// Requests currently counted against endpoint `idx`.
    pub fn in_flight(&self, idx: usize) -> usize {
        self.in_flight
            .get(idx)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn enter(&self, idx: usize) {
        if let Some(c) = self.in_flight.get(idx) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn leave(&self, idx: usize) {
        if let Some(c) = self.in_flight.get(idx) {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One request counted in flight against one endpoint until dropped. It
/// owns its destination, so it can live in per-request state.
#[derive(Debug)]
pub struct InFlightGuard {
    dest: Arc<Destination>,
    idx: usize,
}

impl InFlightGuard {
    pub(super) fn new(dest: Arc<Destination>, idx: usize) -> Self {
        dest.balancer.enter(idx);
        InFlightGuard { dest, idx }
    }

    pub fn index(&self) -> usize {
        self.idx
    }

    pub fn endpoint(&self) -> &UpstreamAddr {
        self.dest.endpoint(self.idx)
    }

    pub fn destination(&self) -> &Arc<Destination> {
        &self.dest
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.dest.balancer.leave(self.idx);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::destination_with;
    use super::*;

    #[test]
    fn round_robin_cycles_endpoints() {
        let d = destination_with(LbPolicy::RoundRobin, 3);
        let seen: Vec<u16> = (0..6).map(|_| d.next_endpoint().port).collect();
        assert_eq!(seen, vec![1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn least_request_prefers_the_idle_endpoint() {
        let d = destination_with(LbPolicy::LeastRequest, 2);
        let busy = d.begin(0);
        assert_eq!(d.balancer.in_flight(0), 1);
        for _ in 0..50 {
            assert_eq!(d.balancer.next_index(), 1);
        }
        drop(busy);
        assert_eq!(d.balancer.in_flight(0), 0);
        let guard = d.acquire();
        assert_eq!(d.balancer.in_flight(guard.index()), 1);
        assert_eq!(guard.endpoint().port, guard.index() as u16 + 1);
    }

    #[test]
    fn random_stays_in_range_and_reaches_all() {
        let d = destination_with(LbPolicy::Random, 3);
        let mut seen = [false; 3];
        for _ in 0..300 {
            seen[d.balancer.next_index()] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn single_endpoint_always_index_zero() {
        for policy in [
            LbPolicy::RoundRobin,
            LbPolicy::Random,
            LbPolicy::LeastRequest,
        ] {
            let d = destination_with(policy, 1);
            assert_eq!(d.balancer.next_index(), 0);
        }
    }
}
