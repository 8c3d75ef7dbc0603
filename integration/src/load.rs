//! HTTPS load that counts every failure: keep-alive clients that honour
//! `Connection: close` (as browsers and curl do) and clients opening a new
//! connection per request. For the tests that change the gateway under
//! traffic (upgrades) and must show that no request failed and no
//! connection was refused.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};

use crate::certs::ca_cert;

/// Running clients; [`HttpsLoad::stop`] ends them and tells the outcome
/// (dropped, e.g. by a failing test, they end too).
pub struct HttpsLoad {
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    workers: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct Counts {
    ok: AtomicUsize,
    /// The TCP connect failed (refused, reset, timed out).
    refused: AtomicUsize,
    /// Handshake, write or read failed, or the answer was not a 200.
    failed: AtomicUsize,
    /// Responses with `Connection: close` to keep-alive requests.
    closed_by_server: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

/// What the clients saw.
#[derive(Debug)]
pub struct LoadOutcome {
    pub ok: usize,
    pub refused: usize,
    pub failed: usize,
    pub closed_by_server: usize,
    /// The first few failures, described.
    pub errors: Vec<String>,
}

impl Counts {
    fn fail(&self, refused: bool, what: String) {
        let n = if refused { &self.refused } else { &self.failed };
        n.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap();
        if e.len() < 10 {
            e.push(what);
        }
    }
}

impl HttpsLoad {
    /// `keepalive` + `fresh` threads sending `GET /` to `host` on
    /// 127.0.0.1:`port`, the server verified with the example CA.
    pub fn start(port: u16, host: &'static str, keepalive: usize, fresh: usize) -> HttpsLoad {
        let mut connector = SslConnector::builder(SslMethod::tls()).unwrap();
        connector.set_ca_file(ca_cert("example")).unwrap();
        let connector = Arc::new(connector.build());
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let workers = (0..keepalive + fresh)
            .map(|i| {
                let (stop, counts, connector) = (stop.clone(), counts.clone(), connector.clone());
                let reuse = i < keepalive;
                std::thread::spawn(move || client(port, host, reuse, &connector, &stop, &counts))
            })
            .collect();
        HttpsLoad {
            stop,
            counts,
            workers,
        }
    }

    /// Requests answered 200 so far.
    pub fn ok(&self) -> usize {
        self.counts.ok.load(Ordering::Relaxed)
    }

    pub fn stop(mut self) -> LoadOutcome {
        self.halt();
        let c = &self.counts;
        LoadOutcome {
            ok: c.ok.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            closed_by_server: c.closed_by_server.load(Ordering::Relaxed),
            errors: c.errors.lock().unwrap().clone(),
        }
    }
}

impl HttpsLoad {
    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in std::mem::take(&mut self.workers) {
            let _ = w.join();
        }
    }
}

impl Drop for HttpsLoad {
    fn drop(&mut self) {
        self.halt();
    }
}

type Conn = BufReader<SslStream<TcpStream>>;

fn client(
    port: u16,
    host: &str,
    reuse: bool,
    connector: &SslConnector,
    stop: &AtomicBool,
    counts: &Counts,
) {
    let mut conn: Option<Conn> = None;
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.take() {
            Some(c) => c,
            None => {
                let tcp = match TcpStream::connect(("127.0.0.1", port)) {
                    Ok(t) => t,
                    Err(e) => {
                        counts.fail(true, format!("connect: {e}"));
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let mut cfg = connector.configure().unwrap();
                cfg.set_verify(SslVerifyMode::PEER);
                match cfg.connect(host, tcp) {
                    Ok(s) => BufReader::new(s),
                    Err(e) => {
                        counts.fail(false, format!("handshake: {e}"));
                        continue;
                    }
                }
            }
        };
        let mut c = c;
        match get(&mut c, host, !reuse) {
            Ok(keep) => {
                counts.ok.fetch_add(1, Ordering::Relaxed);
                if reuse && !keep {
                    counts.closed_by_server.fetch_add(1, Ordering::Relaxed);
                }
                if keep && reuse {
                    conn = Some(c);
                }
            }
            Err(e) => counts.fail(false, e),
        }
    }
}

/// One request; `Ok(keep)`: a 200 with its whole body, and whether the
/// connection may carry another request.
fn get(c: &mut Conn, host: &str, close: bool) -> Result<bool, String> {
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: {}\r\n\r\n",
        if close { "close" } else { "keep-alive" }
    );
    c.get_mut()
        .write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut status = String::new();
    c.read_line(&mut status)
        .map_err(|e| format!("read status: {e}"))?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("status line {status:?}"));
    }
    let (mut len, mut keep) = (None, !close);
    loop {
        let mut line = String::new();
        if c.read_line(&mut line)
            .map_err(|e| format!("read head: {e}"))?
            == 0
        {
            return Err("closed inside the head".into());
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse::<usize>().ok();
        }
        if l.strip_prefix("connection:")
            .is_some_and(|v| v.split(',').any(|t| t.trim() == "close"))
        {
            keep = false;
        }
    }
    let len = len.ok_or("no Content-Length")?;
    let mut body = vec![0; len];
    c.read_exact(&mut body)
        .map_err(|e| format!("read body: {e}"))?;
    Ok(keep)
}
