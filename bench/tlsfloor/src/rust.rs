//! The rustls variant, with the same policy as the OpenSSL one: TLS 1.2
//! and 1.3, the client certificate required and verified against the CA
//! bundle, stateless tickets, one TLS 1.3 ticket per handshake; aws-lc-rs
//! for the cryptography and its default groups and ciphers.

use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

pub struct Acceptor {
    inner: TlsAcceptor,
}

impl Acceptor {
    pub fn new(cert: &[u8], key: &[u8], ca: &[u8]) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .context("server certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key).context("server key")?;
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca) {
            roots.add(c.context("client CA bundle")?)?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        config.send_tls13_tickets = 1;
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
        Ok(Acceptor {
            inner: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.inner.accept(tcp).await
    }
}
