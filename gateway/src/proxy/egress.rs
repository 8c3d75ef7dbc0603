//! Egress ports: what becomes of a host that no VirtualService route names.
//!
//! As in a mesh, a host a ServiceEntry registers reaches that entry's
//! endpoints (with its DestinationRule's TLS). Any other host is decided by
//! `outboundTrafficPolicy`: `REGISTRY_ONLY` refuses it (Istio's
//! `BlackHoleCluster`, here a 502 that says why), `ALLOW_ANY` forwards it
//! as DNS resolves it (`PassthroughCluster`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use crate::config::OutboundPolicy;
use crate::metrics::metrics;
use crate::route::{Destination, Registered};
use crate::runtime::Runtime;

/// Where an egress request goes.
#[derive(Debug)]
pub enum Outbound {
    /// A registered host's destination, or the passthrough to any host.
    Forward(Arc<Destination>),
    /// Refused by `REGISTRY_ONLY`; the text is the response body.
    Blocked(String),
}

/// `host` (lower case, no port) and `port` as the client asked for them.
pub fn decide(rt: &Runtime, host: &str, port: u16) -> Outbound {
    let refusal = match rt.routes.registered(&rt.model, host, port) {
        Registered::Destination(d) => return Outbound::Forward(d),
        Registered::Refused(why) => why,
        Registered::Unknown => format!("host '{host}' is not registered by any ServiceEntry"),
    };
    let label = host_label(host);
    match rt.model.runtime.outbound_policy {
        OutboundPolicy::AllowAny => {
            metrics()
                .outbound_passthrough
                .with_label_values(&[&label])
                .inc();
            tracing::debug!(host, port, "outbound passthrough (ALLOW_ANY)");
            Outbound::Forward(Arc::new(Destination::passthrough(host, port)))
        }
        OutboundPolicy::RegistryOnly => {
            metrics()
                .outbound_blocked
                .with_label_values(&[&label])
                .inc();
            tracing::warn!(
                host,
                port,
                policy = "REGISTRY_ONLY",
                reason = %refusal,
                "outbound request blocked"
            );
            Outbound::Blocked(format!(
                "{host}:{port} blocked by outboundTrafficPolicy REGISTRY_ONLY: {refusal}\n"
            ))
        }
    }
}

/// Would a connection to `addr` come back to the listener at `local`?
/// `ALLOW_ANY` lets a client name any host, the gateway's own port included,
/// and each hop would open another connection to itself.
pub fn loops_back(addr: SocketAddr, local: Option<SocketAddr>) -> bool {
    let Some(local) = local else {
        return false;
    };
    let (a, l) = (addr.ip(), local.ip());
    addr.port() == local.port()
        && (a == l || l.is_unspecified() || (a.is_loopback() && l.is_loopback()))
}

/// Most distinct host label values; later hosts count as `other`.
const HOST_LABELS: usize = 1000;

/// `host` as a metric label. Hosts here are chosen by clients, so each new
/// one would be a new time series: the first [`HOST_LABELS`] are kept, the
/// rest share the label `other`.
pub fn host_label(host: &str) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let seen = SEEN.get_or_init(|| Mutex::new(HashSet::new()));
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    capped(&mut seen, host, HOST_LABELS)
}

fn capped(seen: &mut HashSet<String>, host: &str, cap: usize) -> String {
    if seen.contains(host) {
        return host.to_string();
    }
    if seen.len() < cap {
        seen.insert(host.to_string());
        return host.to_string();
    }
    "other".to_string()
}

/// The port a request names (`Host: h:8080`, `http://h:8080/`), else the
/// scheme's default: 80, or 443 for an `https://` absolute URI.
pub fn request_port(req: &pingora_http::RequestHeader) -> u16 {
    let from_authority = req.uri.authority().and_then(|a| a.port_u16());
    let from_host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .and_then(|a| a.port_u16());
    from_authority.or(from_host).unwrap_or_else(|| {
        // Pingora keeps an absolute-form target's scheme in the raw bytes.
        if req.uri.scheme_str() == Some("https") || req.raw_path().starts_with(b"https://") {
            443
        } else {
            80
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_labels_are_capped() {
        let mut seen = HashSet::new();
        assert_eq!(capped(&mut seen, "a.test", 2), "a.test");
        assert_eq!(capped(&mut seen, "b.test", 2), "b.test");
        assert_eq!(capped(&mut seen, "c.test", 2), "other");
        assert_eq!(capped(&mut seen, "a.test", 2), "a.test", "known hosts stay");
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn loops_are_recognised() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(loops_back(a("127.0.0.1:8080"), Some(a("127.0.0.1:8080"))));
        assert!(loops_back(a("127.0.0.2:8080"), Some(a("127.0.0.1:8080"))));
        assert!(loops_back(a("10.0.0.1:8080"), Some(a("0.0.0.0:8080"))));
        assert!(!loops_back(a("127.0.0.1:8081"), Some(a("127.0.0.1:8080"))));
        assert!(!loops_back(a("10.0.0.1:8080"), Some(a("127.0.0.1:8080"))));
        assert!(!loops_back(a("127.0.0.1:8080"), None));
    }

    #[test]
    fn ports_from_uri_host_or_scheme() {
        let req = |uri: &str, host: Option<&str>| {
            let mut r = pingora_http::RequestHeader::build("GET", b"/", None).unwrap();
            r.set_uri(uri.parse().unwrap());
            if let Some(h) = host {
                r.insert_header("host", h).unwrap();
            }
            r
        };
        assert_eq!(request_port(&req("/", Some("a.test"))), 80);
        assert_eq!(request_port(&req("/", Some("localhost:8081"))), 8081);
        assert_eq!(
            request_port(&req("http://a.test:81/x", Some("a.test:81"))),
            81
        );
        assert_eq!(request_port(&req("https://a.test/x", None)), 443);
        assert_eq!(request_port(&req("a.test:8443", Some("a.test:8443"))), 8443);
    }
}
