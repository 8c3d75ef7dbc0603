//! Idle upstream connections of the direct path, keyed by address and TLS
//! origination. A connection is taken for one request and put back after a
//! cleanly framed response; nothing watches it while it idles, so a
//! connection the upstream closed meanwhile is found out on its next use
//! and that request is sent again on a new connection (only idempotent
//! requests take this path).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

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
    /// The request head on the way out, the client's response head on the
    /// way back.
    pub out: Vec<u8>,
    /// Served a request before: a failure may be a stale connection.
    pub reused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub addr: SocketAddr,
    /// The origination's group key; `None` for plain text.
    pub tls: Option<u64>,
}

#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<Key, Vec<(Upstream, Instant)>>>,
    sweeper: OnceLock<()>,
}

impl Pool {
    /// The newest idle connection of `key` that is still quiet: one that
    /// has anything to read (bytes the upstream sent unasked, a close, an
    /// alert) is closed, never reused, so no response ever lands on the
    /// wrong request.
    pub fn take(&self, key: &Key) -> Option<Upstream> {
        let mut expired = Vec::new();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let list = idle.get_mut(key)?;
            let mut found = None;
            while let Some((mut up, since)) = list.pop() {
                if since.elapsed() < IDLE_TIMEOUT && quiet(&mut up.stream) {
                    up.reused = true;
                    found = Some(up);
                    break;
                }
                expired.push(up);
            }
            found
        };
        // Closed outside the lock.
        drop(expired);
        found
    }

    /// Closes every idle connection of `key` (one turned out stale: the
    /// older ones most likely are too).
    pub fn clear(&self, key: &Key) {
        let gone = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.remove(key)
        };
        drop(gone);
    }

    pub fn put(&'static self, key: Key, mut up: Upstream) {
        // A large response grew the buffers; an idle connection keeps the
        // usual size.
        if up.buf.capacity() > 2 * BUF {
            up.buf = BytesMut::with_capacity(BUF);
        }
        if up.out.capacity() > BUF {
            up.out = Vec::with_capacity(BUF / 4);
        }
        self.sweeper.get_or_init(|| {
            tokio::spawn(self.sweep());
        });
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() >= MAX_IDLE {
            list.remove(0);
        }
        list.push((up, Instant::now()));
    }

    /// Closes connections idle past [`IDLE_TIMEOUT`], so that a burst's
    /// connections do not stay open when traffic stops.
    async fn sweep(&'static self) {
        loop {
            tokio::time::sleep(IDLE_TIMEOUT / 4).await;
            let expired: Vec<Upstream> = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                let mut out = Vec::new();
                idle.retain(|_, list| {
                    let keep = list
                        .iter()
                        .position(|(_, since)| since.elapsed() < IDLE_TIMEOUT)
                        .unwrap_or(list.len());
                    out.extend(list.drain(..keep).map(|(u, _)| u));
                    !list.is_empty()
                });
                out
            };
            // Closed outside the lock.
            drop(expired);
        }
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
