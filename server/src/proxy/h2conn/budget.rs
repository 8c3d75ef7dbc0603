//! How many streams one HTTP/2 client may reset, or make us reset, within
//! a window before its connection is ended with GOAWAY
//! `ENHANCE_YOUR_CALM`: the defence against Rapid Reset (the client resets
//! what it opens) and MadeYouReset (the client provokes our resets), as
//! the servers patched in 2023 and 2025 do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::metrics::metrics;

#[derive(Debug)]
pub struct ResetBudget {
    max: u32,
    window: Duration,
    /// Start of the current window, and resets counted in it.
    counted: Mutex<(Instant, u32)>,
    exceeded: AtomicBool,
    notify: Notify,
}

impl ResetBudget {
    pub fn new(max: u32, window: Duration) -> Self {
        ResetBudget {
            max,
            window,
            counted: Mutex::new((Instant::now(), 0)),
            exceeded: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    /// The client sent `RST_STREAM`.
    pub fn client_reset(&self) {
        metrics().h2_resets.with_label_values(&["client"]).inc();
        self.note(Instant::now());
    }

    /// We reset a stream; `provoked`: because the client broke the
    /// protocol on it (held against its budget).
    pub fn server_reset(&self, provoked: bool) {
        metrics().h2_resets.with_label_values(&["server"]).inc();
        if provoked {
            self.note(Instant::now());
        }
    }

    fn note(&self, now: Instant) {
        let mut c = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(c.0) >= self.window {
            *c = (now, 0);
        }
        c.1 += 1;
        if c.1 > self.max && !self.exceeded.swap(true, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }

    pub fn is_exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Acquire)
    }

    /// Resolves once the budget is spent.
    pub async fn spent(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_exceeded() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_budget_within_the_window() {
        let b = ResetBudget::new(3, Duration::from_secs(30));
        let t0 = Instant::now();
        for i in 0..3 {
            b.note(t0 + Duration::from_secs(i));
        }
        assert!(!b.is_exceeded());
        // A new window forgets the old resets.
        b.note(t0 + Duration::from_secs(31));
        b.note(t0 + Duration::from_secs(32));
        assert!(!b.is_exceeded());
        b.note(t0 + Duration::from_secs(33));
        b.note(t0 + Duration::from_secs(33));
        assert!(b.is_exceeded());
    }
}
