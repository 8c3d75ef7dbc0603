//! Raw peers: bytes written as they are (whole, cut, trickled) over TCP or
//! TLS, and what came back: an HTTP/1.1 status, a close, or nothing.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use openssl::ssl::SslStream;

use super::tls::{self, TlsOpts};

/// A TCP or TLS stream whose read timeout can be changed.
pub trait Peer: Read + Write {
    fn tcp(&self) -> &TcpStream;
}

impl Peer for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Peer for SslStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref()
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// What a peer received.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// Bytes received (capped at 64 KiB).
    pub bytes: Vec<u8>,
    /// The status of the first HTTP/1.x response head, if a whole head came.
    pub status: Option<u16>,
    /// The server closed (EOF or reset) while we read.
    pub closed: bool,
    /// How long the read took.
    pub elapsed: Duration,
}

impl Reply {
    fn head_end(&self) -> Option<usize> {
        self.bytes.windows(4).position(|w| w == b"\r\n\r\n")
    }

    fn parse_status(&mut self) {
        if self.status.is_none() && self.head_end().is_some() {
            let line = self.bytes.split(|&b| b == b'\r').next().unwrap_or_default();
            self.status = String::from_utf8_lossy(line)
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok());
        }
    }

    /// The response head as text (lossy), for messages.
    pub fn head(&self) -> String {
        let end = self.head_end().unwrap_or(self.bytes.len()).min(2048);
        String::from_utf8_lossy(&self.bytes[..end]).into_owned()
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {:?}, closed {}, after {:?}, head {:?}",
            self.status,
            self.closed,
            self.elapsed,
            self.head()
        )
    }
}

/// Read until a whole response head came (then `linger` more, to see a
/// close), EOF, an error, or `timeout`.
pub fn read_reply<P: Peer>(peer: &mut P, timeout: Duration, linger: Duration) -> Reply {
    let start = Instant::now();
    let mut r = Reply::default();
    let mut deadline = start + timeout;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let _ = peer.tcp().set_read_timeout(Some(left));
        match peer.read(&mut buf) {
            Ok(0) => {
                r.closed = true;
                break;
            }
            Ok(n) => {
                if r.bytes.len() < 64 * 1024 {
                    r.bytes.extend_from_slice(&buf[..n]);
                }
                let had = r.status.is_some();
                r.parse_status();
                if !had && r.status.is_some() {
                    deadline = deadline.min(Instant::now() + linger);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => break,
            Err(_) => {
                r.closed = true;
                break;
            }
        }
    }
    r.elapsed = start.elapsed();
    r
}

/// Wait up to `timeout` for the server to close; `Some(how long it took)`.
pub fn closed_within<P: Peer>(peer: &mut P, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return None;
        }
        let _ = peer.tcp().set_read_timeout(Some(left));
        match peer.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return None,
            Err(_) => return Some(start.elapsed()),
        }
    }
}

/// Write all of `bytes`; `false` if the server closed first (the rest is
/// then not sent, which is what a refusing server wants).
pub fn write_all<P: Peer>(peer: &mut P, bytes: &[u8]) -> bool {
    for chunk in bytes.chunks(16 * 1024) {
        if peer.write_all(chunk).is_err() {
            return false;
        }
    }
    peer.flush().is_ok()
}

/// A TLS connection to `sni` (no ALPN: HTTP/1.1) that writes `request`
/// and reads the reply (at most `timeout`).
pub fn send_request(port: u16, sni: &str, request: &[u8], timeout: Duration) -> Reply {
    let mut s = match tls::connect(port, sni, &TlsOpts::default(), timeout) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    write_all(&mut s, request);
    read_reply(&mut s, timeout, Duration::from_millis(300))
}

/// What came of trickling bytes.
#[derive(Debug, Clone)]
pub struct Trickle {
    /// Bytes written before the server answered or closed.
    pub sent: usize,
    /// The answer (or close) and when it came, counted from the first byte.
    pub reply: Reply,
}

/// Write `bytes` one at a time, `interval` apart, watching for an answer in
/// between; stop at the answer, at a close, or after `limit` in all.
pub fn trickle<P: Peer>(
    peer: &mut P,
    bytes: &[u8],
    interval: Duration,
    limit: Duration,
) -> Trickle {
    let start = Instant::now();
    let mut sent = 0;
    let mut reply = Reply::default();
    for b in bytes {
        if start.elapsed() >= limit {
            break;
        }
        if peer.write_all(std::slice::from_ref(b)).is_err() || peer.flush().is_err() {
            // Closed under us: what it said before is still to be read.
            reply = read_reply(peer, Duration::from_millis(500), Duration::from_millis(300));
            reply.closed = true;
            break;
        }
        sent += 1;
        reply = read_reply(peer, interval, Duration::from_millis(300));
        if reply.closed || !reply.bytes.is_empty() {
            break;
        }
    }
    if !reply.closed && reply.status.is_none() {
        // Nothing yet, or part of an answer: wait for the rest.
        let left = limit
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(500));
        let more = read_reply(peer, left, Duration::from_millis(300));
        reply.bytes.extend_from_slice(&more.bytes);
        reply.closed |= more.closed;
        reply.parse_status();
    }
    reply.elapsed = start.elapsed();
    Trickle { sent, reply }
}
