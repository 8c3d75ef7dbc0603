//! TLS connections to the gateway with the openssl crate: the example CA
//! verifies the server, SNI and ALPN as asked, optionally a client
//! certificate from `certs-example/clients/`.

use std::net::TcpStream;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode, SslVersion};

use crate::certs::{ca_cert, client_cert};

/// What to offer in a handshake.
#[derive(Debug, Clone, Default)]
pub struct TlsOpts<'a> {
    /// A folder of `certs-example/clients/` (`great-partner`, `bad-partner`).
    pub client: Option<&'a str>,
    /// ALPN protocols, e.g. `["h2"]`; none offered when empty.
    pub alpn: &'a [&'a str],
    /// Cap the version at TLS 1.2 (renegotiation exists only there).
    pub tls12: bool,
}

/// An `SslConnector` trusting the example CA, with `opts`.
pub fn connector(opts: &TlsOpts<'_>) -> Result<SslConnector, String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    b.set_ca_file(ca_cert("example"))
        .map_err(|e| format!("example CA: {e}"))?;
    b.set_verify(SslVerifyMode::PEER);
    if let Some(name) = opts.client {
        let (crt, key) = client_cert(name);
        b.set_certificate_chain_file(&crt)
            .map_err(|e| format!("{}: {e}", crt.display()))?;
        b.set_private_key_file(&key, openssl::ssl::SslFiletype::PEM)
            .map_err(|e| format!("{}: {e}", key.display()))?;
    }
    if !opts.alpn.is_empty() {
        b.set_alpn_protos(&alpn_wire(opts.alpn))
            .map_err(|e| e.to_string())?;
    }
    if opts.tls12 {
        b.set_max_proto_version(Some(SslVersion::TLS1_2))
            .map_err(|e| e.to_string())?;
    }
    Ok(b.build())
}

/// ALPN protocol names in their wire form (length-prefixed).
pub fn alpn_wire(protos: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in protos {
        out.push(u8::try_from(p.len()).expect("ALPN name under 256 bytes"));
        out.extend_from_slice(p.as_bytes());
    }
    out
}

/// A TCP connection to 127.0.0.1:`port` with TCP_NODELAY and `timeout` on
/// connect, reads and writes.
pub fn tcp(port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout)
        .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(timeout))
        .and_then(|_| s.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// A finished handshake with `sni` on 127.0.0.1:`port`; reads and writes
/// time out after `timeout` (change it with `get_ref().set_read_timeout`).
pub fn connect(
    port: u16,
    sni: &str,
    opts: &TlsOpts<'_>,
    timeout: Duration,
) -> Result<SslStream<TcpStream>, String> {
    let tcp = tcp(port, timeout)?;
    let c = connector(opts)?;
    c.connect(sni, tcp)
        .map_err(|e| format!("TLS handshake with {sni} on port {port}: {e}"))
}

/// Ask for a new handshake on an established TLS 1.2 connection (a
/// client-initiated renegotiation) and run it; `Ok` if the server went
/// along with it.
pub fn renegotiate(s: &mut SslStream<TcpStream>) -> Result<(), String> {
    if !tlsgate_ossl::renegotiate(s) {
        return Err("SSL_renegotiate refused locally".into());
    }
    s.do_handshake().map_err(|e| e.to_string())
}
