//! Client certificates under rustls: webpki verifies the chain against the
//! policy's CA bundle, then the same checks as on OpenSSL follow: the
//! server's `subjectAltNames` allow list (or, for `ISTIO_MUTUAL`, its
//! SPIFFE trust domain) on the leaf, and our CRL index on every
//! certificate of the chain.
//!
//! A chain that passed is remembered (`VerifiedChains`, up to
//! `clientCertificateCache.entries`): the same bytes, sent again while
//! every certificate in them is valid, are not verified by webpki again.
//! The CRLs and the names are checked on every handshake, and the
//! client's CertificateVerify signature always. A chain is remembered
//! only after that signature verified: a chain's bytes are no secret, and
//! whoever only has them must not be able to push the chains of clients
//! that do hold their keys out of the memory.

use std::sync::Arc;

use openssl::x509::X509;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, RootCertStore,
    SignatureScheme,
};

use crate::config::ServerTlsMode;
use crate::credentials::{
    client_identity_der, now_unix, verified_path, version_one_key, ChainKey, ChainWindow as Window,
    ClientIdentity, Credential, VerifiedChains,
};
use crate::tls::{FailureReason, ServerPolicy};
use tlsgate_core::origin::in_trust_domain;
use tlsgate_core::revocation::{Revocation, Verdict};

use super::openssl_chain::OpensslChain;
use super::tickets::Binding;

/// Why a chain that webpki accepted is refused by a CRL; carried in the
/// handshake's error so the failure is counted under its reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CrlRefusal {
    #[error("the issuer's CRL is past its nextUpdate (staleCrl: failClosed)")]
    Stale,
    #[error("CRLs are configured and none from this issuer is loaded")]
    Missing,
}

/// More certificates after the client's own than the policy takes.
#[derive(Debug, thiserror::Error)]
#[error("{0} certificates after the client's own: more than limits.clientCertificateIntermediates")]
pub(crate) struct ChainTooLong(usize);

/// The failure class of a refused handshake, from the error rustls gives.
pub(crate) fn failure_reason(e: &Error) -> FailureReason {
    match e {
        Error::NoCertificatesPresented => FailureReason::NoClientCert,
        Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                FailureReason::UnknownCa
            }
            CertificateError::Revoked => FailureReason::Revoked,
            CertificateError::ApplicationVerificationFailure => FailureReason::SanNotAllowed,
            CertificateError::Other(OtherError(o)) => match o.downcast_ref::<CrlRefusal>() {
                Some(CrlRefusal::Stale) => FailureReason::CrlStale,
                Some(CrlRefusal::Missing) => FailureReason::CrlMissing,
                None if o.is::<ChainTooLong>() => FailureReason::ChainTooLong,
                None => FailureReason::BadClientCert,
            },
            _ => FailureReason::BadClientCert,
        },
        _ => FailureReason::Handshake,
    }
}

impl Drop for ClientVerifier {
    fn drop(&mut self) {
        self.counts.entries.sub(self.chains.len() as i64);
    }
}

#[derive(Debug)]
pub(crate) struct ClientVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
    spiffe: Option<String>,
    revocation: Arc<Revocation>,
    credential: Arc<Credential>,
    chains: VerifiedChains<Arc<Known>>,
    counts: ChainCounts,
    max_intermediates: usize,
    openssl: OpensslChain,
    session_key: SessionKey,
}

/// The policy's session key as the tickets and sessions read it: read once
/// at verification, before the revocation check, so a session this
/// handshake makes is bound to the CRLs the certificate was checked against
/// or not made at all (`scratch::same_session_key`).
struct SessionKey(Binding);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey")
    }
}

/// Past this, a chain is verified every time rather than remembered: what
/// any CA issues is a leaf and a few intermediates of a few KB.
const MAX_REMEMBERED_INTERMEDIATES: usize = 4;
const MAX_REMEMBERED_BYTES: usize = 16 * 1024;

/// A chain this handshake's verifier accepted, waiting for the client's
/// CertificateVerify (`scratch.rs` carries it between the two calls).
pub(super) struct PendingChain {
    /// Which verifier accepted it (its address: it outlives the handshake).
    verifier: usize,
    leaf: Vec<u8>,
    key: ChainKey,
    window: Window,
    at: i64,
    known: Arc<Known>,
}

/// What a verified chain's bytes decide, kept with it: the leaf's
/// identity and end, and (once CRLs are checked) the decoded path.
#[derive(Debug, Clone)]
struct Known {
    id: ClientIdentity,
    not_after: Option<i64>,
    path: Option<Arc<[X509]>>,
}

/// `tlsgate_client_chain_cache_total`'s handles for this credential,
/// looked up once rather than per handshake, and its entries gauge (which
/// every verifier of the credential adds to, old ones until their last
/// connection ends).
#[derive(Debug)]
struct ChainCounts {
    hit: prometheus::IntCounter,
    miss: prometheus::IntCounter,
    evicted: prometheus::IntCounter,
    entries: prometheus::IntGauge,
}

impl ChainCounts {
    fn of(credential: &str) -> ChainCounts {
        let c = |result| {
            crate::metrics::metrics()
                .client_chain_cache
                .with_label_values(&[credential, result])
        };
        ChainCounts {
            hit: c("hit"),
            miss: c("miss"),
            evicted: c("evicted"),
            entries: crate::metrics::metrics()
                .client_chain_cache_entries
                .with_label_values(&[credential]),
        }
    }
}

impl ClientVerifier {
    pub(crate) fn for_policy(
        policy: &ServerPolicy,
        provider: Arc<CryptoProvider>,
        session_key: Binding,
    ) -> Result<Arc<dyn ClientCertVerifier>, String> {
        if !policy.requests_client_cert() {
            return Ok(WebPkiClientVerifier::no_client_auth());
        }
        let cred = &policy.credential;
        let mut roots = RootCertStore::empty();
        for ca in &cred.ca_certs {
            let der = ca.to_der().map_err(|e| format!("client CA bundle: {e}"))?;
            roots
                .add(CertificateDer::from(der))
                .map_err(|e| format!("client CA bundle of '{}': {e}", cred.info.name))?;
        }
        let algorithms = provider.signature_verification_algorithms;
        let mut b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        if !policy.send_ca_names {
            b = b.clear_root_hint_subjects();
        }
        if policy.mode == ServerTlsMode::OptionalMutual {
            b = b.allow_unauthenticated();
        }
        let webpki = b
            .build()
            .map_err(|e| format!("client verification of '{}': {e}", cred.info.name))?;
        Ok(Arc::new(ClientVerifier {
            webpki,
            allowed: policy.allowed_sans.clone(),
            spiffe: policy.spiffe_prefix.clone(),
            revocation: policy.revocation.clone(),
            credential: cred.clone(),
            chains: VerifiedChains::new(policy.verified_chains),
            counts: ChainCounts::of(&cred.info.name),
            max_intermediates: policy.max_intermediates,
            openssl: OpensslChain::new(cred.clone(), algorithms),
            session_key: SessionKey(session_key),
        }))
    }

    /// The chain's full verification: webpki's, or OpenSSL's for the
    /// certificates webpki does not take (`openssl_chain.rs`). Whether the
    /// chain may be remembered: only what webpki verified.
    fn verify_chain(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<bool, Error> {
        if version_one_key(leaf).is_some() {
            return self
                .openssl
                .verify_chain(leaf, intermediates)
                .map(|_| false);
        }
        match self.webpki.verify_client_cert(leaf, intermediates, now) {
            Ok(_) => Ok(true),
            // webpki's refusal of a CA as a client (its own error, not
            // one rustls names): a bundle may pin the client's own
            // self-signed certificate.
            Err(Error::InvalidCertificate(CertificateError::Other(_)))
                if self.openssl.pinned(leaf) =>
            {
                self.openssl
                    .verify_chain(leaf, intermediates)
                    .map(|_| false)
            }
            Err(e) => Err(e),
        }
    }

    /// The SAN allow list or trust domain, on the leaf's identity.
    fn names_allowed(&self, id: &ClientIdentity) -> bool {
        match &self.spiffe {
            Some(prefix) if self.allowed.is_empty() => {
                id.uris.iter().any(|u| in_trust_domain(u, prefix))
            }
            _ => self.allowed.is_empty() || id.matches_any(&self.allowed),
        }
    }

    /// Leaves an accepted chain for [`Self::commit`], if it is one to
    /// remember at all.
    fn pend(
        &self,
        key: ChainKey,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        at: i64,
        known: Arc<Known>,
    ) {
        let bytes: usize = intermediates.iter().map(|c| c.len()).sum::<usize>() + leaf.len();
        if intermediates.len() > MAX_REMEMBERED_INTERMEDIATES || bytes > MAX_REMEMBERED_BYTES {
            return;
        }
        let certs = std::iter::once(leaf)
            .chain(intermediates)
            .map(|c| c.as_ref());
        let Some(window) = Window::of(certs) else {
            return;
        };
        super::scratch::set_pending_chain(PendingChain {
            verifier: self as *const Self as usize,
            leaf: leaf.to_vec(),
            key,
            window,
            at,
            known,
        });
    }

    /// The outcome of the client's CertificateVerify over `leaf`: a
    /// refusal is marked for its count (`scratch::proof_refused`), a proof
    /// remembers the chain accepted for that leaf.
    fn proof(
        &self,
        leaf: &CertificateDer<'_>,
        checked: Result<HandshakeSignatureValid, Error>,
    ) -> Result<HandshakeSignatureValid, Error> {
        match checked {
            Ok(valid) => {
                self.commit(leaf);
                Ok(valid)
            }
            Err(e) => {
                super::scratch::proof_refused();
                Err(e)
            }
        }
    }

    /// The client proved it holds `leaf`'s key: the chain this verifier
    /// accepted for that leaf in this handshake is remembered.
    fn commit(&self, leaf: &CertificateDer<'_>) {
        let Some(p) = super::scratch::take_pending_chain() else {
            return;
        };
        if p.verifier != self as *const Self as usize || p.leaf != leaf.as_ref() {
            return;
        }
        let r = self.chains.remember(p.key, p.window, p.at, p.known);
        self.counts.evicted.inc_by(r.dropped as u64);
        self.counts
            .entries
            .add(i64::from(r.added) - r.dropped as i64);
    }

    /// The path our CRL check walks: the leaf up to the bundle's CA, each
    /// with the next one up as issuer, decoded by OpenSSL (whose keys
    /// check the CRLs' signatures).
    fn path(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<Arc<[X509]>, Error> {
        let leaf = X509::from_der(leaf)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let sent: Vec<X509> = intermediates
            .iter()
            .filter_map(|c| X509::from_der(c).ok())
            .collect();
        Ok(verified_path(leaf, &sent, &self.credential.ca_certs).into())
    }

    /// Our CRL check of each certificate of the path webpki accepted: the
    /// leaf up to the bundle's CA, each with the next one up as issuer.
    fn revocation(&self, chain: &[X509]) -> Result<(), Error> {
        let name = &self.credential.info.name;
        let now = now_unix();
        for (depth, cert) in chain.iter().enumerate() {
            let top = depth + 1 >= chain.len();
            let issuer = chain.get(depth + 1).unwrap_or(cert);
            self.revocation.learn_from(cert, depth);
            let refusal = match self.revocation.check(cert, issuer, depth, top, now) {
                Verdict::Good | Verdict::NotChecked => continue,
                Verdict::Stale { accepted: true } => {
                    crate::tls::accept::count_stale_crl_accepted(name, depth);
                    continue;
                }
                Verdict::Revoked => {
                    crate::tls::accept::count_revoked(name);
                    CertificateError::Revoked
                }
                Verdict::Stale { accepted: false } => {
                    CertificateError::Other(OtherError(Arc::new(CrlRefusal::Stale)))
                }
                Verdict::Missing => {
                    CertificateError::Other(OtherError(Arc::new(CrlRefusal::Missing)))
                }
            };
            return Err(Error::InvalidCertificate(refusal));
        }
        Ok(())
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // Before anything is hashed or decoded: each certificate sent
        // costs work before the client has proved anything.
        if intermediates.len() > self.max_intermediates {
            return Err(Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(ChainTooLong(intermediates.len()))),
            )));
        }
        super::tickets::note_session_key(&self.session_key.0);
        let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let key = self
            .chains
            .enabled()
            .then(|| ChainKey::of(end_entity, intermediates.iter().map(|c| c.as_ref())));
        let found = key.as_ref().and_then(|k| self.chains.look_up(k, secs));
        let hit = found.is_some();
        // A hit was verified by webpki when it was remembered.
        let mut rememberable = hit;
        let mut known = match found {
            Some(known) => {
                self.counts.hit.inc();
                known
            }
            None => {
                if key.is_some() {
                    self.counts.miss.inc();
                }
                rememberable = self.verify_chain(end_entity, intermediates, now)?;
                // Read once, here: the connection's identity and the
                // tickets' end (scratch.rs) come from it too.
                let (id, not_after) = client_identity_der(end_entity)
                    .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
                Arc::new(Known {
                    id,
                    not_after,
                    path: None,
                })
            }
        };
        let mut decoded = false;
        if self.revocation.is_active() {
            let path = match &known.path {
                Some(path) => path.clone(),
                None => {
                    let path = self.path(end_entity, intermediates)?;
                    Arc::make_mut(&mut known).path = Some(path.clone());
                    decoded = true;
                    path
                }
            };
            self.revocation(&path)?;
        }
        let checks_names = !self.allowed.is_empty() || self.spiffe.is_some();
        if checks_names && !self.names_allowed(&known.id) {
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        // A revoked or refused chain is not remembered: it pays for its
        // full verification every time. A chain remembered before its
        // credential's CRLs were fetched gets its decoded path kept now.
        if let (true, Some(key)) = (rememberable && (!hit || decoded), key) {
            self.pend(key, end_entity, intermediates, secs, known.clone());
        }
        super::scratch::verified(known.id.clone(), known.not_after);
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let checked = match version_one_key(cert) {
            Some(key) => self.openssl.verify_signature(&key, message, dss, false),
            None => self.webpki.verify_tls12_signature(message, cert, dss),
        };
        self.proof(cert, checked)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let checked = match version_one_key(cert) {
            Some(key) => self.openssl.verify_signature(&key, message, dss, true),
            None => self.webpki.verify_tls13_signature(message, cert, dss),
        };
        self.proof(cert, checked)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_under_their_reason() {
        let other = |e: CrlRefusal| {
            Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
        };
        let cert = Error::InvalidCertificate;
        for (error, reason) in [
            (Error::NoCertificatesPresented, FailureReason::NoClientCert),
            (
                cert(CertificateError::UnknownIssuer),
                FailureReason::UnknownCa,
            ),
            (
                cert(CertificateError::BadSignature),
                FailureReason::UnknownCa,
            ),
            (cert(CertificateError::Revoked), FailureReason::Revoked),
            (
                cert(CertificateError::ApplicationVerificationFailure),
                FailureReason::SanNotAllowed,
            ),
            (
                cert(CertificateError::Expired),
                FailureReason::BadClientCert,
            ),
            (
                cert(CertificateError::BadEncoding),
                FailureReason::BadClientCert,
            ),
            (other(CrlRefusal::Stale), FailureReason::CrlStale),
            (other(CrlRefusal::Missing), FailureReason::CrlMissing),
            (
                cert(CertificateError::Other(OtherError(Arc::new(ChainTooLong(
                    9,
                ))))),
                FailureReason::ChainTooLong,
            ),
            (Error::DecryptError, FailureReason::Handshake),
        ] {
            assert_eq!(failure_reason(&error), reason, "{error:?}");
        }
    }
}
