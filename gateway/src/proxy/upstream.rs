//! From a chosen destination endpoint to Pingora's `HttpPeer`.

use std::net::SocketAddr;
use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;

use super::origination::Origination;
use crate::config::HttpRoute;
use crate::dns::{self, DnsError};
use crate::route::{Destination, UpstreamAddr};

/// Connect timeout when the route sets none: Envoy's default.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `ep` as one address: an IP as is, a DNS name through the cache.
/// (Resolving here matters: `HttpPeer::new` would panic on a failure.)
pub async fn resolve(ep: &UpstreamAddr) -> Result<SocketAddr, DnsError> {
    dns::cache().resolve(&ep.host, ep.port).await
}

/// The read and write timeout of one attempt: the retry policy's
/// `perTryTimeout`, else the route's `timeout`.
pub fn per_try_timeout(route: Option<&HttpRoute>) -> Option<Duration> {
    route.and_then(|r| r.retries.and_then(|r| r.per_try_timeout).or(r.timeout))
}

/// The peer for one attempt. `route` is `None` for egress requests that no
/// VirtualService routes (registered hosts, passthrough): no timeouts then
/// but the connect timeout. `tls` is the destination's origination.
pub fn peer(
    addr: SocketAddr,
    dest: &Destination,
    route: Option<&HttpRoute>,
    tls: Option<&Origination>,
) -> Box<HttpPeer> {
    let mut peer = match tls {
        Some(t) => {
            let mut p = HttpPeer::new(addr, true, t.sni.clone());
            t.apply(&mut p);
            p
        }
        None => HttpPeer::new(addr, false, String::new()),
    };
    let per_try = per_try_timeout(route);
    let o = &mut peer.options;
    o.connection_timeout =
        Some(per_try.map_or(DEFAULT_CONNECT_TIMEOUT, |t| t.min(DEFAULT_CONNECT_TIMEOUT)));
    o.read_timeout = per_try;
    o.write_timeout = per_try;
    if dest.h2 {
        // h2 to the backend: ALPN h2 over TLS, prior knowledge in plain
        // text, as Envoy does for ports declared HTTP2/GRPC. Otherwise ALPN
        // stays Pingora's default, http/1.1 only.
        o.set_http_version(2, 2);
    }
    Box::new(peer)
}
