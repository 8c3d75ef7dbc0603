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
    let c = SessionCache::new(cost * 10);
    for i in 0..25u8 {
        let id = format!("id-{i:02}").into_bytes();
        assert!(c.put(id, entry(1, NOW + 100, i64::MAX, 1000), NOW));
        let (n, bytes) = c.len();
        assert!(bytes <= cost * 10 && n <= 10, "{n} entries, {bytes} bytes");
    }
    assert_eq!(c.len(), (10, cost * 10));
    assert!(c.get(b"id-14", &[1; 32], NOW, false).is_none());
    assert!(c.get(b"id-15", &[1; 32], NOW, false).is_some());
    // One larger than the whole bound is not kept, and evicts nothing.
    assert!(!c.put(
        b"big".to_vec(),
        entry(1, NOW + 100, i64::MAX, cost * 10),
        NOW
    ));
    assert_eq!(c.len().0, 10);
}

#[test]
fn expired_sessions_leave_at_the_next_store_and_the_queue_stays_bounded() {
    let c = SessionCache::new(1 << 20);
    for i in 0..5u8 {
        c.put(vec![i], entry(1, NOW + 10, i64::MAX, 10), NOW);
    }
    c.put(
        b"later".to_vec(),
        entry(1, NOW + 100, i64::MAX, 10),
        NOW + 20,
    );
    assert_eq!(c.len().0, 1);
    // Taken entries leave slots behind; many of them are swept.
    for i in 0..5000u32 {
        let id = i.to_be_bytes().to_vec();
        c.put(id.clone(), entry(1, NOW + 100, i64::MAX, 10), NOW);
        assert!(c.get(&id, &[1; 32], NOW, true).is_some());
    }
    let queue = c.lock().order.len();
    assert!(queue <= 2 * c.len().0 + 1025, "{queue} slots");
    // A second put of one id replaces the first; its old slot evicts
    // nothing newer.
    c.put(b"x".to_vec(), entry(1, NOW + 100, i64::MAX, 10), NOW);
    c.put(b"x".to_vec(), entry(2, NOW + 100, i64::MAX, 20), NOW);
    assert_eq!(c.get(b"x", &[2; 32], NOW, false).unwrap().0, vec![2; 20]);
}

#[test]
fn a_bound_of_zero_keeps_nothing_and_the_policy_view_binds() {
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
    assert!(view.put(b"s".to_vec(), b"state".to_vec()));
    assert_eq!(view.get(b"s").unwrap(), b"state");
    BOUND.store(2, Ordering::Relaxed);
    assert!(view.get(b"s").is_none());
    // The policy is gone: nothing stored, nothing found.
    BOUND.store(0, Ordering::Relaxed);
    assert!(!view.put(b"t".to_vec(), b"state".to_vec()));
    assert!(view.get(b"s").is_none());
    BOUND.store(1, Ordering::Relaxed);
    cache.set_max_bytes(0);
    assert!(!view.can_cache());
    assert!(view.get(b"s").is_none());
    assert!(!view.put(b"u".to_vec(), b"state".to_vec()));
}
