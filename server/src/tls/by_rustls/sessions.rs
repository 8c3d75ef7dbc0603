//! TLS 1.2 resumption by session id under rustls, for clients that send no
//! ticket extension (OpenSSL listeners keep such sessions in libssl's own
//! cache). One cache for the process, bounded in bytes
//! (`limits.tlsSessionCacheBytes`), oldest out first, in two halves:
//! sessions with a verified client certificate, and anonymous ones, so a
//! flood of anonymous handshakes on a public host cannot push out the
//! sessions of mutual-TLS clients. Each entry is bound as tickets are
//! (tickets.rs): to the policy's session key when it was stored, so a
//! session made under one policy, before a CA was removed or before a
//! fetched CRL changed, is not found under another; and to the end of the
//! client certificate it rests on. rustls itself checks the SNI, the suite
//! and extended master secret of what it gets back.
//!
//! rustls gives every TLS 1.2 full handshake a session id and stores it
//! before it sends the ticket a client asked for; a session is therefore
//! held until the handshake is over ([`settle`]) and kept only if no
//! ticket left with it: a client with tickets never resumes by id.
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
/// A session larger than this (a client chain of many or large
/// certificates) is not kept: such a client makes full handshakes, as the
/// verified-chain memory does not keep its chain either.
const MAX_ENTRY: usize = 16 * 1024;

pub(crate) struct Entry {
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
        let cost = Entry::cost(id, &e.value);
        self.bytes -= cost;
        gauges(-1, -(cost as i64));
        Some(e)
    }

    fn clear(&mut self) {
        gauges(-(self.map.len() as i64), -(self.bytes as i64));
        *self = Inner::default();
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

fn gauges(entries: i64, bytes: i64) {
    let m = metrics();
    m.tls_session_cache_entries.add(entries);
    m.tls_session_cache_bytes.add(bytes);
}

/// The process's TLS 1.2 session cache.
pub(crate) struct SessionCache {
    /// Anonymous sessions, and sessions with a client certificate: each
    /// half of `max_bytes`.
    pools: [Mutex<Inner>; 2],
    max_bytes: AtomicUsize,
}

impl SessionCache {
    pub(crate) fn new(max_bytes: usize) -> SessionCache {
        SessionCache {
            pools: Default::default(),
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
            for pool in 0..2 {
                self.lock(pool).clear();
            }
        }
    }

    fn lock(&self, pool: usize) -> std::sync::MutexGuard<'_, Inner> {
        // A panic under the lock leaves maps that are still consistent
        // enough to evict from.
        self.pools[pool].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, id: Vec<u8>, mut entry: Entry, now: i64) -> bool {
        let max = self.max_bytes.load(Ordering::Relaxed) / 2;
        let cost = Entry::cost(&id, &entry.value);
        if cost > max || entry.value.len() > MAX_ENTRY {
            return false;
        }
        let pool = usize::from(entry.not_after != i64::MAX);
        let mut inner = self.lock(pool);
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
        gauges(1, cost as i64);
        inner.map.insert(id, entry);
        true
    }

    fn get(&self, id: &[u8], binding: &[u8; 32], now: i64, take: bool) -> Option<(Vec<u8>, i64)> {
        // Ids are the server's random 32 bytes: one is in one pool only.
        (0..2).find_map(|pool| self.get_in(pool, id, binding, now, take))
    }

    fn get_in(
        &self,
        pool: usize,
        id: &[u8],
        binding: &[u8; 32],
        now: i64,
        take: bool,
    ) -> Option<(Vec<u8>, i64)> {
        let mut inner = self.lock(pool);
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
            (e.value, e.not_after)
        } else {
            (e.value.clone(), e.not_after)
        };
        Some(found)
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        (0..2).fold((0, 0), |(n, b), pool| {
            let inner = self.lock(pool);
            (n + inner.map.len(), b + inner.bytes)
        })
    }
}

/// A session rustls asked to store, held until its handshake is over.
pub(super) struct Pending {
    cache: Arc<SessionCache>,
    id: Vec<u8>,
    entry: Entry,
}

/// The handshake is over: its session is kept unless a ticket left with
/// it (a client with a ticket resumes by the ticket, never by the id).
pub(super) fn settle() {
    let (pending, ticket) = super::scratch::take_session();
    if let (Some(p), false) = (pending, ticket) {
        p.cache.put(p.id, p.entry, now_unix());
    }
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
        let binding = super::tickets::bound(&self.binding)?;
        let (value, not_after) = self.cache.get(id, &binding, now_unix(), take)?;
        // The session's certificate end carries on as a resumed ticket's.
        // Should rustls then refuse the session (another SNI or suite) and
        // make a full handshake, a certificate it verifies replaces this
        // end; an anonymous one keeps it, which only shortens its session
        // (and tells nothing: TLS 1.2 sends the certificate in the clear).
        super::scratch::resumed_until((not_after != i64::MAX).then_some(not_after));
        Some(value)
    }
}

impl StoresServerSessions for PolicySessions {
    fn put(&self, id: Vec<u8>, value: Vec<u8>) -> bool {
        let Some(binding) = super::tickets::bound(&self.binding) else {
            return false;
        };
        let now = now_unix();
        // Only a certificate the verifier checked in this handshake: an end
        // left by a session lookup rustls then refused (another suite or
        // SNI) would put an anonymous session in the certificates' half.
        let not_after = if super::scratch::verified_here() {
            super::scratch::not_after().unwrap_or(i64::MAX)
        } else {
            i64::MAX
        };
        let entry = Entry {
            seq: 0,
            binding,
            expires: now + i64::from(LIFETIME_SECS),
            not_after,
            value,
        };
        super::scratch::hold_session(Pending {
            cache: self.cache.clone(),
            id,
            entry,
        });
        true
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
