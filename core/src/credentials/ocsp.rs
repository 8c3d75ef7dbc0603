//! A server certificate's OCSP response to staple (`tls.ocsp`, HAProxy's
//! convention), checked when it is loaded: a response that does not
//! parse, is not signed for the certificate's issuer, answers for another
//! certificate, or says anything but "good" is refused with the
//! credential (its last good version keeps serving). One past its
//! nextUpdate loads, but is never stapled.

use std::path::{Path, PathBuf};

use openssl::hash::MessageDigest;
use openssl::ocsp::{OcspCertId, OcspCertStatus, OcspFlag, OcspResponse, OcspResponseStatus};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::X509;

use super::CredentialError;

/// A checked OCSP response.
#[derive(Debug)]
pub struct Staple {
    pub der: Vec<u8>,
    pub this_update: i64,
    pub next_update: Option<i64>,
    pub source: PathBuf,
}

/// What `/certs` shows of a staple.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OcspInfo {
    pub status: &'static str,
    pub this_update: String,
    pub next_update: Option<String>,
    pub next_update_unix: Option<i64>,
    pub source: PathBuf,
}

impl Staple {
    /// Stapled only while it is current.
    pub fn fresh(&self, now: i64) -> bool {
        self.next_update.is_none_or(|n| n > now)
    }

    pub fn info(&self) -> OcspInfo {
        OcspInfo {
            status: "good",
            this_update: super::rfc3339(self.this_update),
            next_update: self.next_update.map(super::rfc3339),
            next_update_unix: self.next_update,
            source: self.source.clone(),
        }
    }
}

/// Checks `der` as the OCSP response for `chain[0]`, issued by `chain[1]`.
pub fn check(path: &Path, der: &[u8], chain: &[X509]) -> Result<Staple, CredentialError> {
    let err = |reason: String| CredentialError::Ocsp {
        path: path.to_path_buf(),
        reason,
    };
    let ossl = |e: openssl::error::ErrorStack| err(super::ossl_reason(&e));
    let (Some(leaf), Some(issuer)) = (chain.first(), chain.get(1)) else {
        return Err(err(
            "the certificate file carries no issuer after the leaf: \
             an OCSP response cannot be checked without it"
                .into(),
        ));
    };
    let resp = OcspResponse::from_der(der).map_err(|e| err(format!("does not parse: {e}")))?;
    if resp.status() != OcspResponseStatus::SUCCESSFUL {
        return Err(err(format!(
            "is not a successful response (status {})",
            resp.status().as_raw()
        )));
    }
    let basic = resp.basic().map_err(ossl)?;
    // The issuer is the trust anchor, intermediate or not: the responder
    // is the issuer itself or a responder it delegated to.
    let mut store = X509StoreBuilder::new().map_err(ossl)?;
    store.add_cert(issuer.clone()).map_err(ossl)?;
    store
        .set_flags(X509VerifyFlags::PARTIAL_CHAIN)
        .map_err(ossl)?;
    let store = store.build();
    let mut certs = Stack::new().map_err(ossl)?;
    certs.push(issuer.clone()).map_err(ossl)?;
    basic
        .verify(&certs, &store, OcspFlag::empty())
        .map_err(|e| {
            err(format!(
                "is not signed by the certificate's issuer or its responder: {}",
                super::ossl_reason(&e)
            ))
        })?;
    let status = [MessageDigest::sha1(), MessageDigest::sha256()]
        .into_iter()
        .find_map(|md| {
            let id = OcspCertId::from_cert(md, leaf, issuer).ok()?;
            basic.find_status(&id).map(|s| {
                (
                    s.status,
                    tlsgate_ossl::generalized_time_unix(s.this_update),
                    s.next_update()
                        .and_then(tlsgate_ossl::generalized_time_unix),
                )
            })
        })
        .ok_or_else(|| err("does not answer for this certificate".into()))?;
    let (cert_status, this_update, next_update) = status;
    if cert_status == OcspCertStatus::REVOKED {
        return Err(err("says the certificate is REVOKED".into()));
    }
    if cert_status != OcspCertStatus::GOOD {
        return Err(err("says the certificate's status is unknown".into()));
    }
    Ok(Staple {
        der: der.to_vec(),
        this_update: this_update.unwrap_or(0),
        next_update,
        source: path.to_path_buf(),
    })
}
