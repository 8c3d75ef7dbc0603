//! `limits.maxConnections`: every open downstream descriptor holds a
//! [`Slot`] until it is closed, so a flood of connections is refused at
//! accept instead of running the process out of descriptors (which would
//! also starve upstream connects, reloads and the admin port).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::metrics::metrics;

static OPEN: AtomicUsize = AtomicUsize::new(0);

/// One open downstream connection.
#[derive(Debug)]
pub struct Slot {
    /// The listener's own count (`listeners[].maxConnections`).
    listener: Option<Arc<AtomicUsize>>,
}

/// Why no slot was given: the metric label.
pub const PROCESS_FULL: &str = "max_connections";
pub const LISTENER_FULL: &str = "listener_max_connections";

fn take(count: &AtomicUsize, max: usize) -> bool {
    let mut cur = count.load(Ordering::Relaxed);
    loop {
        if cur >= max {
            return false;
        }
        match count.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
}

impl Slot {
    /// A slot if fewer than `max` connections are open in the process,
    /// and fewer than the listener's own maximum on `listener`.
    pub fn acquire_on(
        max: usize,
        listener: Option<(&Arc<AtomicUsize>, usize)>,
    ) -> Result<Slot, &'static str> {
        if !take(&OPEN, max) {
            return Err(PROCESS_FULL);
        }
        // From here the slot exists: dropping it returns what it took.
        let mut slot = Slot { listener: None };
        metrics().connections_open.inc();
        if let Some((count, max)) = listener {
            if !take(count, max) {
                return Err(LISTENER_FULL);
            }
            slot.listener = Some(count.clone());
        }
        Ok(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(l) = &self.listener {
            l.fetch_sub(1, Ordering::AcqRel);
        }
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
    (fd_limit().saturating_sub(64) / 2).max(16)
}

/// The soft `RLIMIT_NOFILE` as last read; 0 until then. Read once, not at
/// every accept (a system call per connection): the limit only changes
/// when someone runs `prlimit` on the process, and a reload
/// ([`reread_fd_limit`]) reads it again.
static FD_LIMIT: AtomicUsize = AtomicUsize::new(0);

fn fd_limit() -> usize {
    match FD_LIMIT.load(Ordering::Relaxed) {
        0 => {
            let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map_or(1024, |(soft, _)| soft);
            let soft = usize::try_from(soft).unwrap_or(usize::MAX).max(1);
            FD_LIMIT.store(soft, Ordering::Relaxed);
            soft
        }
        soft => soft,
    }
}

/// The next connection reads `RLIMIT_NOFILE` again (at every reload).
pub fn reread_fd_limit() {
    FD_LIMIT.store(0, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_returned() {
        let a = Slot::acquire_on(usize::MAX, None).unwrap();
        let open = OPEN.load(Ordering::Relaxed);
        assert_eq!(Slot::acquire_on(open, None).unwrap_err(), PROCESS_FULL);
        drop(a);
        let b = Slot::acquire_on(open, None).expect("a freed slot is reused");
        drop(b);
        let mine = Arc::new(AtomicUsize::new(0));
        let c = Slot::acquire_on(usize::MAX, Some((&mine, 1))).unwrap();
        assert_eq!(
            Slot::acquire_on(usize::MAX, Some((&mine, 1))).unwrap_err(),
            LISTENER_FULL,
            "the listener's own limit"
        );
        drop(c);
        assert_eq!(mine.load(Ordering::Relaxed), 0, "returned on drop");
        let d = Slot::acquire_on(usize::MAX, Some((&mine, 1))).expect("reused");
        drop(d);
        assert_eq!(derived_max(7), 7);
        assert!(derived_max(0) >= 16);
    }
}
