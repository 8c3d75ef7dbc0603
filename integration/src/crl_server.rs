//! A CA's CRL distribution point on 127.0.0.1: serves whatever CRL the
//! test publishes, and, on demand, what a broken or hostile server sends
//! (an error status, garbage, a truncated or oversized body, a trickle,
//! a connection closed before any answer).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the next requests get.
#[derive(Debug, Clone)]
pub enum Mode {
    /// 200 with the bytes (ETag honoured: 304 when unchanged).
    Serve(Vec<u8>),
    /// The same bytes, `Transfer-Encoding: chunked`.
    Chunked(Vec<u8>),
    Status(u16),
    /// 200 with bytes that are no CRL.
    Garbage,
    /// A Content-Length of the whole CRL, half of it, then close.
    Truncated(Vec<u8>),
    /// A Content-Length of `n`, and as many bytes as the client reads.
    Oversized(u64),
    /// The response head, one byte every 200 ms.
    Trickle,
    /// The request read, the connection closed without a word.
    Vanish,
    /// A status line, then header lines without end (a flood).
    EndlessHead,
}

pub struct CrlServer {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CrlServer {
    pub fn start(mode: Mode) -> CrlServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(mode));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (mode, requests, stop) = (mode.clone(), requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let m = mode.lock().unwrap().clone();
                    requests.fetch_add(1, Ordering::Relaxed);
                    serve(conn, &m, &stop);
                }
            })
        };
        CrlServer {
            port,
            mode,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for CrlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn etag(body: &[u8]) -> String {
    // Any stable digest of the content does for a test ETag.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

fn serve(mut c: TcpStream, mode: &Mode, stop: &AtomicBool) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let ok = |body: &[u8]| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\n\
             ETag: {}\r\nConnection: close\r\n\r\n",
            body.len(),
            etag(body)
        )
    };
    let _ = match mode {
        Mode::Serve(body) => {
            if head.contains(&format!("if-none-match: {}", etag(body))) {
                c.write_all(b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n")
            } else {
                c.write_all(ok(body).as_bytes())
                    .and_then(|_| c.write_all(body))
            }
        }
        Mode::Chunked(body) => {
            let mut out =
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    .to_vec();
            for part in body.chunks(1000) {
                out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                out.extend_from_slice(part);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            c.write_all(&out)
        }
        Mode::Status(code) => c.write_all(
            format!("HTTP/1.1 {code} Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        ),
        Mode::Garbage => {
            let body = b"<html>this is not a CRL</html>";
            c.write_all(ok(body).as_bytes())
                .and_then(|_| c.write_all(body))
        }
        Mode::Truncated(body) => c
            .write_all(ok(body).as_bytes())
            .and_then(|_| c.write_all(&body[..body.len() / 2])),
        Mode::Oversized(n) => {
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n");
            let _ = c.write_all(head.as_bytes());
            let chunk = vec![0x30u8; 64 * 1024];
            let mut sent = 0u64;
            while sent < *n && !stop.load(Ordering::Relaxed) {
                if c.write_all(&chunk).is_err() {
                    break;
                }
                sent += chunk.len() as u64;
            }
            Ok(())
        }
        Mode::Trickle => {
            for b in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"
                .iter()
                .cycle()
                .take(600)
            {
                if stop.load(Ordering::Relaxed) || c.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(())
        }
        Mode::Vanish => Ok(()),
        Mode::EndlessHead => {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\n");
            let line = b"X-Flood: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) || c.write_all(line).is_err() {
                    break;
                }
            }
            Ok(())
        }
    };
}
