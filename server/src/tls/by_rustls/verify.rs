//! Client certificates under rustls: webpki verifies the chain against the
//! policy's CA bundle, then the same checks as on OpenSSL follow: the
//! server's `subjectAltNames` allow list (or, for `ISTIO_MUTUAL`, its
//! SPIFFE trust domain) on the leaf, and our CRL index on every
//! certificate of the chain.

use std::sync::Arc;

use openssl::x509::{X509VerifyResult, X509};
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
use crate::credentials::{client_identity, now_unix, Credential};
use crate::tls::{FailureReason, ServerPolicy};
use tlsgate_core::revocation::{Revocation, Verdict};

/// Why a chain that webpki accepted is refused by a CRL; carried in the
/// handshake's error so the failure is counted under its reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CrlRefusal {
    #[error("the issuer's CRL is past its nextUpdate (staleCrl: failClosed)")]
    Stale,
    #[error("CRLs are configured and none from this issuer is loaded")]
    Missing,
}

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
                None => FailureReason::BadClientCert,
            },
            _ => FailureReason::BadClientCert,
        },
        _ => FailureReason::Handshake,
    }
}

#[derive(Debug)]
pub(crate) struct ClientVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
    spiffe: Option<String>,
    revocation: Arc<Revocation>,
    credential: Arc<Credential>,
}

impl ClientVerifier {
    pub(crate) fn for_policy(
        policy: &ServerPolicy,
        provider: Arc<CryptoProvider>,
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
        }))
    }

    /// The SAN allow list or trust domain, on the leaf.
    fn names_allowed(&self, leaf: &X509) -> bool {
        match &self.spiffe {
            Some(prefix) if self.allowed.is_empty() => {
                crate::origin::check_trust_domain(leaf, prefix).ok
            }
            _ => self.allowed.is_empty() || client_identity(leaf).matches_any(&self.allowed),
        }
    }

    /// Our CRL check of each certificate of the path webpki accepted: the
    /// leaf up to the bundle's CA, each with the next one up as issuer.
    fn revocation(&self, leaf: X509, intermediates: &[CertificateDer<'_>]) -> Result<(), Error> {
        let sent: Vec<X509> = intermediates
            .iter()
            .filter_map(|c| X509::from_der(c).ok())
            .collect();
        let chain = path(leaf, &sent, &self.credential.ca_certs);
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

/// The chain from `leaf` to a CA of the bundle, through the certificates
/// the client sent, as webpki verified it: each next one is the one whose
/// name (and key identifier) issued the last and, where several do, whose
/// key verifies the last's signature. Names alone are not enough: a client
/// could put a look-alike of a revoked intermediate (same subject, same
/// key identifier, its own serial) before the real one, and have the
/// look-alike checked against the CRL instead; a bundle may hold an old
/// and a new CA of one name.
pub(super) fn path(leaf: X509, sent: &[X509], cas: &[X509]) -> Vec<X509> {
    let mut chain = vec![leaf];
    // webpki allows paths of at most a few certificates; a loop of
    // certificates issuing each other ends here too.
    while chain.len() < 8 {
        let last = chain.last().expect("starts with the leaf");
        let Some((next, from_bundle)) = issuer(last, cas, sent) else {
            break;
        };
        chain.push(next);
        if from_bundle {
            break;
        }
    }
    chain
}

/// The issuer of `cert` among the bundle's CAs and the certificates the
/// client sent, and whether it is the bundle's.
fn issuer(cert: &X509, cas: &[X509], sent: &[X509]) -> Option<(X509, bool)> {
    let named: Vec<(&X509, bool)> = cas
        .iter()
        .map(|c| (c, true))
        .chain(sent.iter().map(|c| (c, false)))
        .filter(|(c, _)| c.issued(cert) == X509VerifyResult::OK && !same(c, cert))
        .collect();
    let pick = match named.as_slice() {
        [] => None,
        [one] => Some(*one),
        several => several
            .iter()
            .find(|(c, _)| {
                c.public_key()
                    .is_ok_and(|k| cert.verify(&k).unwrap_or(false))
            })
            .copied(),
    };
    pick.map(|(c, bundle)| (c.clone(), bundle))
}

fn same(a: &X509, b: &X509) -> bool {
    a.digest(openssl::hash::MessageDigest::sha256())
        .ok()
        .zip(b.digest(openssl::hash::MessageDigest::sha256()).ok())
        .is_some_and(|(x, y)| *x == *y)
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
        let verified = self
            .webpki
            .verify_client_cert(end_entity, intermediates, now)?;
        // Decoded once, here: the connection's identity and the tickets'
        // end (scratch.rs) come from it too.
        let leaf = X509::from_der(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let checks_names = !self.allowed.is_empty() || self.spiffe.is_some();
        if self.revocation.is_active() {
            self.revocation(leaf.clone(), intermediates)?;
        }
        if checks_names && !self.names_allowed(&leaf) {
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        super::scratch::verified(&leaf);
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::BasicConstraints;
    use openssl::x509::X509Name;
    use tlsgate_certs::{make_ca, make_leaf, CaSpec, Issued, LeafSpec, Usage};

    /// An intermediate CA `CN=<cn>` with a key of its own, signed by `by`;
    /// its key identifier that of its key, or `like`'s.
    fn intermediate(cn: &str, by: &Issued, serial: u32, like: Option<&X509>) -> Issued {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(by.cert.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        let ca = BasicConstraints::new().critical().ca().build().unwrap();
        b.append_extension(ca).unwrap();
        let skid = match like.and_then(|l| l.subject_key_id()) {
            Some(id) => {
                let hex: Vec<String> = id.as_slice().iter().map(|b| format!("{b:02X}")).collect();
                #[allow(deprecated)]
                openssl::x509::X509Extension::new_nid(
                    None,
                    None,
                    Nid::SUBJECT_KEY_IDENTIFIER,
                    &hex.join(":"),
                )
                .unwrap()
            }
            None => openssl::x509::extension::SubjectKeyIdentifier::new()
                .build(&b.x509v3_context(None, None))
                .unwrap(),
        };
        b.append_extension(skid).unwrap();
        b.sign(&by.key, MessageDigest::sha256()).unwrap();
        Issued {
            cert: b.build(),
            key,
        }
    }

    fn serial(c: &X509) -> String {
        c.serial_number()
            .to_bn()
            .unwrap()
            .to_dec_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_path_follows_signatures_not_names() {
        let root = make_ca(&CaSpec::new("Acme", "root.acme")).unwrap();
        let real = intermediate("inter.acme", &root, 7, None);
        // Same name and key identifier, another key: a look-alike the
        // client slips in (its serial is not on the CRL).
        let fake = intermediate("inter.acme", &root, 8, Some(&real.cert));
        assert_eq!(
            fake.cert.issued(
                &make_leaf(&LeafSpec::new(Usage::Client, "x"), &real)
                    .unwrap()
                    .cert
            ),
            X509VerifyResult::OK,
            "names and ids alone match"
        );
        let leaf = make_leaf(&LeafSpec::new(Usage::Client, "alice"), &real).unwrap();
        let cas = [root.cert.clone()];
        for sent in [
            vec![fake.cert.clone(), real.cert.clone()],
            vec![real.cert.clone(), fake.cert.clone()],
            vec![real.cert.clone()],
        ] {
            let chain = path(leaf.cert.clone(), &sent, &cas);
            assert_eq!(chain.len(), 3, "leaf, intermediate, root");
            assert_eq!(serial(&chain[1]), "7", "the one that signed the leaf");
            assert!(same(&chain[2], &root.cert));
        }
        // A bundle holding an old and a new CA of one name.
        let old = make_ca(&CaSpec::new("Acme", "ca.acme")).unwrap();
        let new = make_ca(&CaSpec::new("Acme", "ca.acme")).unwrap();
        let bob = make_leaf(&LeafSpec::new(Usage::Client, "bob"), &new).unwrap();
        for cas in [
            [old.cert.clone(), new.cert.clone()],
            [new.cert.clone(), old.cert.clone()],
        ] {
            let chain = path(bob.cert.clone(), &[], &cas);
            assert_eq!(chain.len(), 2);
            assert!(same(&chain[1], &new.cert), "the CA that signed bob");
        }
    }

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
            (Error::DecryptError, FailureReason::Handshake),
        ] {
            assert_eq!(failure_reason(&error), reason, "{error:?}");
        }
    }
}
