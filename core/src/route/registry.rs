//! ServiceEntry hosts as destinations of their own, for egress ports.
//!
//! In Istio every ServiceEntry host and port is an outbound cluster, so a
//! registered host reaches its endpoints (with its DestinationRule's TLS)
//! even when no VirtualService routes it; that is what an egress port does
//! with a Host no route names, and where a `CONNECT host:port` tunnels to.
//! Exact hosts are resolved once at compile time, sharing balancing state
//! with the routes naming the same host and port; `*.suffix` hosts can only
//! be resolved per request host, on first use, and are kept (bounded) so
//! that their balancing and limits last.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::config::{ConfigError, Model, WeightedDestination};

use super::resolve::Resolver;
use super::Destination;

/// What the ServiceEntries say about one `host:port`.
#[derive(Debug)]
pub enum Registered {
    Destination(Arc<Destination>),
    /// A ServiceEntry names the host but cannot serve this port; the text
    /// says why, for the response body.
    Refused(String),
    /// No ServiceEntry names the host.
    Unknown,
}

#[derive(Debug, Default)]
pub(super) struct Registry {
    /// host → port → destination (two levels, so a lookup borrows the host).
    exact: HashMap<String, HashMap<u16, Arc<Destination>>>,
    /// Exact host -> its declared ports, for refusals.
    ports: HashMap<String, BTreeSet<u16>>,
    /// Some ServiceEntry host is a wildcard: resolve unknown hosts per request.
    wildcards: bool,
    /// Hosts resolved through a wildcard entry, kept so that their
    /// balancing, connectionPool and outlier state last beyond one request.
    /// Bounded: hosts under a `*` are the client's choice.
    resolved: Mutex<HashMap<(String, u16), Arc<Destination>>>,
}

/// Most wildcard-resolved `host:port` kept at once; past it, those no
/// request holds are let go, and a new host is served uncached (its limits
/// then count per request) until there is room.
const MAX_RESOLVED: usize = 1024;

impl Registry {
    pub fn compile(
        model: &Model,
        resolver: &mut Resolver<'_>,
        errors: &mut Vec<ConfigError>,
    ) -> Registry {
        let mut reg = Registry::default();
        for se in &model.service_entries {
            for (i, host) in se.hosts.iter().enumerate() {
                if host.starts_with('*') {
                    reg.wildcards = true;
                    continue;
                }
                for sp in &se.ports {
                    let d = registered(host, sp.number);
                    match resolver.resolve(&d, &se.id, &format!("spec.hosts[{i}]")) {
                        Ok(dest) => {
                            reg.exact
                                .entry(host.clone())
                                .or_default()
                                .insert(sp.number, dest);
                            reg.ports.entry(host.clone()).or_default().insert(sp.number);
                        }
                        Err(e) => errors.push(e),
                    }
                }
                reg.ports.entry(host.clone()).or_default();
            }
        }
        reg
    }

    /// `host` is lower case without a port.
    pub fn lookup(&self, model: &Model, host: &str, port: u16) -> Registered {
        if let Some(d) = self.exact.get(host).and_then(|ports| ports.get(&port)) {
            return Registered::Destination(d.clone());
        }
        if let Some(ports) = self.ports.get(host) {
            return Registered::Refused(undeclared(host, port, ports));
        }
        if !self.wildcards {
            return Registered::Unknown;
        }
        let pattern = model
            .service_entries
            .iter()
            .flat_map(|se| se.hosts.iter().map(move |h| (se, h)))
            .filter(|(_, h)| h.starts_with('*') && crate::names::pattern_matches(h, host))
            .max_by_key(|(_, h)| h.len());
        let Some((se, pattern)) = pattern else {
            return Registered::Unknown;
        };
        let key = (host.to_string(), port);
        let cached = self
            .resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(d) = cached {
            return Registered::Destination(d);
        }
        // Resolved outside the lock: other hosts are not held up by it.
        // (The resolver, and its reference to the result, is gone after this.)
        let resolved = Resolver::new(model).resolve(&registered(host, port), &se.id, "spec.hosts");
        match resolved {
            Ok(mut d) => {
                // Named by the pattern, so metrics labels stay bounded.
                if let Some(only) = Arc::get_mut(&mut d) {
                    only.name = format!("{pattern}:{port}").into();
                }
                let mut cache = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= MAX_RESOLVED {
                    // Only destinations no request holds go: the limits of
                    // those in use stay counted.
                    cache.retain(|_, d| Arc::strong_count(d) > 1);
                }
                if cache.len() < MAX_RESOLVED {
                    // Another request may have resolved it meanwhile: one wins.
                    let d = cache.entry(key).or_insert(d).clone();
                    return Registered::Destination(d);
                }
                Registered::Destination(d)
            }
            Err(ConfigError::Field { message, .. } | ConfigError::File { message, .. }) => {
                Registered::Refused(message)
            }
        }
    }
}

fn registered(host: &str, port: u16) -> WeightedDestination {
    WeightedDestination {
        host: host.to_string(),
        subset: None,
        port: Some(port),
        weight: 100,
    }
}

fn undeclared(host: &str, port: u16, ports: &BTreeSet<u16>) -> String {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!(
        "port {port} of host '{host}' is not declared by its ServiceEntry (ports: {})",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{addr, endpoint, model, se};
    use super::super::RouteTable;
    use super::*;
    use crate::config::Resolution;

    fn dest(t: &RouteTable, m: &Model, host: &str, port: u16) -> Arc<Destination> {
        match t.registered(m, host, port) {
            Registered::Destination(d) => d,
            other => panic!("{host}:{port}: {other:?}"),
        }
    }

    #[test]
    fn exact_hosts_resolve_to_their_endpoints_with_target_port() {
        let mut m = model();
        let mut s = se(
            "greeting.remote.com",
            &[(443, "https", "HTTPS", Some(9443))],
            Resolution::Static,
        );
        s.endpoints = vec![endpoint("127.0.0.1", &[], &[])];
        m.service_entries.push(s);
        let t = RouteTable::compile(&m).unwrap();
        let d = dest(&t, &m, "greeting.remote.com", 443);
        assert_eq!(d.endpoints, vec![addr("127.0.0.1", 9443)]);
        assert!(Arc::ptr_eq(&d, &dest(&t, &m, "greeting.remote.com", 443)));
        match t.registered(&m, "greeting.remote.com", 80) {
            Registered::Refused(msg) => assert!(msg.contains("ports: 443"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t.registered(&m, "other.com", 443),
            Registered::Unknown
        ));
    }

    #[test]
    fn wildcard_hosts_resolve_per_request_host() {
        let mut m = model();
        m.service_entries.push(se(
            "*.example.com",
            &[(80, "http", "HTTP", None)],
            Resolution::Dns,
        ));
        let t = RouteTable::compile(&m).unwrap();
        let d = dest(&t, &m, "api.example.com", 80);
        assert_eq!(d.endpoints, vec![addr("api.example.com", 80)]);
        assert_eq!(&*d.name, "*.example.com:80");
        assert!(matches!(
            t.registered(&m, "api.example.com", 81),
            Registered::Refused(_)
        ));
        assert!(matches!(
            t.registered(&m, "example.com", 80),
            Registered::Unknown
        ));
    }
}
