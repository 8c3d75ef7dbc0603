//! From a chosen destination endpoint to Pingora's `HttpPeer`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, OrErr, Result};

use crate::config::{ClientTlsMode, HttpRoute};
use crate::route::{Destination, UpstreamAddr};

/// Connect timeout when the route sets none: Envoy's default.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves `ep` (an IP, or a DNS name resolved now) to one address.
pub async fn resolve(ep: &UpstreamAddr) -> Result<SocketAddr> {
    if let Ok(ip) = ep.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, ep.port));
    }
    let mut addrs = tokio::net::lookup_host((ep.host.as_str(), ep.port))
        .await
        .or_err_with(ErrorType::ConnectNoRoute, || {
            format!("cannot resolve upstream host '{}'", ep.host)
        })?;
    addrs.next().ok_or_else(|| {
        Error::explain(
            ErrorType::ConnectNoRoute,
            format!("upstream host '{}' has no address", ep.host),
        )
    })
}

pub fn peer(addr: SocketAddr, dest: &Destination, route: &HttpRoute) -> Result<Box<HttpPeer>> {
    if let Some(tls) = &dest.tls {
        if tls.mode != ClientTlsMode::Disable {
            return Error::e_explain(
                ErrorType::InternalError,
                format!(
                    "destination {}: TLS origination is not supported yet",
                    dest.name
                ),
            );
        }
    }
    let mut peer = HttpPeer::new(addr, false, String::new());
    let per_try = route
        .retries
        .and_then(|r| r.per_try_timeout)
        .or(route.timeout);
    let o = &mut peer.options;
    o.connection_timeout =
        Some(per_try.map_or(DEFAULT_CONNECT_TIMEOUT, |t| t.min(DEFAULT_CONNECT_TIMEOUT)));
    o.read_timeout = per_try;
    o.write_timeout = per_try;
    if dest.h2 {
        // Plain-text h2 to the backend (prior knowledge), as Envoy does for
        // ports declared HTTP2/GRPC.
        o.set_http_version(2, 2);
    }
    Ok(Box::new(peer))
}
