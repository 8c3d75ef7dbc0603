//! The per-certificate revocation verdict.

use std::sync::{Arc, Mutex};

use openssl::x509::{X509Ref, X509};

use super::{CrlIndex, CrlSlot};
pub use crate::config::model::StaleCrl as StalePolicy;

/// What a credential's revocation checking asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationPolicy {
    /// A CRL past its nextUpdate that could not be replaced.
    pub stale: StalePolicy,
    /// Check the client's own certificate only, not its intermediates.
    pub leaf_only: bool,
}

/// A verdict on one certificate of a client's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Good,
    /// Not checked: no CRL configured, a trust anchor, or an intermediate
    /// under `leafOnly`.
    NotChecked,
    Revoked,
    /// CRLs are configured but none from this certificate's issuer is
    /// loaded (never fetched, or signed by another key).
    Missing,
    /// The issuer's newest CRL is past its nextUpdate; `accepted` under
    /// `failOpen`.
    Stale {
        accepted: bool,
    },
}

/// Distribution points taken from one certificate, at most.
const PER_CERTIFICATE: usize = 2;

/// A clock skew allowance for a CRL's thisUpdate: a CRL published a
/// moment ago by a CA whose clock runs ahead is still usable.
pub(crate) const SKEW_SECS: i64 = 300;

/// A credential's CRLs (from its files and its URLs) and policy.
#[derive(Debug)]
pub struct Revocation {
    pub policy: RevocationPolicy,
    files: Vec<Arc<CrlIndex>>,
    slots: Vec<Arc<CrlSlot>>,
    /// The client CA bundle: a fetched CRL must verify against its CA.
    cas: Vec<X509>,
    /// With `distributionPoints`: the credential whose clients'
    /// certificates teach CRL URLs, and the slots learned so far.
    learn_as: Option<String>,
    learned: Mutex<Vec<Arc<CrlSlot>>>,
}

impl Revocation {
    pub fn new(
        policy: RevocationPolicy,
        files: Vec<Arc<CrlIndex>>,
        slots: Vec<Arc<CrlSlot>>,
        cas: Vec<X509>,
    ) -> Revocation {
        Revocation {
            policy,
            files,
            slots,
            cas,
            learn_as: None,
            learned: Mutex::new(Vec::new()),
        }
    }

    /// Also learns CRL URLs from the distribution points of the clients'
    /// certificates, for credential `name` (starting with those learned
    /// under earlier configurations).
    pub fn learning(mut self, name: &str) -> Revocation {
        let learned = super::learned_urls(name)
            .iter()
            .filter(|u| !self.slots.iter().any(|s| &s.url == *u))
            .map(|u| super::slot(u))
            .collect();
        self.learned = Mutex::new(learned);
        self.learn_as = Some(name.to_string());
        self
    }

    /// No CRL configured nor learnt: nothing is checked.
    pub fn is_active(&self) -> bool {
        !self.files.is_empty() || !self.slots.is_empty() || self.learn_as.is_some()
    }

    /// Does it learn CRL URLs from certificates?
    pub fn learns(&self) -> bool {
        self.learn_as.is_some()
    }

    /// Are some of its CRLs fetched (so they change between reloads)?
    pub fn fetches(&self) -> bool {
        !self.slots.is_empty() || self.learn_as.is_some()
    }

    /// The configured slots (part of the policy key).
    pub fn slots(&self) -> &[Arc<CrlSlot>] {
        &self.slots
    }

    /// Configured and learned slots: what the fetcher keeps fresh.
    pub fn all_slots(&self) -> Vec<Arc<CrlSlot>> {
        let mut all = self.slots.clone();
        all.extend(self.lock_learned().iter().cloned());
        all
    }

    /// What the CRLs fetched for it are now: each URL, the digest of its
    /// CRL in use and whether that CRL is stale. The same on every replica
    /// holding the same CRLs, unlike a counter of changes.
    pub fn fingerprint(&self, now: i64) -> [u8; 32] {
        let mut slots = self.all_slots();
        slots.sort_by(|a, b| a.url.cmp(&b.url));
        let mut h = openssl::sha::Sha256::new();
        for s in slots {
            h.update(&(s.url.len() as u64).to_be_bytes());
            h.update(s.url.as_bytes());
            match s.current() {
                Some(c) => {
                    h.update(&c.sha256);
                    h.update(&[u8::from(c.next_update.is_some_and(|n| n < now))]);
                }
                None => h.update(b"-"),
            }
        }
        h.finish()
    }

    fn lock_learned(&self) -> std::sync::MutexGuard<'_, Vec<Arc<CrlSlot>>> {
        self.learned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// With `distributionPoints`, takes the `http(s)` CRL distribution
    /// points of `cert` (already verified to chain to the bundle) as URLs
    /// to fetch.
    pub fn learn_from(&self, cert: &X509Ref, depth: usize) {
        let Some(name) = &self.learn_as else { return };
        if self.policy.leaf_only && depth > 0 {
            // Never checked: nothing to fetch for it.
            return;
        }
        // A few per certificate, so one CA cannot take the whole quota.
        for url in distribution_points(cert).into_iter().take(PER_CERTIFICATE) {
            if self.slots.iter().any(|s| s.url == url)
                || self.lock_learned().iter().any(|s| s.url == url)
            {
                continue;
            }
            let mut learned = self.lock_learned();
            if learned.len() < super::MAX_LEARNED && super::remember(name, &url) {
                tracing::info!(credential = %name, url = %url, "CRL distribution point learned from a client certificate");
                learned.push(super::slot(&url));
            } else {
                static LOG: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                // Once in a while: every handshake of such a client gets here.
                if LOG.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1000 == 0 {
                    tracing::warn!(
                        credential = %name,
                        url = %url,
                        max = super::MAX_LEARNED,
                        "CRL distribution point not learned: the credential has learned its maximum; list it in ca.crl.url"
                    );
                }
            }
        }
    }

    pub fn cas(&self) -> &[X509] {
        &self.cas
    }

    /// The verdict on `cert` at `depth` of a verified chain, `issuer` being
    /// the next certificate up. `top`: the chain's trust anchor, which
    /// RFC 5280 does not check (it is trusted by being in the bundle).
    pub fn check(
        &self,
        cert: &X509Ref,
        issuer: &X509Ref,
        depth: usize,
        top: bool,
        now: i64,
    ) -> Verdict {
        // A client certificate that is itself in the bundle (depth 0 at
        // the top) is checked against its own CRL, as OpenSSL did.
        if !self.is_active() || (top && depth > 0) || (self.policy.leaf_only && depth > 0) {
            return Verdict::NotChecked;
        }
        let fetched = self.fetched();
        let newest = self
            .files
            .iter()
            .chain(fetched.iter())
            .filter(|c| c.this_update <= now + SKEW_SECS && c.issued_by(issuer))
            .max_by_key(|c| c.this_update);
        let Some(crl) = newest else {
            return Verdict::Missing;
        };
        self.verdict(crl, cert, now)
    }

    /// The leaf of a connection made earlier, again, after a CRL changed:
    /// with the issuer when the handshake verified a chain, else (a resumed
    /// session keeps only the leaf) against the CRLs already verified for
    /// an issuer of the leaf's issuer name.
    pub fn recheck_leaf(&self, leaf: &X509Ref, issuer: Option<&X509Ref>, now: i64) -> Verdict {
        if let Some(issuer) = issuer {
            let top = std::ptr::eq(issuer, leaf);
            return self.check(leaf, issuer, 0, top, now);
        }
        if !self.is_active() {
            return Verdict::NotChecked;
        }
        let fetched = self.fetched();
        let newest = self
            .files
            .iter()
            .chain(fetched.iter())
            .filter(|c| {
                c.this_update <= now + SKEW_SECS
                    && c.verified()
                    && super::index::names_equal(c.issuer(), leaf.issuer_name())
            })
            .max_by_key(|c| c.this_update);
        match newest {
            Some(crl) => self.verdict(crl, leaf, now),
            None => Verdict::Missing,
        }
    }

    fn fetched(&self) -> Vec<Arc<CrlIndex>> {
        let mut v: Vec<Arc<CrlIndex>> = self.slots.iter().filter_map(|s| s.current()).collect();
        if self.learn_as.is_some() {
            v.extend(self.lock_learned().iter().filter_map(|s| s.current()));
        }
        v
    }

    fn verdict(&self, crl: &CrlIndex, cert: &X509Ref, now: i64) -> Verdict {
        // A stale CRL still proves a revocation.
        if crl.lists(cert.serial_number()) {
            return Verdict::Revoked;
        }
        match crl.next_update {
            Some(next) if next < now => Verdict::Stale {
                accepted: self.policy.stale == StalePolicy::FailOpen,
            },
            _ => Verdict::Good,
        }
    }
}

/// The `http://` and `https://` full-name URIs of `cert`'s CRL
/// distribution points.
pub fn distribution_points(cert: &X509Ref) -> Vec<String> {
    let Some(points) = cert.crl_distribution_points() else {
        return Vec::new();
    };
    points
        .iter()
        .filter_map(|p| p.distpoint()?.fullname())
        .flat_map(|names| names.iter().filter_map(|n| n.uri()))
        .filter(|u| crate::config::revocation::check_crl_url(u).is_ok())
        .map(str::to_string)
        .collect()
}
