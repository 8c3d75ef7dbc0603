//! `decide`, branch by branch, on a runtime built from YAML with real
//! certificates: TLS policy against Host, wildcard hosts, routes (direct
//! responses, redirects, weights, subsets, header edits), egress under both
//! outbound policies, CONNECT.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::runtime::testutil::Fixture;
use crate::tls::ConnInfo;

pub(super) const YAML: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers:
  - port: {number: 8443, protocol: HTTPS}
    hosts: [simple.test]
    tls: {mode: SIMPLE, credentialName: simple}
  - port: {number: 8443, protocol: HTTPS}
    hosts: [mutual.test]
    tls: {mode: MUTUAL, credentialName: mutual}
  - port: {number: 8443, protocol: HTTPS}
    hosts: ["*.wild.test"]
    tls: {mode: SIMPLE, credentialName: wild}
  - port: {number: 8080, protocol: HTTP}
    hosts: [plain.test]
  - port: {number: 8080, protocol: HTTP}
    hosts: [secure.test]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 8081, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [simple.test, mutual.test, "*.wild.test", plain.test]
  gateways: [gw]
  http:
  - name: hello
    match: [{uri: {exact: /hello}}]
    directResponse: {status: 200, body: {string: "hi\n"}}
  - name: moved
    match: [{uri: {prefix: /old}}]
    redirect: {uri: /new}
  - name: split
    match: [{uri: {prefix: /split}}]
    route:
    - {destination: {host: backend, subset: v1}, weight: 80}
    - {destination: {host: backend, subset: v2}, weight: 20}
  - name: api
    match: [{uri: {prefix: /api}}]
    rewrite: {uri: /v2}
    retries: {attempts: 2, perTryTimeout: 3s}
    headers:
      request:
        set: {x-set: "1"}
        remove: [x-remove]
    route: [{destination: {host: backend, subset: v1}}]
  - name: default
    route: [{destination: {host: backend, subset: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend}
spec:
  host: backend
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend}
spec:
  hosts: [backend]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: remote}
spec:
  hosts: [api.remote.test]
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]
  resolution: DNS
"#;

pub(super) struct World {
    pub(super) _f: Fixture,
    pub(super) rt: Arc<Runtime>,
}

/// Credentials for `YAML`'s servers: simple, mutual (with a CA bundle)
/// and the wildcard.
pub(super) fn fixture() -> Fixture {
    let f = Fixture::new();
    f.server("simple", &["simple.test"], 0);
    f.server("mutual", &["mutual.test"], 0);
    f.ca_bundle("mutual/ca.crt");
    f.server("wild", &["*.wild.test"], 0);
    f
}

pub(super) fn world(outbound: &str) -> World {
    let f = fixture();
    let rt = build(&f, outbound, "");
    World { _f: f, rt }
}

/// The runtime of `YAML` (with `extra` documents) and `f`'s files.
pub(super) fn build(f: &Fixture, outbound: &str, extra: &str) -> Arc<Runtime> {
    let runtime = format!(
        "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {{name: rt}}\n\
         spec: {{outboundTrafficPolicy: {{mode: {outbound}}}}}\n---\n"
    );
    let model = f.model(&format!("{runtime}{YAML}{extra}")).unwrap();
    Arc::new(Runtime::build(model, 1).unwrap())
}

pub(super) struct Map(pub(super) Vec<(&'static str, &'static str)>);

impl HeaderSource for Map {
    fn first(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .collect()
    }
}

/// The connection facts of a handshake with `sni` on port 8443.
pub(super) fn tls_conn(rt: &Arc<Runtime>, sni: &str) -> ConnInfo {
    let addr: std::net::SocketAddr = "0.0.0.0:8443".parse().unwrap();
    let policy = rt
        .tls
        .listener(&addr)
        .and_then(|l| l.sni.select(sni))
        .cloned();
    ConnInfo {
        listener: addr.to_string().into(),
        listener_addr: addr,
        sni: Some(sni.into()),
        policy,
        runtime: rt.clone(),
        client: None,
        peer_certs: None,
        xfcc: None,
        resumed: false,
        crl_checked: 0.into(),
        version: "TLSv1.3",
        span: Default::default(),
    }
}

pub(super) fn run(
    rt: &Runtime,
    tls: Tls<'_>,
    port: u16,
    method: &str,
    target: &str,
    host: Option<&str>,
    headers: Map,
) -> Decision {
    let conn = ConnView {
        tls,
        local: ([127, 0, 0, 1], port).into(),
        client_ip: Some("192.0.2.7".parse().unwrap()),
    };
    let req = RequestView {
        method,
        target,
        authority: None,
        host_header: host,
        h2: false,
        http11: true,
        headers: &headers,
    };
    decide(rt, &conn, &req, &mut StdRng::seed_from_u64(7))
}

pub(super) fn status(d: &Decision) -> String {
    match &d.action {
        Action::Respond {
            status, blocked, ..
        } => format!("{status}{}", if *blocked { " blocked" } else { "" }),
        Action::Redirect { status, location } => format!("{status} {location}"),
        Action::Tunnel(t) => format!("tunnel {}", t.endpoint.endpoint()),
        Action::Forward(p) => format!("forward {} {}", p.dest().name, p.to.endpoint.endpoint()),
        Action::Overflow { dest, why } => format!("overflow {} {}", dest.name, why.as_str()),
    }
}

fn get(rt: &Runtime, tls: Tls<'_>, port: u16, target: &str, host: &str) -> String {
    status(&run(rt, tls, port, "GET", target, Some(host), Map(vec![])))
}

#[test]
fn host_must_be_served_under_the_connections_tls_policy() {
    let w = world("ALLOW_ANY");
    let simple = tls_conn(&w.rt, "simple.test");
    let wild = tls_conn(&w.rt, "a.wild.test");
    let t = Tls::Terminated(&simple);
    for (host, want) in [
        ("simple.test", "forward backend:80/v2 10.0.0.2:80"),
        ("Simple.Test:8443", "forward backend:80/v2 10.0.0.2:80"),
        // Another TLS policy (MUTUAL), or none at all: misdirected.
        ("mutual.test", "421"),
        ("b.wild.test", "421"),
        ("elsewhere.test", "421"),
    ] {
        assert_eq!(
            get(&w.rt, t, 8443, "/", host),
            want,
            "SNI simple.test, Host {host}"
        );
    }
    // A wildcard SNI covers its own names, not the exact hosts.
    let t = Tls::Terminated(&wild);
    assert_eq!(
        get(&w.rt, t, 8443, "/", "b.wild.test"),
        "forward backend:80/v2 10.0.0.2:80"
    );
    assert_eq!(get(&w.rt, t, 8443, "/", "simple.test"), "421");
    assert_eq!(get(&w.rt, Tls::Unknown, 8443, "/", "simple.test"), "421");
    let d = run(&w.rt, t, 8443, "GET", "/", None, Map(vec![]));
    assert_eq!(status(&d), "400", "no Host");
}

#[test]
fn routes_answer_redirect_split_and_rewrite() {
    let w = world("ALLOW_ANY");
    let p = Tls::Plain;
    assert_eq!(get(&w.rt, p, 8080, "/hello", "plain.test"), "200");
    assert_eq!(
        get(&w.rt, p, 8080, "/old/x?q", "plain.test"),
        "301 http://plain.test/new"
    );
    assert_eq!(
        get(&w.rt, p, 8080, "/x?y=1", "secure.test"),
        "301 https://secure.test/x?y=1"
    );
    assert_eq!(get(&w.rt, p, 8080, "/", "nobody.test"), "404");
    assert_eq!(
        get(&w.rt, p, 9999, "/", "plain.test"),
        "404",
        "no server on the port"
    );
    // Weights draw from the rng once per request: 80/20 over many seeds.
    let mut v1 = 0;
    for seed in 0..1000 {
        let conn = ConnView {
            tls: p,
            local: ([127, 0, 0, 1], 8080).into(),
            client_ip: None,
        };
        let req = RequestView {
            method: "GET",
            target: "/split",
            authority: None,
            host_header: Some("plain.test"),
            h2: false,
            http11: true,
            headers: &Map(vec![]),
        };
        let d = decide(&w.rt, &conn, &req, &mut StdRng::seed_from_u64(seed));
        if status(&d).contains("/v1") {
            v1 += 1;
        }
    }
    assert!(
        (700..900).contains(&v1),
        "80/20 split drew v1 {v1} times in 1000"
    );
    let d = run(
        &w.rt,
        p,
        8080,
        "GET",
        "/api/items?x=1",
        Some("plain.test"),
        Map(vec![("x-remove", "1")]),
    );
    let Action::Forward(plan) = &d.action else {
        panic!("{}", status(&d))
    };
    assert_eq!(plan.edits.target.as_deref(), Some("/v2/items?x=1"));
    assert_eq!(plan.retries.map(|r| r.attempts), Some(2));
    assert_eq!(plan.timeout, Some(Duration::from_secs(3)));
    assert!(plan.edits.drops("x-remove") && plan.edits.drops("X-Set"));
    assert_eq!(&*d.route.as_ref().unwrap().id, "web/api");
    assert_eq!(&*d.server, "gw-3", "unnamed servers are <gateway>-<index>");
}

#[test]
fn header_edits_carry_identity_only_from_the_connection() {
    let w = world("ALLOW_ANY");
    let mutual = super::tests_client_cert::mtls(&w);
    let ours = mutual.xfcc.as_ref().unwrap().1.clone();
    let headers = Map(vec![
        ("x-forwarded-client-cert", "forged"),
        ("X_Forwarded_Client_Cert", "forged"),
        ("x-forwarded-for", "10.1.1.1"),
        ("connection", "keep-alive, x-hop"),
    ]);
    let d = run(
        &w.rt,
        Tls::Terminated(&mutual),
        8443,
        "GET",
        "/",
        Some("mutual.test"),
        headers,
    );
    let Action::Forward(plan) = &d.action else {
        panic!("{}", status(&d))
    };
    let e = &plan.edits;
    for dropped in [
        "x-forwarded-client-cert",
        "x_forwarded_client_cert",
        "x-forwarded-for",
        "connection",
        "x-hop",
        "keep-alive",
    ] {
        assert!(e.drops(dropped), "{dropped} passed");
    }
    assert!(!e.drops("accept"));
    let add: Vec<(&str, &str)> = e
        .add
        .iter()
        .map(|(n, v)| (n.as_ref(), v.as_ref()))
        .collect();
    assert_eq!(
        add,
        [
            ("x-forwarded-client-cert", ours.as_str()),
            ("x-forwarded-for", "10.1.1.1, 192.0.2.7"),
            ("x-forwarded-proto", "https"),
        ]
    );
    // Plain HTTP: no client certificate, so no XFCC; proto http.
    let d = run(
        &w.rt,
        Tls::Plain,
        8080,
        "GET",
        "/",
        Some("plain.test"),
        Map(vec![]),
    );
    let Action::Forward(plan) = &d.action else {
        panic!("{}", status(&d))
    };
    let names: Vec<&str> = plan.edits.add.iter().map(|(n, _)| n.as_ref()).collect();
    assert_eq!(names, ["x-forwarded-for", "x-forwarded-proto"]);
}

#[test]
fn egress_registered_hosts_and_the_outbound_policy() {
    for (mode, unknown) in [
        ("REGISTRY_ONLY", "502 blocked"),
        ("ALLOW_ANY", "forward PassthroughCluster other.test:80"),
    ] {
        let w = world(mode);
        let p = Tls::Plain;
        assert_eq!(
            get(&w.rt, p, 8081, "/", "api.remote.test"),
            "forward api.remote.test:80 api.remote.test:80",
            "{mode}: registered"
        );
        assert_eq!(
            get(&w.rt, p, 8081, "/", "other.test"),
            unknown,
            "{mode}: unregistered"
        );
        // An undeclared port of a registered host is refused under REGISTRY_ONLY.
        let d = get(
            &w.rt,
            p,
            8081,
            "http://api.remote.test:9000/x",
            "api.remote.test:9000",
        );
        let want = if mode == "REGISTRY_ONLY" {
            "502 blocked"
        } else {
            "forward PassthroughCluster api.remote.test:9000"
        };
        assert_eq!(d, want, "{mode}: undeclared port");
        // Ingress ports are never open proxies.
        assert_eq!(
            get(&w.rt, p, 8080, "/", "other.test"),
            "404",
            "{mode}: ingress"
        );
        // CONNECT: only on the egress port, only where the policy allows.
        let c = |port, target| {
            status(&run(
                &w.rt,
                p,
                port,
                "CONNECT",
                target,
                Some(target),
                Map(vec![]),
            ))
        };
        assert_eq!(c(8081, "api.remote.test:443"), "tunnel api.remote.test:443");
        assert_eq!(c(8080, "api.remote.test:443"), "405");
        assert_eq!(c(8081, "api.remote.test"), "400");
        let other = if mode == "REGISTRY_ONLY" {
            "502 blocked"
        } else {
            "tunnel other.test:443"
        };
        assert_eq!(c(8081, "other.test:443"), other);
    }
}

#[test]
fn absolute_form_requests_go_upstream_in_origin_form() {
    let w = world("ALLOW_ANY");
    let d = run(
        &w.rt,
        Tls::Plain,
        8081,
        "GET",
        "http://api.remote.test/p?q",
        None,
        Map(vec![("proxy-authorization", "x")]),
    );
    let Action::Forward(plan) = &d.action else {
        panic!("{}", status(&d))
    };
    assert_eq!(plan.edits.target.as_deref(), Some("/p?q"));
    assert_eq!(plan.edits.add[0], ("Host".into(), "api.remote.test".into()));
    assert!(plan.edits.drops("proxy-authorization"));
    // The absolute target and Host must agree.
    let d = run(
        &w.rt,
        Tls::Plain,
        8081,
        "GET",
        "http://api.remote.test/p",
        Some("other.test"),
        Map(vec![]),
    );
    assert_eq!(status(&d), "400");
}

#[test]
fn a_reload_that_asks_more_of_clients_cuts_open_connections_off() {
    let w = world("ALLOW_ANY");
    let f = &w._f;
    let wild = tls_conn(&w.rt, "a.wild.test");
    let t = Tls::Terminated(&wild);
    let fwd = "forward backend:80/v2 10.0.0.2:80";
    assert_eq!(
        get(&w.rt, t, 8443, "/", "admin.wild.test"),
        fwd,
        "under *.wild.test, SIMPLE"
    );
    // The next generation makes admin.wild.test MUTUAL.
    f.server("admin", &["admin.wild.test"], 0);
    f.ca_bundle("admin/ca.crt");
    let admin = "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: admin}\n\
        spec:\n  servers:\n  - port: {number: 8443, protocol: HTTPS}\n    hosts: [admin.wild.test]\n    \
        tls: {mode: MUTUAL, credentialName: admin}\n";
    let next = build(f, "ALLOW_ANY", admin);
    assert_eq!(
        get(&next, t, 8443, "/", "admin.wild.test"),
        "421",
        "a connection from before"
    );
    assert_eq!(
        get(&next, t, 8443, "/", "b.wild.test"),
        fwd,
        "its own hosts go on"
    );
    // A rotated server certificate asks nothing more of clients.
    f.server("wild", &["*.wild.test"], 0);
    let rotated = build(f, "ALLOW_ANY", "");
    assert_eq!(get(&rotated, t, 8443, "/", "b.wild.test"), fwd);
    // A MUTUAL host's CA bundle changed: its open connections are cut off.
    let mutual = tls_conn(&w.rt, "mutual.test");
    let m = Tls::Terminated(&mutual);
    assert_eq!(get(&rotated, m, 8443, "/", "mutual.test"), fwd);
    let other =
        crate::certgen::make_ca(&crate::certgen::CaSpec::new("Other", "other.test")).unwrap();
    std::fs::write(f.creds().join("mutual/ca.crt"), other.cert_pem().unwrap()).unwrap();
    let new_ca = build(f, "ALLOW_ANY", "");
    assert_eq!(get(&new_ca, m, 8443, "/", "mutual.test"), "421");
}

#[test]
fn listeners_on_one_port_but_other_addresses_share_nothing() {
    let w = world("ALLOW_ANY");
    let extra = "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: internal}\n\
        spec:\n  selector: {istio: egressgateway}\n  servers:\n  - port: {number: 8090, protocol: HTTP}\n    \
        bind: 127.0.0.1\n    hosts: [\"*\"]\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\n\
        metadata: {name: public}\nspec:\n  servers:\n  - port: {number: 8090, protocol: HTTP}\n    \
        bind: 192.0.2.1\n    hosts: [plain.test]\n";
    let rt = build(&w._f, "ALLOW_ANY", extra);
    let at = |ip: [u8; 4], host: &str| {
        let conn = ConnView {
            tls: Tls::Plain,
            local: (ip, 8090).into(),
            client_ip: None,
        };
        let req = RequestView {
            method: "GET",
            target: "/",
            authority: None,
            host_header: Some(host),
            h2: false,
            http11: true,
            headers: &Map(vec![]),
        };
        status(&decide(&rt, &conn, &req, &mut StdRng::seed_from_u64(1)))
    };
    // The internal egress listener forwards any host (ALLOW_ANY)...
    assert_eq!(
        at([127, 0, 0, 1], "other.test"),
        "forward PassthroughCluster other.test:80"
    );
    // ...the public one on the same port is no open proxy.
    assert_eq!(at([192, 0, 2, 1], "other.test"), "404");
}

/// `consistentHash`: the endpoint is drawn from the request's key, so one
/// key always reaches one endpoint; a request without the key is balanced
/// round robin.
#[test]
fn consistent_hash_sends_one_key_to_one_endpoint() {
    let f = fixture();
    let sticky = |name: &str, key: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\n\
             spec:\n  hosts: [{name}]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  \
             resolution: STATIC\n  endpoints:\n  - {{address: 10.1.0.1}}\n  - {{address: 10.1.0.2}}\n  \
             - {{address: 10.1.0.3}}\n  - {{address: 10.1.0.4}}\n\
             ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}}}\n\
             spec:\n  host: {name}\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {{{key}}}\n"
        )
    };
    let extra = format!(
        "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw2}}\n\
         spec:\n  servers:\n  - port: {{number: 8082, protocol: HTTP}}\n    hosts: [by-header.test, by-query.test, by-ip.test]\n\
         ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: sticky}}\n\
         spec:\n  hosts: [by-header.test, by-query.test, by-ip.test]\n  gateways: [gw2]\n  http:\n  \
         - match: [{{headers: {{x-route: {{exact: header}}}}}}]\n    route: [{{destination: {{host: h}}}}]\n  \
         - match: [{{headers: {{x-route: {{exact: query}}}}}}]\n    route: [{{destination: {{host: q}}}}]\n  \
         - match: [{{headers: {{x-route: {{exact: cookie}}}}}}]\n    route: [{{destination: {{host: c}}}}]\n  \
         - route: [{{destination: {{host: ip}}}}]\n\
         {}{}{}{}",
        sticky("h", "httpHeaderName: X-User"),
        sticky("q", "httpQueryParameterName: user"),
        sticky("ip", "useSourceIp: true"),
        sticky("c", "httpCookie: {name: user, ttl: 60s}"),
    );
    let rt = build(&f, "ALLOW_ANY", &extra);
    let ask = |route: &'static str, user: Option<&'static str>, target: &str| {
        let mut headers = vec![("x-route", route)];
        if let Some(u) = user {
            headers.push(("x-user", u));
        }
        status(&run(
            &rt,
            Tls::Plain,
            8082,
            "GET",
            target,
            Some("by-header.test"),
            Map(headers),
        ))
    };
    let mut seen = std::collections::BTreeSet::new();
    for k in 0..50 {
        let user: &'static str = Box::leak(format!("user-{k}").into_boxed_str());
        let first = ask("header", Some(user), "/");
        for _ in 0..20 {
            assert_eq!(ask("header", Some(user), "/"), first, "{user}");
        }
        let query = ask("query", None, &format!("/p?a=1&user={user}"));
        for _ in 0..5 {
            assert_eq!(ask("query", None, &format!("/p?user={user}&b")), query);
        }
        seen.insert(first);
    }
    assert!(seen.len() >= 3, "keys spread over the endpoints: {seen:?}");
    // Without the key: round robin, all four in four requests.
    let keyless: std::collections::BTreeSet<_> = (0..4).map(|_| ask("header", None, "/")).collect();
    assert_eq!(keyless.len(), 4, "{keyless:?}");
    // The client's address is the key: one client, one endpoint.
    let ip: std::collections::BTreeSet<_> = (0..10).map(|_| ask("ip", None, "/")).collect();
    assert_eq!(ip.len(), 1, "{ip:?}");

    // httpCookie: the client's Cookie header is client input. A well-formed
    // one places the request; anything else (garbage, no value, another
    // cookie's name, a huge value) is a missing key: a new cookie is given,
    // and nothing panics.
    let by_cookie = |cookie: Option<&'static str>| {
        let mut headers = vec![("x-route", "cookie")];
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        let d = run(
            &rt,
            Tls::Plain,
            8082,
            "GET",
            "/",
            Some("by-header.test"),
            Map(headers),
        );
        let Action::Forward(p) = &d.action else {
            panic!("{}", status(&d))
        };
        (status(&d), p.set_cookie.clone())
    };
    let (_, set) = by_cookie(None);
    let set = set.expect("a client without the cookie is given one");
    assert!(
        set.starts_with("user=\"") && set.ends_with("; Max-Age=60; HttpOnly"),
        "{set}"
    );
    let (plain, none) = by_cookie(Some("user=abc"));
    assert!(none.is_none(), "a client with the cookie keeps it");
    for same in ["a=1; user=\"abc\"; b=2", "  user=abc  ", "x=y;user=abc"] {
        assert_eq!(by_cookie(Some(same)), (plain.clone(), None), "{same}");
    }
    let huge: &'static str = Box::leak(format!("user={}", "z".repeat(60_000)).into_boxed_str());
    assert!(
        by_cookie(Some(huge)).1.is_none(),
        "a long value is still a value"
    );
    for garbage in [
        ";;;=;",
        "user",
        "users=abc",
        "=abc",
        "\u{7f}\u{0}",
        "USER=abc",
    ] {
        assert!(
            by_cookie(Some(garbage)).1.is_some(),
            "{garbage:?}: no key, a new cookie"
        );
    }
}

/// `connectionPool`: the decision takes the request's place under the
/// destination's limits: in flight, queued, or refused with 503; a place
/// given back (the decision dropped) is free again.
#[test]
fn connection_pool_limits_are_taken_by_the_decision() {
    let f = fixture();
    let extra =
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: api}\n\
                 spec:\n  host: api.remote.test\n  trafficPolicy:\n    connectionPool:\n      \
                 tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1}\n";
    let rt = build(&f, "REGISTRY_ONLY", extra);
    let ask = || {
        run(
            &rt,
            Tls::Plain,
            8081,
            "GET",
            "/",
            Some("api.remote.test"),
            Map(vec![]),
        )
    };
    let first = ask();
    let Action::Forward(p) = &first.action else {
        panic!("{}", status(&first))
    };
    assert!(!p.queued());
    let second = ask();
    let Action::Forward(p) = &second.action else {
        panic!("{}", status(&second))
    };
    assert!(p.queued(), "over maxConnections: queued");
    assert_eq!(status(&ask()), "overflow api.remote.test:80 pending");
    drop(second);
    let third = ask();
    let Action::Forward(p) = &third.action else {
        panic!("the queue place is free again")
    };
    assert!(p.queued());
    drop(third);
    drop(first);
    let last = ask();
    let Action::Forward(p) = &last.action else {
        panic!("forward")
    };
    assert!(!p.queued(), "the place in flight is free again");
    drop(last);

    // A CONNECT tunnel takes a place too, for as long as it is open.
    let tunnel = |rt: &Runtime| {
        run(
            rt,
            Tls::Plain,
            8081,
            "CONNECT",
            "api.remote.test:80",
            Some("api.remote.test:80"),
            Map(vec![]),
        )
    };
    let open = tunnel(&rt);
    assert!(
        matches!(&open.action, Action::Tunnel(t) if !t.queued()),
        "{}",
        status(&open)
    );
    let waiting = tunnel(&rt);
    assert!(matches!(&waiting.action, Action::Tunnel(t) if t.queued()));
    assert_eq!(status(&tunnel(&rt)), "overflow api.remote.test:80 pending");
}

/// Plaintext on a TLS port (PeerAuthentication): refused while the port is
/// STRICT, and always for a host that requires a client certificate.
#[test]
fn plaintext_on_a_tls_port_reaches_only_hosts_that_take_it() {
    let f = fixture();
    let strict = build(&f, "ALLOW_ANY", "");
    let permissive = build(
        &f,
        "ALLOW_ANY",
        "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\n\
         spec: {mtls: {mode: PERMISSIVE}}\n",
    );
    let body = |d: &Decision| match &d.action {
        Action::Respond { body, .. } => body.to_string(),
        _ => String::new(),
    };
    for (rt, host, want, says) in [
        (
            &strict,
            "simple.test",
            "421",
            "plaintext is not accepted on this port\n",
        ),
        (
            &strict,
            "mutual.test",
            "421",
            "plaintext is not accepted on this port\n",
        ),
        (
            &permissive,
            "simple.test",
            "forward backend:80/v2 10.0.0.2:80",
            "",
        ),
        (
            &permissive,
            "a.wild.test",
            "forward backend:80/v2 10.0.0.2:80",
            "",
        ),
        (
            &permissive,
            "mutual.test",
            "421",
            "this host requires a client certificate: use TLS\n",
        ),
        // Not a TLS port: plain HTTP as always.
        (
            &strict,
            "plain.test",
            "forward backend:80/v2 10.0.0.2:80",
            "",
        ),
    ] {
        let port = if host == "plain.test" { 8080 } else { 8443 };
        let d = run(rt, Tls::Plain, port, "GET", "/", Some(host), Map(vec![]));
        assert_eq!(status(&d), want, "{host}");
        assert_eq!(body(&d), says, "{host}");
    }
}

/// On a TLS port a request is routed only by the server whose TLS policy
/// owns its Host: another server's `*` (here a MUTUAL one) never catches
/// a host its owner does not route, over TLS or plaintext.
#[test]
fn only_the_owning_servers_routes_apply_on_a_tls_port() {
    let f = fixture();
    f.server("lonely", &["*.lonely.test"], 0);
    f.server("any", &["*"], 0);
    f.ca_bundle("any/ca.crt");
    let extra = "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: more}\n\
        spec:\n  servers:\n  - port: {number: 8443, protocol: HTTPS}\n    hosts: ['*.lonely.test']\n    \
        tls: {mode: SIMPLE, credentialName: lonely}\n\
        ---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: any}\n\
        spec:\n  servers:\n  \
        - port: {number: 8443, protocol: HTTPS}\n    hosts: ['*']\n    tls: {mode: MUTUAL, credentialName: any}\n\
        ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catch-all}\n\
        spec:\n  hosts: ['*']\n  gateways: [any]\n  http:\n  \
        - route: [{destination: {host: backend, subset: v1}}]\n\
        ---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\n\
        spec: {mtls: {mode: PERMISSIVE}}\n";
    let rt = build(&f, "ALLOW_ANY", extra);
    let lonely = tls_conn(&rt, "a.lonely.test");
    assert_eq!(lonely.policy.as_ref().map(|p| &*p.server), Some("more-0"));
    for (tls, host, want) in [
        // Owned by the SIMPLE `*.lonely.test` server, which routes nothing.
        (Tls::Terminated(&lonely), "a.lonely.test", "404"),
        (Tls::Plain, "a.lonely.test", "404"),
        // Owned by the MUTUAL `*`: plaintext never reaches it.
        (Tls::Plain, "other.test", "421"),
        // The owner's own routes still apply.
        (
            Tls::Plain,
            "simple.test",
            "forward backend:80/v2 10.0.0.2:80",
        ),
    ] {
        assert_eq!(get(&rt, tls, 8443, "/", host), want, "{host}");
    }
}

/// What is matched is what is forwarded: a fragment is refused always,
/// and a path in other than normal form under AuthorizationPolicies.
#[test]
fn paths_a_policy_could_misread_are_refused() {
    let w = world("ALLOW_ANY");
    assert_eq!(get(&w.rt, Tls::Plain, 8080, "/a#b", "plain.test"), "400");
    assert!(get(&w.rt, Tls::Plain, 8080, "/./a", "plain.test").starts_with("forward"));
    let f = fixture();
    let policy =
        "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\n\
                  spec: {action: DENY, rules: [{to: [{operation: {paths: ['/admin*']}}]}]}\n";
    let rt = build(&f, "ALLOW_ANY", policy);
    for (path, want) in [
        ("/admin", "403"),
        ("/./admin", "400"),
        ("/x/../admin", "400"),
        ("//admin", "400"),
        ("/%61dmin", "400"),
        ("/a\\admin", "400"),
        ("/%2Fadmin", "400"),
        ("/a%20b?q=/../", "forward backend:80/v2 10.0.0.2:80"),
        ("/ok", "forward backend:80/v2 10.0.0.2:80"),
    ] {
        assert_eq!(
            get(&rt, Tls::Plain, 8080, path, "plain.test"),
            want,
            "{path}"
        );
    }
}

#[test]
fn the_remote_address_is_the_xff_entry_the_trusted_proxies_wrote() {
    let peer: Option<IpAddr> = Some("10.0.0.9".parse().unwrap());
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    for (hops, xff, want) in [
        (0, vec!["203.0.113.1"], peer),
        (1, vec![], peer),
        (1, vec!["203.0.113.1"], ip("203.0.113.1")),
        // A client's own entries sit left of what the proxies appended.
        (1, vec!["6.6.6.6, 203.0.113.1"], ip("203.0.113.1")),
        (2, vec!["6.6.6.6, 203.0.113.1, 10.1.1.1"], ip("203.0.113.1")),
        // Two header lines read as one list, in order.
        (
            2,
            vec!["6.6.6.6, 203.0.113.1", "10.1.1.1"],
            ip("203.0.113.1"),
        ),
        (3, vec!["203.0.113.1, 10.1.1.1"], peer),
        (1, vec!["6.6.6.6, not-an-ip"], peer),
        (1, vec!["2001:db8::1"], ip("2001:db8::1")),
    ] {
        let headers: http::HeaderMap = xff
            .iter()
            .map(|v| {
                (
                    http::HeaderName::from_static("x-forwarded-for"),
                    v.parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(remote_ip(hops, &headers, peer), want, "{hops} {xff:?}");
    }
}

#[test]
fn a_tunnel_is_authorized_by_the_listeners_port_as_envoy_does() {
    let f = fixture();
    let policy = "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
                  metadata: {name: p}\nspec: {action: DENY, rules: [{to: [{operation: \
                  {methods: [CONNECT], ports: ['8081'], hosts: [other.test]}}]}]}\n";
    let rt = build(&f, "ALLOW_ANY", policy);
    let c = |target| {
        status(&run(
            &rt,
            Tls::Plain,
            8081,
            "CONNECT",
            target,
            Some(target),
            Map(vec![]),
        ))
    };
    assert_eq!(c("api.remote.test:443"), "tunnel api.remote.test:443");
    assert_eq!(c("other.test:443"), "403");
    assert_eq!(c("other.test:8443"), "403");
}
