//! `limits.maxConnections`: every open downstream descriptor holds a
//! [`Slot`] until it is closed, so a flood of connections is refused at
//! accept instead of running the process out of descriptors (which would
//! also starve upstream connects, reloads and the admin port).

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::metrics::metrics;

static OPEN: AtomicUsize = AtomicUsize::new(0);

/// One open downstream connection.
#[derive(Debug)]
pub struct Slot(());

impl Slot {
    /// A slot if fewer than `max` connections are open.
    pub fn acquire(max: usize) -> Option<Slot> {
        let mut cur = OPEN.load(Ordering::Relaxed);
        loop {
            if cur >= max {
                return None;
            }
            match OPEN.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    metrics().connections_open.inc();
                    return Some(Slot(()));
                }
                Err(actual) => cur = actual,
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
        metrics().connections_open.dec();
    }
}

/// `maxConnections: 0`: each downstream connection may need an upstream
/// descriptor as well, and the process needs some for itself (listeners,
/// files, the admin port, pooled upstreams).
pub fn derived_max(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    (soft.saturating_sub(64) / 2).max(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_returned() {
        let a = Slot::acquire(usize::MAX).unwrap();
        let open = OPEN.load(Ordering::Relaxed);
        assert!(Slot::acquire(open).is_none(), "full at the limit");
        drop(a);
        let b = Slot::acquire(open).expect("a freed slot is reused");
        drop(b);
        assert_eq!(derived_max(7), 7);
        assert!(derived_max(0) >= 16);
    }
}
