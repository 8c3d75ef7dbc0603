//! Byte-stream backends on 127.0.0.1:<free> for connection-level tests
//! (TLS passthrough, TCP routes, PROXY protocol out):
//! - [`StreamBackend::echo`]: echoes every byte as it arrives; when the
//!   client's side closes, writes `ECHO-EOF <n>` (the bytes it got) and
//!   closes its own side, so a test sees that a half-close went through
//!   while the other direction still flowed;
//! - [`StreamBackend::tls`]: a TLS server with its own certificate that
//!   answers one HTTP/1.1 request with a body naming it.
//!
//! Either may first read a PROXY protocol header (v1 or v2), recorded raw
//! and parsed here independently of tlsgate's parser. One thread accepts,
//! one thread serves each connection; accepting stops on drop.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::ssl::SslAcceptor;

#[derive(Clone)]
enum Mode {
    Echo,
    Tls(Arc<SslAcceptor>, String),
}

#[derive(Default)]
struct Shared {
    accepted: AtomicUsize,
    proxy_sources: Mutex<Vec<Option<SocketAddr>>>,
}

pub struct StreamBackend {
    port: u16,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl StreamBackend {
    pub fn echo(expect_proxy: bool) -> StreamBackend {
        StreamBackend::spawn(Mode::Echo, expect_proxy)
    }

    /// `name` is the body's text; `acceptor` holds the backend's own
    /// certificate.
    pub fn tls(name: &str, acceptor: SslAcceptor, expect_proxy: bool) -> StreamBackend {
        StreamBackend::spawn(
            Mode::Tls(Arc::new(acceptor), name.to_string()),
            expect_proxy,
        )
    }

    fn spawn(mode: Mode, expect_proxy: bool) -> StreamBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                sh.accepted.fetch_add(1, Ordering::SeqCst);
                let (sh, mode) = (sh.clone(), mode.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
                    if expect_proxy {
                        let source = read_proxy_header(&mut conn);
                        sh.proxy_sources.lock().unwrap().push(source);
                    }
                    match mode {
                        Mode::Echo => echo(conn),
                        Mode::Tls(acceptor, name) => {
                            if let Ok(s) = acceptor.accept(conn) {
                                answer(s, &name);
                            }
                        }
                    }
                });
            }
        });
        StreamBackend { port, shared, stop }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// The client address of each PROXY header read (`None`: malformed).
    pub fn proxy_sources(&self) -> Vec<Option<SocketAddr>> {
        self.shared.proxy_sources.lock().unwrap().clone()
    }
}

impl Drop for StreamBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn echo(mut conn: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0usize;
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let _ = conn.write_all(format!("ECHO-EOF {total}\n").as_bytes());
    let _ = conn.shutdown(Shutdown::Write);
}

fn answer<S: Read + Write>(mut s: S, name: &str) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let body = format!("{name}\n");
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(reply.as_bytes());
    let _ = s.flush();
}

/// A PROXY protocol v1 or v2 header's source address, read byte by byte
/// so that nothing after it is consumed.
fn read_proxy_header(conn: &mut TcpStream) -> Option<SocketAddr> {
    let mut first = [0u8; 12];
    conn.read_exact(&mut first[..1]).ok()?;
    if first[0] == b'P' {
        let mut line = vec![b'P'];
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") && line.len() < 108 {
            conn.read_exact(&mut b).ok()?;
            line.push(b[0]);
        }
        let text = String::from_utf8(line).ok()?;
        let f: Vec<&str> = text.trim_end().split(' ').collect();
        let ip: IpAddr = f.get(2)?.parse().ok()?;
        let port: u16 = f.get(4)?.parse().ok()?;
        return Some(SocketAddr::new(ip, port));
    }
    conn.read_exact(&mut first[1..]).ok()?;
    if &first != b"\r\n\r\n\0\r\nQUIT\n" {
        return None;
    }
    let mut rest = [0u8; 4];
    conn.read_exact(&mut rest).ok()?;
    let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).ok()?;
    match rest[1] {
        0x11 if len >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([body[8], body[9]]),
            ))
        }
        0x21 if len >= 36 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&body[..16]);
            let ip = Ipv6Addr::from(a);
            let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
            Some(SocketAddr::new(
                ip,
                u16::from_be_bytes([body[32], body[33]]),
            ))
        }
        _ => None,
    }
}

/// A server acceptor for the certificate and key in `dir` (`tls.crt`,
/// `tls.key`, as `tlsgate certs server` writes them).
pub fn acceptor_from(dir: &std::path::Path) -> SslAcceptor {
    use openssl::ssl::{SslFiletype, SslMethod};
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
    b.set_certificate_chain_file(dir.join("tls.crt"))
        .expect("tls.crt");
    b.set_private_key_file(dir.join("tls.key"), SslFiletype::PEM)
        .expect("tls.key");
    b.build()
}

/// A PROXY protocol v2 header (TCP over IPv4) claiming `source`.
pub fn proxy_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (source.ip(), destination.ip()) else {
        panic!("IPv4 only");
    };
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[0x21, 0x11, 0, 12]);
    out.extend_from_slice(&s.octets());
    out.extend_from_slice(&d.octets());
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}
