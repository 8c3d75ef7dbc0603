//! The rustls client configuration (aws-lc-rs provider): trust, client
//! certificate, groups, cipher suites, ALPN and the resumption policy.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, NamedGroup, RootCertStore, SignatureScheme};

use crate::args::Args;

/// TLS 1.3 tickets kept per server name. rustls' own cache keeps 8, fewer
/// than the handshakes a load generator has in flight: with it most
/// "resumed" connections would find no ticket and do a full handshake.
const TICKETS_PER_SERVER: usize = 4096;

pub fn client_config(args: &Args, h2: bool) -> Result<ClientConfig, String> {
    let mut provider = aws_lc_rs::default_provider();
    provider.kx_groups = args
        .groups
        .iter()
        .map(|g| group(g))
        .collect::<Result<_, _>>()?;
    provider.cipher_suites = args
        .ciphers
        .iter()
        .map(|c| suites(c))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    let provider = Arc::new(provider);
    let versions: &[&rustls::SupportedProtocolVersion] = match args.tls_version.as_str() {
        "1.2" => &[&rustls::version::TLS12],
        "1.3" => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS settings: {e}"))?;
    let builder = if args.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let path = args.cacert.as_deref().ok_or("--cacert is required")?;
        let mut roots = RootCertStore::empty();
        for c in read_certs(path)? {
            roots
                .add(c)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_slice(&read(key)?)
                .map_err(|e| format!("{}: no usable private key: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![if h2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    config.resumption = if args.no_resume {
        Resumption::disabled()
    } else {
        Resumption::store(Arc::new(SessionStore::default()))
    };
    Ok(config)
}

fn group(name: &str) -> Result<&'static dyn rustls::crypto::SupportedKxGroup, String> {
    use aws_lc_rs::kx_group as g;
    Ok(match name.to_ascii_lowercase().as_str() {
        "x25519" => g::X25519,
        "p256" | "secp256r1" | "prime256v1" => g::SECP256R1,
        "p384" | "secp384r1" => g::SECP384R1,
        "x25519mlkem768" => g::X25519MLKEM768,
        _ => return Err(format!("--groups: unknown group '{name}'")),
    })
}

fn suites(name: &str) -> Result<Vec<rustls::SupportedCipherSuite>, String> {
    use aws_lc_rs::cipher_suite as s;
    Ok(match name.to_ascii_lowercase().as_str() {
        "aes128" => vec![
            s::TLS13_AES_128_GCM_SHA256,
            s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            s::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        "aes256" => vec![
            s::TLS13_AES_256_GCM_SHA384,
            s::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            s::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
        "chacha20" => vec![
            s::TLS13_CHACHA20_POLY1305_SHA256,
            s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            s::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        _ => return Err(format!("--ciphers: unknown cipher '{name}'")),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// An in-memory session store that keeps many TLS 1.3 tickets per server.
#[derive(Debug, Default)]
struct SessionStore(Mutex<HashMap<ServerName<'static>, Sessions>>);

#[derive(Debug, Default)]
struct Sessions {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
}

impl SessionStore {
    fn with<R>(&self, name: &ServerName<'_>, f: impl FnOnce(&mut Sessions) -> R) -> R {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(name.to_owned()).or_default();
        f(entry)
    }
}

impl ClientSessionStore for SessionStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.with(&name, |s| s.kx_hint = Some(group));
    }
    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(name, |s| s.kx_hint)
    }
    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.with(&name, |s| s.tls12 = Some(value));
    }
    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.with(name, |s| s.tls12.clone())
    }
    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.with(name, |s| s.tls12 = None);
    }
    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.with(&name, |s| {
            if s.tls13.len() == TICKETS_PER_SERVER {
                s.tls13.pop_front();
            }
            s.tls13.push_back(value);
        });
    }
    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        // Newest first: the freshest ticket is the least likely to have expired.
        self.with(name, |s| s.tls13.pop_back())
    }
}

/// `--insecure`: accept any server certificate, but still check the
/// handshake signatures (the server must hold the key it presents).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
