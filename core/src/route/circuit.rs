//! `connectionPool` limits of one destination, as Envoy's circuit breakers
//! apply them: at most `http2MaxRequests` requests in flight (beyond it,
//! refused at once); at most `maxConnections` upstream connections busy,
//! each HTTP/1.1 request holding one, and at most `http1MaxPendingRequests`
//! requests waiting for one of them; past that a request is refused at once
//! with 503, never queued without bound. Shared by every worker, like the
//! balancer.

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
    max_requests: usize,
    requests: AtomicUsize,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// `http2MaxRequests` requests were in flight.
    Requests,
    /// The pending queue was full.
    Pending,
    /// It waited as long as it may and no request in flight ended.
    Timeout,
}

impl Overflow {
    pub fn as_str(self) -> &'static str {
        match self {
            Overflow::Requests => "requests",
            Overflow::Pending => "pending",
            Overflow::Timeout => "pending_timeout",
        }
    }
}

/// A request's place under the limits, held until it ends.
#[derive(Debug)]
pub struct Admission {
    place: Place,
    _request: RequestSlot,
}

#[derive(Debug)]
enum Place {
    /// Holding a connection now (given back when dropped).
    Granted { _permit: OwnedSemaphorePermit },
    /// Waiting for one.
    Queued(Ticket),
    /// Between the two while [`Admission::ready`] waits.
    Waiting,
}

impl Admission {
    pub fn is_queued(&self) -> bool {
        matches!(self.place, Place::Queued(_))
    }

    /// Waits, at most `wait`, for a connection when queued.
    pub async fn ready(&mut self, wait: Duration) -> Result<(), Overflow> {
        let place = std::mem::replace(&mut self.place, Place::Waiting);
        self.place = match place {
            Place::Queued(ticket) => Place::Granted {
                _permit: ticket.wait(wait).await?,
            },
            other => other,
        };
        Ok(())
    }
}

/// One of `http2MaxRequests`, given back when dropped.
#[derive(Debug)]
struct RequestSlot {
    circuit: Arc<Circuit>,
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.circuit.requests.fetch_sub(1, Ordering::AcqRel);
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
    /// `max_connections` and `max_requests` in flight, `max_pending`
    /// waiting; `usize::MAX` for no limit.
    pub fn new(max_connections: usize, max_pending: usize, max_requests: usize) -> Circuit {
        Circuit {
            limit: max_connections,
            max_pending,
            active: Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            pending: AtomicUsize::new(0),
            max_requests,
            requests: AtomicUsize::new(0),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Requests holding a connection now.
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
        let below = |limit: usize| move |n: usize| (n < limit).then_some(n + 1);
        self.requests
            .fetch_update(
                Ordering::AcqRel,
                Ordering::Acquire,
                below(self.max_requests),
            )
            .map_err(|_| Overflow::Requests)?;
        let request = RequestSlot {
            circuit: self.clone(),
        };
        // Nobody waiting: a free connection is taken at once. Otherwise
        // the request queues behind those already waiting.
        if self.pending() == 0 {
            if let Ok(permit) = self.active.clone().try_acquire_owned() {
                return Ok(Admission {
                    place: Place::Granted { _permit: permit },
                    _request: request,
                });
            }
        }
        self.pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, below(self.max_pending))
            .map_err(|_| Overflow::Pending)?;
        Ok(Admission {
            place: Place::Queued(Ticket {
                circuit: self.clone(),
            }),
            _request: request,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_then_queued_then_refused() {
        let c = Arc::new(Circuit::new(1, 1, usize::MAX));
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
        let c = Arc::new(Circuit::new(1, 2, usize::MAX));
        let first = c.admit().unwrap();
        let t = c.admit().unwrap();
        assert!(t.is_queued());
        let waiting = tokio::spawn(async move {
            let mut t = t;
            t.ready(Duration::from_secs(5)).await.map(|_| t)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        let granted = waiting
            .await
            .unwrap()
            .expect("granted when the first ended");
        assert!(!granted.is_queued());
        assert_eq!((c.active(), c.pending()), (1, 0));
        let mut t = c.admit().unwrap();
        assert!(t.is_queued());
        assert_eq!(
            t.ready(Duration::from_millis(20)).await.unwrap_err(),
            Overflow::Timeout
        );
        drop(t);
        assert_eq!(c.pending(), 0);
        drop(granted);
    }

    #[test]
    fn max_requests_refuses_at_once() {
        let c = Arc::new(Circuit::new(usize::MAX, usize::MAX, 2));
        let a = c.admit().unwrap();
        let _b = c.admit().unwrap();
        assert_eq!(c.admit().unwrap_err(), Overflow::Requests);
        drop(a);
        assert!(!c.admit().unwrap().is_queued());
    }
}
