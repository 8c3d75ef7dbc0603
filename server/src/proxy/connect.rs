//! `CONNECT host:port` on an egress port: a TCP tunnel to a registered host
//! (or to any host with `ALLOW_ANY`), the way HTTPS clients use a forward
//! proxy. The bytes are the client's own TLS: nothing is originated here.
//!
//! Pingora 0.9 refuses CONNECT with a 405 before any filter runs unless the
//! service's `HttpServerOptions::allow_connect_method_proxying` is set
//! ([`server_options`]), and even then it has no tunnel: a CONNECT request
//! is an HTTP/1 message without a body. So the filter takes the connection
//! out of the session: the session is swapped for a stand-in holding a copy
//! of the request (so Pingora's logging and finish steps still have a
//! request), and the real one is finished as a keep-alive with pipelining
//! on, which hands back the stream plus any bytes the client sent early.

use std::io::Cursor;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pingora::apps::HttpServerOptions;
use pingora::protocols::http::ServerSession as HttpSession;
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::Session;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;

use super::egress;
use super::failure::{Failure, Reason};
use super::{respond, Ctx};
use crate::decide::Action;
use crate::dns;

/// Time to open the TCP connection of a tunnel.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the proxy service must be built with for CONNECT to reach the
/// filters at all (see the module doc).
pub fn server_options() -> HttpServerOptions {
    let mut o = HttpServerOptions::default();
    o.allow_connect_method_proxying = true;
    o
}

/// Opens the tunnel the decision (`Action::Tunnel`, in `ctx`) says; always
/// writes the response itself.
pub async fn handle(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let wait = ctx.rt.model.runtime.timeouts.upstream_pending;
    let Some(Action::Tunnel(to)) = ctx.decision.as_mut().map(|d| &mut d.action) else {
        respond::text(session, 500, "CONNECT could not be set up\n").await?;
        return Ok(true);
    };
    // A tunnel holds its place under the destination's connectionPool
    // limits (in `ctx`) for as long as it is open.
    if let Err(why) = to.ready(wait).await {
        let dest = to.dest.clone();
        let body = super::admit::overflow(&dest, why);
        if let Some(d) = ctx.decision.as_mut() {
            d.action = Action::Overflow { dest, why };
        }
        respond::text(session, 503, &body).await?;
        return Ok(true);
    }
    let (dest, ep) = (to.dest.clone(), to.endpoint.endpoint().clone());
    let host = ctx.host().to_string();
    let local = session.server_addr().and_then(|a| a.as_inet()).copied();
    let admin = ctx.rt.model.runtime.admin;
    let connect_timeout = dest.connect_timeout().unwrap_or(CONNECT_TIMEOUT);
    let upstream = match open(&ep.host, ep.port, local, admin, connect_timeout).await {
        Ok((addr, stream)) => {
            ctx.upstream = Some(addr.to_string());
            stream
        }
        Err(f) => {
            ctx.failure = Some(f.clone());
            let e = Error::explain(ErrorType::ConnectError, f.detail.clone());
            f.record(&dest.name, &ep.to_string(), &host, &e);
            respond::text(session, f.reason.status(), &f.body(&dest.name)).await?;
            return Ok(true);
        }
    };
    let Some(stand_in) = stand_in(session).await else {
        respond::text(session, 500, "CONNECT could not be set up\n").await?;
        return Ok(true);
    };
    let Some((downstream, early)) = take_stream(session, stand_in).await else {
        tracing::warn!(
            host,
            "CONNECT: the client connection could not be taken over"
        );
        return Ok(true);
    };
    ctx.status_override = Some(200);
    let started = Instant::now();
    let (up, down) = tunnel(downstream, early, upstream).await;
    tracing::debug!(
        host,
        bytes_up = up,
        bytes_down = down,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "CONNECT tunnel closed"
    );
    Ok(true)
}

/// TCP connection to `host:port`, resolved through the DNS cache; never
/// to the listener at `local` itself.
pub(crate) async fn open(
    host: &str,
    port: u16,
    local: Option<SocketAddr>,
    admin: SocketAddr,
    timeout: Duration,
) -> Result<(SocketAddr, TcpStream), Failure> {
    let addr = dns::cache()
        .resolve(host, port)
        .await
        .map_err(|e| Failure::new(Reason::Dns, e.to_string()))?;
    if egress::loops_back(addr, local, admin) {
        let detail = format!("{addr} is this gateway");
        return Err(Failure::new(Reason::Connect, detail));
    }
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok((addr, s))
        }
        Ok(Err(e)) => Err(Failure::new(Reason::Connect, format!("{addr}: {e}"))),
        Err(_) => Err(Failure::new(
            Reason::Connect,
            format!("{addr}: no answer within {timeout:?}"),
        )),
    }
}

type Stream = pingora::protocols::Stream;

/// Swaps the session's HTTP/1 connection for a stand-in and returns the
/// connection with the bytes the client already sent past the request.
async fn take_stream(
    session: &mut Session,
    stand_in: HttpSession,
) -> Option<(Stream, Option<BytesMut>)> {
    let mut real = std::mem::replace(&mut *session.downstream_session, stand_in);
    // Keep-alive with pipelining is what makes `finish` return the stream
    // and the over-read bytes instead of closing it.
    real.req_header_mut()
        .remove_header(&http::header::CONNECTION);
    real.set_keepalive(Some(60));
    real.set_keepalive_reuses_remaining(None);
    real.set_pipelining_enabled(true);
    match real.finish().await {
        Ok(Some(reusable)) => Some(reusable.into_parts()),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "CONNECT: finishing the request failed");
            None
        }
    }
}

/// A session over an in-memory copy of the CONNECT request, closed after it.
async fn stand_in(session: &Session) -> Option<HttpSession> {
    let target = String::from_utf8_lossy(session.req_header().raw_path()).into_owned();
    let head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    let io: Stream = Box::new(Cursor::new(head.into_bytes()));
    let mut s = HttpSession::new_http1(io);
    match s.read_request().await {
        Ok(true) => Some(s),
        _ => None,
    }
}

/// Writes the 200, then copies both ways until either side closes.
/// Returns the bytes sent upstream and downstream.
async fn tunnel(
    mut downstream: Stream,
    early: Option<BytesMut>,
    mut upstream: TcpStream,
) -> (u64, u64) {
    let established = b"HTTP/1.1 200 Connection established\r\n\r\n";
    if downstream.write_all(established).await.is_err() || downstream.flush().await.is_err() {
        return (0, 0);
    }
    let mut sent = 0u64;
    if let Some(early) = early.filter(|b| !b.is_empty()) {
        let mut w = BufWriter::new(&mut upstream);
        if w.write_all(&early).await.is_err() || w.flush().await.is_err() {
            return (0, 0);
        }
        sent = early.len() as u64;
    }
    match tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
        Ok((up, down)) => (sent + up, down),
        Err(e) => {
            tracing::debug!(error = %e, "CONNECT tunnel ended with an error");
            (sent, 0)
        }
    }
}
