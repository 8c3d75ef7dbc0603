//! Client certificates webpki does not take and OpenSSL listeners serve,
//! verified under rustls as OpenSSL verifies them:
//!
//! - X.509 v1 leaves. webpki reads v3 only, but `openssl x509 -req` of
//!   OpenSSL 3.0 and 1.1 (and LibreSSL) issues v1 when given no
//!   extensions: the very command of Istio's mTLS tasks and of our seed
//!   runbooks. Their CertificateVerify is checked against the leaf's key
//!   here, with rustls's own signature algorithms (webpki would not parse
//!   the leaf for it either).
//! - A client's own certificate pinned in the bundle, which `openssl req
//!   -x509` makes a CA (`basicConstraints CA:TRUE`), and webpki refuses a
//!   CA as a client. Envoy and OpenSSL listeners serve it: it is trusted
//!   as it stands. Its CertificateVerify goes through webpki as usual.
//!
//! The chain is verified by OpenSSL against the credential's bundle, as
//! an OpenSSL listener verifies it (root in the bundle, purpose
//! `sslclient`, the whole path's validity), at security level 2, so RSA
//! under 2048 bits and SHA-1 signatures, which webpki refuses, are
//! refused here too. OpenSSL still takes some shapes webpki does not (a
//! v1 certificate with extensions, P-224 or brainpool keys), as OpenSSL
//! listeners always have. OpenSSL takes v1 only as a leaf or a
//! self-signed root, so v1 intermediates are refused as they are on
//! OpenSSL listeners. The CRLs and names are checked after it by the same
//! code as for any chain; such a chain is not remembered
//! (`clientCertificateCache`), since its answer also depends on the
//! bundle's own certificates' validity, which webpki's memory does not
//! track.
//!
//! A client reaches this path before proving anything, so what it sent
//! is bounded (`limits.clientCertificateIntermediates`, checked by the
//! caller) before OpenSSL decodes any of it: decoding a certificate costs
//! OpenSSL 3 about a tenth of a millisecond, and a Certificate message of
//! 64 KiB holds hundreds.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use openssl::stack::Stack;
use openssl::x509::store::X509Store;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509PurposeId, X509StoreContext, X509};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::CertificateDer;
use rustls::{
    CertificateError, DigitallySignedStruct, Error, OtherError, PeerMisbehaved, SignatureScheme,
};

use crate::credentials::{Credential, SubjectKey};
use crate::tls::conn::classify_verify_error;
use crate::tls::FailureReason;

/// Why OpenSSL refused a chain, where no `CertificateError` says it.
#[derive(Debug, thiserror::Error)]
#[error("client certificate refused by OpenSSL's verification: {0}")]
pub(crate) struct OpensslRefusal(String);

/// Security level 2: 112-bit keys and digests, webpki's floor.
const AUTH_LEVEL: i32 = 2;

pub(super) struct OpensslChain {
    credential: Arc<Credential>,
    /// Built at the first client that needs it: most bundles never see
    /// one, and a large bundle costs to copy into a store.
    store: OnceLock<Option<X509Store>>,
    /// The bundle's certificates as DER, for [`Self::pinned`]; built at
    /// its first call.
    bundle: OnceLock<HashSet<Vec<u8>>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for OpensslChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpensslChain")
            .field("store_built", &self.store.get().is_some())
            .finish_non_exhaustive()
    }
}

/// RFC 8446 4.2.3: what TLS 1.3 allows a CertificateVerify to use (no
/// PKCS#1 v1.5, no SHA-1), of the schemes rustls verifies.
const TLS13_SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ECDSA_NISTP521_SHA512,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::ED25519,
    SignatureScheme::ED448,
];

impl OpensslChain {
    pub(super) fn new(credential: Arc<Credential>, algorithms: WebPkiSupportedAlgorithms) -> Self {
        OpensslChain {
            credential,
            store: OnceLock::new(),
            bundle: OnceLock::new(),
            algorithms,
        }
    }

    /// Is `leaf` one of the bundle's own certificates, byte for byte?
    pub(super) fn pinned(&self, leaf: &CertificateDer<'_>) -> bool {
        self.bundle
            .get_or_init(|| {
                self.credential
                    .ca_certs
                    .iter()
                    .filter_map(|c| c.to_der().ok())
                    .collect()
            })
            .contains(leaf.as_ref())
    }

    fn store(&self) -> Option<&X509Store> {
        self.store
            .get_or_init(|| {
                let build = || -> Result<X509Store, openssl::error::ErrorStack> {
                    let mut param = X509VerifyParam::new()?;
                    param.set_purpose(X509PurposeId::SSL_CLIENT)?;
                    param.set_auth_level(AUTH_LEVEL);
                    tlsgate_ossl::trust_store_with(&self.credential.ca_certs, Some(&param))
                };
                build()
                    .map_err(|e| tracing::error!(error = %e, "cannot build the client CA store"))
                    .ok()
            })
            .as_ref()
    }

    /// Verifies `leaf` and the chain it came with against the
    /// credential's bundle, now, as an OpenSSL listener would.
    pub(super) fn verify_chain(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), Error> {
        let refused = |why: String| {
            Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                OpensslRefusal(why),
            ))))
        };
        let bad = |_| Error::InvalidCertificate(CertificateError::BadEncoding);
        let store = self.store().ok_or_else(|| refused("no CA store".into()))?;
        let leaf = X509::from_der(leaf).map_err(bad)?;
        let mut chain = Stack::new().map_err(|e| refused(e.to_string()))?;
        for c in intermediates {
            chain
                .push(X509::from_der(c).map_err(bad)?)
                .map_err(|e| refused(e.to_string()))?;
        }
        let mut ctx = X509StoreContext::new().map_err(|e| refused(e.to_string()))?;
        let (ok, result) = ctx
            .init(store, &leaf, &chain, |c| Ok((c.verify_cert()?, c.error())))
            .map_err(|e| refused(e.to_string()))?;
        if ok {
            return Ok(());
        }
        // Counted as an OpenSSL listener counts the same verdict
        // (`classify_verify_error`), each with the alert rustls gives it.
        use openssl_sys as sys;
        let class = match result.as_raw() {
            sys::X509_V_ERR_CERT_SIGNATURE_FAILURE => CertificateError::BadSignature,
            sys::X509_V_ERR_CERT_HAS_EXPIRED => CertificateError::Expired,
            sys::X509_V_ERR_CERT_NOT_YET_VALID => CertificateError::NotValidYet,
            sys::X509_V_ERR_INVALID_PURPOSE => CertificateError::InvalidPurpose,
            _ if classify_verify_error(result) == FailureReason::UnknownCa => {
                CertificateError::UnknownIssuer
            }
            _ => return Err(refused(result.error_string().to_string())),
        };
        Err(Error::InvalidCertificate(class))
    }

    /// The client's handshake signature over `message`, checked against
    /// the v1 leaf's `key` as rustls checks any leaf's: the schemes it
    /// offered, and in TLS 1.3 only the first algorithm of a scheme.
    pub(super) fn verify_signature(
        &self,
        key: &SubjectKey<'_>,
        message: &[u8],
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, Error> {
        if tls13 && !TLS13_SCHEMES.contains(&dss.scheme) {
            return Err(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
        }
        let candidates = self
            .algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        let candidates = if tls13 {
            &candidates[..candidates.len().min(1)]
        } else {
            candidates
        };
        let verified = candidates.iter().any(|alg| {
            alg.public_key_alg_id().as_ref() == key.algorithm
                && alg
                    .verify_signature(key.key, message, dss.signature())
                    .is_ok()
        });
        if verified {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::BadSignature))
        }
    }
}
