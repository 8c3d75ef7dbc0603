//! `connectionPool` limits of one destination, as Envoy's circuit breakers
//! apply them: at most `limit` requests in flight to the destination
//! (`tcp.maxConnections`, each HTTP/1.1 request holding one connection,
//! and `http.http2MaxRequests`, the smaller of the two), at most
//! `max_pending` more waiting for one of them (`http1MaxPendingRequests`);
//! past that a request is refused at once with 503, never queued without
//! bound. Shared by every worker, like the balancer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct Circuit {
    limit: usize,
    max_pending: usize,
    active: Arc<Semaphore>,
    pending: AtomicUsize,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The pending queue was full.
    Pending,
    /// It waited as long as it may and no request in flight ended.
    Timeout,
}

impl Overflow {
    pub fn as_str(self) -> &'static str {
        match self {
            Overflow::Pending => "pending",
            Overflow::Timeout => "pending_timeout",
        }
    }
}

/// A request's place under the limits, held until it ends.
#[derive(Debug)]
pub enum Admission {
    /// In flight now.
    Granted(OwnedSemaphorePermit),
    /// Waiting: the engine awaits [`Ticket::wait`] before connecting.
    Queued(Ticket),
}

impl Admission {
    pub fn is_queued(&self) -> bool {
        matches!(self, Admission::Queued(_))
    }
}

/// A place in the pending queue; leaving it (dropped or granted) frees it.
#[derive(Debug)]
pub struct Ticket {
    circuit: Arc<Circuit>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.circuit.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Ticket {
    /// Waits for a request in flight to end, at most `wait`.
    pub async fn wait(self, wait: Duration) -> Result<OwnedSemaphorePermit, Overflow> {
        let active = self.circuit.active.clone();
        match tokio::time::timeout(wait, active.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Overflow::Timeout),
        }
    }
}

impl Circuit {
    pub fn new(limit: usize, max_pending: usize) -> Circuit {
        Circuit {
            limit,
            max_pending,
            active: Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))),
            pending: AtomicUsize::new(0),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Requests in flight now.
    pub fn active(&self) -> usize {
        self.limit.min(Semaphore::MAX_PERMITS) - self.active.available_permits()
    }

    /// Requests waiting now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// A place for one more request: in flight, else in the queue, else
    /// refused.
    pub fn admit(self: &Arc<Self>) -> Result<Admission, Overflow> {
        if let Ok(permit) = self.active.clone().try_acquire_owned() {
            return Ok(Admission::Granted(permit));
        }
        if self.pending.fetch_add(1, Ordering::AcqRel) < self.max_pending {
            return Ok(Admission::Queued(Ticket {
                circuit: self.clone(),
            }));
        }
        self.pending.fetch_sub(1, Ordering::AcqRel);
        Err(Overflow::Pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_then_queued_then_refused() {
        let c = Arc::new(Circuit::new(1, 1));
        let first = c.admit().unwrap();
        assert!(!first.is_queued());
        let second = c.admit().unwrap();
        assert!(second.is_queued());
        assert_eq!(c.admit().unwrap_err(), Overflow::Pending);
        assert_eq!((c.active(), c.pending()), (1, 1));
        drop(second);
        assert_eq!(c.pending(), 0, "a ticket given up frees its place");
        drop(first);
        assert_eq!(c.active(), 0);
        assert!(!c.admit().unwrap().is_queued());
    }

    #[tokio::test]
    async fn a_queued_request_goes_when_one_in_flight_ends_or_times_out() {
        let c = Arc::new(Circuit::new(1, 2));
        let first = c.admit().unwrap();
        let Admission::Queued(t) = c.admit().unwrap() else {
            panic!("queued")
        };
        let waiting = tokio::spawn(t.wait(Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        let permit = waiting
            .await
            .unwrap()
            .expect("granted when the first ended");
        assert_eq!((c.active(), c.pending()), (1, 0));
        let Admission::Queued(t) = c.admit().unwrap() else {
            panic!("queued")
        };
        assert_eq!(
            t.wait(Duration::from_millis(20)).await.unwrap_err(),
            Overflow::Timeout
        );
        assert_eq!(c.pending(), 0);
        drop(permit);
    }
}
