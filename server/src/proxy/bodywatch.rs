//! `timeouts.requestBodyIdle` for request bodies that Pingora's proxy reads
//! from an HTTP/2 stream: its HTTP/2 body reads have no timeout of their
//! own, so a stream that never sends its DATA would hold its upstream
//! connection forever. Pingora's `request_body_filter` reports progress
//! here; the task running the stream gives up when the body stalls.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

// tokio's clock: the tests pause it.
use tokio::time::Instant;

#[derive(Debug)]
pub struct BodyWatch {
    start: Instant,
    /// Milliseconds after `start` of the last body bytes.
    last: AtomicU64,
    done: AtomicBool,
}

tokio::task_local! {
    static WATCH: Arc<BodyWatch>;
}

/// Runs `fut` (one request through Pingora's proxy); `None` when its
/// request body stalled for `idle` and it was dropped.
pub async fn watched<F: Future>(idle: Duration, body_done: bool, fut: F) -> Option<F::Output> {
    let watch = Arc::new(BodyWatch {
        start: Instant::now(),
        last: AtomicU64::new(0),
        done: AtomicBool::new(body_done),
    });
    let w = watch.clone();
    WATCH
        .scope(watch, async move {
            tokio::select! {
                r = fut => Some(r),
                () = w.stalled(idle) => None,
            }
        })
        .await
}

/// Called for each piece of request body Pingora reads.
pub fn progress(end_of_stream: bool) {
    let _ = WATCH.try_with(|w| {
        w.last
            .store(w.start.elapsed().as_millis() as u64, Ordering::Release);
        if end_of_stream {
            w.done.store(true, Ordering::Release);
        }
    });
}

impl BodyWatch {
    async fn stalled(&self, idle: Duration) {
        loop {
            if self.done.load(Ordering::Acquire) {
                return std::future::pending().await;
            }
            let last = Duration::from_millis(self.last.load(Ordering::Acquire));
            let due = self.start + last + idle;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_ends_the_request_a_moving_one_does_not() {
        let idle = Duration::from_secs(1);
        let stalled = watched(idle, false, std::future::pending::<()>()).await;
        assert!(stalled.is_none());
        let moving = watched(idle, false, async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(600)).await;
                progress(false);
            }
            progress(true);
            tokio::time::sleep(Duration::from_secs(5)).await;
            7
        })
        .await;
        assert_eq!(moving, Some(7));
    }
}
