//! A server certificate's OCSP response to staple (`tls.ocsp`, HAProxy's
//! convention), checked when it is loaded: a response that does not
//! parse, is not signed for the certificate's issuer, answers for another
//! certificate, or says anything but "good" is refused with the
//! credential (its last good version keeps serving). One past its
//! nextUpdate loads, but is never stapled.

use std::path::Path;

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
    /// The file or URL it came from.
    pub source: String,
}

/// What `/certs` shows of a staple.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OcspInfo {
    pub status: &'static str,
    pub this_update: String,
    pub next_update: Option<String>,
    pub next_update_unix: Option<i64>,
    pub source: String,
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
    check_response(der, chain, &path.display().to_string()).map_err(|reason| {
        CredentialError::Ocsp {
            path: path.to_path_buf(),
            reason,
        }
    })
}

/// [`check`] for a response from anywhere (`source` names it): the reason
/// it is refused.
pub fn check_response(der: &[u8], chain: &[X509], source: &str) -> Result<Staple, String> {
    let ossl = |e: openssl::error::ErrorStack| super::ossl_reason(&e);
    let (Some(leaf), Some(issuer)) = (chain.first(), chain.get(1)) else {
        return Err("the certificate file carries no issuer after the leaf: \
             an OCSP response cannot be checked without it"
            .into());
    };
    let resp = OcspResponse::from_der(der).map_err(|e| format!("does not parse: {e}"))?;
    if resp.status() != OcspResponseStatus::SUCCESSFUL {
        return Err(format!(
            "is not a successful response (status {})",
            resp.status().as_raw()
        ));
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
            format!(
                "is not signed by the certificate's issuer or its responder: {}",
                super::ossl_reason(&e)
            )
        })?;
    let (cert_status, this_update, next_update) = [MessageDigest::sha1(), MessageDigest::sha256()]
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
        .ok_or_else(|| "does not answer for this certificate".to_string())?;
    let now = super::now_unix();
    // Clients refuse a response from the future: never staple one.
    if this_update.is_some_and(|t| t > now + 300) {
        return Err("has a thisUpdate in the future".into());
    }
    if cert_status == OcspCertStatus::REVOKED {
        return Err("says the certificate is REVOKED".into());
    }
    if cert_status != OcspCertStatus::GOOD {
        return Err("says the certificate's status is unknown".into());
    }
    Ok(Staple {
        der: der.to_vec(),
        this_update: this_update.unwrap_or(0),
        next_update,
        source: source.to_string(),
    })
}

/// The DER OCSP request for `chain[0]` (SHA-1 certificate id, what
/// responders expect), and the responder URLs its AIA names.
pub fn request(chain: &[X509]) -> Option<(Vec<u8>, Vec<String>)> {
    let (leaf, issuer) = (chain.first()?, chain.get(1)?);
    let urls: Vec<String> = leaf
        .ocsp_responders()
        .ok()?
        .iter()
        .map(|u| u.to_string())
        .filter(|u| crate::config::revocation::check_crl_url(u).is_ok())
        .collect();
    if urls.is_empty() {
        return None;
    }
    let id = OcspCertId::from_cert(MessageDigest::sha1(), leaf, issuer).ok()?;
    let mut req = openssl::ocsp::OcspRequest::new().ok()?;
    req.add_id(id).ok()?;
    Some((req.to_der().ok()?, urls))
}
