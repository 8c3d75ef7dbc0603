//! Rate-limited log lines for what clients can trigger at will (refused
//! handshakes, refused requests, GOAWAYs, timeouts): a flood must not be
//! able to fill a disk or drown the lines that matter. Every event is still
//! counted in a metric; only the lines are thinned.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Lines per second one [`Throttle`] lets through.
const PER_SECOND: u64 = 10;

/// One class of log line. `allow` is lock-free: it sits on paths a flood
/// drives as fast as it can.
pub struct Throttle {
    /// The second (since process start) of the current window, and lines
    /// let through in it, packed as `second << 16 | count`.
    window: AtomicU64,
    /// Lines held back since the last one let through.
    suppressed: AtomicU64,
}

impl Throttle {
    pub const fn new() -> Self {
        Throttle {
            window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this line may be written; `n` lines were held back
    /// before it (to be written with it, so nothing goes unmentioned).
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(now_secs())
    }

    fn allow_at(&self, second: u64) -> Option<u64> {
        let mut cur = self.window.load(Ordering::Relaxed);
        loop {
            let (win, count) = (cur >> 16, cur & 0xffff);
            let next = if win != second {
                second << 16 | 1
            } else if count < PER_SECOND {
                cur + 1
            } else {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            match self
                .window
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::Relaxed)),
                Err(actual) => cur = actual,
            }
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

fn now_secs() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    // +1: second 0 must differ from the zeroed initial window.
    START.get_or_init(Instant::now).elapsed().as_secs() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_a_second_then_the_rest_are_reported() {
        let t = Throttle::new();
        for _ in 0..PER_SECOND {
            assert_eq!(t.allow_at(5), Some(0));
        }
        assert_eq!(t.allow_at(5), None);
        assert_eq!(t.allow_at(5), None);
        assert_eq!(t.allow_at(6), Some(2));
        assert_eq!(t.allow_at(6), Some(0));
    }
}
