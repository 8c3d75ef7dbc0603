//! A server policy as rustls wants it: one `ServerConfig`, built the first
//! time a ClientHello chooses the policy and kept with it (a reload builds
//! new policies, so a changed credential or CA bundle is a new config).

use std::sync::{Arc, Weak};

use rustls::crypto::aws_lc_rs::{self as provider, cipher_suite as cs, kx_group};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};

use super::sessions::{PolicySessions, SessionCache};
use super::tickets::{Binding, PolicyTickets};
use super::verify::ClientVerifier;
use crate::config::TlsVersion;
use crate::credentials::now_unix;
use crate::metrics::metrics;
use crate::runtime::Runtime;
use crate::tls::ServerPolicy;

/// What the policy's slot holds: a config, or why none can be made (a
/// cipher rustls lacks, a key it cannot use), told at every handshake.
struct Built(Result<Arc<ServerConfig>, String>);

/// The policy's config, built on first use.
pub(crate) fn for_policy(
    policy: &Arc<ServerPolicy>,
    rt: &Runtime,
) -> Result<Arc<ServerConfig>, String> {
    let slot = policy
        .library
        .0
        .get_or_init(|| Arc::new(Built(build(policy, rt))));
    match slot.downcast_ref::<Built>() {
        Some(Built(r)) => r.clone(),
        None => Err("the policy was built for another TLS library".into()),
    }
}

/// The TLS 1.2 suites under their OpenSSL names (what `cipherSuites` holds
/// in Istio's YAML), and the TLS 1.3 ones under their IANA names.
const SUITES: &[(&str, SupportedCipherSuite)] = &[
    ("TLS_AES_128_GCM_SHA256", cs::TLS13_AES_128_GCM_SHA256),
    ("TLS_AES_256_GCM_SHA384", cs::TLS13_AES_256_GCM_SHA384),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The suites a policy allows: all of aws-lc-rs's defaults, or those its
/// `cipherSuites` name (TLS 1.2 and 1.3 lists each default when empty, as
/// with OpenSSL). A name rustls has no suite for is an error, never
/// silently dropped: a user listing suites means to restrict them.
fn suites(
    ciphersuites: &Option<String>,
    cipher_list: &Option<String>,
) -> Result<Vec<SupportedCipherSuite>, String> {
    let pick = |list: &Option<String>, tls13: bool| -> Result<Vec<_>, String> {
        let Some(list) = list else {
            return Ok(provider::DEFAULT_CIPHER_SUITES
                .iter()
                .filter(|s| s.tls13().is_some() == tls13)
                .copied()
                .collect());
        };
        list.split(':')
            .filter(|n| !n.is_empty())
            .map(|name| {
                SUITES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, s)| *s)
                    .ok_or_else(|| {
                        let way_out = if openssl_has(name) {
                            "GatewayRuntime spec.tlsLibrary: openssl serves it"
                        } else {
                            "OpenSSL does not know it either"
                        };
                        format!(
                            "cipher suite '{name}' is not available with tlsLibrary: rustls \
                             (it offers only AEAD suites: {}); {way_out}",
                            SUITES
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
            })
            .collect()
    };
    let mut all = pick(ciphersuites, true)?;
    all.extend(pick(cipher_list, false)?);
    Ok(all)
}

/// Does this binary's OpenSSL have a suite of this name (TLS 1.3's by
/// IANA name, the others by OpenSSL's)? Asked only to word an error.
fn openssl_has(name: &str) -> bool {
    let Ok(mut b) = openssl::ssl::SslContext::builder(openssl::ssl::SslMethod::tls()) else {
        return false;
    };
    if name.starts_with("TLS_") {
        b.set_ciphersuites(name).is_ok()
    } else {
        b.set_cipher_list(name).is_ok()
    }
}

fn versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Vec<&'static SupportedProtocolVersion> {
    let allowed = |v: TlsVersion| min.is_none_or(|m| m <= v) && max.is_none_or(|m| v <= m);
    let mut out = Vec::new();
    if allowed(TlsVersion::V1_3) {
        out.push(&rustls::version::TLS13);
    }
    if allowed(TlsVersion::V1_2) {
        out.push(&rustls::version::TLS12);
    }
    out
}

fn build(policy: &Arc<ServerPolicy>, rt: &Runtime) -> Result<Arc<ServerConfig>, String> {
    let provider = CryptoProvider {
        cipher_suites: suites(&policy.ciphersuites, &policy.cipher_list)?,
        // Post-quantum first, as OpenSSL 3.5+ offers it: a client sending
        // both key shares gets the hybrid.
        kx_groups: vec![
            kx_group::X25519MLKEM768,
            kx_group::X25519,
            kx_group::SECP256R1,
            kx_group::SECP384R1,
        ],
        ..provider::default_provider()
    };
    let provider = Arc::new(provider);
    let versions = versions(policy.min_version, policy.max_version);
    if versions.is_empty() {
        return Err("minProtocolVersion is above maxProtocolVersion".into());
    }
    // What sessions and tickets are bound to: the policy's session key (a
    // CRL change changes it too; tickets.rs, sessions.rs). Weak: the policy
    // holds the config that holds the ticketer.
    let binding = || {
        let weak = Arc::downgrade(policy);
        Box::new(move || weak.upgrade().map(|p| p.session_key(now_unix()))) as Binding
    };
    let verifier = ClientVerifier::for_policy(policy, provider.clone(), binding())?;
    let certs = Certs::new(policy)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("protocol versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(certs));
    // A `TLS` server relays bytes it does not read: it must not tell the
    // client they are h2 or HTTP/1.1.
    if !policy.stream {
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    // Resumption by tickets under our keys, and for TLS 1.2 clients without
    // tickets by session id, both bound.
    config.session_storage = Arc::new(PolicySessions::new(SessionCache::process(), binding()));
    config.ticketer = Arc::new(PolicyTickets::new(rt.tickets.clone(), binding()));
    config.send_tls13_tickets = 1;
    // Nothing the client sends before the handshake ends is read early.
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

/// The served certificates (one, or one per key type), and the policy for
/// its OCSP responses, which change without a reload.
#[derive(Debug)]
struct Certs {
    keys: Vec<Arc<CertifiedKey>>,
    policy: Weak<ServerPolicy>,
}

impl Certs {
    fn new(policy: &Arc<ServerPolicy>) -> Result<Certs, String> {
        let mut keys = Vec::new();
        for cred in policy.credential.served() {
            let chain = cred
                .chain
                .iter()
                .map(|c| c.to_der().map(CertificateDer::from))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("certificate of '{}': {e}", cred.info.name))?;
            let der = cred
                .key
                .private_key_to_pkcs8()
                .map_err(|e| format!("key of '{}': {e}", cred.info.name))?;
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der));
            let key = provider::sign::any_supported_type(&key)
                .map_err(|e| format!("key of '{}': {e}", cred.info.name))?;
            keys.push(Arc::new(CertifiedKey::new(chain, key)));
        }
        Ok(Certs {
            keys,
            policy: Arc::downgrade(policy),
        })
    }
}

impl ResolvesServerCert for Certs {
    /// The first certificate whose key can sign with a scheme the client
    /// offers, with its OCSP response when one is current.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        let (index, key) = self
            .keys
            .iter()
            .enumerate()
            .find(|(_, k)| k.key.choose_scheme(schemes).is_some())?;
        let Some(policy) = self.policy.upgrade() else {
            return Some(key.clone());
        };
        let now = now_unix();
        let Some(staple) = policy.staple(index, now) else {
            return Some(key.clone());
        };
        let name = &policy.credential.info.name;
        if !staple.fresh(now) {
            crate::tls::accept::count_stale_staple(name, &staple.source);
            return Some(key.clone());
        }
        metrics()
            .ocsp_staples
            .with_label_values(&[name, "stapled"])
            .inc();
        let mut stapled = CertifiedKey::clone(key);
        stapled.ocsp = Some(staple.der.clone());
        Some(Arc::new(stapled))
    }
}

#[cfg(test)]
mod tests {
    use rustls::CipherSuite;

    use super::*;

    fn names(v: &[SupportedCipherSuite]) -> Vec<CipherSuite> {
        v.iter().map(|s| s.suite()).collect()
    }

    #[test]
    fn a_suite_rustls_lacks_says_whether_openssl_has_it() {
        let refusal = |name: &str| suites(&None, &Some(name.into())).unwrap_err();
        let cbc = refusal("ECDHE-ECDSA-AES128-SHA");
        assert!(cbc.contains("spec.tlsLibrary: openssl serves it"), "{cbc}");
        let typo = refusal("ECDHE-ECDSA-AES128-GCM-SHA265");
        assert!(typo.contains("OpenSSL does not know it either"), "{typo}");
    }

    #[test]
    fn cipher_suites_by_openssl_and_iana_names() {
        let all = suites(&None, &None).unwrap();
        assert_eq!(all.len(), provider::DEFAULT_CIPHER_SUITES.len());
        let some = suites(
            &Some("TLS_AES_128_GCM_SHA256".into()),
            &Some("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384".into()),
        )
        .unwrap();
        assert_eq!(
            names(&some),
            [
                CipherSuite::TLS13_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            ]
        );
        // Only TLS 1.2 suites named: TLS 1.3 keeps its defaults.
        let tls12 = suites(&None, &Some("ECDHE-RSA-CHACHA20-POLY1305".into())).unwrap();
        assert_eq!(tls12.iter().filter(|s| s.tls13().is_some()).count(), 3);
        // A CBC suite: refused by name, not dropped.
        let e = suites(
            &None,
            &Some("ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256".into()),
        )
        .unwrap_err();
        assert!(e.contains("'ECDHE-RSA-AES128-SHA' is not available"), "{e}");
    }

    #[test]
    fn protocol_versions_within_min_and_max() {
        let v = |min, max| {
            versions(min, max)
                .iter()
                .map(|v| v.version)
                .collect::<Vec<_>>()
        };
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(v(None, None), [TLSv1_3, TLSv1_2]);
        assert_eq!(v(Some(TlsVersion::V1_3), None), [TLSv1_3]);
        assert_eq!(v(None, Some(TlsVersion::V1_2)), [TLSv1_2]);
        assert!(v(Some(TlsVersion::V1_3), Some(TlsVersion::V1_2)).is_empty());
    }
}
