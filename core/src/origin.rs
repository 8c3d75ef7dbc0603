//! Upstream TLS origination: a DestinationRule `tls` block as the settings
//! of a Pingora [`HttpPeer`], built when the runtime is built (never on a
//! worker during a request) from the credentials and CA bundles that
//! runtime loaded and checked; so a rotated CA or client certificate is a
//! new runtime, and a broken one keeps the last good origination.
//!
//! - `SIMPLE`/`MUTUAL`: the upstream certificate is verified against
//!   `caCertificates`, else the credential's `ca.crt`, else the system roots;
//!   `MUTUAL` also presents the credential's certificate and key.
//! - The name check is ours, not OpenSSL's: the certificate must carry one of
//!   `subjectAltNames` (DNS, URI or IP), or cover the SNI when none are
//!   given. OpenSSL reports a failed name check as the same "certificate
//!   verify failed" as an unknown CA; checking after the handshake (and
//!   before any request byte is sent) lets a mismatch be told apart.
//! - `insecureSkipVerify` verifies nothing.
//! - Pingora's connection pool key covers neither `options.ca` nor ALPN, so
//!   every peer carries a `group_key` hashed from what the connection was
//!   verified with and presented: a rotated credential or CA never reuses a
//!   pooled connection made with the old one.

mod peer_names;

use std::any::Any;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use openssl::sha::Sha256;
use openssl::ssl::SslRef;
use openssl::x509::X509;
use pingora::protocols::tls::HandshakeCompleteHook;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::CertKey;

pub use peer_names::{
    check_names, check_trust_domain, in_trust_domain, trust_domain_prefix, PeerCheck,
};

use crate::config::{ClientTls, ClientTlsMode, CredentialSource};
use crate::credentials::Credential;
use crate::runtime::CaBundle;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OriginationError {
    #[error("credential '{0}' is not loaded")]
    MissingCredential(String),
    #[error("CA bundle {} is not loaded", .0.display())]
    MissingCa(PathBuf),
    /// ISTIO_MUTUAL trusts the mesh CA only, never the system roots.
    #[error("the mesh credential '{0}' has no CA bundle (ca.crt or root-cert.pem)")]
    NoMeshCa(String),
}

/// Everything a peer needs to originate TLS to one destination.
pub struct Origination {
    pub mode: ClientTlsMode,
    pub sni: String,
    cert_key: Option<Arc<CertKey>>,
    ca: Option<Arc<Box<[X509]>>>,
    verify: bool,
    /// Names the upstream certificate must carry one of.
    expected: Arc<[String]>,
    pub group_key: u64,
    hook: Option<HandshakeCompleteHook>,
}

impl std::fmt::Debug for Origination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origination")
            .field("mode", &self.mode)
            .field("sni", &self.sni)
            .field("verify", &self.verify)
            .field("expected", &self.expected)
            .field("group_key", &self.group_key)
            .finish_non_exhaustive()
    }
}

impl Origination {
    /// `host` is the destination host (the default SNI); `h2` decides ALPN.
    /// Credentials and CA bundles are those the runtime loaded.
    pub fn build(
        tls: &ClientTls,
        host: &str,
        h2: bool,
        creds: &BTreeMap<CredentialSource, Arc<Credential>>,
        cas: &BTreeMap<PathBuf, Arc<CaBundle>>,
    ) -> Result<Origination, OriginationError> {
        let cred = match &tls.credential {
            Some(src) => Some(
                creds
                    .get(src)
                    .ok_or_else(|| OriginationError::MissingCredential(src.to_string()))?,
            ),
            None => None,
        };
        let ca: Option<Vec<X509>> = match (&tls.ca_certificates, cred) {
            (Some(path), _) => Some(
                cas.get(path)
                    .ok_or_else(|| OriginationError::MissingCa(path.clone()))?
                    .certs
                    .clone(),
            ),
            (None, Some(c)) if !c.ca_certs.is_empty() => Some(c.ca_certs.clone()),
            _ if tls.trust_domain.is_some() => {
                let name = tls
                    .credential
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default();
                return Err(OriginationError::NoMeshCa(name));
            }
            _ => None,
        };
        let cert_key = cred
            .filter(|_| tls.mode == ClientTlsMode::Mutual)
            .map(|c| Arc::new(CertKey::new(c.chain.clone(), c.key.clone())));
        let sni = tls.sni.clone().unwrap_or_else(|| host.to_string());
        let expected: Arc<[String]> = match (&tls.trust_domain, tls.subject_alt_names.is_empty()) {
            (_, false) => tls.subject_alt_names.clone().into(),
            // A mesh peer is named by its SPIFFE identity, not its host.
            (Some(td), true) => Arc::from(vec![trust_domain_prefix(td)]),
            (None, true) => Arc::from(vec![sni.clone()]),
        };
        let in_trust_domain = tls.subject_alt_names.is_empty() && tls.trust_domain.is_some();
        let verify = !tls.insecure_skip_verify;
        let group_key = group_key(
            tls,
            cred.filter(|_| tls.mode == ClientTlsMode::Mutual)
                .map(|c| c.content_id()),
            ca.as_deref().unwrap_or_default(),
            &sni,
            h2,
        );
        let hook = verify.then(|| {
            let expected = expected.clone();
            let hook: HandshakeCompleteHook = Arc::new(move |ssl: &SslRef| {
                let check = match ssl.peer_certificate() {
                    Some(cert) if in_trust_domain => check_trust_domain(&cert, &expected[0]),
                    Some(cert) => check_names(&cert, &expected),
                    None => PeerCheck {
                        ok: false,
                        presented: Vec::new(),
                    },
                };
                Some(Arc::new(check) as Arc<dyn Any + Send + Sync>)
            });
            hook
        });
        Ok(Origination {
            mode: tls.mode,
            sni,
            cert_key,
            ca: ca.map(|c| Arc::new(c.into_boxed_slice())),
            verify,
            expected,
            group_key,
            hook,
        })
    }

    /// TLS settings on a peer made with `HttpPeer::new(addr, true, sni)`.
    pub fn apply(&self, peer: &mut HttpPeer) {
        peer.client_cert_key = self.cert_key.clone();
        peer.group_key = self.group_key;
        let o = &mut peer.options;
        o.ca = self.ca.clone();
        o.verify_cert = self.verify;
        // The name check is done by the hook (see the module doc).
        o.verify_hostname = false;
        o.alternative_cn = None;
        o.upstream_tls_handshake_complete_hook = self.hook.clone();
    }

    /// Is the name check on (not `insecureSkipVerify`)?
    pub fn verifies(&self) -> bool {
        self.verify
    }

    pub fn expected_names(&self) -> &[String] {
        &self.expected
    }
}

/// Hash of everything that makes one upstream connection different from
/// another to the same address: mode, client certificate chain (and CA and
/// CRL) content, CA bundle, SNI, SANs, verification, ALPN.
fn group_key(
    tls: &ClientTls,
    credential: Option<[u8; 32]>,
    ca: &[X509],
    sni: &str,
    h2: bool,
) -> u64 {
    let mut h = Sha256::new();
    let mut put = |tag: u8, bytes: &[u8]| {
        h.update(&[tag]);
        h.update(&(bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    put(b'm', format!("{:?}", tls.mode).as_bytes());
    if let Some(id) = credential {
        put(b'c', &id);
    }
    for c in ca {
        put(b'a', &c.to_der().unwrap_or_default());
    }
    put(b's', sni.as_bytes());
    let mut sans = tls.subject_alt_names.clone();
    sans.sort();
    for s in &sans {
        put(b'n', s.as_bytes());
    }
    if let Some(td) = &tls.trust_domain {
        put(b't', td.as_bytes());
    }
    put(b'v', &[u8::from(tls.insecure_skip_verify), u8::from(h2)]);
    let digest = h.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certgen::{make_ca, make_leaf, CaSpec, Issued, LeafSpec, Usage};

    fn ca() -> Issued {
        make_ca(&CaSpec::new("Acme Inc.", "acme.com")).unwrap()
    }

    fn leaf(ca: &Issued, usage: Usage, dns: &[&str], uris: &[&str]) -> Issued {
        let mut spec = LeafSpec::new(usage, dns.first().copied().unwrap_or("leaf"));
        spec.dns = dns.iter().map(|s| s.to_string()).collect();
        spec.uris = uris.iter().map(|s| s.to_string()).collect();
        make_leaf(&spec, ca).unwrap()
    }

    fn credential(src: &CredentialSource, ca: &Issued, client: &Issued) -> Arc<Credential> {
        let c = Credential::from_parts(
            src.clone(),
            vec![client.cert.clone()],
            client.key.clone(),
            vec![ca.cert.clone()],
            vec![],
        );
        Arc::new(c.unwrap())
    }

    fn mutual(src: &CredentialSource) -> ClientTls {
        ClientTls {
            mode: ClientTlsMode::Mutual,
            credential: Some(src.clone()),
            ca_certificates: None,
            sni: None,
            subject_alt_names: vec![],
            trust_domain: None,
            insecure_skip_verify: false,
        }
    }

    #[test]
    fn group_key_follows_credential_content_sni_and_sans() {
        let acme = ca();
        let src = CredentialSource::Named("client".into());
        let creds = |c: &Issued| BTreeMap::from([(src.clone(), credential(&src, &acme, c))]);
        let first = creds(&leaf(&acme, Usage::Client, &["a.acme.com"], &[]));
        let rotated = creds(&leaf(&acme, Usage::Client, &["a.acme.com"], &[]));
        let tls = mutual(&src);
        let key = |t: &ClientTls, c, h2| {
            Origination::build(t, "greeting.remote.com", h2, c, &BTreeMap::new())
                .unwrap()
                .group_key
        };
        let k1 = key(&tls, &first, false);
        assert_eq!(k1, key(&tls, &first, false), "stable for the same content");
        assert_ne!(
            k1,
            key(&tls, &rotated, false),
            "a new certificate, a new pool"
        );
        assert_ne!(k1, key(&tls, &first, true), "ALPN is not in Pingora's key");
        let mut sans = tls.clone();
        sans.subject_alt_names = vec!["greeting.remote.com".into()];
        assert_ne!(k1, key(&sans, &first, false));
        let mut sni = tls.clone();
        sni.sni = Some("other.remote.com".into());
        assert_ne!(k1, key(&sni, &first, false));
    }

    /// ISTIO_MUTUAL: the mesh CA or nothing (never the system roots), the
    /// trust domain in the pool key, and a SPIFFE name compared with URI
    /// SANs only.
    #[test]
    fn istio_mutual_needs_the_mesh_ca_and_keys_its_pool_by_trust_domain() {
        let mesh = ca();
        let src = CredentialSource::Named("istio-certs".into());
        let issued = leaf(
            &mesh,
            Usage::Client,
            &[],
            &["spiffe://cluster.local/ns/a/sa/b"],
        );
        let mut tls = mutual(&src);
        tls.trust_domain = Some("cluster.local".into());
        let no_ca = BTreeMap::from([(
            src.clone(),
            Arc::new(
                Credential::from_parts(
                    src.clone(),
                    vec![issued.cert.clone()],
                    issued.key.clone(),
                    vec![],
                    vec![],
                )
                .unwrap(),
            ),
        )]);
        let e = Origination::build(&tls, "reviews", false, &no_ca, &BTreeMap::new()).unwrap_err();
        assert!(matches!(e, OriginationError::NoMeshCa(_)), "{e}");
        let with_ca = BTreeMap::from([(src.clone(), credential(&src, &mesh, &issued))]);
        let key = |t: &ClientTls| {
            Origination::build(t, "reviews", false, &with_ca, &BTreeMap::new())
                .unwrap()
                .group_key
        };
        let mut other = tls.clone();
        other.trust_domain = Some("other.domain".into());
        assert_ne!(key(&tls), key(&other));

        // A CN that spells an identity is not one.
        let mut spec =
            crate::certgen::LeafSpec::new(Usage::Server, "spiffe://cluster.local/ns/a/sa/b");
        spec.dns = vec![];
        let cn_only = crate::certgen::make_leaf(&spec, &mesh).unwrap();
        let want = ["spiffe://cluster.local/ns/a/sa/b".to_string()];
        assert!(!check_names(&cn_only.cert, &want).ok);
        assert!(check_names(&issued.cert, &want).ok);
    }

    #[test]
    fn ca_precedence_and_client_certificate_only_for_mutual() {
        let acme = ca();
        let src = CredentialSource::Named("client".into());
        let client = leaf(&acme, Usage::Client, &["a.acme.com"], &[]);
        let creds = BTreeMap::from([(src.clone(), credential(&src, &acme, &client))]);
        let none = BTreeMap::new();
        let o = Origination::build(&mutual(&src), "h.test", false, &creds, &none).unwrap();
        assert!(o.cert_key.is_some());
        assert_eq!(o.ca.as_ref().unwrap().len(), 1, "the credential's ca.crt");
        assert_eq!(o.sni, "h.test");
        assert_eq!(o.expected_names(), ["h.test".to_string()]);

        let dir = tempfile::tempdir().unwrap();
        let other = ca();
        let path = dir.path().join("ca.pem");
        let mut pem = other.cert.to_pem().unwrap();
        pem.extend(acme.cert.to_pem().unwrap());
        std::fs::write(&path, pem).unwrap();
        let cas = BTreeMap::from([(path.clone(), Arc::new(CaBundle::load(&path).unwrap()))]);
        let mut simple = mutual(&src);
        simple.mode = ClientTlsMode::Simple;
        simple.ca_certificates = Some(path.clone());
        let o = Origination::build(&simple, "h.test", false, &creds, &cas).unwrap();
        assert!(o.cert_key.is_none(), "SIMPLE sends no certificate");
        assert_eq!(o.ca.as_ref().unwrap().len(), 2, "caCertificates wins");

        assert!(o.verifies() && o.hook.is_some());
        let mut insecure = simple.clone();
        insecure.insecure_skip_verify = true;
        let o = Origination::build(&insecure, "h.test", false, &creds, &cas).unwrap();
        assert!(
            !o.verifies() && o.hook.is_none(),
            "insecureSkipVerify checks nothing"
        );

        let e = Origination::build(&simple, "h.test", false, &creds, &none)
            .err()
            .unwrap();
        assert!(e.to_string().contains("ca.pem"), "{e}");
        assert!(matches!(
            Origination::build(&mutual(&src), "h.test", false, &BTreeMap::new(), &none),
            Err(OriginationError::MissingCredential(_))
        ));
    }
}
