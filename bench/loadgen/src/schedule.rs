//! When each request starts.
//!
//! Closed loop: a worker starts its next request as soon as it may.
//! Open loop (`--rate`): request `i` is due at `t0 + i / rate`. A pacer
//! thread releases one semaphore permit per due slot (it sleeps with
//! microsecond precision; tokio's timer has 1 ms granularity, which would add
//! up to 1 ms to every measured latency). A worker that takes a permit takes
//! the next slot and measures latency from that slot's intended time, so a
//! request that waited for a free connection is charged for the wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Longest the pacer sleeps between releases when slots are far apart is
/// the gap itself; at high rates it wakes at most once per this period and
/// releases every slot that became due.
const PACER_TICK: Duration = Duration::from_micros(50);

pub enum Schedule {
    Closed {
        end: Instant,
    },
    Open {
        permits: Arc<Semaphore>,
        next: AtomicU64,
        t0: Instant,
        end: Instant,
        interval_ns: f64,
    },
}

impl Schedule {
    pub fn closed(end: Instant) -> Self {
        Schedule::Closed { end }
    }

    /// Starts the pacer thread; it stops at `end`.
    pub fn open(rate: f64, t0: Instant, end: Instant) -> Self {
        let interval_ns = 1e9 / rate;
        let permits = Arc::new(Semaphore::new(0));
        let slots = slots_before(end - t0, interval_ns);
        let p = permits.clone();
        let (t0_std, end_std) = (t0.into_std(), end.into_std());
        std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || pace(&p, t0_std, end_std, interval_ns, slots))
            .expect("spawn the pacer thread");
        Schedule::Open {
            permits,
            next: AtomicU64::new(0),
            t0,
            end,
            interval_ns,
        }
    }

    /// The intended start of the caller's next request, or `None` when the
    /// run is over.
    pub async fn next(&self) -> Option<Instant> {
        match self {
            Schedule::Closed { end } => {
                let now = Instant::now();
                (now < *end).then_some(now)
            }
            Schedule::Open {
                permits,
                next,
                t0,
                interval_ns,
                ..
            } => {
                permits.acquire().await.ok()?.forget();
                let i = next.fetch_add(1, Ordering::Relaxed);
                Some(*t0 + slot_offset(i, *interval_ns))
            }
        }
    }
}

impl Schedule {
    /// Open loop: for each request due in the measured window (`warm_end`
    /// to the end) that never started, because every connection was busy
    /// until the end, how long it had waited by then. These requests are in
    /// neither `requests` nor `errors`; their waits are lower bounds of their
    /// latencies.
    pub fn unsent_waits(&self, warm_end: Instant) -> Option<Vec<Duration>> {
        let Schedule::Open {
            next,
            t0,
            end,
            interval_ns,
            ..
        } = self
        else {
            return None;
        };
        let first = slots_before(warm_end - *t0, *interval_ns).max(next.load(Ordering::Relaxed));
        let last = slots_before(*end - *t0, *interval_ns);
        Some(
            (first..last)
                .map(|i| end.saturating_duration_since(*t0 + slot_offset(i, *interval_ns)))
                .collect(),
        )
    }
}

fn slot_offset(i: u64, interval_ns: f64) -> Duration {
    Duration::from_nanos((i as f64 * interval_ns) as u64)
}

/// Number of slots whose intended time is before `span`.
pub fn slots_before(span: Duration, interval_ns: f64) -> u64 {
    (span.as_nanos() as f64 / interval_ns).ceil() as u64
}

/// Number of slots due at `elapsed` (intended time <= elapsed).
pub fn slots_due(elapsed: Duration, interval_ns: f64) -> u64 {
    (elapsed.as_nanos() as f64 / interval_ns).floor() as u64 + 1
}

fn pace(
    permits: &Semaphore,
    t0: std::time::Instant,
    end: std::time::Instant,
    interval_ns: f64,
    slots: u64,
) {
    // This thread's timer slack (default 50 us) down to 1 us, so that
    // short sleeps end on time.
    let _ = nix::sys::prctl::set_timerslack(1000);
    let mut released = 0u64;
    loop {
        let now = std::time::Instant::now();
        if now >= end {
            break;
        }
        let due = slots_due(now - t0, interval_ns).min(slots);
        if due > released {
            permits.add_permits((due - released) as usize);
            released = due;
        }
        let wake = if released >= slots {
            end
        } else {
            (t0 + slot_offset(released, interval_ns)).max(now + PACER_TICK)
        };
        std::thread::sleep(wake.saturating_duration_since(now));
    }
    permits.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_arithmetic() {
        // 1000/s: slots at 0, 1, 2 ... ms.
        let iv = 1e6;
        assert_eq!(slots_due(Duration::ZERO, iv), 1);
        assert_eq!(slots_due(Duration::from_micros(999), iv), 1);
        assert_eq!(slots_due(Duration::from_millis(1), iv), 2);
        assert_eq!(slots_before(Duration::from_secs(1), iv), 1000);
        assert_eq!(slots_before(Duration::from_micros(1500), iv), 2);
        assert_eq!(slot_offset(3, iv), Duration::from_millis(3));
    }

    #[tokio::test]
    async fn open_loop_releases_on_schedule() {
        let t0 = Instant::now();
        let end = t0 + Duration::from_millis(200);
        let s = Schedule::open(100.0, t0, end); // one per 10 ms: 20 slots
        let mut starts = Vec::new();
        while let Some(t) = s.next().await {
            // Never released before its intended time.
            assert!(Instant::now() >= t);
            starts.push(t - t0);
        }
        assert_eq!(starts.len(), 20);
        assert_eq!(starts[5], Duration::from_millis(50));
        assert!(Instant::now() >= end);
        // All taken: nothing unsent after a 100 ms warm-up (10 slots).
        assert_eq!(
            s.unsent_waits(t0 + Duration::from_millis(100)),
            Some(vec![])
        );
    }

    #[tokio::test]
    async fn open_loop_counts_unsent() {
        let t0 = Instant::now();
        let end = t0 + Duration::from_millis(100);
        let s = Schedule::open(100.0, t0, end); // 10 slots
        for _ in 0..3 {
            s.next().await.unwrap();
        }
        tokio::time::sleep_until(end + Duration::from_millis(20)).await;
        assert!(s.next().await.is_none());
        // Window from 50 ms: slots 5..9 due, none taken; slot 9 (90 ms)
        // had waited 10 ms at the end, slot 5 50 ms.
        let w = s.unsent_waits(t0 + Duration::from_millis(50)).unwrap();
        let ms: Vec<u128> = w.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![50, 40, 30, 20, 10]);
        // Window from 0: 10 due, 3 taken.
        assert_eq!(s.unsent_waits(t0).unwrap().len(), 7);
        assert_eq!(Schedule::closed(end).unsent_waits(t0), None);
    }

    #[tokio::test]
    async fn closed_loop_stops_at_end() {
        let end = Instant::now() + Duration::from_millis(20);
        let s = Schedule::closed(end);
        let mut n = 0;
        while s.next().await.is_some() {
            n += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Each turn sleeps at least 5 ms, so at most 5 fit in 20 ms; how
        // few depends on how loaded the machine is (CI ran 2 once).
        assert!((1..=5).contains(&n), "{n}");
        assert!(s.next().await.is_none(), "the schedule ended");
    }
}
