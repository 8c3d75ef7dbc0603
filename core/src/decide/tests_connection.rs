//! The connection-level decision, as a table: for each listener kind,
//! peer mode and opening (SNI), what becomes of the connection; and whom
//! a PROXY protocol header is believed from.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::connection::*;
use crate::config::{IpNet, ProxyProtocolIn, ProxyVersion};
use crate::l4::proxy_protocol::Header;
use crate::runtime::testutil::Fixture;
use crate::runtime::Runtime;

const YAML: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers:
  - port: {number: 443, name: pass, protocol: TLS}
    hosts: ["*.pass.test", "db.test"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 443, name: web, protocol: HTTPS}
    hosts: [web.test, "x.pass.test"]
    tls: {mode: SIMPLE, credentialName: web}
  - port: {number: 443, name: opaque, protocol: TLS}
    hosts: [opaque.test]
    tls: {mode: SIMPLE, credentialName: opaque}
  - port: {number: 5432, name: pg, protocol: TCP}
    hosts: ["*"]
  - port: {number: 8443, name: other, protocol: HTTPS}
    hosts: [web.test]
    tls: {mode: SIMPLE, credentialName: web}
  - port: {number: 9443, name: lonely, protocol: TLS}
    hosts: ["*.lonely.test"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pass}
spec:
  hosts: ["*.pass.test", db.test]
  gateways: [gw]
  tls:
  - match: [{port: 443, sniHosts: [a.pass.test]}]
    route: [{destination: {host: a.backend, port: {number: 8443}}}]
  - match: [{port: 443, sniHosts: ["*.pass.test"]}]
    route:
    - {destination: {host: b.backend, port: {number: 8443}}, weight: 50}
    - {destination: {host: c.backend, port: {number: 8443}}, weight: 50}
  - match: [{port: 8443, sniHosts: [db.test]}]
    route: [{destination: {host: never.backend, port: {number: 8443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: streams}
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - match: [{port: 5432}]
    route: [{destination: {host: pg.backend, port: {number: 5432}}}]
  - match: [{port: 443}]
    route: [{destination: {host: opaque.backend, port: {number: 7000}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pg}
spec:
  host: pg.backend
  trafficPolicy:
    proxyProtocol: {version: V2}
    connectionPool: {tcp: {maxConnections: 1}, http: {http2MaxRequests: 1}}
"#;

fn runtime(extra: &str) -> (Fixture, Arc<Runtime>) {
    let f = Fixture::new();
    f.server("web", &["web.test", "x.pass.test"], 0);
    f.server("opaque", &["opaque.test"], 0);
    let model = f.model(&format!("{YAML}{extra}")).unwrap();
    let rt = Arc::new(Runtime::build(model, 1).unwrap());
    (f, rt)
}

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

/// What a connection comes to, as one string: `terminate`, `http`,
/// `refuse <reason>` or `stream <server> <route> <destination>`.
fn outcome(rt: &Runtime, port: u16, kind: ListenerKind, opening: Opening<'_>) -> String {
    let mut rng = StdRng::seed_from_u64(7);
    show(decide_opening(
        rt,
        at(port),
        kind,
        opening,
        CLIENT,
        &mut rng,
    ))
}

fn show(a: ConnAction) -> String {
    match a {
        ConnAction::Terminate => "terminate".into(),
        ConnAction::Http => "http".into(),
        ConnAction::Refuse(r) => format!("refuse {r}"),
        ConnAction::Denied(v) => format!("refuse authz_denied by {}", v.decided_by()),
        ConnAction::Stream(p) => format!(
            "stream {} {} {}{}",
            p.server,
            p.route.id,
            p.to.dest.name,
            p.authz
                .map(|v| format!(" allowed by {}", v.decided_by()))
                .unwrap_or_default()
        ),
    }
}

fn tls(sni: Option<&str>) -> Opening<'_> {
    Opening::Tls { sni }
}

#[test]
fn each_opening_on_each_listener() {
    use ListenerKind::*;
    let (_f, rt) = runtime("");
    let table: &[(u16, ListenerKind, Opening<'_>, &str)] = &[
        // SNI picks passthrough or termination, most specific first.
        (
            443,
            Tls,
            tls(Some("a.pass.test")),
            "stream pass pass/pass.tls[0] a.backend:8443",
        ),
        (443, Tls, tls(Some("x.pass.test")), "terminate"),
        (443, Tls, tls(Some("web.test")), "terminate"),
        (443, Tls, tls(Some("opaque.test")), "terminate"),
        // Named by the passthrough server but by no route on this port.
        (443, Tls, tls(Some("db.test")), "refuse no_route"),
        // No server names it: the handshake refuses it, as always.
        (443, Tls, tls(Some("nobody.test")), "terminate"),
        (443, Tls, tls(None), "terminate"),
        // STRICT (no PeerAuthentication): plaintext is refused.
        (443, Tls, Opening::Plain, "refuse plaintext_on_tls_port"),
        (443, Tls, Opening::Unread, "terminate"),
        (9443, Tls, tls(Some("a.lonely.test")), "refuse no_route"),
        (
            5432,
            Tcp,
            Opening::Unread,
            "stream pg streams/streams.tcp[0] pg.backend:5432",
        ),
        (80, Http, Opening::Unread, "http"),
        (6000, Tcp, Opening::Unread, "refuse no_route"),
    ];
    for (port, kind, opening, want) in table {
        assert_eq!(
            &outcome(&rt, *port, *kind, *opening),
            want,
            "{port} {opening:?}"
        );
    }
}

#[test]
fn weights_split_passthrough_connections() {
    let (_f, rt) = runtime("");
    let mut rng = StdRng::seed_from_u64(1);
    let mut b = 0;
    for _ in 0..1000 {
        let a = decide_opening(
            &rt,
            at(443),
            ListenerKind::Tls,
            tls(Some("q.pass.test")),
            CLIENT,
            &mut rng,
        );
        let ConnAction::Stream(p) = a else { panic!() };
        if &*p.to.dest.name == "b.backend:8443" {
            b += 1;
        }
    }
    assert!((400..600).contains(&b), "{b} of 1000 to b");
}

#[test]
fn peer_authentication_decides_plaintext() {
    use ListenerKind::Tls;
    let policy = |mode: &str| {
        format!(
            "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: p}}\n\
             spec:\n  mtls: {{mode: STRICT}}\n  portLevelMtls:\n    443: {{mode: {mode}}}\n"
        )
    };
    let (_f, rt) = runtime(&policy("PERMISSIVE"));
    assert_eq!(outcome(&rt, 443, Tls, Opening::Plain), "http");
    assert_eq!(outcome(&rt, 443, Tls, tls(Some("web.test"))), "terminate");
    assert_eq!(
        look_for(&rt, at(443), Tls),
        Look::ClientHello,
        "passthrough hosts"
    );
    assert_eq!(
        look_for(&rt, at(8443), Tls),
        Look::Nothing,
        "STRICT elsewhere"
    );
    let (_f, rt) = runtime(&policy("DISABLE"));
    assert_eq!(outcome(&rt, 443, Tls, Opening::Plain), "http");
    assert_eq!(
        outcome(&rt, 443, Tls, tls(Some("web.test"))),
        "refuse tls_on_plaintext_port"
    );
    let (_f, rt) = runtime(&policy("PERMISSIVE").replace("443:", "8443:"));
    assert_eq!(look_for(&rt, at(8443), Tls), Look::FirstByte);
    assert_eq!(outcome(&rt, 8443, Tls, Opening::Plain), "http");
    assert_eq!(look_for(&rt, at(5432), ListenerKind::Tcp), Look::Nothing);
}

#[test]
fn a_terminated_tls_server_streams_by_its_sni() {
    let (_f, rt) = runtime("");
    let mut rng = StdRng::seed_from_u64(1);
    let mut after = |sni, revoked: bool| {
        decide_terminated(&rt, at(443), sni, None, CLIENT, || revoked, &mut rng).map(show)
    };
    assert_eq!(
        after(Some("opaque.test"), false).as_deref(),
        Some("stream opaque streams/streams.tcp[1] opaque.backend:7000")
    );
    // A CRL fetched since the certificate was checked: the stream is
    // refused; HTTP checks it at each request instead.
    assert_eq!(
        after(Some("opaque.test"), true).as_deref(),
        Some("refuse revoked")
    );
    assert_eq!(after(Some("web.test"), true), None, "HTTPS: HTTP");
    assert_eq!(after(Some("web.test"), false), None, "HTTPS: HTTP");
    assert_eq!(
        after(Some("x.pass.test"), false),
        None,
        "HTTPS beats the passthrough wildcard"
    );
}

#[test]
fn a_stream_plan_carries_what_the_destination_asks() {
    let (_f, rt) = runtime(
        "---\napiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {name: rt}\n\
         spec:\n  timeouts: {tcpIdle: 7m}\n  listeners: [{port: 5432, tcpIdleTimeout: 9s}]\n",
    );
    let mut rng = StdRng::seed_from_u64(1);
    let ConnAction::Stream(first) = decide_opening(
        &rt,
        at(5432),
        ListenerKind::Tcp,
        Opening::Unread,
        CLIENT,
        &mut rng,
    ) else {
        panic!()
    };
    assert_eq!(first.proxy_protocol, Some(ProxyVersion::V2));
    assert_eq!(
        first.idle,
        std::time::Duration::from_secs(9),
        "the listener's own"
    );
    // maxConnections 1 and http2MaxRequests 1: the second waits or is refused.
    let second = decide_opening(
        &rt,
        at(5432),
        ListenerKind::Tcp,
        Opening::Unread,
        CLIENT,
        &mut rng,
    );
    assert!(
        matches!(&second, ConnAction::Refuse("overflow"))
            || matches!(&second, ConnAction::Stream(p) if p.to.queued()),
        "{}",
        show(second)
    );
    drop(first);
    let ConnAction::Stream(p) = decide_opening(
        &rt,
        at(443),
        ListenerKind::Tls,
        tls(Some("a.pass.test")),
        CLIENT,
        &mut rng,
    ) else {
        panic!()
    };
    assert_eq!(
        p.idle,
        std::time::Duration::from_secs(7 * 60),
        "timeouts.tcpIdle"
    );
    assert_eq!(p.proxy_protocol, None);
}

#[test]
fn proxy_headers_are_believed_from_trusted_sources_only() {
    let trusted = vec![IpNet::parse("10.0.0.0/8").unwrap()];
    let required = ProxyProtocolIn::Required {
        trusted: trusted.clone(),
    };
    let optional = ProxyProtocolIn::Optional { trusted };
    let lb: IpAddr = "10.1.1.1".parse().unwrap();
    let stranger: IpAddr = "203.0.113.9".parse().unwrap();
    let client: SocketAddr = "198.51.100.1:5000".parse().unwrap();
    let proxied = Header::Proxied {
        source: client,
        destination: "10.0.0.2:443".parse().unwrap(),
    };
    type Row<'a> = (
        &'a ProxyProtocolIn,
        IpAddr,
        Option<&'a Header>,
        Result<ProxySource, &'a str>,
    );
    let table: &[Row<'_>] = &[
        (
            &ProxyProtocolIn::Off,
            stranger,
            None,
            Ok(ProxySource::Socket),
        ),
        (
            &required,
            lb,
            Some(&proxied),
            Ok(ProxySource::Client(client)),
        ),
        (&required, lb, Some(&Header::Local), Ok(ProxySource::Socket)),
        (&required, lb, None, Err("proxy_protocol_missing")),
        (
            &required,
            stranger,
            Some(&proxied),
            Err("proxy_protocol_untrusted"),
        ),
        (&required, stranger, None, Err("proxy_protocol_untrusted")),
        (
            &optional,
            lb,
            Some(&proxied),
            Ok(ProxySource::Client(client)),
        ),
        (&optional, lb, None, Ok(ProxySource::Socket)),
        (&optional, stranger, None, Ok(ProxySource::Socket)),
        (
            &optional,
            stranger,
            Some(&proxied),
            Err("proxy_protocol_untrusted"),
        ),
        (
            &optional,
            stranger,
            Some(&Header::Local),
            Err("proxy_protocol_untrusted"),
        ),
    ];
    for (setting, peer, header, want) in table {
        assert_eq!(
            &proxy_source(setting, *peer, *header),
            want,
            "{setting:?} {peer} {header:?}"
        );
    }
}

/// Policies apply to relayed connections with Istio's TCP rules: an ALLOW
/// rule naming HTTP attributes never matches; a DENY rule drops them.
#[test]
fn policies_apply_to_relayed_connections() {
    use ListenerKind::*;
    let policy = |spec: &str| {
        format!("---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p}}\nspec:\n{spec}")
    };
    // DENY by address, its path dropped: the TCP connection is refused.
    let (_f, rt) = runtime(&policy(
        "  action: DENY\n  rules:\n  - from: [{source: {remoteIpBlocks: [192.0.2.0/24]}}]\n    \
         to: [{operation: {paths: [/admin]}}]\n",
    ));
    assert_eq!(
        outcome(&rt, 5432, Tcp, Opening::Unread),
        "refuse authz_denied by p[0]"
    );
    // ALLOW naming a path never matches a stream: deny by default.
    let (_f, rt) = runtime(&policy(
        "  rules:\n  - to: [{operation: {paths: ['/*']}}]\n",
    ));
    assert_eq!(
        outcome(&rt, 443, Tls, tls(Some("a.pass.test"))),
        "refuse authz_denied by -"
    );
    // ALLOW by port and SNI: streams on it pass.
    let (_f, rt) = runtime(&policy(
        "  rules:\n  - to: [{operation: {ports: ['443']}}]\n    when: [{key: connection.sni, values: ['*.pass.test']}]\n",
    ));
    assert_eq!(
        outcome(&rt, 443, Tls, tls(Some("a.pass.test"))),
        "stream pass pass/pass.tls[0] a.backend:8443 allowed by p[0]"
    );
    assert_eq!(
        outcome(&rt, 5432, Tcp, Opening::Unread),
        "refuse authz_denied by -"
    );
}
