//! The OpenSSL variant, set up as tlsgate sets up a host's context: TLS 1.2
//! and 1.3, the client certificate required and verified against the CA
//! bundle, one TLS 1.3 ticket per handshake, buffers released while idle,
//! OpenSSL's default groups and ciphers.

use std::pin::Pin;

use anyhow::Context;
use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslContext, SslMethod, SslMode, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

pub struct Acceptor {
    ctx: SslContext,
}

impl Acceptor {
    pub fn new(cert: &[u8], key: &[u8], ca: &[u8]) -> anyhow::Result<Self> {
        let mut b = SslContext::builder(SslMethod::tls_server())?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        let mut chain = X509::stack_from_pem(cert)
            .context("server certificate")?
            .into_iter();
        let leaf = chain.next().context("no server certificate")?;
        b.set_certificate(&leaf)?;
        for c in chain {
            b.add_extra_chain_cert(c)?;
        }
        let key = PKey::private_key_from_pem(key).context("server key")?;
        b.set_private_key(&key)?;
        b.check_private_key()
            .context("key does not match the certificate")?;
        let cas = X509::stack_from_pem(ca).context("client CA bundle")?;
        b.set_cert_store(tlsgate_ossl::trust_store(&cas)?);
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        b.set_num_tickets(1)?;
        b.set_session_id_context(b"tlsfloor")?;
        b.set_mode(SslMode::RELEASE_BUFFERS);
        Ok(Acceptor { ctx: b.build() })
    }

    pub async fn accept(&self, tcp: TcpStream) -> anyhow::Result<SslStream<TcpStream>> {
        let mut tls = SslStream::new(Ssl::new(&self.ctx)?, tcp)?;
        Pin::new(&mut tls).accept().await?;
        Ok(tls)
    }
}
