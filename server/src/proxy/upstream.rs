//! From a chosen destination endpoint to Pingora's `HttpPeer`.

use std::net::SocketAddr;
use std::time::Duration;

use pingora::protocols::TcpKeepalive;
use pingora::upstreams::peer::{HttpPeer, HttpUpstreamRequestPolicy};

use crate::decide::Plan;
use crate::dns::{self, DnsError};
use crate::route::UpstreamAddr;

/// Connect timeout when the route sets none: Envoy's default.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `ep` as one address: an IP as is, a DNS name through the cache.
/// (Resolving here matters: `HttpPeer::new` would panic on a failure.)
pub async fn resolve(ep: &UpstreamAddr) -> Result<SocketAddr, DnsError> {
    dns::cache().resolve(&ep.host, ep.port).await
}

/// The peer for one attempt of `plan` at `addr`: its upstream TLS, its
/// per-try timeout (none but the connect timeout for egress requests no
/// VirtualService routes), and h2 for ports declared `HTTP2`/`GRPC`.
pub fn peer(addr: SocketAddr, plan: &Plan) -> Box<HttpPeer> {
    let mut peer = match &plan.origination {
        Some(t) => {
            let mut p = HttpPeer::new(addr, true, t.sni.clone());
            t.apply(&mut p);
            p
        }
        None => HttpPeer::new(addr, false, String::new()),
    };
    let per_try = plan.timeout;
    let o = &mut peer.options;
    // The decision's edits already dropped hop-by-hop and `Connection`
    // headers and normalized a WebSocket upgrade; Pingora must not edit the
    // request again, or its engine would send other bytes than the direct
    // path does.
    o.http_upstream_request_policy = HttpUpstreamRequestPolicy::preserve();
    // `connectionPool.tcp.connectTimeout`, never longer than one try.
    let connect = plan
        .dest()
        .connect_timeout()
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    o.connection_timeout = Some(per_try.map_or(connect, |t| t.min(connect)));
    if let Some(pool) = &plan.dest().pool {
        // Pingora's pool: a connection idle longer is closed, and one that
        // may serve only one request is never kept.
        o.idle_timeout = match (pool.max_requests_per_connection, pool.idle_timeout) {
            (Some(1), _) => Some(Duration::ZERO),
            (_, t) => t,
        };
        o.tcp_keepalive = pool.tcp_keepalive.map(|k| TcpKeepalive {
            idle: k.time.unwrap_or(Duration::from_secs(7200)),
            interval: k.interval.unwrap_or(Duration::from_secs(75)),
            count: k.probes.map_or(9, |p| p as usize),
            #[cfg(target_os = "linux")]
            user_timeout: Duration::ZERO,
        });
    }
    o.read_timeout = per_try;
    o.write_timeout = per_try;
    if plan.dest().h2 {
        // h2 to the backend: ALPN h2 over TLS, prior knowledge in plain
        // text, as Envoy does for ports declared HTTP2/GRPC. Otherwise ALPN
        // stays Pingora's default, http/1.1 only.
        o.set_http_version(2, 2);
    }
    Box::new(peer)
}
