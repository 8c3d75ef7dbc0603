//! Good clients: while an attack runs, one thread per host sends a GET
//! every ~100 ms over a NEW TLS connection (HTTP/1.1, `Connection: close`),
//! to the SIMPLE host without a certificate and to the MUTUAL host with
//! great-partner's. [`GoodClients::stop`] reports how they fared.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openssl::ssl::SslConnector;

use super::tls::{self, TlsOpts};
use crate::scenario::{FRONTEND_HOST, PARTNER_HOST};

/// Time between two requests of one client.
const PERIOD: Duration = Duration::from_millis(100);
/// A request taking longer than this fails (and counts as a failure).
const TIMEOUT: Duration = Duration::from_secs(3);

/// What one client saw.
#[derive(Debug, Clone, Default)]
pub struct HostReport {
    pub host: String,
    pub ok: usize,
    pub failures: usize,
    pub max_latency: Duration,
    /// The first few failures, with when they happened.
    pub errors: Vec<String>,
}

/// What all clients saw.
#[derive(Debug, Clone, Default)]
pub struct GoodReport {
    pub hosts: Vec<HostReport>,
}

impl GoodReport {
    pub fn failures(&self) -> usize {
        self.hosts.iter().map(|h| h.failures).sum()
    }

    pub fn max_latency(&self) -> Duration {
        self.hosts
            .iter()
            .map(|h| h.max_latency)
            .max()
            .unwrap_or_default()
    }

    /// Every client got at least `min_ok` answers, all 200, none slower
    /// than `max_latency`; the reason otherwise.
    pub fn check(&self, min_ok: usize, max_latency: Duration) -> Result<(), String> {
        for h in &self.hosts {
            if h.failures > 0 || h.ok < min_ok || h.max_latency >= max_latency {
                return Err(format!("good clients suffered: {self}"));
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for GoodReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for h in &self.hosts {
            write!(
                f,
                "[{}: {} ok, {} failed, max {:?}{}] ",
                h.host,
                h.ok,
                h.failures,
                h.max_latency,
                if h.errors.is_empty() {
                    String::new()
                } else {
                    format!("; first errors: {}", h.errors.join(" | "))
                }
            )?;
        }
        Ok(())
    }
}

/// Background clients of both hosts; stop them with [`GoodClients::stop`].
pub struct GoodClients {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<HostReport>>,
}

impl GoodClients {
    /// Start one client per host against 127.0.0.1:`port`.
    pub fn start(port: u16) -> GoodClients {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = [(FRONTEND_HOST, None), (PARTNER_HOST, Some("great-partner"))]
            .into_iter()
            .map(|(host, client)| {
                let stop = stop.clone();
                let opts = TlsOpts {
                    client,
                    ..TlsOpts::default()
                };
                let connector = tls::connector(&opts).expect("good client connector");
                std::thread::Builder::new()
                    .name(format!("good-{host}"))
                    .spawn(move || run(port, host, &connector, &stop))
                    .expect("spawn good client")
            })
            .collect();
        GoodClients { stop, threads }
    }

    /// Stop and report.
    pub fn stop(self) -> GoodReport {
        self.stop.store(true, Ordering::SeqCst);
        GoodReport {
            hosts: self
                .threads
                .into_iter()
                .map(|t| t.join().expect("good client thread"))
                .collect(),
        }
    }
}

/// Requests each host makes at least, even when stopped early...
const MIN_REQUESTS: usize = 2;
/// ...within this time from the start.
const MIN_RUN_CAP: Duration = Duration::from_secs(5);

fn run(port: u16, host: &str, connector: &SslConnector, stop: &AtomicBool) -> HostReport {
    let started = Instant::now();
    let mut r = HostReport {
        host: host.to_string(),
        ..HostReport::default()
    };
    // A short attack still sees a couple of requests per host, so that the
    // report's minimum count measures the gateway, not the machine's load.
    let enough = |r: &HostReport| r.ok + r.failures >= MIN_REQUESTS;
    while !stop.load(Ordering::SeqCst) || (!enough(&r) && started.elapsed() < MIN_RUN_CAP) {
        let t = Instant::now();
        let result = get(port, host, connector);
        let took = t.elapsed();
        r.max_latency = r.max_latency.max(took);
        match result {
            Ok(()) => r.ok += 1,
            Err(e) => {
                r.failures += 1;
                if r.errors.len() < 5 {
                    r.errors
                        .push(format!("at {:?}: {e}", t.duration_since(started)));
                }
            }
        }
        std::thread::sleep(PERIOD.saturating_sub(took));
    }
    r
}

/// One GET on a new connection: a 200 with the whole body, within TIMEOUT.
fn get(port: u16, host: &str, connector: &SslConnector) -> Result<(), String> {
    let tcp = tls::tcp(port, TIMEOUT)?;
    let mut s = connector
        .connect(host, tcp)
        .map_err(|e| format!("handshake: {e}"))?;
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: good-client\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut resp = Vec::new();
    // Connection: close: the answer ends with the connection.
    match s.read_to_end(&mut resp) {
        Ok(_) => {}
        Err(e) if !resp.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => return Err(format!("read: {e} after {} bytes", resp.len())),
    }
    let text = String::from_utf8_lossy(&resp);
    let status = text.split_whitespace().nth(1).unwrap_or("none");
    if status != "200" {
        let first = text.lines().next().unwrap_or_default();
        return Err(format!("status {status}: {first:?}"));
    }
    let body_at = text.find("\r\n\r\n").map(|i| i + 4).unwrap_or(text.len());
    let declared = text[..body_at]
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(n) if resp.len() - body_at < n => {
            Err(format!("body cut: {} of {n}", resp.len() - body_at))
        }
        _ => Ok(()),
    }
}
