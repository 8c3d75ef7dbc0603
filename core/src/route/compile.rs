//! `Model` -> [`RouteTable`]: bind VirtualServices to Gateway servers,
//! build each port's virtual hosts, resolve every destination.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{
    gateway_ref_matches, ConfigError, ConfigErrors, Gateway, Model, Protocol, RouteAction,
    RouteMatch, Server, VirtualService,
};

use super::host::{binds, intersect, PortBuilder};
use super::l4::StreamCompiler;
use super::registry::Registry;
use super::resolve::Resolver;
use super::{CompiledRoute, RouteTable, ServerId};

impl RouteTable {
    /// Every problem is reported, not just the first. VirtualServices bound
    /// to no Gateway are not compiled: Istio would only use them in a mesh.
    pub fn compile(model: &Model) -> Result<RouteTable, ConfigErrors> {
        let mut errors = Vec::new();
        let mut resolver = Resolver::new(model);
        let mut ports: BTreeMap<std::net::SocketAddr, PortBuilder> = BTreeMap::new();
        let mut by_server: BTreeMap<(std::net::SocketAddr, ServerId), PortBuilder> =
            BTreeMap::new();

        for gw in &model.gateways {
            for server in http_servers(gw) {
                let port = ports
                    .entry(server.addr())
                    .or_insert_with(|| PortBuilder::new(&server.name));
                // Istio redirects a redirecting server's hosts even when no
                // VirtualService is bound to it.
                if server.https_redirect {
                    for h in &server.hosts {
                        port.vhost(h).redirect = true;
                    }
                } else if gw.egress && server.protocol == Protocol::Http {
                    port.egress(&server.hosts);
                }
            }
        }

        for (vi, vs) in model.virtual_services.iter().enumerate() {
            let gateways: Vec<&Gateway> = model.gateways.iter().filter(|g| binds(vs, g)).collect();
            if gateways.is_empty() {
                continue;
            }
            let all_routes = compile_routes(vs, &mut resolver, &mut errors);
            for gw in gateways {
                let routes = for_gateway(&all_routes, gw);
                for server in http_servers(gw) {
                    let Some(port) = ports.get_mut(&server.addr()) else {
                        continue;
                    };
                    let mut own = server.tls.is_some().then(|| {
                        let id: ServerId =
                            (gw.id.name.as_str().into(), server.name.as_str().into());
                        by_server
                            .entry((server.addr(), id))
                            .or_insert_with(|| PortBuilder::new(&server.name))
                    });
                    for sh in &server.hosts {
                        for vh in &vs.hosts {
                            if let Some(pattern) = intersect(vh, sh) {
                                let vhost = port.vhost(&pattern);
                                vhost.redirect |= server.https_redirect;
                                vhost.merge(vi, &routes);
                                if let Some(own) = own.as_mut() {
                                    own.vhost(&pattern).merge(vi, &routes);
                                }
                            }
                        }
                    }
                }
            }
        }
        let streams = StreamCompiler::new(model, &mut resolver, &mut errors).compile();
        let registry = Registry::compile(model, &mut resolver, &mut errors);

        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(RouteTable {
            ports: ports.into_iter().map(|(p, b)| (p, b.build())).collect(),
            registry,
            destinations: resolver.into_destinations(),
            streams,
            by_server: {
                let mut out: HashMap<_, HashMap<_, HashMap<_, _>>> = HashMap::new();
                for ((addr, (gw, server)), b) in by_server {
                    out.entry(addr)
                        .or_default()
                        .entry(gw)
                        .or_default()
                        .insert(server, b.build());
                }
                out
            },
        })
    }
}

/// A VirtualService's routes as gateway `gw` sees them: matches limited to
/// other gateways (`match[].gateways`) are removed, and a route left with
/// none is dropped. Routes without such matches are shared as they are.
fn for_gateway(routes: &[Arc<CompiledRoute>], gw: &Gateway) -> Vec<Arc<CompiledRoute>> {
    let applies = |m: &RouteMatch| {
        m.gateways.is_empty()
            || m.gateways
                .iter()
                .any(|r| gateway_ref_matches(r, &gw.id.name, gw.namespace.as_deref()))
    };
    routes
        .iter()
        .filter_map(|r| {
            let matches = &r.route.matches;
            if matches.iter().all(|m| m.gateways.is_empty()) {
                return Some(r.clone());
            }
            let kept: Vec<RouteMatch> = matches.iter().filter(|m| applies(m)).cloned().collect();
            (!kept.is_empty()).then(|| Arc::new(r.with_matches(kept)))
        })
        .collect()
}

/// Servers that carry HTTP routes (TLS passthrough servers route by SNI).
fn http_servers(gw: &Gateway) -> impl Iterator<Item = &Server> {
    gw.servers
        .iter()
        .filter(|s| matches!(s.protocol, Protocol::Http | Protocol::Https) && !s.passthrough)
}

fn compile_routes(
    vs: &VirtualService,
    resolver: &mut Resolver<'_>,
    errors: &mut Vec<ConfigError>,
) -> Vec<Arc<CompiledRoute>> {
    let mut compiled = Vec::with_capacity(vs.http.len());
    for route in &vs.http {
        let mut destinations = Vec::new();
        if let RouteAction::Forward(targets) = &route.action {
            for (j, target) in targets.iter().enumerate() {
                let field = format!("spec.http[{}].route[{j}].destination", route.index);
                match resolver.resolve(target, &vs.id, &field) {
                    Ok(d) => destinations.push((d, target.weight)),
                    Err(e) => errors.push(e),
                }
            }
        }
        compiled.push(Arc::new(CompiledRoute::new(
            &vs.id,
            route.clone(),
            destinations,
        )));
    }
    compiled
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::super::testutil::*;
    use super::super::{Destination, Lookup};
    use super::*;
    use crate::config::{ClientTlsMode, LbPolicy, Resolution};

    fn forwarded(t: &RouteTable, port: u16, host: &str) -> Arc<Destination> {
        match t.lookup(at(port), host, "/", &HeaderMap::new()) {
            Lookup::Route(r) => r.pick().unwrap().clone(),
            other => panic!("{other:?}"),
        }
    }

    fn one_route(dests: Vec<crate::config::WeightedDestination>) -> Model {
        let mut m = model();
        m.gateways
            .push(gateway("gw", vec![https_server(443, &["*.a.com"])]));
        let mut r = fwd("r", "x", 1);
        r.action = RouteAction::Forward(dests);
        m.virtual_services
            .push(vs("v", &["x.a.com"], &["gw"], vec![r]));
        m
    }

    fn error_text(m: &Model) -> String {
        RouteTable::compile(m).unwrap_err().to_string()
    }

    #[test]
    fn unbound_virtual_service_is_ignored() {
        let mut m = one_route(vec![wdest("x", Some(80), None, 100)]);
        let mut unresolvable = fwd("r", "x", 1);
        unresolvable.action = RouteAction::Forward(vec![wdest("no-port", None, None, 100)]);
        m.virtual_services
            .push(vs("mesh-only", &["y.a.com"], &[], vec![unresolvable]));
        m.virtual_services
            .push(vs("elsewhere", &["z.a.com"], &["other-gw"], vec![]));
        let t = RouteTable::compile(&m).unwrap();
        let none = HeaderMap::new();
        assert!(matches!(
            t.lookup(at(443), "y.a.com", "/", &none),
            Lookup::NoHost
        ));
        assert!(matches!(
            t.lookup(at(443), "z.a.com", "/", &none),
            Lookup::NoHost
        ));
        assert!(matches!(
            t.lookup(at(443), "x.a.com", "/", &none),
            Lookup::Route(_)
        ));
    }

    #[test]
    fn plain_dns_destination_needs_a_port() {
        let m = one_route(vec![wdest("backend", None, None, 100)]);
        let text = error_text(&m);
        assert!(
            text.contains("VirtualService/v: spec.http[0].route[0].destination.port:"),
            "{text}"
        );
        assert!(
            text.contains("destination 'backend' needs a port"),
            "{text}"
        );
        assert!(text.contains("port 80 is not assumed"), "{text}");
    }

    /// Like Istio, a destination without a port takes the only port of the
    /// Kubernetes Service its host names; several ports are an error that
    /// lists them. Errors name the route's index in the file.
    #[test]
    fn a_kubernetes_service_gives_a_portless_destination_its_port() {
        let service = |ns: Option<&str>, ports: &[u16]| crate::config::KubernetesService {
            id: doc("Service", "backend"),
            namespace: ns.map(str::to_owned),
            ports: ports.to_vec(),
        };
        let mut m = one_route(vec![wdest(
            "backend.shop.svc.cluster.local",
            None,
            None,
            100,
        )]);
        m.kubernetes_services.push(service(Some("shop"), &[8000]));
        let d = forwarded(&RouteTable::compile(&m).unwrap(), 443, "x.a.com");
        assert_eq!(
            d.endpoints,
            vec![addr("backend.shop.svc.cluster.local", 8000)]
        );

        m.kubernetes_services[0].namespace = Some("other".into());
        assert!(error_text(&m).contains("no ServiceEntry or Kubernetes Service declares"));

        let mut m = one_route(vec![wdest("backend", None, None, 100)]);
        m.kubernetes_services = vec![service(None, &[8000, 9000])];
        m.virtual_services[0].http[0].index = 3;
        let text = error_text(&m);
        assert!(
            text.contains(
                "VirtualService/v: spec.http[3].route[0].destination.port: destination \
                 'backend' needs a port (destination.port.number): \
                 Service/backend declares ports [8000, 9000]"
            ),
            "{text}"
        );
    }

    /// Istio expands a short name to the Service's cluster name before it
    /// looks for a DestinationRule: a rule written for the full name must
    /// apply (its TLS most of all) to a route that uses the short one.
    #[test]
    fn a_rule_for_the_cluster_name_applies_to_the_short_name() {
        let mut m = one_route(vec![wdest("httpbin", Some(8443), None, 100)]);
        let mut rule = dr("httpbin.default.svc.cluster.local", &[]);
        rule.traffic_policy.tls = Some(client_tls(ClientTlsMode::Simple, "ca"));
        m.destination_rules.push(rule);
        let d = forwarded(&RouteTable::compile(&m).unwrap(), 443, "x.a.com");
        assert!(d.tls.is_some(), "plaintext where the rule asks for TLS");

        // In the namespace of the Service of that name, when there is one.
        m.kubernetes_services
            .push(crate::config::KubernetesService {
                id: doc("Service", "httpbin"),
                namespace: Some("shop".into()),
                ports: vec![8443],
            });
        m.destination_rules[0].host = "httpbin.shop.svc.cluster.local".into();
        let d = forwarded(&RouteTable::compile(&m).unwrap(), 443, "x.a.com");
        assert!(d.tls.is_some());
    }

    /// `portLevelSettings` win over the rule's own settings on their port
    /// (balancing, connection pool, outlier detection), and only there.
    #[test]
    fn port_level_settings_win_on_their_port() {
        let mut m = one_route(vec![
            wdest("backend", Some(8080), None, 50),
            wdest("backend", Some(9090), None, 50),
        ]);
        let mut rule = dr("backend", &[]);
        rule.traffic_policy.load_balancer = Some(LbPolicy::Random);
        rule.traffic_policy.port_level = vec![crate::config::PortLevel {
            port: 8080,
            load_balancer: Some(LbPolicy::LeastRequest),
            connection_pool: Some(crate::config::ConnectionPool {
                max_connections: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        }];
        m.destination_rules.push(rule);
        let t = RouteTable::compile(&m).unwrap();
        let Lookup::Route(r) = t.lookup(at(443), "x.a.com", "/", &HeaderMap::new()) else {
            panic!("route")
        };
        let by_port = |p: u16| r.destinations.iter().find(|d| d.port == p).unwrap().clone();
        assert_eq!(by_port(8080).lb, LbPolicy::LeastRequest);
        assert_eq!(by_port(8080).circuit.as_ref().map(|c| c.limit()), Some(3));
        assert_eq!(by_port(9090).lb, LbPolicy::Random);
        assert!(by_port(9090).circuit.is_none());
    }

    #[test]
    fn plain_dns_destination_is_the_host_itself() {
        let t = RouteTable::compile(&one_route(vec![wdest("backend", Some(8080), None, 100)]));
        let d = forwarded(&t.unwrap(), 443, "x.a.com");
        assert_eq!(&*d.name, "backend:8080");
        assert_eq!(d.endpoints, vec![addr("backend", 8080)]);
        assert!(d.tls.is_none() && !d.h2);
        assert_eq!(d.lb, LbPolicy::RoundRobin);
    }

    #[test]
    fn missing_subset_is_an_error() {
        let mut m = one_route(vec![wdest("reviews", Some(9080), Some("v3"), 100)]);
        let text = error_text(&m);
        assert!(text.contains("route[0].destination.subset:"), "{text}");
        assert!(
            text.contains("no DestinationRule applies to host 'reviews'"),
            "{text}"
        );
        m.destination_rules
            .push(dr("reviews", &[("v1", &[("version", "v1")]), ("v2", &[])]));
        let text = error_text(&m);
        assert!(
            text.contains(
                "subset 'v3' of destination 'reviews' is not defined by \
                 DestinationRule/reviews (subsets: [v1, v2])"
            ),
            "{text}"
        );
    }

    #[test]
    fn every_error_is_reported() {
        let m = one_route(vec![
            wdest("a", None, None, 50),
            wdest("b", Some(80), Some("v1"), 50),
        ]);
        assert_eq!(RouteTable::compile(&m).unwrap_err().0.len(), 2);
    }

    #[test]
    fn static_service_entry_subsets_select_endpoints_by_labels() {
        let mut m = one_route(vec![
            wdest("svc.ext", None, Some("v1"), 50),
            wdest("svc.ext", None, Some("v2"), 50),
        ]);
        let mut s = se(
            "svc.ext",
            &[(80, "http", "HTTP2", Some(8080))],
            Resolution::Static,
        );
        s.endpoints = vec![
            endpoint("10.0.0.1", &[("version", "v1")], &[]),
            endpoint("10.0.0.2", &[("version", "v2")], &[("http", 9000)]),
            endpoint("10.0.0.3", &[("version", "v1"), ("zone", "b")], &[]),
        ];
        m.service_entries.push(s);
        let mut rule = dr(
            "svc.ext",
            &[("v1", &[("version", "v1")]), ("v2", &[("version", "v2")])],
        );
        rule.traffic_policy.load_balancer = Some(LbPolicy::LeastRequest);
        m.destination_rules.push(rule);
        let t = RouteTable::compile(&m).unwrap();
        let Lookup::Route(r) = t.lookup(at(443), "x.a.com", "/", &HeaderMap::new()) else {
            panic!("no route");
        };
        let (v1, v2) = (&r.destinations[0], &r.destinations[1]);
        assert_eq!(&*v1.name, "svc.ext:80/v1");
        assert_eq!(
            v1.endpoints,
            vec![addr("10.0.0.1", 8080), addr("10.0.0.3", 8080)]
        );
        assert_eq!(v2.endpoints, vec![addr("10.0.0.2", 9000)]);
        assert!(v1.h2);
        assert_eq!(v1.lb, LbPolicy::LeastRequest);
    }

    #[test]
    fn static_subset_without_endpoints_is_an_error() {
        let mut m = one_route(vec![wdest("svc.ext", Some(80), Some("v9"), 100)]);
        let mut s = se("svc.ext", &[(80, "http", "HTTP", None)], Resolution::Static);
        s.endpoints = vec![endpoint("10.0.0.1", &[("version", "v1")], &[])];
        m.service_entries.push(s);
        m.destination_rules
            .push(dr("svc.ext", &[("v9", &[("version", "v9")])]));
        let text = error_text(&m);
        assert!(text.contains("destination.subset:"), "{text}");
        assert!(text.contains("has labels version=v9"), "{text}");
    }

    #[test]
    fn dns_service_entry_resolves_to_its_host_or_endpoints() {
        let mut m = one_route(vec![wdest("api.example.com", None, None, 100)]);
        m.service_entries.push(se(
            "*.example.com",
            &[(443, "https", "HTTPS", None)],
            Resolution::Dns,
        ));
        let t = RouteTable::compile(&m).unwrap();
        let d = forwarded(&t, 443, "x.a.com");
        assert_eq!(d.endpoints, vec![addr("api.example.com", 443)]);

        let mut m = one_route(vec![wdest("api.example.com", Some(80), None, 100)]);
        let mut s = se(
            "api.example.com",
            &[(80, "http", "HTTP", None), (443, "https", "HTTPS", None)],
            Resolution::Dns,
        );
        s.endpoints = vec![endpoint("proxy.internal", &[], &[("http", 3128)])];
        m.service_entries.push(s);
        let d = forwarded(&RouteTable::compile(&m).unwrap(), 443, "x.a.com");
        assert_eq!(d.endpoints, vec![addr("proxy.internal", 3128)]);
    }

    #[test]
    fn service_entry_port_rules() {
        let mut m = one_route(vec![wdest("ext.com", None, None, 100)]);
        m.service_entries.push(se(
            "ext.com",
            &[(80, "http", "HTTP", None), (443, "https", "HTTPS", None)],
            Resolution::Dns,
        ));
        let text = error_text(&m);
        assert!(
            text.contains("ServiceEntry/ext.com declares ports [80, 443]"),
            "{text}"
        );
        m.virtual_services[0].http[0].action =
            RouteAction::Forward(vec![wdest("ext.com", Some(8443), None, 100)]);
        let text = error_text(&m);
        assert!(
            text.contains("port 8443 of destination 'ext.com' is not declared"),
            "{text}"
        );
    }

    #[test]
    fn tls_precedence_subset_port_then_subset_then_port_then_rule() {
        let mut m = one_route(vec![
            wdest("ext.com", Some(443), None, 25),
            wdest("ext.com", Some(80), None, 25),
            wdest("ext.com", Some(443), Some("plain"), 25),
            wdest("ext.com", Some(443), Some("mtls"), 25),
        ]);
        m.service_entries.push(se(
            "ext.com",
            &[
                (80, "http", "HTTP", Some(443)),
                (443, "https", "HTTPS", None),
            ],
            Resolution::Dns,
        ));
        let mut rule = dr("ext.com", &[("plain", &[]), ("mtls", &[])]);
        rule.traffic_policy.tls = Some(client_tls(ClientTlsMode::Simple, "rule"));
        rule.traffic_policy.port_tls = vec![(80, client_tls(ClientTlsMode::Simple, "port80"))];
        rule.subsets[0].traffic_policy = Some(crate::config::TrafficPolicy {
            tls: Some(client_tls(ClientTlsMode::Disable, "")),
            ..Default::default()
        });
        rule.subsets[1].traffic_policy = Some(crate::config::TrafficPolicy {
            tls: Some(client_tls(ClientTlsMode::Simple, "subset")),
            port_tls: vec![(443, client_tls(ClientTlsMode::Mutual, "subset443"))],
            load_balancer: Some(LbPolicy::Random),
            hash_key: None,
            connection_pool: None,
            outlier_detection: None,
            port_level: vec![],
            proxy_protocol: None,
        });
        m.destination_rules.push(rule);
        let t = RouteTable::compile(&m).unwrap();
        let Lookup::Route(r) = t.lookup(at(443), "x.a.com", "/", &HeaderMap::new()) else {
            panic!("no route");
        };
        let sni = |i: usize| r.destinations[i].tls.as_ref().and_then(|t| t.sni.clone());
        assert_eq!(sni(0).as_deref(), Some("rule"));
        assert_eq!(sni(1).as_deref(), Some("port80"));
        assert_eq!(r.destinations[1].endpoints, vec![addr("ext.com", 443)]);
        assert!(r.destinations[2].tls.is_none(), "DISABLE means plain text");
        assert_eq!(sni(3).as_deref(), Some("subset443"));
        assert_eq!(r.destinations[3].lb, LbPolicy::Random);
    }

    #[test]
    fn identical_destinations_are_shared() {
        let mut m = one_route(vec![wdest("b", Some(80), None, 100)]);
        m.virtual_services.push(vs(
            "w",
            &["y.a.com"],
            &["gw"],
            vec![fwd("r", "b", 80), fwd("s", "b", 81)],
        ));
        let t = RouteTable::compile(&m).unwrap();
        let x = forwarded(&t, 443, "x.a.com");
        let y = forwarded(&t, 443, "y.a.com");
        assert!(Arc::ptr_eq(&x, &y));
        let Lookup::Route(r) = t.lookup(at(443), "y.a.com", "/", &HeaderMap::new()) else {
            panic!("no route");
        };
        assert_eq!(r.id.as_ref(), "w/r");
    }

    #[test]
    fn server_hosts_limit_a_wildcard_virtual_service() {
        let mut m = model();
        m.gateways
            .push(gateway("gw", vec![http_server(80, &["a.com", "*.b.com"])]));
        m.virtual_services
            .push(vs("v", &["*"], &["gw"], vec![fwd("r", "svc", 80)]));
        let t = RouteTable::compile(&m).unwrap();
        let none = HeaderMap::new();
        assert!(matches!(
            t.lookup(at(80), "a.com", "/", &none),
            Lookup::Route(_)
        ));
        assert!(matches!(
            t.lookup(at(80), "x.b.com", "/", &none),
            Lookup::Route(_)
        ));
        assert!(matches!(
            t.lookup(at(80), "c.com", "/", &none),
            Lookup::NoHost
        ));
    }
}
