//! `outlierDetection` of one destination, as Envoy ejects hosts: an
//! endpoint that answers `consecutive5xxErrors` 5xx in a row (or
//! `consecutiveGatewayErrors` 502/503/504, connect failures counting as
//! both) is taken out of balancing for `baseEjectionTime` times the number
//! of times it was ejected in a row, then comes back; at most
//! `maxEjectionPercent` of the endpoints (at least one) are out at once;
//! and when fewer than `minHealthPercent` are left, ejection is ignored
//! and every endpoint takes traffic. Ejection ends exactly when its time
//! is up (Envoy: at the next `interval` sweep after that).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::config::OutlierDetection;

/// What one attempt to reach an endpoint came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The status of the response (the upstream's, or the gateway's own
    /// when the upstream's could not be read).
    Status(u16),
    /// No response: connect failure, reset, timeout.
    Failed,
}

#[derive(Debug)]
pub struct Outlier {
    cfg: OutlierDetection,
    hosts: Box<[Host]>,
    /// Ejections counted against `maxEjectionPercent`.
    ejected: AtomicUsize,
    /// Held while ejecting, so two workers never eject one endpoint twice
    /// (which would count it twice against the maximum).
    ejecting: std::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Host {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// Nanoseconds since [`epoch`] until which the host is out; 0: in.
    out_until: AtomicU64,
    /// Ejections in a row (the multiplier of `baseEjectionTime`).
    times: AtomicU32,
}

/// A process-wide origin, so an instant fits an atomic.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos(at: Instant) -> u64 {
    // Never 0, which means "not ejected".
    (at.saturating_duration_since(epoch()).as_nanos() as u64).max(1)
}

impl Outlier {
    pub fn new(cfg: OutlierDetection, endpoints: usize) -> Outlier {
        epoch();
        Outlier {
            cfg,
            hosts: (0..endpoints).map(|_| Host::default()).collect(),
            ejected: AtomicUsize::new(0),
            ejecting: std::sync::Mutex::new(()),
        }
    }

    /// Is endpoint `idx` out of balancing now? An ejection whose time is
    /// up ends here.
    pub fn is_ejected(&self, idx: usize, now: Instant) -> bool {
        let Some(h) = self.hosts.get(idx) else {
            return false;
        };
        let until = h.out_until.load(Ordering::Acquire);
        if until == 0 {
            return false;
        }
        if nanos(now) < until {
            return true;
        }
        // Back in: only the caller that clears the mark gives the place back.
        if h.out_until
            .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.ejected.fetch_sub(1, Ordering::AcqRel);
        }
        false
    }

    /// Should balancing skip ejected endpoints now? Not when fewer than
    /// `minHealthPercent` of them are left (Envoy's panic threshold).
    pub fn applies(&self, now: Instant) -> bool {
        let n = self.hosts.len();
        let out = (0..n).filter(|i| self.is_ejected(*i, now)).count();
        out > 0 && out < n && (n - out) * 100 >= n * self.cfg.min_health_percent as usize
    }

    /// Counts what an attempt on endpoint `idx` came to; ejects it when
    /// its errors in a row reach a threshold (then `true`).
    pub fn report(&self, idx: usize, attempt: Attempt, now: Instant) -> bool {
        let Some(h) = self.hosts.get(idx) else {
            return false;
        };
        let (is_5xx, is_gateway) = match attempt {
            Attempt::Failed => (true, true),
            Attempt::Status(s) => (s >= 500, matches!(s, 502..=504)),
        };
        if !is_5xx {
            h.consecutive_5xx.store(0, Ordering::Relaxed);
            h.consecutive_gateway.store(0, Ordering::Relaxed);
            if h.out_until.load(Ordering::Acquire) == 0 {
                h.times.store(0, Ordering::Relaxed);
            }
            return false;
        }
        let c5 = h.consecutive_5xx.fetch_add(1, Ordering::AcqRel) + 1;
        let cg = if is_gateway {
            h.consecutive_gateway.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            h.consecutive_gateway.store(0, Ordering::Relaxed);
            0
        };
        let over = |n: u32, limit: u32| limit > 0 && n >= limit;
        (over(c5, self.cfg.consecutive_5xx) || over(cg, self.cfg.consecutive_gateway))
            && self.eject(idx, now)
    }

    fn eject(&self, idx: usize, now: Instant) -> bool {
        let _one = self.ejecting.lock().unwrap_or_else(|e| e.into_inner());
        let h = &self.hosts[idx];
        if self.is_ejected(idx, now) {
            return false;
        }
        let n = self.hosts.len();
        let max = (n * self.cfg.max_ejection_percent as usize / 100).max(1);
        let taken = self
            .ejected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| {
                (e < max).then_some(e + 1)
            });
        if taken.is_err() {
            return false;
        }
        let times = h.times.fetch_add(1, Ordering::AcqRel) + 1;
        let time = self.cfg.base_ejection_time.saturating_mul(times);
        // Envoy caps an ejection at 300 s (`max_ejection_time`).
        let time = time.min(Duration::from_secs(300).max(self.cfg.base_ejection_time));
        h.out_until.store(nanos(now + time), Ordering::Release);
        h.consecutive_5xx.store(0, Ordering::Relaxed);
        h.consecutive_gateway.store(0, Ordering::Relaxed);
        true
    }

    /// Endpoints out now, for `/config_dump`-style views and metrics.
    pub fn ejected_now(&self, now: Instant) -> Vec<usize> {
        (0..self.hosts.len())
            .filter(|i| self.is_ejected(*i, now))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway: 0,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 100,
            min_health_percent: 0,
        }
    }

    #[test]
    fn five_5xx_in_a_row_eject_for_the_base_time_then_twice_as_long() {
        let o = Outlier::new(cfg(), 3);
        let t0 = Instant::now();
        for _ in 0..4 {
            o.report(1, Attempt::Status(500), t0);
        }
        o.report(1, Attempt::Status(200), t0);
        for _ in 0..4 {
            o.report(1, Attempt::Status(503), t0);
        }
        assert!(
            !o.is_ejected(1, t0),
            "a success in between starts the count again"
        );
        o.report(1, Attempt::Failed, t0);
        assert!(o.is_ejected(1, t0));
        assert!(o.applies(t0));
        assert!(o.is_ejected(1, t0 + Duration::from_secs(29)));
        assert!(!o.is_ejected(1, t0 + Duration::from_secs(30)));
        let t1 = t0 + Duration::from_secs(31);
        for _ in 0..5 {
            o.report(1, Attempt::Status(500), t1);
        }
        assert!(
            o.is_ejected(1, t1 + Duration::from_secs(59)),
            "second time: 2 x 30 s"
        );
        assert!(!o.is_ejected(1, t1 + Duration::from_secs(60)));
    }

    #[test]
    fn at_most_max_ejection_percent_and_min_health_turns_it_off() {
        let mut c = cfg();
        c.max_ejection_percent = 50;
        let o = Outlier::new(c, 4);
        let t0 = Instant::now();
        for idx in 0..4 {
            for _ in 0..5 {
                o.report(idx, Attempt::Failed, t0);
            }
        }
        assert_eq!(o.ejected_now(t0), [0, 1], "half of four");
        let mut c = cfg();
        c.min_health_percent = 80;
        let o = Outlier::new(c, 4);
        for _ in 0..5 {
            o.report(2, Attempt::Status(502), t0);
        }
        assert!(o.is_ejected(2, t0));
        assert!(
            !o.applies(t0),
            "3 of 4 healthy is under 80%: every endpoint takes traffic"
        );
    }

    #[test]
    fn gateway_errors_count_apart() {
        let mut c = cfg();
        c.consecutive_5xx = 0;
        c.consecutive_gateway = 2;
        let o = Outlier::new(c, 2);
        let t0 = Instant::now();
        o.report(0, Attempt::Status(500), t0);
        o.report(0, Attempt::Status(500), t0);
        assert!(!o.is_ejected(0, t0), "500 is not a gateway error");
        o.report(0, Attempt::Status(504), t0);
        o.report(0, Attempt::Status(502), t0);
        assert!(o.is_ejected(0, t0));
    }
}
