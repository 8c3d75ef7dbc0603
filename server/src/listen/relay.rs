//! Executes a [`StreamPlan`]: a connection relayed byte for byte to its
//! destination (TLS passthrough, a TCP route, or a terminated TLS stream).
//!
//! - Connect within the destination's `connectTimeout`, after a place
//!   under its `connectionPool` limits; a PROXY protocol header first when
//!   the destination asks for one.
//! - Each direction is copied on its own: one side's FIN is passed on as a
//!   FIN (a write shutdown) while the other direction keeps flowing;
//!   a reset or error on either side ends both.
//! - No byte either way for the plan's idle timeout closes both sides.
//! - One access-log line and one count per connection when it ends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::AccessLogFormat;
use crate::decide::connection::StreamPlan;
use crate::metrics::metrics;
use crate::proxy::{connect, egress, record};
use crate::route::Attempt;
use crate::runtime::Runtime;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per direction, as nginx's stream `proxy_buffer_size`.
const BUFFER: usize = 16 * 1024;

/// Who the relayed connection is for, as logs and headers say.
pub struct Peer<'a> {
    /// The client (a PROXY protocol header's, if one was believed).
    pub client: SocketAddr,
    /// What the client connected to (the header's destination, else the
    /// listener's local address).
    pub destination: SocketAddr,
    /// The listener's local address (never a loop target).
    pub local: SocketAddr,
    pub sni: Option<&'a str>,
    /// A verified client certificate's identity (terminated TLS).
    pub client_id: Option<String>,
}

/// Relays `client` under `plan` until either side ends it.
/// `rt` (the runtime that decided) is let go once connected: a long
/// relay must not pin an old configuration in memory.
pub async fn relay<S>(rt: Arc<Runtime>, mut plan: StreamPlan, client: S, peer: Peer<'_>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    // Counted when decided, as a request is: a relay may last hours.
    if let Some(v) = &plan.authz {
        record::count_authz(v);
    }
    let dest = plan.to.dest.clone();
    let wait = rt.model.runtime.timeouts.upstream_pending;
    let admin = rt.model.runtime.admin;
    let log = Logged {
        format: rt.model.runtime.access_log,
        generation: rt.generation,
    };
    drop(rt);
    let mut upstream_addr = None;
    let mut bytes = (0, 0);
    let result = match plan.to.ready(wait).await {
        Err(_) => "overflow",
        Ok(()) => {
            let ep = plan.to.endpoint.endpoint().clone();
            let idx = plan.to.endpoint.index();
            let timeout = dest.connect_timeout().unwrap_or(CONNECT_TIMEOUT);
            match connect::open(&ep.host, ep.port, Some(peer.local), admin, timeout).await {
                Err(f) => {
                    // A name that does not resolve says nothing of the
                    // endpoint's health.
                    if f.reason != crate::proxy::failure::Reason::Dns {
                        record::attempt(&dest, idx, Attempt::Failed);
                    }
                    tracing::debug!(destination = %dest.name, error = %f.detail, "relay: connect failed");
                    "connect_failed"
                }
                Ok((addr, mut up)) => {
                    // A stream has no status: a connect is its success.
                    record::attempt(&dest, idx, Attempt::Status(200));
                    upstream_addr = Some(addr);
                    let header = plan.proxy_protocol.map(|v| {
                        crate::l4::proxy_protocol::encode(v, peer.client, peer.destination)
                    });
                    let sent = match header {
                        Some(h) => up.write_all(&h).await.is_ok(),
                        None => true,
                    };
                    if sent {
                        let (r, b) = pipe(client, up, plan.idle, plan.half_closed).await;
                        bytes = b;
                        r
                    } else {
                        "upstream_closed"
                    }
                }
            }
        }
    };
    finish(&log, &plan, &peer, upstream_addr, result, bytes, start);
}

/// What the access line needs of the deciding runtime.
struct Logged {
    format: AccessLogFormat,
    generation: u64,
}

fn finish(
    log: &Logged,
    plan: &StreamPlan,
    peer: &Peer<'_>,
    upstream: Option<SocketAddr>,
    result: &'static str,
    (bytes_in, bytes_out): (u64, u64),
    start: Instant,
) {
    let m = metrics();
    let dest = &*plan.to.dest.name;
    let server = &*plan.server;
    // Client-chosen names under a wildcard route: capped like hosts.
    let sni = egress::host_label(peer.sni.unwrap_or(record::LABEL_NONE));
    m.tcp_connections
        .with_label_values(&[server, &sni, dest, result])
        .inc();
    m.tcp_bytes
        .with_label_values(&[server, dest, "in"])
        .inc_by(bytes_in);
    m.tcp_bytes
        .with_label_values(&[server, dest, "out"])
        .inc_by(bytes_out);
    let elapsed = start.elapsed();
    m.tcp_duration
        .with_label_values(&[server, dest])
        .observe(elapsed.as_secs_f64());
    if log.format == AccessLogFormat::Off {
        return;
    }
    tracing::info!(
        target: "access",
        kind = "tcp",
        server,
        client = %peer.client,
        sni = peer.sni.unwrap_or(""),
        "client.id" = peer.client_id.as_deref().unwrap_or(""),
        route = &*plan.route.id,
        destination = dest,
        upstream = %upstream.map_or_else(|| record::LABEL_NONE.to_string(), |a| a.to_string()),
        result,
        authz = plan.authz.as_ref().map(|v| v.decided_by()),
        authz_audit = plan
            .authz
            .as_ref()
            .and_then(|v| v.audit.as_ref())
            .map(|(p, r)| format!("{p}[{r}]")),
        bytes_in,
        bytes_out,
        duration_ms = %format_args!("{:.3}", elapsed.as_secs_f64() * 1000.0),
        generation = log.generation,
    );
}

/// Copies both ways until both sides are done, either fails, or nothing
/// moves for `idle` (`half_closed` once one side has closed). Returns the
/// result label and the bytes from and to the client.
async fn pipe<S>(
    client: S,
    upstream: tokio::net::TcpStream,
    idle: Duration,
    half_closed: Duration,
) -> (&'static str, (u64, u64))
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let origin = Instant::now();
    let last = AtomicU64::new(0);
    let closed = AtomicBool::new(false);
    let (bytes_in, bytes_out) = (AtomicU64::new(0), AtomicU64::new(0));
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = upstream.into_split();
    let marks = Marks {
        last: &last,
        closed: &closed,
        origin,
    };
    let up = copy(&mut cr, &mut uw, &bytes_in, &marks);
    let down = copy(&mut ur, &mut cw, &bytes_out, &marks);
    let result = tokio::select! {
        r = async { tokio::try_join!(up, down) } => match r {
            Ok(_) => "done",
            Err(_) => "reset",
        },
        phase = marks.quiet(idle, half_closed) => {
            metrics().timeouts.with_label_values(&[phase]).inc();
            if phase == "tcp_idle" { "idle_timeout" } else { "half_closed_timeout" }
        }
    };
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    (result, (n(&bytes_in), n(&bytes_out)))
}

/// When bytes last moved, and whether a side has closed.
struct Marks<'a> {
    last: &'a AtomicU64,
    closed: &'a AtomicBool,
    origin: Instant,
}

impl Marks<'_> {
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn moved(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
    }

    /// Returns the phase whose deadline passed: `tcp_idle`, or
    /// `tcp_half_closed` once a side has closed.
    async fn quiet(&self, idle: Duration, half_closed: Duration) -> &'static str {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (idle, half) = (ms(idle), ms(half_closed).min(ms(idle)));
        loop {
            let since = self.now().saturating_sub(self.last.load(Ordering::Relaxed));
            let closed = self.closed.load(Ordering::Relaxed);
            let limit = if closed { half } else { idle };
            if since >= limit {
                return if closed {
                    "tcp_half_closed"
                } else {
                    "tcp_idle"
                };
            }
            // Wake at least every `half` to notice a side closing.
            tokio::time::sleep(Duration::from_millis((limit - since).min(half.max(1)))).await;
        }
    }
}

async fn copy<R, W>(
    r: &mut R,
    w: &mut W,
    count: &AtomicU64,
    marks: &Marks<'_>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            // Half-close: the other direction keeps flowing, for at most
            // `half_closed` without a byte.
            marks.closed.store(true, Ordering::Relaxed);
            marks.moved();
            return w.shutdown().await;
        }
        w.write_all(&buf[..n]).await?;
        w.flush().await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        marks.moved();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A relay between an in-memory client and a real loopback upstream
    /// that never closes: which deadline ends it, and when.
    async fn relay_until_quiet(client_closes: bool) -> (&'static str, Duration) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        let upstream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _server_side = held.await.unwrap().unwrap();
        let (ours, mut theirs) = tokio::io::duplex(1024);
        if client_closes {
            theirs.write_all(b"bye").await.unwrap();
            theirs.shutdown().await.unwrap();
        }
        let started = Instant::now();
        let idle = Duration::from_millis(1500);
        let half = Duration::from_millis(200);
        let (result, _) = pipe(ours, upstream, idle, half).await;
        (result, started.elapsed())
    }

    #[tokio::test]
    async fn a_half_closed_relay_ends_sooner_than_an_idle_one() {
        let (result, took) = relay_until_quiet(true).await;
        assert_eq!(result, "half_closed_timeout");
        assert!(took < Duration::from_millis(1000), "{took:?}");
        let (result, took) = relay_until_quiet(false).await;
        assert_eq!(result, "idle_timeout");
        assert!(took >= Duration::from_millis(1400), "{took:?}");
    }
}
