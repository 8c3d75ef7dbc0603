//! Idle upstream connections of the direct path, keyed by address and TLS
//! origination, per worker thread. A connection is taken for one request
//! and put back after a cleanly framed response. Nothing watches it while
//! it idles: it is checked when taken (one read that must find nothing),
//! and a connection the upstream closes just then is found out on use and
//! that request sent again on a new connection (only idempotent requests
//! take this path).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pingora::protocols::Stream;
use tokio::io::{AsyncRead, ReadBuf};

/// How long an idle connection may be reused: under the keep-alive timeout
/// of common backends (nginx 75 s, Envoy 1 h) so that reuse rarely races
/// the backend's close.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(55);

/// Most idle connections kept per key; the oldest is closed first.
const MAX_IDLE: usize = 128;

/// Read buffer of an upstream connection.
pub const BUF: usize = 16 * 1024;

/// An upstream connection and its read buffer, which travel together.
pub struct Upstream {
    pub stream: Stream,
    pub buf: BytesMut,
    /// Served a request before: a failure may be a stale connection.
    pub reused: bool,
    /// Requests it has served.
    pub served: u32,
}

/// What a destination's `connectionPool` asks of its idle connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reuse {
    /// `maxRequestsPerConnection`
    pub max_requests: Option<u32>,
    /// `idleTimeout` (never more than [`IDLE_TIMEOUT`]).
    pub idle: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub addr: SocketAddr,
    /// The origination's group key; `None` for plain text.
    pub tls: Option<u64>,
}

/// Idle connections of one worker thread. Each worker runs its own
/// single-threaded runtime (`work_stealing: false`), and a socket is
/// registered with the runtime that opened it: kept per thread, a
/// connection is always woken by the runtime that polls it, and taking or
/// putting one takes no lock.
#[derive(Default)]
struct Idle {
    /// Each with the time it may idle until.
    conns: HashMap<Key, Vec<(Upstream, Instant)>>,
    sweeper: bool,
}

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::new(Idle::default());
}

/// The newest idle connection of `key` that is still quiet: one that has
/// anything to read (bytes the upstream sent unasked, a close, an alert)
/// is closed, never reused, so no response ever lands on the wrong request.
pub fn take(key: &Key) -> Option<Upstream> {
    let (found, expired) = IDLE.with_borrow_mut(|idle| {
        let mut expired = Vec::new();
        let list = idle.conns.get_mut(key)?;
        while let Some((mut up, until)) = list.pop() {
            if Instant::now() < until && quiet(&mut up.stream) {
                up.reused = true;
                return Some((Some(up), expired));
            }
            expired.push(up);
        }
        Some((None, expired))
    })?;
    // Closed outside the borrow (dropping a stream runs its own code).
    drop(expired);
    found
}

/// Closes every idle connection of `key` (one turned out stale: the older
/// ones most likely are too).
pub fn clear(key: &Key) {
    let gone = IDLE.with_borrow_mut(|idle| idle.conns.remove(key));
    drop(gone);
}

pub fn put(key: Key, mut up: Upstream, reuse: Reuse) {
    up.served += 1;
    if reuse.max_requests.is_some_and(|max| up.served >= max) {
        return;
    }
    let until = Instant::now() + reuse.idle.map_or(IDLE_TIMEOUT, |t| t.min(IDLE_TIMEOUT));
    // A large response grew the buffer; an idle connection keeps the
    // usual size.
    if up.buf.capacity() > 2 * BUF {
        up.buf = BytesMut::with_capacity(BUF);
    }
    let (start_sweeper, oldest) = IDLE.with_borrow_mut(|idle| {
        let start = !std::mem::replace(&mut idle.sweeper, true);
        let list = idle.conns.entry(key).or_default();
        let oldest = (list.len() >= MAX_IDLE).then(|| list.remove(0));
        list.push((up, until));
        (start, oldest)
    });
    drop(oldest);
    if start_sweeper {
        tokio::spawn(sweep());
    }
}

/// Closes this thread's connections idle past [`IDLE_TIMEOUT`], so that a
/// burst's connections do not stay open when traffic stops. Runs on the
/// thread's own runtime.
async fn sweep() {
    loop {
        tokio::time::sleep(IDLE_TIMEOUT / 4).await;
        let expired: Vec<Upstream> = IDLE.with_borrow_mut(|idle| {
            let mut out = Vec::new();
            idle.conns.retain(|_, list| {
                let now = Instant::now();
                let (live, gone): (Vec<_>, Vec<_>) =
                    list.drain(..).partition(|(_, until)| now < *until);
                out.extend(gone.into_iter().map(|(u, _)| u));
                *list = live;
                !list.is_empty()
            });
            out
        });
        drop(expired);
    }
}

/// Nothing to read on `stream` right now (one poll, without waiting).
/// Through the TLS layer, so records OpenSSL holds count too. The poll
/// registers no waker that matters: the next real read registers its own.
fn quiet(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    let mut rb = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(stream).poll_read(&mut cx, &mut rb), Poll::Pending)
}
