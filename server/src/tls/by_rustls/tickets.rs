//! Session tickets under rustls, with the runtime's keys (shared files, so
//! replicas resume each other's, or this process's rotating ones) and
//! bound to the policy: the ticket's authenticated data is the policy's
//! session key, so a ticket minted under one policy, or before a fetched
//! CRL changed, does not decrypt under another.
//!
//! A ticket also ends with the client certificate it rests on: a session
//! is not resumed past its certificate's notAfter (renewed tickets would
//! otherwise carry it on for as long as the client comes back); the full
//! handshake then checks the certificate.
//!
//! Format: key name (16) | nonce (12) | client certificate's end (8, Unix
//! seconds, big-endian; authenticated) | AES-GCM ciphertext | tag (16).
//! OpenSSL's tickets (AES-CBC + HMAC) are another format: a client moving
//! between an OpenSSL and a rustls replica makes one full handshake.

use std::sync::Arc;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use rustls::server::ProducesTickets;

use crate::metrics::metrics;
use crate::runtime::TicketKeys;

const NAME: usize = 16;
const NONCE: usize = 12;
const ENDS: usize = 8;
const TAG: usize = 16;
/// As OpenSSL's default session timeout.
pub(super) const LIFETIME_SECS: u32 = 7200;

/// What a ticket is bound to now: the policy's session key (`None`
/// once the policy is gone: no ticket is made or taken).
pub(crate) type Binding = Box<dyn Fn() -> Option<[u8; 32]> + Send + Sync>;

/// The binding, if it is still the one this handshake began under (see
/// `scratch::same_session_key`): no session is made or taken otherwise.
pub(super) fn bound(binding: &Binding) -> Option<[u8; 32]> {
    let key = binding()?;
    super::scratch::same_session_key(key).then_some(key)
}

/// Makes the key read now the one this handshake's sessions must be made
/// under, if none was read yet.
pub(super) fn note_session_key(binding: &Binding) {
    if let Some(key) = binding() {
        super::scratch::same_session_key(key);
    }
}

pub(crate) struct PolicyTickets {
    keys: Arc<TicketKeys>,
    binding: Binding,
}

impl std::fmt::Debug for PolicyTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyTickets")
            .field("keys", &self.keys)
            .finish()
    }
}

impl PolicyTickets {
    pub(crate) fn new(keys: Arc<TicketKeys>, binding: Binding) -> PolicyTickets {
        PolicyTickets { keys, binding }
    }

    fn aad(&self, name: &[u8], ends: &[u8]) -> Option<Vec<u8>> {
        let mut aad = name.to_vec();
        aad.extend_from_slice(&bound(&self.binding)?);
        aad.extend_from_slice(ends);
        Some(aad)
    }
}

/// AES-GCM under `key` (AES-256 or AES-128 by its length). aws-lc-rs,
/// not OpenSSL: OpenSSL 3 looks the cipher up in its provider store and
/// draws the nonce through its locked DRBG on every ticket, 2% of a full
/// rustls handshake, all of it spent outside the cipher itself. The format
/// is the same, so tickets open across binaries of either kind.
fn cipher(key: &[u8]) -> Option<LessSafeKey> {
    let algorithm = match key.len() {
        32 => &AES_256_GCM,
        16 => &AES_128_GCM,
        _ => return None,
    };
    Some(LessSafeKey::new(UnboundKey::new(algorithm, key).ok()?))
}

impl ProducesTickets for PolicyTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.keys();
        let key = keys.first()?;
        // No client certificate (or none verified here): no end.
        let ends = super::scratch::not_after()
            .unwrap_or(i64::MAX)
            .to_be_bytes();
        let aad = self.aad(&key.name, &ends)?;
        let sealing = cipher(&key.aes)?;
        let mut nonce = [0u8; NONCE];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME + NONCE + ENDS + plain.len() + TAG);
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ends);
        let head = out.len();
        out.extend_from_slice(plain);
        let tag = sealing
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut out[head..],
            )
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        super::scratch::ticket_issued();
        Some(out)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < NAME + NONCE + ENDS + TAG {
            return None;
        }
        let (name, rest) = ticket.split_at(NAME);
        let (nonce, rest) = rest.split_at(NONCE);
        let (ends, rest) = rest.split_at(ENDS);
        let (sealed, tag) = rest.split_at(rest.len() - TAG);
        let keys = self.keys.keys();
        let found = keys.iter().position(|k| k.name[..] == *name);
        let age = match found {
            Some(0) => "0",
            Some(1) => "1",
            Some(_) => "2+",
            None => "unknown",
        };
        metrics().ticket_keys.with_label_values(&[age]).inc();
        let key = &keys[found?];
        let aad = self.aad(name, ends)?;
        let mut plain = sealed.to_vec();
        cipher(&key.aes)?
            .open_in_place_separate_tag(
                Nonce::try_assume_unique_for_key(nonce).ok()?,
                Aad::from(&aad),
                tag,
                &mut plain,
            )
            .ok()?;
        let ends = i64::from_be_bytes(ends.try_into().ok()?);
        if ends < crate::credentials::now_unix() {
            return None;
        }
        // A renewed ticket ends no later.
        super::scratch::resumed_until((ends != i64::MAX).then_some(ends));
        Some(plain)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::time::Duration;

    use super::*;

    fn tickets(keys: &Arc<TicketKeys>, bound: &'static AtomicU8) -> PolicyTickets {
        PolicyTickets::new(
            keys.clone(),
            Box::new(move || match bound.load(Ordering::Relaxed) {
                0 => None,
                b => Some([b; 32]),
            }),
        )
    }

    fn file_keys(names: &[u8], aes_len: usize) -> Arc<TicketKeys> {
        let keys = names
            .iter()
            .map(|n| tlsgate_ossl::TicketKeyMaterial {
                name: [*n; 16],
                hmac: vec![*n; 32],
                aes: vec![n.wrapping_add(1); aes_len],
            })
            .collect();
        Arc::new(TicketKeys::Files {
            keys: Arc::new(keys),
            files: vec![PathBuf::from("k")],
            content_id: [0; 32],
        })
    }

    #[test]
    fn a_ticket_opens_only_under_its_binding_and_keys() {
        static BOUND: AtomicU8 = AtomicU8::new(1);
        let keys = Arc::new(TicketKeys::Random {
            rotation: Duration::from_secs(3600),
        });
        let t = tickets(&keys, &BOUND);
        let sealed = t.encrypt(b"session state").unwrap();
        assert_eq!(t.decrypt(&sealed).unwrap(), b"session state");
        // Another policy key (a stricter policy, a changed CRL): refused.
        BOUND.store(2, Ordering::Relaxed);
        assert!(t.decrypt(&sealed).is_none());
        BOUND.store(1, Ordering::Relaxed);
        // Tampered, truncated, garbage, empty.
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(t.decrypt(&bad).is_none());
        assert!(t.decrypt(&sealed[..sealed.len() - 1]).is_none());
        assert!(t
            .decrypt(&sealed[..NAME + NONCE + ENDS + TAG - 1])
            .is_none());
        assert!(t.decrypt(&[0xab; 200]).is_none());
        assert!(t.decrypt(&[]).is_none());
        // The policy gone: nothing made, nothing taken.
        BOUND.store(0, Ordering::Relaxed);
        assert!(t.encrypt(b"x").is_none());
        assert!(t.decrypt(&sealed).is_none());
    }

    #[test]
    fn shared_keys_decrypt_by_name_and_the_first_encrypts() {
        static BOUND: AtomicU8 = AtomicU8::new(7);
        for aes_len in [32, 16] {
            let old = tickets(&file_keys(&[1], aes_len), &BOUND);
            let sealed = old.encrypt(b"s").unwrap();
            assert_eq!(&sealed[..NAME], &[1; 16]);
            // Another replica, the key rotated in ahead of the old one.
            let rotated = tickets(&file_keys(&[2, 1], aes_len), &BOUND);
            assert_eq!(rotated.decrypt(&sealed).unwrap(), b"s");
            assert_eq!(&rotated.encrypt(b"s").unwrap()[..NAME], &[2; 16]);
            // The old key removed: a full handshake.
            let removed = tickets(&file_keys(&[2], aes_len), &BOUND);
            assert!(removed.decrypt(&sealed).is_none());
        }
    }

    #[test]
    fn ciphers_by_key_length() {
        assert!(cipher(&[0; 32]).is_some());
        assert!(cipher(&[0; 16]).is_some());
        assert!(cipher(&[0; 20]).is_none());
    }

    /// Replicas mid-upgrade hold binaries that sealed tickets with
    /// OpenSSL's AES-GCM: theirs must open here and ours there, or every
    /// client moving between them makes a full handshake.
    #[test]
    fn tickets_open_across_the_openssl_and_aws_lc_implementations() {
        use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
        static BOUND: AtomicU8 = AtomicU8::new(9);
        for (aes_len, openssl_cipher) in [(32, Cipher::aes_256_gcm()), (16, Cipher::aes_128_gcm())]
        {
            let keys = file_keys(&[4], aes_len);
            let t = tickets(&keys, &BOUND);
            let key = keys.keys()[0].clone();
            let ends = i64::MAX.to_be_bytes();
            let aad = t.aad(&key.name, &ends).unwrap();
            // Sealed as the OpenSSL implementation did.
            let nonce = [7u8; NONCE];
            let mut tag = [0u8; TAG];
            let sealed = encrypt_aead(
                openssl_cipher,
                &key.aes,
                Some(&nonce),
                &aad,
                b"old state",
                &mut tag,
            )
            .unwrap();
            let ticket = [&key.name[..], &nonce, &ends, &sealed, &tag].concat();
            assert_eq!(t.decrypt(&ticket).unwrap(), b"old state");
            // And ours opened by it.
            let ours = t.encrypt(b"new state").unwrap();
            let (head, tag) = ours.split_at(ours.len() - TAG);
            let opened = decrypt_aead(
                openssl_cipher,
                &key.aes,
                Some(&head[NAME..NAME + NONCE]),
                &aad,
                &head[NAME + NONCE + ENDS..],
                tag,
            )
            .unwrap();
            assert_eq!(opened, b"new state");
        }
    }

    #[tokio::test]
    async fn a_ticket_ends_with_its_client_certificate() {
        static BOUND: AtomicU8 = AtomicU8::new(3);
        let keys = Arc::new(TicketKeys::Random {
            rotation: Duration::from_secs(3600),
        });
        let t = tickets(&keys, &BOUND);
        let now = crate::credentials::now_unix();
        // As the verifier leaves it for a certificate ending `at`.
        let t = &t;
        let ending = |at: i64| {
            super::super::scratch::scope(async move {
                super::super::scratch::resumed_until(Some(at));
                t.encrypt(b"s").unwrap()
            })
        };
        let valid = ending(now + 3600).await;
        let ended = ending(now - 1).await;
        assert_eq!(t.decrypt(&valid).unwrap(), b"s");
        assert!(
            t.decrypt(&ended).is_none(),
            "resumed past the certificate's end"
        );
        // The end is authenticated: moved later, the ticket does not open.
        let mut moved = ended.clone();
        moved[NAME + NONCE..NAME + NONCE + ENDS].copy_from_slice(&i64::MAX.to_be_bytes());
        assert!(t.decrypt(&moved).is_none());
        // A ticket renewed on resumption keeps the end it came with.
        let renewed = super::super::scratch::scope(async {
            assert!(t.decrypt(&valid).is_some());
            t.encrypt(b"s2").unwrap()
        })
        .await;
        assert_eq!(
            &renewed[NAME + NONCE..NAME + NONCE + ENDS],
            &(now + 3600).to_be_bytes()
        );
    }

    /// A ticket is made only under the session key the handshake began
    /// with: one opened, or a certificate verified, before a fetched CRL
    /// changed the key gets no new ticket after it.
    #[tokio::test]
    async fn no_ticket_when_the_session_key_changed_during_the_handshake() {
        static BOUND: AtomicU8 = AtomicU8::new(1);
        let keys = file_keys(&[1], 32);
        let t = tickets(&keys, &BOUND);
        let old = t.encrypt(b"state").unwrap();
        let fresh = super::super::scratch::scope(async {
            assert_eq!(t.decrypt(&old).as_deref(), Some(&b"state"[..]));
            BOUND.store(2, Ordering::Relaxed);
            t.encrypt(b"state")
        })
        .await;
        assert!(fresh.is_none());
        let verified_then_changed = super::super::scratch::scope(async {
            assert_eq!(bound(&t.binding), Some([2; 32]));
            BOUND.store(3, Ordering::Relaxed);
            t.encrypt(b"state")
        })
        .await;
        assert!(verified_then_changed.is_none());
        // Under one key throughout: issued, and it opens.
        let steady = super::super::scratch::scope(async {
            assert!(bound(&t.binding).is_some());
            t.encrypt(b"state")
        })
        .await
        .unwrap();
        assert_eq!(t.decrypt(&steady).as_deref(), Some(&b"state"[..]));
    }
}
