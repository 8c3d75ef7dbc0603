//! Routing: the validated [`Model`](crate::config::Model) compiled into one
//! immutable table, so a request is routed with a hash lookup, a short
//! suffix scan and the route matches, without allocating.
//!
//! Compilation (`compile.rs`) follows Istio's gateway translation:
//! 1. a VirtualService binds to a Gateway that its `gateways` names
//!    (`name` or `namespace/name`); an empty list means `mesh` only, so it
//!    is ignored here;
//! 2. for each bound server (HTTP or HTTPS; TLS passthrough servers carry no
//!    HTTP routes) each VirtualService host is intersected with the server
//!    hosts, and the narrower pattern becomes a virtual host on that port;
//! 3. a virtual host lists the routes of every VirtualService that produced
//!    it, VirtualServices in model order, routes in order;
//! 4. each destination is resolved once (`destination.rs`: ServiceEntry
//!    endpoints, DestinationRule subset, TLS and load balancing) and shared
//!    by every route naming it, so balancing state is per destination.
//!
//! At lookup the most specific virtual host wins (exact, then the longest
//! `*.suffix`, then `*`) and its first matching route answers; like Envoy,
//! a host never falls back to a less specific virtual host.

mod balance;
mod circuit;
mod compile;
mod destination;
mod host;
mod l4;
mod outlier;
mod registry;
mod resolve;
mod ring;
mod select;
#[cfg(test)]
mod testutil;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

pub use balance::{Balancer, InFlightGuard};
pub use circuit::{Admission, Circuit, Overflow};
pub use destination::{Destination, UpstreamAddr};
pub use l4::{SniDoor, StreamListener, StreamRoute, StreamServer};
pub use outlier::Attempt;
pub use registry::Registered;
pub use select::{CompiledRoute, HeaderSource};

use crate::config::Model;
use host::PortTable;
use registry::Registry;

/// Every HTTP route of one configuration generation. Immutable and shared
/// by all workers; balancing counters are atomics inside [`Destination`].
#[derive(Debug, Default)]
pub struct RouteTable {
    /// By the listener's bind address: servers on one port but different
    /// addresses (an internal egress listener, a public ingress one) never
    /// share routes.
    ports: HashMap<SocketAddr, PortTable>,
    registry: Registry,
    /// Every destination a route or an exact ServiceEntry host resolves to.
    destinations: Vec<Arc<Destination>>,
    /// Connection-level routes (passthrough, TCP), by listener address.
    streams: HashMap<SocketAddr, StreamListener>,
    /// The virtual hosts of each TLS-terminating server alone, by listener
    /// address and [`ServerId`]: on a TLS port a request is routed only by
    /// the server whose TLS policy owns its Host, as Istio gives each
    /// HTTPS server a route table of its own (another server's `*` must
    /// not catch a host the owner does not route).
    /// Listener, then gateway name, then server name: looked up by `&str`
    /// without building a key per request.
    by_server: HashMap<SocketAddr, ServerTables>,
}

/// A Gateway server: `(gateway name, server name)`, as `ServerPolicy`
/// names it.
pub type ServerId = (Arc<str>, Arc<str>);

/// One listener's TLS servers' route tables: by gateway, then server name.
type ServerTables = HashMap<Arc<str>, HashMap<Arc<str>, PortTable>>;

/// What [`RouteTable::lookup`] decided.
#[derive(Debug)]
pub enum Lookup<'a> {
    Route(&'a Arc<CompiledRoute>),
    /// The host is served by a plain-HTTP server with `httpsRedirect`:
    /// answer 301 to `https://<host><path>`.
    HttpsRedirect,
    /// No virtual host on that port matches the Host (404).
    NoHost,
    /// A virtual host matched but none of its routes did (404).
    NoRoute,
}

fn by_listener<T>(map: &HashMap<SocketAddr, T>, local: SocketAddr) -> Option<&T> {
    map.get(&local).or_else(|| {
        let any = match local.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        map.get(&SocketAddr::new(any, local.port()))
    })
}

impl RouteTable {
    /// The table of the listener that accepted a connection on `local` (its
    /// local address): the one bound to that address, else the one bound to
    /// the unspecified address on that port.
    fn table(&self, local: SocketAddr) -> Option<&PortTable> {
        by_listener(&self.ports, local)
    }

    /// The connection-level routes of the listener that took `local`.
    pub fn streams(&self, local: SocketAddr) -> Option<&StreamListener> {
        by_listener(&self.streams, local)
    }

    /// `local` is the connection's local address; `host` is lower case
    /// without a port; `path` may carry a query string, which uri matches
    /// ignore.
    pub fn lookup<'a, H: HeaderSource + ?Sized>(
        &'a self,
        local: SocketAddr,
        host: &str,
        path: &str,
        headers: &H,
    ) -> Lookup<'a> {
        Self::lookup_in(self.table(local), local.port(), host, path, headers)
    }

    /// [`RouteTable::lookup`] in the routes of one TLS server (`server`,
    /// the owner of the Host's TLS policy) of the listener at `local`.
    pub fn lookup_server<'a, H: HeaderSource + ?Sized>(
        &'a self,
        local: SocketAddr,
        (gateway, server): (&str, &str),
        host: &str,
        path: &str,
        headers: &H,
    ) -> Lookup<'a> {
        let table = by_listener(&self.by_server, local)
            .and_then(|g| g.get(gateway))
            .and_then(|s| s.get(server));
        Self::lookup_in(table, local.port(), host, path, headers)
    }

    fn lookup_in<'a, H: HeaderSource + ?Sized>(
        table: Option<&'a PortTable>,
        port: u16,
        host: &str,
        path: &str,
        headers: &H,
    ) -> Lookup<'a> {
        let Some(vhost) = table.and_then(|t| t.select(host)) else {
            return Lookup::NoHost;
        };
        if vhost.redirect {
            return Lookup::HttpsRedirect;
        }
        let uri = path.split_once('?').map_or(path, |(p, _)| p);
        vhost
            .routes
            .iter()
            .find(|r| r.matches(port, uri, headers))
            .map_or(Lookup::NoRoute, Lookup::Route)
    }

    /// Is `host` (lower case, no port) served by an egress server on
    /// `port`? Such a server forwards hosts no route names to their
    /// ServiceEntry, or as the outbound traffic policy says.
    pub fn is_egress(&self, local: SocketAddr, host: &str) -> bool {
        self.table(local)
            .is_some_and(|t| t.egress.iter().any(|p| p.matches(host)))
    }

    /// What the ServiceEntries of `model` (the model this table was
    /// compiled from) make of `host:port`.
    pub fn registered(&self, model: &Model, host: &str, port: u16) -> Registered {
        self.registry.lookup(model, host, port)
    }

    /// Every destination compiled (wildcard ServiceEntry hosts resolve per
    /// request and are not among them).
    pub fn destinations(&self) -> &[Arc<Destination>] {
        &self.destinations
    }

    /// Name of the first gateway server listening on `port` (for metrics
    /// labels on plain-HTTP listeners, where no TLS policy names one).
    pub fn server_name(&self, local: SocketAddr) -> Option<Arc<str>> {
        self.table(local).map(|t| t.server.clone())
    }

    /// Listeners (bind addresses) that carry HTTP routes, ascending.
    pub fn listeners(&self) -> Vec<SocketAddr> {
        let mut all: Vec<SocketAddr> = self.ports.keys().copied().collect();
        all.sort_unstable();
        all
    }

    /// One line per listener port, virtual host and route, for `tlsgate check`.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for addr in self.listeners() {
            // The port alone for listeners on every address, as written in
            // a Gateway without `bind`.
            let at = if addr.ip().is_unspecified() {
                addr.port().to_string()
            } else {
                addr.to_string()
            };
            for vhost in self.ports[&addr].entries() {
                let head = format!("{at} {}", vhost.pattern);
                if vhost.redirect {
                    lines.push(format!("{head} -> https redirect 301"));
                } else if vhost.routes.is_empty() {
                    lines.push(format!("{head} (no routes)"));
                }
                for r in vhost.routes.iter().filter(|_| !vhost.redirect) {
                    lines.push(format!("{head} {}", r.describe()));
                }
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use http::HeaderMap;

    fn table(vss: Vec<crate::config::VirtualService>) -> RouteTable {
        let mut m = model();
        m.gateways.push(gateway(
            "gw",
            vec![http_server(80, &["*"]), https_server(443, &["*"])],
        ));
        m.virtual_services = vss;
        RouteTable::compile(&m).unwrap()
    }

    fn route_id(t: &RouteTable, port: u16, host: &str, path: &str) -> String {
        match t.lookup(at(port), host, path, &HeaderMap::new()) {
            Lookup::Route(r) => r.id.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn exact_beats_wildcard_beats_any() {
        let t = table(vec![
            vs("any", &["*"], &["gw"], vec![fwd("r", "a", 80)]),
            vs("wild", &["*.a.com"], &["gw"], vec![fwd("r", "a", 80)]),
            vs("deep", &["*.b.a.com"], &["gw"], vec![fwd("r", "a", 80)]),
            vs("exact", &["x.b.a.com"], &["gw"], vec![fwd("r", "a", 80)]),
        ]);
        assert_eq!(route_id(&t, 80, "x.b.a.com", "/"), "exact/r");
        assert_eq!(route_id(&t, 80, "y.b.a.com", "/"), "deep/r");
        assert_eq!(route_id(&t, 80, "y.a.com", "/"), "wild/r");
        assert_eq!(route_id(&t, 80, "a.com", "/"), "any/r");
        assert_eq!(route_id(&t, 443, "other.org", "/"), "any/r");
    }

    #[test]
    fn unknown_port_or_host_is_no_host() {
        let t = table(vec![vs("v", &["a.com"], &["gw"], vec![fwd("r", "a", 80)])]);
        assert!(matches!(
            t.lookup(at(81), "a.com", "/", &HeaderMap::new()),
            Lookup::NoHost
        ));
        assert!(matches!(
            t.lookup(at(80), "b.com", "/", &HeaderMap::new()),
            Lookup::NoHost
        ));
    }

    #[test]
    fn host_matched_without_matching_route_is_no_route() {
        let mut r = fwd("r", "a", 80);
        r.matches = vec![uri(exact("/only"))];
        let t = table(vec![vs("v", &["a.com"], &["gw"], vec![r])]);
        assert!(matches!(
            t.lookup(at(80), "a.com", "/other", &HeaderMap::new()),
            Lookup::NoRoute
        ));
    }

    #[test]
    fn specific_host_does_not_fall_back_to_wildcard() {
        let mut r = fwd("r", "a", 80);
        r.matches = vec![uri(prefix("/api"))];
        let t = table(vec![
            vs("exact", &["x.a.com"], &["gw"], vec![r]),
            vs("wild", &["*.a.com"], &["gw"], vec![fwd("r", "a", 80)]),
        ]);
        assert_eq!(route_id(&t, 80, "x.a.com", "/web"), "NoRoute");
    }

    #[test]
    fn query_string_is_ignored_by_uri_match() {
        let mut r = fwd("r", "a", 80);
        r.matches = vec![uri(exact("/login"))];
        let t = table(vec![vs("v", &["a.com"], &["gw"], vec![r])]);
        assert_eq!(route_id(&t, 80, "a.com", "/login?next=/x"), "v/r");
        assert_eq!(route_id(&t, 80, "a.com", "/login/x?y"), "NoRoute");
    }

    #[test]
    fn first_matching_route_wins_across_virtual_services() {
        let mut api = fwd("api", "a", 80);
        api.matches = vec![uri(prefix("/api"))];
        let t = table(vec![
            vs("first", &["a.com"], &["gw"], vec![api]),
            vs("second", &["a.com"], &["gw"], vec![fwd("all", "b", 80)]),
        ]);
        assert_eq!(route_id(&t, 80, "a.com", "/api/v1"), "first/api");
        assert_eq!(route_id(&t, 80, "a.com", "/web"), "second/all");
    }

    #[test]
    fn https_redirect_server_redirects_its_hosts() {
        let mut m = model();
        let mut plain = http_server(80, &["a.com"]);
        plain.https_redirect = true;
        m.gateways
            .push(gateway("gw", vec![plain, https_server(443, &["a.com"])]));
        m.virtual_services
            .push(vs("v", &["a.com"], &["gw"], vec![fwd("r", "a", 80)]));
        let t = RouteTable::compile(&m).unwrap();
        assert_eq!(route_id(&t, 80, "a.com", "/x?y"), "HttpsRedirect");
        assert_eq!(route_id(&t, 443, "a.com", "/x"), "v/r");
        assert_eq!(route_id(&t, 80, "b.com", "/x"), "NoHost");
    }

    #[test]
    fn egress_ports_and_gateway_limited_matches() {
        let mut m = model();
        let mut egress = gateway("egress", vec![http_server(8080, &["*.remote.com"])]);
        egress.egress = true;
        m.gateways.push(egress);
        m.gateways
            .push(gateway("ingress", vec![http_server(80, &["*"])]));
        let mut only_egress = fwd("out", "a", 443);
        only_egress.matches = vec![crate::config::RouteMatch {
            gateways: vec!["egress".into()],
            ..Default::default()
        }];
        m.virtual_services.push(vs(
            "v",
            &["greeting.remote.com"],
            &["egress", "ingress"],
            vec![only_egress],
        ));
        let t = RouteTable::compile(&m).unwrap();
        assert!(t.is_egress(at(8080), "other.remote.com"));
        assert!(
            !t.is_egress(at(8080), "example.org"),
            "the server's hosts only"
        );
        assert!(
            !t.is_egress(at(80), "other.remote.com"),
            "not an egress gateway"
        );
        assert_eq!(route_id(&t, 8080, "greeting.remote.com", "/"), "v/out");
        assert_eq!(route_id(&t, 80, "greeting.remote.com", "/"), "NoRoute");
    }

    #[test]
    fn table_is_shareable_across_workers() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RouteTable>();
        assert_send_sync::<Arc<Destination>>();
        assert_send_sync::<InFlightGuard>();
    }

    #[test]
    fn summary_lists_every_route() {
        let t = table(vec![vs(
            "v",
            &["a.com"],
            &["gw"],
            vec![fwd("r", "a", 8080)],
        )]);
        assert_eq!(
            t.summary(),
            vec![
                "80 a.com v/r -> a:8080 100%".to_string(),
                "443 a.com v/r -> a:8080 100%".to_string(),
            ]
        );
        assert_eq!(t.server_name(at(80)).as_deref(), Some("http-80"));
        let ports: Vec<u16> = t.listeners().iter().map(|a| a.port()).collect();
        assert_eq!(ports, vec![80, 443]);
    }
}
