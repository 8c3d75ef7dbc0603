//! One CRL, parsed once into what a handshake needs.

use std::collections::HashSet;
use std::sync::OnceLock;

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
    pending: std::sync::Mutex<Option<X509Crl>>,
}

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
        let sha256 = openssl::sha::sha256(&der);
        let index = CrlIndex {
            issuer,
            issuer_str,
            this_update,
            next_update,
            serials,
            sha256,
            key: OnceLock::new(),
            pending: std::sync::Mutex::new(None),
        };
        let mut named = cas
            .iter()
            .filter(|ca| names_equal(ca.subject_name(), index.issuer()))
            .peekable();
        if named.peek().is_none() {
            *index.lock_pending() = Some(X509Crl::from_der(&der).map_err(ossl)?);
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
        let mut pending = self.lock_pending();
        let Some(crl) = pending.as_ref() else {
            // Another handshake verified it meanwhile.
            return self.key.get().is_some_and(|k| k.public_eq(&key));
        };
        if crl.verify(&key).unwrap_or(false) {
            let _ = self.key.set(key);
            *pending = None;
            true
        } else {
            false
        }
    }

    /// Is `serial` listed?
    pub fn lists(&self, serial: &Asn1IntegerRef) -> bool {
        serial_key(serial).is_ok_and(|k| self.serials.contains(&k))
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Option<X509Crl>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Verified against `key` (tests and the fetcher's own check).
    pub fn verified_with(&self, key: &PKeyRef<Public>) -> bool {
        self.key.get().is_some_and(|k| k.public_eq(key))
    }
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
