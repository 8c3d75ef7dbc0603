//! The connection-level configuration: PASSTHROUGH and TCP servers,
//! VirtualService `tls[]`/`tcp[]` routes, PeerAuthentication, the
//! GatewayRuntime's `listeners[]` and a DestinationRule's `proxyProtocol`.

use std::net::{IpAddr, SocketAddr};

use crate::testutil::{findings, load, GATEWAY, VIRTUAL_SERVICE};
use crate::{IpNet, PeerMode, ProxyProtocolIn, ProxyVersion};

fn errors_of(yaml: &str) -> Vec<String> {
    findings(yaml).0
}

const PASSTHROUGH_GW: &str = "metadata: {name: gw}\nspec:\n  servers:\n  \
    - port: {number: 443, name: tls, protocol: TLS}\n    hosts: ['*.example.com']\n    tls: {mode: PASSTHROUGH}\n  \
    - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [www.example.com]\n    \
    tls: {mode: SIMPLE, credentialName: www}\n  \
    - port: {number: 5432, name: db, protocol: TCP}\n    hosts: ['*']\n";

fn with_vs(spec: &str) -> String {
    format!("{GATEWAY}{PASSTHROUGH_GW}---\n{VIRTUAL_SERVICE}metadata: {{name: vs}}\nspec:\n{spec}")
}

#[test]
fn passthrough_and_tcp_servers_share_ports_as_istio_allows() {
    let m = load(&with_vs(
        "  hosts: ['*.example.com']\n  gateways: [gw]\n  tls:\n  \
         - match: [{port: 443, sniHosts: [a.example.com, '*.b.example.com']}]\n    \
         route:\n    - {destination: {host: a, port: {number: 8443}}, weight: 30}\n    \
         - {destination: {host: b, port: {number: 8443}}, weight: 70}\n  \
         tcp:\n  - route: [{destination: {host: db, port: {number: 5432}}}]\n",
    ))
    .unwrap();
    let servers = &m.gateways[0].servers;
    assert!(servers[0].passthrough && servers[0].tls.is_none());
    assert!(!servers[1].passthrough && servers[1].tls.is_some());
    assert_eq!(servers[2].protocol, crate::Protocol::Tcp);
    let vs = &m.virtual_services[0];
    assert_eq!(vs.tls[0].name, "vs.tls[0]");
    assert_eq!(vs.tls[0].matches[0].sni_hosts.len(), 2);
    assert_eq!(vs.tls[0].matches[0].port, Some(443));
    let weights: Vec<u32> = vs.tls[0].destinations.iter().map(|d| d.weight).collect();
    assert_eq!(weights, [30, 70]);
    assert!(vs.tcp[0].matches.is_empty(), "no match: every connection");
}

#[test]
fn route_mistakes_name_their_field() {
    let e = errors_of(&with_vs(
        "  hosts: [a.example.com]\n  gateways: [gw]\n  tls:\n  \
         - route: [{destination: {host: a}}]\n  \
         - match: [{port: 443}]\n    route: [{destination: {host: a}}]\n  \
         - match: [{sniHosts: [z.other.com]}]\n    route: [{destination: {host: a}}]\n  \
         - match: [{sniHosts: [a.example.com], destinationSubnets: [10.0.0.0/8]}]\n    route: [{destination: {host: a}}]\n  \
         tcp:\n  - match: [{sniHosts: [a.example.com]}]\n    route: [{destination: {host: a}}]\n  \
         - match: [{port: 1, gateways: [nope]}]\n    route: []\n",
    ));
    let e: Vec<&str> = e
        .iter()
        .map(|e| e.strip_prefix("VirtualService/vs: ").unwrap())
        .collect();
    assert_eq!(
        e,
        [
            "spec.tls[0].match: a tls route needs a match with sniHosts",
            "spec.tls[1].match[0].sniHosts: a tls route match needs sniHosts",
            "spec.tls[2].match[0].sniHosts[0]: 'z.other.com' is not among the VirtualService's hosts",
            "spec.tls[3].match[0].destinationSubnets: not supported by tlsgate: matching the connection's destination address is not implemented",
            "spec.tcp[0].match[0].sniHosts: sniHosts belongs to tls routes; a tcp route matches by port",
            "spec.tcp[1].match[0].gateways[0]: no Gateway 'nope'",
            "spec.tcp[1].route: needs at least one destination",
        ]
    );
}

#[test]
fn server_modes_that_cannot_pass_through_are_explained() {
    let server = |port: u32, protocol: &str, tls: &str| {
        format!("  - port: {{number: {port}, protocol: {protocol}}}\n    hosts: [a.com]\n{tls}")
    };
    let yaml = format!(
        "{GATEWAY}metadata: {{name: g}}\nspec:\n  servers:\n{}{}{}",
        server(1, "TCP", "    tls: {mode: SIMPLE, credentialName: x}\n"),
        server(2, "HTTP", "    tls: {mode: PASSTHROUGH}\n"),
        server(
            3,
            "TLS",
            "    tls: {mode: PASSTHROUGH, credentialName: x}\n"
        ),
    );
    let (errors, warnings) = findings(&yaml);
    assert_eq!(
        errors,
        [
            "Gateway/g: spec.servers[0].tls: a TCP server takes no tls; use protocol TLS to terminate or pass through TLS",
            "Gateway/g: spec.servers[1].tls: an HTTP server only takes tls.httpsRedirect; use protocol HTTPS to terminate TLS",
        ]
    );
    assert_eq!(
        warnings,
        ["Gateway/g: spec.servers[2].tls.credentialName: ignored: PASSTHROUGH does not terminate TLS: the backend's own certificate and settings apply"]
    );
    // A host is either passed through or terminated on a port, not both.
    let both = format!(
        "{GATEWAY}metadata: {{name: g}}\nspec:\n  servers:\n{}{}",
        server(443, "TLS", "    tls: {mode: PASSTHROUGH}\n"),
        server(443, "HTTPS", "    tls: {mode: SIMPLE, credentialName: x}\n"),
    );
    let e = errors_of(&both);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].contains("host 'a.com' on 0.0.0.0:443 is named by two servers"),
        "{e:#?}"
    );
    // HTTP and TCP cannot share a port.
    let mixed = format!(
        "{GATEWAY}metadata: {{name: g}}\nspec:\n  servers:\n{}{}",
        server(80, "HTTP", ""),
        server(80, "TCP", ""),
    );
    assert!(errors_of(&mixed)[0].contains("one port has one protocol"));
}

const PEER: &str = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n";

#[test]
fn peer_authentication_maps_onto_ports() {
    let yaml = format!(
        "{PEER}metadata: {{name: default, namespace: default}}\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  \
         mtls: {{mode: PERMISSIVE}}\n  portLevelMtls:\n    8443: {{mode: STRICT}}\n    9443: {{mode: DISABLE}}\n"
    );
    let (errors, warnings) = findings(&yaml);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        warnings,
        ["PeerAuthentication/default: spec.selector: ignored: selects Istio workloads; here the policy applies to this gateway's TLS ports"]
    );
    let m = load(&yaml).unwrap();
    assert_eq!(m.peer_mode(443), PeerMode::Permissive);
    assert_eq!(m.peer_mode(8443), PeerMode::Strict);
    assert_eq!(m.peer_mode(9443), PeerMode::Disable);
    let none = load("").unwrap();
    assert_eq!(none.peer_mode(443), PeerMode::Strict, "no policy: TLS only");
    let unset = load(&format!(
        "{PEER}metadata: {{name: p}}\nspec: {{mtls: {{mode: UNSET}}}}\n"
    ))
    .unwrap();
    assert_eq!(unset.peer_mode(443), PeerMode::Strict);

    let e = errors_of(&format!(
        "{PEER}metadata: {{name: a}}\nspec: {{mtls: {{mode: LOOSE}}}}\n---\n\
         {PEER}metadata: {{name: b}}\nspec: {{}}\n"
    ));
    assert_eq!(
        e,
        [
            "PeerAuthentication/b: kind: only one PeerAuthentication applies to tlsgate; test.yaml: PeerAuthentication/a is already one (merge them: portLevelMtls sets ports apart)",
            "PeerAuthentication/a: spec.mtls.mode: unknown mode 'LOOSE': expected STRICT, PERMISSIVE, DISABLE or UNSET",
        ]
    );
}

const RUNTIME: &str = "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {name: rt}\n";

/// Servers on 443 (every address and 127.0.0.1), 80 and 5432 (TCP).
const LISTENING: &str = "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  servers:\n  \
    - port: {number: 443, protocol: HTTPS}\n    hosts: [a.com]\n    tls: {mode: SIMPLE, credentialName: a}\n  \
    - port: {number: 443, protocol: HTTPS}\n    bind: 127.0.0.1\n    hosts: [a.com]\n    tls: {mode: SIMPLE, credentialName: a}\n  \
    - port: {number: 80, protocol: HTTP}\n    hosts: ['*']\n  \
    - port: {number: 5432, protocol: TCP}\n    hosts: ['*']\n";

#[test]
fn listeners_say_who_may_send_proxy_protocol() {
    let m = load(&format!(
        "{RUNTIME}spec:\n  listeners:\n  - port: 443\n    proxyProtocol: {{mode: REQUIRED, trustedSources: [10.0.0.0/8, '2001:db8::/32']}}\n    \
         maxConnections: 100\n    firstBytesTimeout: 2s\n    tcpIdleTimeout: 5m\n  \
         - port: 443\n    bind: 127.0.0.1\n  - port: 80\n    proxyProtocol: {{mode: optional, trustedSources: [192.0.2.1]}}\n{LISTENING}"
    ))
    .unwrap();
    let on = |a: &str| m.listener(a.parse::<SocketAddr>().unwrap());
    let any = on("0.0.0.0:443").unwrap();
    assert!(matches!(
        any.proxy_protocol,
        ProxyProtocolIn::Required { .. }
    ));
    assert_eq!(any.max_connections, Some(100));
    assert_eq!(
        any.tcp_idle_timeout,
        Some(std::time::Duration::from_secs(300))
    );
    assert!(any.proxy_protocol.trusts("10.1.2.3".parse().unwrap()));
    assert!(any
        .proxy_protocol
        .trusts("::ffff:10.1.2.3".parse().unwrap()));
    assert!(any.proxy_protocol.trusts("2001:db8::9".parse().unwrap()));
    assert!(!any.proxy_protocol.trusts("11.0.0.1".parse().unwrap()));
    assert_eq!(
        on("127.0.0.1:443").unwrap().proxy_protocol,
        ProxyProtocolIn::Off,
        "the bind-specific entry wins"
    );
    let eighty = &on("0.0.0.0:80").unwrap().proxy_protocol;
    assert!(eighty.trusts("192.0.2.1".parse().unwrap()));
    assert!(!eighty.trusts("192.0.2.2".parse().unwrap()));
    assert!(on("0.0.0.0:8080").is_none());

    let (e, w) = findings(&format!(
        "{RUNTIME}spec:\n  listeners:\n  - port: 443\n    proxyProtocol: {{mode: REQUIRED}}\n  \
         - port: 443\n    proxyProtocol: {{mode: ALWAYS, trustedSources: [10.0.0.0/33]}}\n  \
         - port: 80\n    maxConnections: 0\n    firstBytesTimeout: 0s\n  \
         - port: 8080\n  - port: 5432\n    proxyProtocol: {{mode: OPTIONAL, trustedSources: [0.0.0.0/0]}}\n  \
         - port: 443\n    bind: 127.0.0.1\n    proxyProtocol: {{trustedSources: ['10.0.0.1/8']}}\n{LISTENING}"
    ));
    let strip = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|e| e.strip_prefix("GatewayRuntime/rt: ").unwrap().to_string())
            .collect()
    };
    assert_eq!(
        strip(e),
        [
            "spec.listeners[0].proxyProtocol.trustedSources: list the load balancers' addresses (e.g. 10.0.0.0/8; 0.0.0.0/0 and ::/0 trust everyone)",
            "spec.listeners[1].port: port 443 is listed twice",
            "spec.listeners[1].proxyProtocol.trustedSources[0]: invalid address block '10.0.0.0/33': expected e.g. 10.0.0.0/8",
            "spec.listeners[1].proxyProtocol.mode: unknown mode 'ALWAYS': expected REQUIRED, OPTIONAL or OFF",
            "spec.listeners[2].maxConnections: must be at least 1",
            "spec.listeners[2].firstBytesTimeout: must be more than 0s",
            "spec.listeners[5].proxyProtocol.mode: missing: trustedSources alone reads no header; say REQUIRED or OPTIONAL",
            "spec.listeners[3].port: no Gateway server listens on port 8080",
        ]
    );
    assert_eq!(
        strip(w),
        [
            "spec.listeners[4].proxyProtocol.trustedSources[0]: caution: 0.0.0.0/0 trusts every address: anyone who reaches this port can claim any client address (right only when the load balancer is the only way in)",
            "spec.listeners[5].proxyProtocol.trustedSources[0]: caution: 10.0.0.1/8 has bits set past its prefix length",
            "spec.listeners[4].proxyProtocol.mode: caution: OPTIONAL waits for the client's first bytes: clients of protocols where the server speaks first (MySQL, SMTP) wait until firstBytesTimeout; use REQUIRED",
        ]
    );
}

#[test]
fn address_blocks() {
    let n = |s: &str| IpNet::parse(s).unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(n("0.0.0.0/0").contains(ip("203.0.113.1")));
    assert!(!n("0.0.0.0/0").contains(ip("2001:db8::1")));
    assert!(n("::/0").contains(ip("2001:db8::1")));
    assert!(n("192.0.2.1").contains(ip("192.0.2.1")));
    assert_eq!(n("::ffff:10.0.0.0/104"), n("10.0.0.0/8"), "IPv4-mapped");
    assert!(n("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
    assert!(!n("192.0.2.1").contains(ip("192.0.2.2")));
    assert!(n("172.16.0.0/12").contains(ip("172.31.255.255")));
    assert!(!n("172.16.0.0/12").contains(ip("172.32.0.0")));
    for bad in ["10.0.0.0/", "10.0.0/8", "::/129", "x", "10.0.0.0/-1"] {
        assert!(IpNet::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn destination_rules_ask_for_proxy_protocol() {
    let dr = |v: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r}}\n\
             spec:\n  host: db\n  trafficPolicy:\n    proxyProtocol: {{{v}}}\n"
        )
    };
    let m = load(&dr("version: V2")).unwrap();
    assert_eq!(
        m.destination_rules[0].traffic_policy.proxy_protocol,
        Some(ProxyVersion::V2)
    );
    let m = load(&dr("")).unwrap();
    assert_eq!(
        m.destination_rules[0].traffic_policy.proxy_protocol,
        Some(ProxyVersion::V1),
        "Istio's default version"
    );
    assert_eq!(
        errors_of(&dr("version: V3")),
        ["DestinationRule/r: spec.trafficPolicy.proxyProtocol.version: unknown version 'V3': expected V1 or V2"]
    );
}

#[test]
fn one_tcp_server_per_port_and_disable_says_what_it_hides() {
    let two = format!(
        "{GATEWAY}metadata: {{name: g}}\nspec:\n  servers:\n  \
         - port: {{number: 5432, protocol: TCP}}\n    hosts: ['*']\n  \
         - port: {{number: 5432, protocol: TCP}}\n    hosts: [db.example.com]\n"
    );
    assert_eq!(
        errors_of(&two),
        ["Gateway/g: spec.servers[1].port: 0.0.0.0:5432 already has a TCP server (test.yaml: Gateway/g: spec.servers[0]); a TCP connection has no name to choose between two"]
    );
    let (errors, warnings) = findings(&format!(
        "{GATEWAY}{PASSTHROUGH_GW}---\n{PEER}metadata: {{name: p}}\nspec:\n  portLevelMtls:\n    443: {{mode: DISABLE}}\n"
    ));
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        warnings,
        ["PeerAuthentication/p: spec.portLevelMtls.443.mode: caution: DISABLE takes plaintext only: the TLS passthrough and stream servers on port 443 (tls) are unreachable"]
    );
}
