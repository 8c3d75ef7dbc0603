//! The per-certificate revocation verdict.

use std::sync::Arc;

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
        }
    }

    /// No CRL configured: nothing is checked.
    pub fn is_active(&self) -> bool {
        !self.files.is_empty() || !self.slots.is_empty()
    }

    pub fn slots(&self) -> &[Arc<CrlSlot>] {
        &self.slots
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
        let fetched: Vec<Arc<CrlIndex>> = self.slots.iter().filter_map(|s| s.current()).collect();
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
        let fetched: Vec<Arc<CrlIndex>> = self.slots.iter().filter_map(|s| s.current()).collect();
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
