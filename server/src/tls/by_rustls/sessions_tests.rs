use std::sync::atomic::{AtomicU8, Ordering};

use super::*;

fn entry(binding: u8, expires: i64, not_after: i64, len: usize) -> Entry {
    Entry {
        seq: 0,
        binding: [binding; 32],
        expires,
        not_after,
        value: vec![binding; len],
    }
}

const NOW: i64 = 1_000_000;
/// No client certificate: the anonymous half.
const NONE: i64 = i64::MAX;

#[test]
fn a_session_is_found_only_under_its_binding_and_in_its_time() {
    let c = SessionCache::new(1 << 20);
    assert!(c.put(b"id-1".to_vec(), entry(1, NOW + 10, NOW + 5, 10), NOW));
    assert_eq!(c.get(b"id-1", &[1; 32], NOW, false).unwrap().0, vec![1; 10]);
    // Another policy (or this one after a CA left or a CRL changed).
    assert!(c.get(b"id-1", &[2; 32], NOW, false).is_none());
    // Past the client certificate's end, past the lifetime.
    assert!(c.get(b"id-1", &[1; 32], NOW + 6, false).is_none());
    assert!(c.get(b"id-1", &[1; 32], NOW + 10, false).is_none());
    // An unknown id, an empty one.
    assert!(c.get(b"id-2", &[1; 32], NOW, false).is_none());
    assert!(c.get(b"", &[1; 32], NOW, false).is_none());
    // A refused lookup removes nothing: a client cannot evict by asking.
    assert_eq!(c.len().0, 1);
    assert!(c.get(b"id-1", &[1; 32], NOW, true).is_some());
    assert!(c.get(b"id-1", &[1; 32], NOW, false).is_none());
    assert_eq!(c.len(), (0, 0));
}

#[test]
fn bytes_stay_within_the_bound_oldest_out_first() {
    let cost = Entry::cost(b"id-00", &[0; 1000]);
    // Half of the bound for anonymous sessions, half for the others.
    let c = SessionCache::new(cost * 20);
    for i in 0..25u8 {
        let id = format!("id-{i:02}").into_bytes();
        assert!(c.put(id, entry(1, NOW + 100, NONE, 1000), NOW));
        let (n, bytes) = c.len();
        assert!(bytes <= cost * 10 && n <= 10, "{n} entries, {bytes} bytes");
    }
    assert_eq!(c.len(), (10, cost * 10));
    assert!(c.get(b"id-14", &[1; 32], NOW, false).is_none());
    assert!(c.get(b"id-15", &[1; 32], NOW, false).is_some());
    // One larger than its half is not kept, and evicts nothing.
    let big = entry(1, NOW + 100, NONE, cost * 10);
    assert!(!c.put(b"big".to_vec(), big, NOW));
    assert_eq!(c.len().0, 10);
    // Sessions with a certificate have the other half: the anonymous ones
    // stay, and a flood of anonymous ones leaves these.
    for i in 0..10u8 {
        assert!(c.put(vec![b'c', i], entry(1, NOW + 100, NOW + 50, 1000), NOW));
    }
    for i in 0..30u8 {
        assert!(c.put(vec![b'a', i], entry(1, NOW + 100, NONE, 1000), NOW));
    }
    for i in 0..10u8 {
        assert!(c.get(&[b'c', i], &[1; 32], NOW, false).is_some());
    }
    assert_eq!(c.len().0, 20);
}

#[test]
fn a_large_session_is_not_kept() {
    let c = SessionCache::new(1 << 30);
    let over = entry(1, NOW + 100, NOW + 50, MAX_ENTRY + 1);
    assert!(!c.put(b"x".to_vec(), over, NOW));
    assert!(c.put(b"y".to_vec(), entry(1, NOW + 100, NOW + 50, MAX_ENTRY), NOW));
    assert_eq!(c.len().0, 1);
}

#[test]
fn expired_sessions_leave_at_the_next_store_and_the_queue_stays_bounded() {
    let c = SessionCache::new(1 << 20);
    for i in 0..5u8 {
        c.put(vec![i], entry(1, NOW + 10, NONE, 10), NOW);
    }
    c.put(b"later".to_vec(), entry(1, NOW + 100, NONE, 10), NOW + 20);
    assert_eq!(c.len().0, 1);
    // Taken entries leave slots behind; many of them are swept.
    for i in 0..5000u32 {
        let id = i.to_be_bytes().to_vec();
        c.put(id.clone(), entry(1, NOW + 100, NONE, 10), NOW);
        assert!(c.get(&id, &[1; 32], NOW, true).is_some());
    }
    let queue = c.lock(0).order.len();
    assert!(queue <= 2 * c.len().0 + 1025, "{queue} slots");
    // A second put of one id replaces the first, in the count too; its
    // old slot evicts nothing newer.
    let before = c.len();
    c.put(b"x".to_vec(), entry(1, NOW + 100, NONE, 10), NOW);
    c.put(b"x".to_vec(), entry(2, NOW + 100, NONE, 20), NOW);
    assert_eq!(c.get(b"x", &[2; 32], NOW, false).unwrap().0, vec![2; 20]);
    let want = (before.0 + 1, before.1 + Entry::cost(b"x", &[0; 20]));
    assert_eq!(c.len(), want);
}

/// As a handshake does: rustls stores, maybe a ticket is made, then the
/// handshake ends.
async fn handshake(view: &PolicySessions, id: &[u8], ticket: bool) -> bool {
    super::super::scratch::scope(async {
        let stored = view.put(id.to_vec(), b"state".to_vec());
        if ticket {
            super::super::scratch::ticket_issued();
        }
        settle();
        stored
    })
    .await
}

#[tokio::test]
async fn a_bound_of_zero_keeps_nothing_and_the_policy_view_binds() {
    static BOUND: AtomicU8 = AtomicU8::new(1);
    let cache = Arc::new(SessionCache::new(1 << 20));
    let view = PolicySessions::new(
        cache.clone(),
        Box::new(|| match BOUND.load(Ordering::Relaxed) {
            0 => None,
            b => Some([b; 32]),
        }),
    );
    assert!(view.can_cache());
    // A client that got a ticket resumes by it: its session id is not kept.
    assert!(handshake(&view, b"t", true).await);
    assert!(view.get(b"t").is_none());
    assert!(handshake(&view, b"s", false).await);
    assert_eq!(view.get(b"s").unwrap(), b"state");
    BOUND.store(2, Ordering::Relaxed);
    assert!(view.get(b"s").is_none());
    // The policy is gone: nothing stored, nothing found.
    BOUND.store(0, Ordering::Relaxed);
    assert!(!handshake(&view, b"u", false).await);
    assert!(view.get(b"s").is_none());
    BOUND.store(1, Ordering::Relaxed);
    assert!(view.get(b"u").is_none());
    cache.set_max_bytes(0);
    assert!(!view.can_cache());
    assert!(view.get(b"s").is_none());
    assert_eq!(cache.len(), (0, 0));
}

/// A CRL fetched while a client holds back its last flight changes the
/// policy's session key between the handshake's first read of it (the
/// verification, or a lookup) and the session's store: nothing is kept,
/// since its certificate was never checked against that CRL.
#[tokio::test]
async fn a_session_key_that_changes_during_the_handshake_keeps_nothing() {
    static KEY: AtomicU8 = AtomicU8::new(1);
    let cache = Arc::new(SessionCache::new(1 << 20));
    let view = PolicySessions::new(
        cache.clone(),
        Box::new(|| Some([KEY.load(Ordering::Relaxed); 32])),
    );
    let stored = super::super::scratch::scope(async {
        // The verifier's read, then the new CRL, then the client's Finished.
        assert_eq!(super::super::tickets::bound(&view.binding), Some([1; 32]));
        KEY.store(2, Ordering::Relaxed);
        let stored = view.put(b"late".to_vec(), b"state".to_vec());
        settle();
        stored
    })
    .await;
    assert!(!stored);
    assert_eq!(cache.len(), (0, 0));
    // A handshake wholly under the new key keeps its session.
    assert!(handshake(&view, b"after", false).await);
    assert_eq!(view.get(b"after").unwrap(), b"state");
    // A lookup reads the key too: a session found under the old key is
    // not stored again under the new one.
    let stored = super::super::scratch::scope(async {
        assert!(view.get(b"after").is_some());
        KEY.store(3, Ordering::Relaxed);
        view.put(b"again".to_vec(), b"state".to_vec())
    })
    .await;
    assert!(!stored);
}
