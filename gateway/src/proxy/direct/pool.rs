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

use bytes::BytesMut;
use pingora::protocols::Stream;

/// How long an idle connection may be reused: under the keep-alive timeout
/// of common backends (nginx 75 s, Envoy 1 h) so that reuse rarely races
/// the backend's close.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(55);

/// Most idle connections kept per key; the oldest is closed first.
const MAX_IDLE: usize = 128;

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
    pub fn take(&self, key: &Key) -> Option<Upstream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(key)?;
        while let Some((mut up, since)) = list.pop() {
            if since.elapsed() < IDLE_TIMEOUT {
                up.reused = true;
                return Some(up);
            }
        }
        None
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

    pub fn put(&'static self, key: Key, up: Upstream) {
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
