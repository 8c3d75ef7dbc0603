//! A hand-written HTTP/1.1 upstream on 127.0.0.1:<free>, plain or TLS:
//! every request is recorded byte for byte as it arrived (the head up to
//! its blank line, then its body), and answered with the bytes a script
//! gives for its method and target. Unlike [`crate::Backend`] (hyper),
//! nothing is parsed into maps, so header order, case and repetition are
//! what the gateway sent.
//!
//! One thread accepts, one thread per connection serves it; the accept
//! loop stops when the upstream is dropped, connections end with their
//! peer (or after 10 s of silence).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use openssl::ssl::{HandshakeError, SslAcceptor, SslStream};

use crate::wire::{chunked_len, find};

/// What the script answers: the response bytes, and whether the
/// connection closes after them (without saying so, unless the bytes do).
#[derive(Debug, Clone)]
pub struct Answer {
    pub bytes: Vec<u8>,
    pub close: bool,
}

impl Answer {
    pub fn keep(bytes: &[u8]) -> Answer {
        Answer {
            bytes: bytes.to_vec(),
            close: false,
        }
    }

    pub fn close(bytes: &[u8]) -> Answer {
        Answer {
            bytes: bytes.to_vec(),
            close: true,
        }
    }
}

/// Answers a request, given its method and target.
pub type Script = fn(&str, &str) -> Answer;

/// One request as the upstream received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Which accepted connection it came on (1, 2, ...).
    pub conn: usize,
    /// The head, request line to blank line included.
    pub head: Vec<u8>,
    /// The body as framed on the wire (`Content-Length` bytes, or the
    /// chunks up to the last one).
    pub body: Vec<u8>,
}

impl Received {
    pub fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }
}

#[derive(Default)]
struct Shared {
    accepted: AtomicUsize,
    handshake_failures: AtomicUsize,
    received: Mutex<Vec<Received>>,
}

/// The running upstream; stops accepting when dropped.
pub struct RawUpstream {
    port: u16,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawUpstream {
    /// Plain HTTP/1.1.
    pub fn start(script: Script) -> RawUpstream {
        RawUpstream::spawn(script, None)
    }

    /// HTTP/1.1 over TLS, each connection's handshake run by `acceptor`
    /// (a failed one is counted in [`RawUpstream::handshake_failures`]).
    pub fn start_tls(script: Script, acceptor: SslAcceptor) -> RawUpstream {
        RawUpstream::spawn(script, Some(Arc::new(acceptor)))
    }

    fn spawn(script: Script, tls: Option<Arc<SslAcceptor>>) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let n = sh.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                let (sh, tls) = (sh.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
                    match tls {
                        None => serve(conn.try_clone().ok(), conn, n, script, &sh),
                        Some(acceptor) => match acceptor.accept(conn) {
                            Ok(s) => serve(None, s, n, script, &sh),
                            Err(e) => {
                                sh.handshake_failures.fetch_add(1, Ordering::SeqCst);
                                if let HandshakeError::Failure(mid) = e {
                                    linger(mid.get_ref());
                                }
                            }
                        },
                    }
                });
            }
        });
        RawUpstream {
            port,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// TLS handshakes that failed (a refused client certificate, an
    /// unknown CA on the other side).
    pub fn handshake_failures(&self) -> usize {
        self.shared.handshake_failures.load(Ordering::SeqCst)
    }

    /// Every request received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().clone()
    }

    /// The requests received so far, forgotten.
    pub fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Received>> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A stream the upstream can close: TCP with a FIN, TLS with close_notify.
trait Conn: Read + Write {
    fn close(&mut self);
}

impl Conn for TcpStream {
    fn close(&mut self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl Conn for SslStream<TcpStream> {
    fn close(&mut self) {
        let _ = self.shutdown();
        let _ = self.get_ref().shutdown(Shutdown::Write);
    }
}

/// After a refused handshake (our alert is written): FIN, then read what
/// the peer still sends for up to 1 s, so that it reads the alert rather
/// than a reset (closing with unread bytes would reset the connection).
fn linger(mut tcp: &TcpStream) {
    let _ = tcp.shutdown(Shutdown::Write);
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
    let mut scratch = [0u8; 4096];
    while matches!(tcp.read(&mut scratch), Ok(n) if n > 0) {}
}

/// Serves requests until the peer closes, fails, or the script closes.
/// `drain`: a clone of a plain socket, read after the close so that the
/// close is a FIN, not a reset.
fn serve<S: Conn>(drain: Option<TcpStream>, mut s: S, conn: usize, script: Script, sh: &Shared) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some(head_end) = read_until(&mut s, &mut buf, |b| find(b, b"\r\n\r\n").map(|i| i + 4))
        else {
            return;
        };
        let head: Vec<u8> = buf.drain(..head_end).collect();
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut line = text.split("\r\n").next().unwrap_or("").split(' ');
        let method = line.next().unwrap_or("").to_string();
        let target = line.next().unwrap_or("").to_string();
        let body_len = match framing(&text) {
            Framing::None => Some(0),
            Framing::Length(n) => read_until(&mut s, &mut buf, |b| (b.len() >= n).then_some(n)),
            Framing::Chunked => read_until(&mut s, &mut buf, chunked_len),
        };
        let Some(body_len) = body_len else { return };
        let body: Vec<u8> = buf.drain(..body_len).collect();
        sh.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Received { conn, head, body });
        let answer = script(&method, &target);
        if s.write_all(&answer.bytes).and_then(|_| s.flush()).is_err() {
            return;
        }
        if answer.close {
            s.close();
            if let Some(mut d) = drain {
                let _ = d.read(&mut [0u8; 512]);
            }
            return;
        }
    }
}

/// Reads into `buf` until `done` finds where what it waits for ends.
fn read_until<S: Read>(
    s: &mut S,
    buf: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> Option<usize>,
) -> Option<usize> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(n) = done(buf) {
            return Some(n);
        }
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

enum Framing {
    None,
    Length(usize),
    Chunked,
}

fn framing(head: &str) -> Framing {
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            return Framing::Length(value.parse().unwrap_or(0));
        }
        if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().ends_with("chunked")
        {
            return Framing::Chunked;
        }
    }
    Framing::None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_heads_and_bodies_as_sent() {
        const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        fn ok(_: &str, _: &str) -> Answer {
            Answer::keep(OK)
        }
        let up = RawUpstream::start(ok);
        let mut c = TcpStream::connect(("127.0.0.1", up.port())).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let reqs = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
            GET /b?q HTTP/1.1\r\nhOsT: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
        c.write_all(reqs).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 * OK.len() {
            let mut b = [0u8; 256];
            let n = c.read(&mut b).unwrap();
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&b[..n]);
        }
        let r = up.take();
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(
            r[0].head,
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
        );
        assert_eq!(r[0].body, b"abc");
        assert_eq!(
            r[1].head_text(),
            "GET /b?q HTTP/1.1\r\nhOsT: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
        );
        assert_eq!((r[0].conn, r[1].conn), (1, 1));
        assert!(up.take().is_empty());
    }
}
