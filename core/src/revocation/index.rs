//! One CRL, parsed once into what a handshake needs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use openssl::nid::Nid;

use openssl::asn1::{Asn1IntegerRef, Asn1Time, Asn1TimeRef};
use openssl::pkey::{PKey, PKeyRef, Public};
use openssl::x509::{X509Crl, X509Name, X509NameRef, X509Ref};

/// Why a CRL is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    #[error("does not parse: {0}")]
    Parse(String),
    #[error("is a delta CRL, which tlsgate does not combine with its base: publish a full CRL")]
    Delta,
    #[error(
        "has an issuingDistributionPoint (a partitioned or indirect CRL), which tlsgate \
         does not scope: publish one full CRL per CA"
    )]
    Partitioned,
    #[error("is not signed by {issuer} of the CA bundle (signature does not verify)")]
    BadSignature { issuer: String },
    #[error("is older (thisUpdate {new}) than the one in use (thisUpdate {current})")]
    Older { new: String, current: String },
    #[error("has a critical extension tlsgate does not know ({0}): its scope cannot be honoured")]
    CriticalExtension(String),
    #[error("is issued by {issuer}, no CA of the bundle: a fetched CRL must be signed by one (add the intermediate CA to ca.crt)")]
    UnknownIssuer { issuer: String },
    #[error("has no nextUpdate: a fetched CRL must say when it goes stale")]
    NoNextUpdate,
    #[error("has a thisUpdate in the future ({0})")]
    Future(String),
    #[error("{0}")]
    Openssl(String),
}

/// A parsed CRL: issuer, validity and the revoked serials.
pub struct CrlIndex {
    issuer: X509Name,
    pub issuer_str: String,
    pub this_update: i64,
    pub next_update: Option<i64>,
    serials: HashSet<Box<[u8]>>,
    /// SHA-256 of the DER: what sessions and `/certs` tell CRLs apart by.
    pub sha256: [u8; 32],
    /// The issuer key the signature verified with: set at load for a CA of
    /// the bundle, at the first handshake for an intermediate CA the
    /// client sends (not in the bundle, so unknown before).
    key: OnceLock<PKey<Public>>,
    /// Kept only while no key has verified it.
    pending: Mutex<Option<Arc<X509Crl>>>,
    /// Keys that did not verify it (a few), so a client sending an
    /// impostor intermediate does not cost a signature check per handshake.
    rejected: Mutex<Vec<PKey<Public>>>,
}

/// Critical CRL extensions whose meaning is honoured: the CRL number and
/// the authority key id carry no scope. (Delta and distribution-point
/// CRLs are refused on their own.)
const KNOWN_CRITICAL: [Nid; 2] = [Nid::CRL_NUMBER, Nid::AUTHORITY_KEY_IDENTIFIER];

impl std::fmt::Debug for CrlIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlIndex")
            .field("issuer", &self.issuer_str)
            .field("this_update", &self.this_update)
            .field("next_update", &self.next_update)
            .field("entries", &self.serials.len())
            .finish_non_exhaustive()
    }
}

fn ossl(e: openssl::error::ErrorStack) -> CrlError {
    CrlError::Openssl(e.to_string())
}

impl CrlIndex {
    /// Indexes `crl` and checks its signature against the CA of `cas`
    /// that issued it, if there is one (otherwise at first use).
    pub fn new(crl: &X509Crl, cas: &[openssl::x509::X509]) -> Result<CrlIndex, CrlError> {
        if tlsgate_ossl::crl_has_extension(crl, openssl::nid::Nid::DELTA_CRL.as_raw()) {
            return Err(CrlError::Delta);
        }
        if tlsgate_ossl::crl_has_extension(
            crl,
            openssl::nid::Nid::ISSUING_DISTRIBUTION_POINT.as_raw(),
        ) {
            return Err(CrlError::Partitioned);
        }
        let (own, entries) = tlsgate_ossl::crl_critical_extensions(crl);
        let nid_name = |n: i32| {
            Nid::from_raw(n)
                .short_name()
                .map_or_else(|_| format!("nid {n}"), str::to_string)
        };
        if let Some(n) = own
            .iter()
            .find(|n| !KNOWN_CRITICAL.iter().any(|k| k.as_raw() == **n))
        {
            return Err(CrlError::CriticalExtension(nid_name(*n)));
        }
        if let Some(n) = entries.first() {
            return Err(CrlError::CriticalExtension(format!(
                "{} on an entry",
                nid_name(*n)
            )));
        }
        let mut serials = HashSet::new();
        if let Some(revoked) = crl.get_revoked() {
            serials.reserve(revoked.len());
            for r in revoked {
                serials.insert(serial_key(r.serial_number()).map_err(ossl)?);
            }
        }
        let this_update = unix_time(crl.last_update()).map_err(ossl)?;
        let next_update = match crl.next_update() {
            Some(t) => Some(unix_time(t).map_err(ossl)?),
            None => None,
        };
        let issuer = crl.issuer_name().to_owned().map_err(ossl)?;
        let issuer_str = crate::credentials::name_string(&issuer);
        let der = crl.to_der().map_err(ossl)?;
        let sha256 = crate::credentials::sha256(&der);
        let index = CrlIndex {
            issuer,
            issuer_str,
            this_update,
            next_update,
            serials,
            sha256,
            key: OnceLock::new(),
            pending: Mutex::new(None),
            rejected: Mutex::new(Vec::new()),
        };
        let mut named = cas
            .iter()
            .filter(|ca| names_equal(ca.subject_name(), index.issuer()))
            .peekable();
        if named.peek().is_none() {
            *lock(&index.pending) = Some(Arc::new(X509Crl::from_der(&der).map_err(ossl)?));
            return Ok(index);
        }
        for ca in named {
            let key = ca.public_key().map_err(ossl)?;
            if crl.verify(&key).unwrap_or(false) {
                let _ = index.key.set(key);
                return Ok(index);
            }
        }
        Err(CrlError::BadSignature {
            issuer: index.issuer_str.clone(),
        })
    }

    pub fn issuer(&self) -> &X509NameRef {
        &self.issuer
    }

    pub fn entries(&self) -> usize {
        self.serials.len()
    }

    /// A CRL fetched from a URL: it must be signed by a CA of `cas` (no
    /// check deferred to a handshake: a forged CRL must never displace a
    /// verified one), say when it goes stale, and not come from the future.
    pub fn fetched(
        crl: &X509Crl,
        cas: &[openssl::x509::X509],
        now: i64,
    ) -> Result<CrlIndex, CrlError> {
        let index = CrlIndex::new(crl, cas)?;
        if index.key.get().is_none() {
            return Err(CrlError::UnknownIssuer {
                issuer: index.issuer_str.clone(),
            });
        }
        if index.next_update.is_none() {
            return Err(CrlError::NoNextUpdate);
        }
        if index.this_update > now + super::check::SKEW_SECS {
            return Err(CrlError::Future(crate::credentials::rfc3339(
                index.this_update,
            )));
        }
        Ok(index)
    }

    /// Is this CRL `issuer`'s, signed with its key? The first key that
    /// verifies it is remembered, so the signature is checked once.
    pub fn issued_by(&self, issuer: &X509Ref) -> bool {
        if !names_equal(issuer.subject_name(), &self.issuer) {
            return false;
        }
        let Ok(key) = issuer.public_key() else {
            return false;
        };
        if let Some(k) = self.key.get() {
            return k.public_eq(&key);
        }
        if lock(&self.rejected).iter().any(|k| k.public_eq(&key)) {
            return false;
        }
        let Some(crl) = lock(&self.pending).clone() else {
            // Another handshake verified it meanwhile.
            return self.key.get().is_some_and(|k| k.public_eq(&key));
        };
        // Outside the lock: a big CRL takes a while to hash.
        if crl.verify(&key).unwrap_or(false) {
            let _ = self.key.set(key.clone());
            *lock(&self.pending) = None;
            self.key.get().is_some_and(|k| k.public_eq(&key))
        } else {
            let mut rejected = lock(&self.rejected);
            if rejected.len() < 8 {
                rejected.push(key);
            }
            false
        }
    }

    /// Is `serial` listed? A serial that cannot be read counts as listed.
    pub fn lists(&self, serial: &Asn1IntegerRef) -> bool {
        serial_key(serial).map_or(true, |k| self.serials.contains(&k))
    }

    /// Was its signature verified (at load, or at a handshake)?
    pub fn verified(&self) -> bool {
        self.key.get().is_some()
    }

    /// Verified against `key` (tests and the fetcher's own check).
    pub fn verified_with(&self, key: &PKeyRef<Public>) -> bool {
        self.key.get().is_some_and(|k| k.public_eq(key))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn names_equal(a: &X509NameRef, b: &X509NameRef) -> bool {
    a.try_cmp(b).is_ok_and(|o| o.is_eq())
}

/// A serial as a set key: sign, then magnitude (serials are compared as
/// numbers, whatever padding their encoding has).
fn serial_key(i: &Asn1IntegerRef) -> Result<Box<[u8]>, openssl::error::ErrorStack> {
    let bn = i.to_bn()?;
    let mut v = Vec::with_capacity(bn.num_bytes() as usize + 1);
    v.push(u8::from(bn.is_negative()));
    v.extend(bn.to_vec());
    Ok(v.into_boxed_slice())
}

pub(crate) fn unix_time(t: &Asn1TimeRef) -> Result<i64, openssl::error::ErrorStack> {
    let d = Asn1Time::from_unix(0)?.diff(t)?;
    Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
}
