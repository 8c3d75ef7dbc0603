//! A rustls client that presents whatever chain and signing key a test
//! gives it: what curl will not send (a CertificateVerify made by a key
//! that is not the leaf's, a chain its own OpenSSL refuses to load).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::{CertifiedKey, SigningKey};

/// The certificates of these PEM files, in order.
pub fn pem_certs(files: &[PathBuf]) -> Vec<CertificateDer<'static>> {
    files
        .iter()
        .flat_map(|p| {
            CertificateDer::pem_file_iter(p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .map(|c| c.unwrap())
        })
        .collect()
}

/// The signing key of a PEM private key file.
pub fn signing_key(pem: &Path) -> Arc<dyn SigningKey> {
    let der =
        PrivateKeyDer::from_pem_file(pem).unwrap_or_else(|e| panic!("{}: {e}", pem.display()));
    rustls::crypto::aws_lc_rs::sign::any_supported_type(&der).expect("a key rustls signs with")
}

#[derive(Debug)]
struct Presents(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for Presents {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The certificates of a PEM bundle, as trust anchors.
fn roots(server_ca: &Path) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(server_ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

/// `GET /` on a connection (its handshake finished first if need be):
/// whatever came back before the socket closed or its read timeout.
fn get(conn: &mut rustls::ClientConnection, sock: &mut std::net::TcpStream, host: &str) -> Vec<u8> {
    let mut tls = rustls::Stream::new(conn, sock);
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    if tls.write_all(request.as_bytes()).is_ok() {
        let _ = tls.read_to_end(&mut answer);
    }
    answer
}

/// One `GET /` to `host` on 127.0.0.1:`port` (trusting `server_ca`),
/// presenting `chain` and signing the CertificateVerify with `key`, in
/// TLS 1.2 if `tls12`, else 1.3; whatever came back before the socket
/// closed or 5 s passed.
pub fn get_presenting(
    port: u16,
    host: &str,
    server_ca: &Path,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<dyn SigningKey>,
    tls12: bool,
) -> Vec<u8> {
    let roots = roots(server_ca);
    let version: &'static rustls::SupportedProtocolVersion = if tls12 {
        &rustls::version::TLS12
    } else {
        &rustls::version::TLS13
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(Presents(Arc::new(CertifiedKey::new(chain, key)))));
    let name = host.to_string().try_into().unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    get(&mut conn, &mut sock, host)
}

/// A TLS 1.2 client presenting the PEM files `cert` and `key`, trusting
/// `server_ca`, that resumes by session id only (as clients without
/// tickets do). Its sessions stay in the config for the next connection
/// made with it.
pub fn tls12_resuming_client(
    server_ca: &Path,
    cert: &Path,
    key: &Path,
) -> Arc<rustls::ClientConfig> {
    let roots = roots(server_ca);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(pem_certs(&[cert.to_path_buf()]), key)
        .unwrap();
    config.resumption = rustls::client::Resumption::in_memory_sessions(16)
        .tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly);
    Arc::new(config)
}

/// Where the TLS 1.2 client's Finished starts in its last flight: the
/// record after its ChangeCipherSpec, the flight's last. Panics on any
/// other shape, so a test cannot hold back the wrong bytes unawares.
fn finished_record(flight: &[u8]) -> usize {
    let mut starts = Vec::new();
    let mut at = 0;
    while at + 5 <= flight.len() {
        starts.push(at);
        at += 5 + usize::from(u16::from_be_bytes([flight[at + 3], flight[at + 4]]));
    }
    assert_eq!(at, flight.len(), "a flight of whole records");
    let [.., ccs, finished] = starts[..] else {
        panic!("one record in the flight: nothing to hold apart");
    };
    assert_eq!(flight[ccs], 0x14, "ChangeCipherSpec before Finished");
    finished
}

/// One `GET /` to `host` on 127.0.0.1:`port`, with a client from
/// [`tls12_resuming_client`] whose handshake holds back its Finished
/// (after its Certificate and CertificateVerify) until `meanwhile`
/// returns. Whatever came back
/// before the socket closed or 5 s passed.
pub fn get_holding_finished(
    config: &Arc<rustls::ClientConfig>,
    port: u16,
    host: &str,
    meanwhile: impl FnOnce(),
) -> Vec<u8> {
    let name = host.to_string().try_into().unwrap();
    let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The first flight is the ClientHello; the second ends with Finished.
    let mut flights = 0;
    let mut meanwhile = Some(meanwhile);
    while meanwhile.is_some() {
        if conn.wants_write() {
            let mut out = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut out).unwrap();
            }
            flights += 1;
            if flights == 2 {
                let held = finished_record(&out);
                sock.write_all(&out[..held]).unwrap();
                sock.flush().unwrap();
                if let Some(f) = meanwhile.take() {
                    f();
                }
                sock.write_all(&out[held..]).unwrap();
            } else {
                sock.write_all(&out).unwrap();
            }
            continue;
        }
        match conn.read_tls(&mut sock) {
            Ok(0) | Err(_) => return Vec::new(),
            Ok(_) => {}
        }
        if conn.process_new_packets().is_err() {
            return Vec::new();
        }
    }
    get(&mut conn, &mut sock, host)
}

/// A handshake with `config` and nothing else: how it went from the
/// client's side (`None`: refused).
pub fn handshake_kind(
    config: &Arc<rustls::ClientConfig>,
    port: u16,
    host: &str,
) -> Option<rustls::HandshakeKind> {
    let name = host.to_string().try_into().unwrap();
    let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).ok()?;
    }
    conn.handshake_kind()
}
