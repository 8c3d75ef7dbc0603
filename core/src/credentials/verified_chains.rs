//! Client chains that verified, remembered so that a client reconnecting
//! without resumption does not pay for its chain's signatures again.
//!
//! Whether a chain verifies against a CA bundle is a function of the
//! chain's bytes, the bundle and the time: the signatures, names,
//! extensions and path are read from the bytes alone. So a chain is
//! remembered under the digest of its exact bytes, by the verifier of one
//! bundle (a reload builds new verifiers, whose memory starts empty), with
//! the window in which every certificate it holds is valid: outside that
//! window it is verified in full again. What can change without the bytes
//! or the bundle changing (CRLs, the SAN allow list's answer, the proof of
//! the client's key in CertificateVerify) is never remembered: the caller
//! checks it on every handshake. A caller may keep something the chain's
//! bytes and the bundle decide beside it (`T`: the path the CRL check
//! walks, decoded once).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::der::CertView;

/// The digest a chain is remembered under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainKey([u8; 32]);

impl ChainKey {
    /// The leaf then the intermediates, in the order sent, each with its
    /// length so that no two chains share a key by splitting differently.
    pub fn of<'a>(leaf: &'a [u8], intermediates: impl Iterator<Item = &'a [u8]>) -> ChainKey {
        let mut h = openssl::sha::Sha256::new();
        for der in std::iter::once(leaf).chain(intermediates) {
            h.update(&(der.len() as u64).to_be_bytes());
            h.update(der);
        }
        ChainKey(h.finish())
    }
}

/// When every certificate of a chain is valid, in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    not_before: i64,
    not_after: i64,
}

impl Window {
    /// The intersection of the certificates' validities; `None` when one
    /// of them is not read by `der.rs` (such a chain is never remembered)
    /// or they share no second.
    pub fn of<'a>(certs: impl Iterator<Item = &'a [u8]>) -> Option<Window> {
        let mut w = Window {
            not_before: i64::MIN,
            not_after: i64::MAX,
        };
        for der in certs {
            let view = CertView::parse(der)?;
            w.not_before = w.not_before.max(view.not_before);
            w.not_after = w.not_after.min(view.not_after);
        }
        (w.not_before <= w.not_after).then_some(w)
    }

    /// As webpki reads validity: not before notBefore, not after notAfter.
    fn covers(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// What one [`VerifiedChains::remember`] changed: a chain added, and how
/// many were dropped to make room (0 or 1); what an entries gauge follows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    pub added: bool,
    pub dropped: usize,
}

/// Up to `capacity` verified chains, each with a `T`; the oldest goes
/// first when full.
#[derive(Debug)]
pub struct VerifiedChains<T> {
    capacity: usize,
    inner: Mutex<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    windows: HashMap<ChainKey, (Window, T)>,
    order: VecDeque<ChainKey>,
}

impl<T: Clone> VerifiedChains<T> {
    pub fn new(capacity: usize) -> VerifiedChains<T> {
        VerifiedChains {
            capacity,
            inner: Mutex::new(Inner {
                windows: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    /// Whether anything is ever remembered (`entries` above 0): else a
    /// caller need not make keys.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// What was kept with `key`, if it verified before and every
    /// certificate in it is valid `now`; else `None`: verify in full.
    pub fn look_up(&self, key: &ChainKey, now: i64) -> Option<T> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.windows.get(key) {
            Some((w, kept)) if w.covers(now) => Some(kept.clone()),
            _ => None,
        }
    }

    /// Remembers a chain the full verification accepted at `now`: `window`
    /// is [`Window::of`] the leaf and the intermediates `key` was made of.
    pub fn remember(&self, key: ChainKey, window: Window, now: i64, keep: T) -> Remembered {
        if self.capacity == 0 || !window.covers(now) {
            return Remembered::default();
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.windows.insert(key, (window, keep)).is_some() {
            // Seen again after its window, say: its place in line stays.
            return Remembered::default();
        }
        inner.order.push_back(key);
        let mut dropped = 0;
        while inner.order.len() > self.capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.windows.remove(&old);
                dropped += 1;
            }
        }
        Remembered {
            added: true,
            dropped,
        }
    }

    pub fn len(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::der::tests::cert_with_validity;

    impl VerifiedChains<u8> {
        /// As a verifier does: remembers what `Window::of` reads, if anything.
        fn remember_all<'a>(
            &self,
            key: ChainKey,
            certs: impl Iterator<Item = &'a [u8]>,
            now: i64,
            keep: u8,
        ) -> usize {
            Window::of(certs).map_or(0, |w| self.remember(key, w, now, keep).dropped)
        }
    }

    #[test]
    fn remember_says_what_it_added_and_dropped() {
        let certs: Vec<_> = (0..3)
            .map(|i| cert_with_validity("19700101000000Z", &format!("1970010101000{i}Z")))
            .collect();
        let chains = VerifiedChains::<u8>::new(2);
        let keys: Vec<_> = certs
            .iter()
            .map(|c| ChainKey::of(c, std::iter::empty()))
            .collect();
        let w = |i: usize| Window::of([certs[i].as_slice()].into_iter()).unwrap();
        let added = Remembered {
            added: true,
            dropped: 0,
        };
        assert_eq!(chains.remember(keys[0], w(0), 100, 1), added);
        // The same chain again adds nothing.
        assert_eq!(
            chains.remember(keys[0], w(0), 100, 1),
            Remembered::default()
        );
        assert_eq!(chains.remember(keys[1], w(1), 100, 1), added);
        let full = Remembered {
            added: true,
            dropped: 1,
        };
        assert_eq!(chains.remember(keys[2], w(2), 100, 1), full);
        assert_eq!(chains.len(), 2);
    }

    #[test]
    fn a_chain_is_remembered_only_within_every_certificates_validity() {
        // Leaf valid 1000-5000, intermediate 2000-9000: the chain 2000-5000.
        let leaf = cert_with_validity("19700101001640Z", "19700101012320Z");
        let mid = cert_with_validity("19700101003320Z", "19700101023000Z");
        let chains = VerifiedChains::<u8>::new(8);
        let key = ChainKey::of(&leaf, [mid.as_slice()].into_iter());
        let certs = || [leaf.as_slice(), mid.as_slice()].into_iter();
        assert_eq!(chains.look_up(&key, 3000), None);
        // Accepted at a time the chain is not valid: a verifier's mistake
        // is not made permanent.
        assert_eq!(chains.remember_all(key, certs(), 1500, 7), 0);
        assert_eq!(chains.look_up(&key, 3000), None);
        chains.remember_all(key, certs(), 3000, 7);
        for (now, want) in [
            (1999, None),
            (2000, Some(7)),
            (3000, Some(7)),
            (5000, Some(7)),
            (5001, None),
        ] {
            assert_eq!(chains.look_up(&key, now), want, "at {now}");
        }
    }

    #[test]
    fn the_key_is_the_whole_chain_as_sent() {
        let a = cert_with_validity("19700101000000Z", "20991231235959Z");
        let b = cert_with_validity("19700101000001Z", "20991231235959Z");
        let one = |certs: &[&[u8]]| ChainKey::of(certs[0], certs[1..].iter().copied());
        let keys = [
            one(&[&a]),
            one(&[&b]),
            one(&[&a, &b]),
            one(&[&b, &a]),
            one(&[&a, &b, &b]),
            // The same bytes split elsewhere.
            one(&[&[a.as_slice(), b.as_slice()].concat()]),
        ];
        for (i, x) in keys.iter().enumerate() {
            for y in &keys[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(one(&[&a, &b]), one(&[&a, &b]));
    }

    #[test]
    fn unread_certificates_are_never_remembered() {
        let good = cert_with_validity("19700101000000Z", "20991231235959Z");
        let chains = VerifiedChains::<u8>::new(8);
        let garbage: &[u8] = b"\x30\x03\x02\x01\x00";
        let key = ChainKey::of(&good, [garbage].into_iter());
        chains.remember_all(key, [good.as_slice(), garbage].into_iter(), 100, 7);
        assert_eq!(chains.look_up(&key, 100), None);
        assert!(chains.is_empty());
    }

    #[test]
    fn the_oldest_chain_goes_when_full_and_zero_is_off() {
        let certs: Vec<Vec<u8>> = (0..5)
            .map(|i| cert_with_validity(&format!("1970010100000{i}Z"), "20991231235959Z"))
            .collect();
        let keys: Vec<ChainKey> = certs
            .iter()
            .map(|c| ChainKey::of(c, std::iter::empty()))
            .collect();
        let chains = VerifiedChains::<u8>::new(3);
        let mut dropped = 0;
        for (c, k) in certs.iter().zip(&keys) {
            dropped += chains.remember_all(*k, [c.as_slice()].into_iter(), 100, 7);
        }
        assert_eq!((chains.len(), dropped), (3, 2));
        let found: Vec<Option<u8>> = keys.iter().map(|k| chains.look_up(k, 100)).collect();
        assert_eq!(found, [None, None, Some(7), Some(7), Some(7)]);
        // Remembered again: no second place in line.
        assert_eq!(
            chains.remember_all(keys[4], [certs[4].as_slice()].into_iter(), 100, 8),
            0
        );
        assert_eq!(chains.look_up(&keys[4], 100), Some(8), "kept anew");
        assert_eq!(chains.len(), 3);

        let off = VerifiedChains::<u8>::new(0);
        off.remember_all(keys[0], [certs[0].as_slice()].into_iter(), 100, 7);
        assert_eq!(off.look_up(&keys[0], 100), None);
        assert!(off.is_empty() && !off.enabled() && chains.enabled());
    }
}
