//! TLS 1.2 resumption by session id under rustls, for clients that send no
//! ticket extension (OpenSSL listeners keep such sessions in libssl's own
//! cache). One cache for the process, bounded in bytes
//! (`limits.tlsSessionCacheBytes`), oldest out first. Each entry is bound
//! as tickets are (tickets.rs): to the policy's session key when it was
//! stored, so a session made under one policy, before a CA was removed or
//! before a fetched CRL changed, is not found under another; and to the end
//! of the client certificate it rests on. rustls itself checks the SNI,
//! the suite and extended master secret of what it gets back.
//!
//! TLS 1.3 never comes here: the ticketer is enabled, and rustls then
//! neither stores nor looks up sessions by id.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::server::StoresServerSessions;

use super::tickets::{Binding, LIFETIME_SECS};
use crate::credentials::now_unix;
use crate::metrics::metrics;

/// What an entry costs beside its id and value: the map's and the queue's
/// slots, the binding, the times.
const ENTRY_OVERHEAD: usize = 128;

struct Entry {
    /// Which put made it: the queue's slot for it carries the same.
    seq: u64,
    binding: [u8; 32],
    /// Unix seconds: the session's lifetime, as a ticket's.
    expires: i64,
    /// The client certificate's notAfter (`i64::MAX` without one).
    not_after: i64,
    value: Vec<u8>,
}

impl Entry {
    fn cost(id: &[u8], value: &[u8]) -> usize {
        ENTRY_OVERHEAD + 2 * id.len() + value.len()
    }
}

#[derive(Default)]
struct Inner {
    map: HashMap<Vec<u8>, Entry>,
    /// Ids in the order they were stored, with their put's `seq` and
    /// expiry; an id here may since have been taken or replaced (then its
    /// map entry is absent or has another `seq`).
    order: VecDeque<(Vec<u8>, u64, i64)>,
    bytes: usize,
    next_seq: u64,
}

impl Inner {
    fn remove(&mut self, id: &[u8]) -> Option<Entry> {
        let e = self.map.remove(id)?;
        self.bytes -= Entry::cost(id, &e.value);
        Some(e)
    }

    /// Drops the oldest until `extra` more bytes fit in `max`, and every
    /// expired one at the front.
    fn make_room(&mut self, extra: usize, max: usize, now: i64) -> u64 {
        let mut evicted = 0;
        while let Some((_, _, expires)) = self.order.front() {
            let full = self.bytes + extra > max;
            if !full && *expires > now {
                break;
            }
            let Some((id, seq, _)) = self.order.pop_front() else {
                break;
            };
            // Only the entry this slot stands for: a newer put of the same
            // id has its own slot further back.
            if self.map.get(&id).is_some_and(|e| e.seq == seq) {
                self.remove(&id);
                if full {
                    evicted += 1;
                }
            }
        }
        // Slots of taken entries wait for their expiry at the front; past
        // twice the live ones, they are swept so the queue stays bounded.
        if self.order.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.order
                .retain(|(id, seq, _)| map.get(id).is_some_and(|e| e.seq == *seq));
        }
        evicted
    }
}

/// The process's TLS 1.2 session cache.
pub(crate) struct SessionCache {
    inner: Mutex<Inner>,
    max_bytes: AtomicUsize,
}

impl SessionCache {
    pub(crate) fn new(max_bytes: usize) -> SessionCache {
        SessionCache {
            inner: Mutex::new(Inner::default()),
            max_bytes: AtomicUsize::new(max_bytes),
        }
    }

    /// The one every listener's configs share.
    pub(crate) fn process() -> Arc<SessionCache> {
        static CACHE: OnceLock<Arc<SessionCache>> = OnceLock::new();
        CACHE
            .get_or_init(|| {
                Arc::new(SessionCache::new(
                    crate::config::Limits::default().tls_session_cache_bytes,
                ))
            })
            .clone()
    }

    /// A reload's `limits.tlsSessionCacheBytes`; a smaller bound evicts at
    /// the next store.
    pub(crate) fn set_max_bytes(&self, max: usize) {
        self.max_bytes.store(max, Ordering::Relaxed);
        if max == 0 {
            let mut inner = self.lock();
            *inner = Inner::default();
            publish(&inner);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic under the lock leaves maps that are still consistent
        // enough to evict from.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, id: Vec<u8>, mut entry: Entry, now: i64) -> bool {
        let max = self.max_bytes.load(Ordering::Relaxed);
        let cost = Entry::cost(&id, &entry.value);
        if cost > max {
            return false;
        }
        let mut inner = self.lock();
        inner.remove(&id);
        let evicted = inner.make_room(cost, max, now);
        if evicted > 0 {
            metrics().tls_session_cache_evictions.inc_by(evicted);
        }
        entry.seq = inner.next_seq;
        inner.next_seq += 1;
        inner
            .order
            .push_back((id.clone(), entry.seq, entry.expires));
        inner.bytes += cost;
        inner.map.insert(id, entry);
        publish(&inner);
        true
    }

    fn get(&self, id: &[u8], binding: &[u8; 32], now: i64, take: bool) -> Option<(Vec<u8>, i64)> {
        let mut inner = self.lock();
        let e = inner.map.get(id)?;
        // Expired, past its certificate, or another policy's session (or
        // this one's before it changed): not resumed. It stays until it
        // reaches the front of the queue: removing it here would be a
        // client's way to evict what it did not make.
        if e.expires <= now || e.not_after < now || &e.binding != binding {
            return None;
        }
        let found = if take {
            let e = inner.remove(id)?;
            publish(&inner);
            (e.value, e.not_after)
        } else {
            (e.value.clone(), e.not_after)
        };
        Some(found)
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.map.len(), inner.bytes)
    }
}

fn publish(inner: &Inner) {
    let m = metrics();
    m.tls_session_cache_entries.set(inner.map.len() as i64);
    m.tls_session_cache_bytes.set(inner.bytes as i64);
}

/// One policy's view of the process cache.
pub(crate) struct PolicySessions {
    cache: Arc<SessionCache>,
    binding: Binding,
}

impl std::fmt::Debug for PolicySessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySessions").finish_non_exhaustive()
    }
}

impl PolicySessions {
    pub(crate) fn new(cache: Arc<SessionCache>, binding: Binding) -> PolicySessions {
        PolicySessions { cache, binding }
    }

    fn lookup(&self, id: &[u8], take: bool) -> Option<Vec<u8>> {
        let binding = (self.binding)()?;
        let (value, not_after) = self.cache.get(id, &binding, now_unix(), take)?;
        // The session's certificate end carries on as a resumed ticket's.
        super::scratch::resumed_until((not_after != i64::MAX).then_some(not_after));
        Some(value)
    }
}

impl StoresServerSessions for PolicySessions {
    fn put(&self, id: Vec<u8>, value: Vec<u8>) -> bool {
        let Some(binding) = (self.binding)() else {
            return false;
        };
        let now = now_unix();
        let not_after = super::scratch::not_after().unwrap_or(i64::MAX);
        let entry = Entry {
            seq: 0,
            binding,
            expires: now + i64::from(LIFETIME_SECS),
            not_after,
            value,
        };
        self.cache.put(id, entry, now)
    }

    fn get(&self, id: &[u8]) -> Option<Vec<u8>> {
        self.lookup(id, false)
    }

    fn take(&self, id: &[u8]) -> Option<Vec<u8>> {
        self.lookup(id, true)
    }

    fn can_cache(&self) -> bool {
        self.cache.max_bytes.load(Ordering::Relaxed) > 0
    }
}

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod tests;
