//! `Gateway` -> [`Gateway`]: listeners, their hosts and server TLS, and the
//! checks that span Gateways (one protocol per port, one server per host on
//! an HTTPS port, since a host's certificate is chosen by SNI alone).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::load::Document;
use super::parse::{host_pattern, resolve, spec, upper, Report, NEEDS_MESH};
use super::raw;
use super::{
    CredentialSource, Findings, Gateway, HostPattern, Mesh, Protocol, Server, ServerTls,
    ServerTlsMode, TlsVersion,
};

/// `mesh`: the gateway's mesh identity (`GatewayRuntime.spec.mesh`), which
/// `ISTIO_MUTUAL` servers use.
pub(crate) fn convert(doc: &Document, mesh: Option<&Mesh>, out: &mut Findings) -> Option<Gateway> {
    let mut report = Report::new(&doc.id, out);
    let raw: raw::GatewaySpec = spec(doc, &mut report)?;
    if raw.servers.is_empty() {
        report.error("spec.servers", "a Gateway needs at least one server");
    }
    let servers: Vec<Server> = raw
        .servers
        .iter()
        .enumerate()
        .filter_map(|(i, s)| server(doc, i, s, mesh, &mut report))
        .collect();
    if report.failed() {
        return None;
    }
    Some(Gateway {
        id: doc.id.clone(),
        namespace: doc.namespace.clone(),
        servers,
        egress: is_egress_selector(&raw.selector),
        selector: raw.selector,
    })
}

/// Istio's egress gateway pods carry `istio: egressgateway` (or
/// `app: istio-egressgateway`); a selector naming them marks the Gateway as
/// an egress gateway, which is all a selector can mean without pods.
fn is_egress_selector(selector: &std::collections::BTreeMap<String, String>) -> bool {
    selector
        .values()
        .any(|v| v.to_ascii_lowercase().ends_with("egressgateway"))
}

fn server(
    doc: &Document,
    index: usize,
    raw: &raw::Server,
    mesh: Option<&Mesh>,
    report: &mut Report<'_>,
) -> Option<Server> {
    let p = format!("spec.servers[{index}]");
    let protocol = match raw.port.protocol.trim().to_ascii_uppercase().as_str() {
        // HTTP/2 is negotiated per connection; the listener is the same.
        "HTTP" | "HTTP2" => Some(Protocol::Http),
        "HTTPS" => Some(Protocol::Https),
        "TLS" => Some(Protocol::Tls),
        // Istio's names for byte streams it does not parse.
        "TCP" | "MONGO" | "MYSQL" | "REDIS" => Some(Protocol::Tcp),
        other => {
            report.error(
                format!("{p}.port.protocol"),
                format!(
                    "protocol '{other}' is not supported: tlsgate serves HTTP, HTTPS, TLS and TCP"
                ),
            );
            None
        }
    };
    if raw.port.number == 0 {
        report.error(format!("{p}.port.number"), "port 0 is not a port");
    }
    let bind = match &raw.bind {
        None => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        Some(b) => report.check(
            &format!("{p}.bind"),
            b.parse::<IpAddr>()
                .map_err(|_| format!("invalid bind address '{b}': expected an IP address")),
        ),
    };
    if raw.hosts.is_empty() {
        report.error(
            format!("{p}.hosts"),
            "a server needs at least one host ('*' for any)",
        );
    }
    let hosts: Vec<HostPattern> = raw
        .hosts
        .iter()
        .enumerate()
        .filter_map(|(j, h)| report.check(&format!("{p}.hosts[{j}]"), host_pattern(h)))
        .collect();
    let name = raw
        .port
        .name
        .clone()
        .or_else(|| raw.name.clone())
        .unwrap_or_else(|| format!("{}-{index}", doc.id.name));

    let mut https_redirect = false;
    let passthrough = raw.tls.as_ref().is_some_and(|t| {
        upper(&t.mode).as_deref() == Some("PASSTHROUGH")
            && matches!(protocol, Some(Protocol::Https | Protocol::Tls))
    });
    let tls = match (protocol?, &raw.tls) {
        (Protocol::Https | Protocol::Tls, Some(t)) if passthrough => {
            passthrough_tls(&p, t, report);
            None
        }
        (Protocol::Tcp, None) => None,
        (Protocol::Tcp, Some(_)) => {
            report.error(
                format!("{p}.tls"),
                "a TCP server takes no tls; use protocol TLS to terminate or pass through TLS",
            );
            None
        }
        (Protocol::Http, None) => None,
        (Protocol::Http, Some(t)) => {
            https_redirect = t.https_redirect;
            if t.mode.is_some() || t.credential_name.is_some() || t.server_certificate.is_some() {
                report.error(
                    format!("{p}.tls"),
                    "an HTTP server only takes tls.httpsRedirect; use protocol HTTPS to terminate TLS",
                );
            }
            None
        }
        (_, None) => {
            report.error(
                format!("{p}.tls"),
                "an HTTPS or TLS server needs tls (mode and credentialName)",
            );
            None
        }
        (_, Some(t)) => server_tls(&p, t, doc, mesh, report),
    };
    Some(Server {
        index,
        name,
        bind: bind?,
        port: raw.port.number,
        protocol: protocol?,
        hosts,
        tls,
        https_redirect,
        passthrough,
    })
}

/// A passthrough server never sees a key: anything that would configure
/// termination is a mistake worth naming.
fn passthrough_tls(p: &str, t: &raw::ServerTls, report: &mut Report<'_>) {
    let set = [
        ("credentialName", t.credential_name.is_some()),
        ("serverCertificate", t.server_certificate.is_some()),
        ("privateKey", t.private_key.is_some()),
        ("caCertificates", t.ca_certificates.is_some()),
        ("subjectAltNames", !t.subject_alt_names.is_empty()),
        ("minProtocolVersion", t.min_protocol_version.is_some()),
        ("maxProtocolVersion", t.max_protocol_version.is_some()),
        ("cipherSuites", !t.cipher_suites.is_empty()),
    ];
    for (field, present) in set {
        if present {
            report.warn(
                format!("{p}.tls.{field}"),
                "PASSTHROUGH does not terminate TLS: the backend's own certificate and \
                 settings apply",
            );
        }
    }
}

fn server_tls(
    p: &str,
    t: &raw::ServerTls,
    doc: &Document,
    mesh: Option<&Mesh>,
    report: &mut Report<'_>,
) -> Option<ServerTls> {
    if upper(&t.mode).as_deref() == Some("ISTIO_MUTUAL") {
        return istio_mutual(p, t, mesh, report);
    }
    let mode = match upper(&t.mode).as_deref() {
        Some("SIMPLE") => Some(ServerTlsMode::Simple),
        Some("MUTUAL") => Some(ServerTlsMode::Mutual),
        Some("OPTIONAL_MUTUAL") => Some(ServerTlsMode::OptionalMutual),
        Some("PASSTHROUGH") => {
            report.error(
                format!("{p}.tls.mode"),
                "PASSTHROUGH needs protocol HTTPS or TLS",
            );
            None
        }
        Some("AUTO_PASSTHROUGH") => {
            report.error(
                format!("{p}.tls.mode"),
                "AUTO_PASSTHROUGH routes by Istio's mesh-internal SNI names (multi-cluster \
                 east-west gateways), which tlsgate cannot know; use PASSTHROUGH with tls[] routes",
            );
            None
        }
        other => {
            report.error(
                format!("{p}.tls.mode"),
                format!(
                    "{}: expected SIMPLE, MUTUAL, OPTIONAL_MUTUAL or ISTIO_MUTUAL",
                    other.map_or("missing".to_string(), |m| format!("unknown mode '{m}'"))
                ),
            );
            None
        }
    };
    // Both client-verifying modes need a CA: OPTIONAL_MUTUAL still verifies
    // a certificate that is offered. (A credentialName's CA bundle is
    // checked when the credential is loaded, see runtime/refs.rs.)
    let needs_ca = mode.is_some_and(|m| m != ServerTlsMode::Simple);
    // Without a usable mode, what the credential needs is unknown.
    let credential = mode.and_then(|_| server_credential(p, t, doc, needs_ca, report));
    let min_version = tls_version(
        &format!("{p}.tls.minProtocolVersion"),
        &t.min_protocol_version,
        report,
    );
    let max_version = tls_version(
        &format!("{p}.tls.maxProtocolVersion"),
        &t.max_protocol_version,
        report,
    );
    if let (Some(Some(min)), Some(Some(max))) = (min_version, max_version) {
        if min > max {
            report.error(
                format!("{p}.tls.maxProtocolVersion"),
                "lower than minProtocolVersion",
            );
        }
    }
    Some(ServerTls {
        mode: mode?,
        credential: credential?,
        subject_alt_names: t.subject_alt_names.clone(),
        trust_domain: None,
        min_version: min_version?,
        max_version: max_version?,
        cipher_suites: t.cipher_suites.clone(),
    })
}

/// `ISTIO_MUTUAL`: MUTUAL with the gateway's mesh credential; clients
/// present a SPIFFE identity of the trust domain (or one of
/// `subjectAltNames`), signed by the mesh CA.
fn istio_mutual(
    p: &str,
    t: &raw::ServerTls,
    mesh: Option<&Mesh>,
    report: &mut Report<'_>,
) -> Option<ServerTls> {
    let Some(mesh) = mesh else {
        report.error(format!("{p}.tls.mode"), NEEDS_MESH);
        return None;
    };
    if t.credential_name.is_some()
        || t.server_certificate.is_some()
        || t.private_key.is_some()
        || t.ca_certificates.is_some()
    {
        report.error(
            format!("{p}.tls"),
            "ISTIO_MUTUAL uses the mesh credential (GatewayRuntime spec.mesh); remove \
             credentialName, serverCertificate, privateKey and caCertificates",
        );
        return None;
    }
    let version = |field: &str, raw: &Option<String>, report: &mut Report<'_>| {
        tls_version(&format!("{p}.tls.{field}"), raw, report)
    };
    let min_version = version("minProtocolVersion", &t.min_protocol_version, report);
    let max_version = version("maxProtocolVersion", &t.max_protocol_version, report);
    let (min_version, max_version) = (min_version?, max_version?);
    if let (Some(min), Some(max)) = (min_version, max_version) {
        if min > max {
            report.error(
                format!("{p}.tls.maxProtocolVersion"),
                "lower than minProtocolVersion",
            );
            return None;
        }
    }
    Some(ServerTls {
        mode: ServerTlsMode::Mutual,
        credential: CredentialSource::Named(mesh.credential_name.clone()),
        subject_alt_names: t.subject_alt_names.clone(),
        trust_domain: Some(mesh.trust_domain.clone()),
        min_version,
        max_version,
        cipher_suites: t.cipher_suites.clone(),
    })
}

fn server_credential(
    p: &str,
    t: &raw::ServerTls,
    doc: &Document,
    needs_ca: bool,
    report: &mut Report<'_>,
) -> Option<CredentialSource> {
    let inline =
        t.server_certificate.is_some() || t.private_key.is_some() || t.ca_certificates.is_some();
    if let Some(name) = &t.credential_name {
        if inline {
            report.error(
                format!("{p}.tls.credentialName"),
                "credentialName excludes serverCertificate/privateKey/caCertificates \
                 (the credential folder holds tls.crt, tls.key and ca.crt)",
            );
            return None;
        }
        return Some(CredentialSource::Named(name.clone()));
    }
    let (Some(cert), Some(key)) = (&t.server_certificate, &t.private_key) else {
        report.error(
            format!("{p}.tls"),
            "needs credentialName, or serverCertificate and privateKey",
        );
        return None;
    };
    let cert = resolve(&doc.base_dir, cert);
    let key = resolve(&doc.base_dir, key);
    let ca = t
        .ca_certificates
        .as_ref()
        .map(|c| resolve(&doc.base_dir, c));
    if ca.is_none() && needs_ca {
        report.error(
            format!("{p}.tls.caCertificates"),
            "MUTUAL and OPTIONAL_MUTUAL need the CA bundle client certificates must chain to",
        );
        return None;
    }
    Some(CredentialSource::Files { cert, key, ca })
}

/// `Some(None)` is TLS_AUTO or absent (library default); `None` is an error.
fn tls_version(
    field: &str,
    raw: &Option<String>,
    report: &mut Report<'_>,
) -> Option<Option<TlsVersion>> {
    match upper(raw).as_deref() {
        None | Some("TLS_AUTO") => Some(None),
        Some("TLSV1_2") => Some(Some(TlsVersion::V1_2)),
        Some("TLSV1_3") => Some(Some(TlsVersion::V1_3)),
        Some(v @ ("TLSV1_0" | "TLSV1_1")) => {
            report.error(
                field,
                format!("{v} is refused: TLS 1.0 and 1.1 are insecure; use TLSV1_2 or TLSV1_3"),
            );
            None
        }
        Some(v) => {
            report.error(
                field,
                format!("unknown version '{v}': expected TLS_AUTO, TLSV1_2 or TLSV1_3"),
            );
            None
        }
    }
}

/// HTTPS and TLS servers share a port (SNI tells them apart); nothing
/// else does.
fn family(p: Protocol) -> Protocol {
    match p {
        Protocol::Tls => Protocol::Https,
        other => other,
    }
}

/// Checks across every Gateway: servers sharing a bind address and port
/// share one listener, so they need one protocol, and on a TLS port each
/// host must pick exactly one server (its certificate and client policy).
pub(crate) fn check_listeners(gateways: &[Gateway], out: &mut Findings) {
    let mut protocols: HashMap<SocketAddr, (&Gateway, &Server)> = HashMap::new();
    let mut hosts: HashMap<(SocketAddr, &HostPattern), (&Gateway, &Server)> = HashMap::new();
    let mut reported = std::collections::HashSet::new();
    let mut tcp_servers: HashMap<SocketAddr, (&Gateway, &Server)> = HashMap::new();
    for gw in gateways {
        for s in &gw.servers {
            let mut report = Report::new(&gw.id, out);
            let addr = s.addr();
            match protocols.entry(addr) {
                Entry::Vacant(e) => {
                    e.insert((gw, s));
                }
                Entry::Occupied(e) => {
                    let (first_gw, first) = *e.get();
                    if first_gw.selector != gw.selector && reported.insert((addr, &gw.id)) {
                        // Istio gives these to two deployments, each with
                        // its own listener. Merged, an egress Gateway's
                        // `*` would make a public ingress port an open
                        // proxy: refused, not merged.
                        report.error(
                            "spec.selector",
                            format!(
                                "{addr} is also a port of {}, whose selector differs: Istio \
                                 would serve them from two deployments; run one tlsgate for \
                                 each, or put them on different ports",
                                first_gw.id
                            ),
                        );
                    }
                    if family(first.protocol) != family(s.protocol) {
                        report.error(
                            format!("spec.servers[{}].port.protocol", s.index),
                            format!(
                                "{addr} is {:?} here but {:?} in {}: spec.servers[{}] ({}); one port has one protocol",
                                s.protocol, first.protocol, first_gw.id, first.index, first.name
                            ),
                        );
                    }
                }
            }
            if s.protocol == Protocol::Tcp {
                // A TCP connection carries no name to choose a server by.
                match tcp_servers.entry(addr) {
                    Entry::Vacant(e) => {
                        e.insert((gw, s));
                    }
                    Entry::Occupied(e) => {
                        let (first_gw, first) = *e.get();
                        report.error(
                            format!("spec.servers[{}].port", s.index),
                            format!(
                                "{addr} already has a TCP server ({}: spec.servers[{}]); a TCP \
                                 connection has no name to choose between two",
                                first_gw.id, first.index
                            ),
                        );
                    }
                }
            }
            if s.tls.is_none() && !s.passthrough {
                continue;
            }
            for (j, h) in s.hosts.iter().enumerate() {
                match hosts.entry((addr, h)) {
                    Entry::Vacant(e) => {
                        e.insert((gw, s));
                    }
                    Entry::Occupied(e) => {
                        let (first_gw, first) = *e.get();
                        if std::ptr::eq(first, s) {
                            // Listed twice by one server: redundant, not ambiguous.
                            continue;
                        }
                        report.error(
                            format!("spec.servers[{}].hosts[{j}]", s.index),
                            format!(
                                "host '{h}' on {addr} is named by two servers: {}: spec.servers[{}] ({}) \
                                 and {}: spec.servers[{}] ({})",
                                first_gw.id, first.index, first.name, gw.id, s.index, s.name
                            ),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::testutil::{errors, load, one_error, GATEWAY};

    /// The tutorial's ingress gateway: TLS for the frontend, mutual TLS for partners.
    const FRONTEND_GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: frontend-gateway
  namespace: user1
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 443
      name: https-frontend
      protocol: HTTPS
    hosts:
    - "./frontend.Example.com"
    tls:
      credentialName: frontend-credential
      mode: SIMPLE
      minProtocolVersion: TLSV1_2
  - port:
      number: 443
      name: https-partner
      protocol: HTTPS
    hosts:
    - "*.partner.example.com"
    tls:
      mode: MUTUAL
      credentialName: partner-credential
      subjectAltNames: [spiffe://acme/partner]
      maxProtocolVersion: TLSV1_3
  - port:
      number: 80
      protocol: HTTP
    hosts: ["*"]
    tls:
      httpsRedirect: true
"#;

    #[test]
    fn tutorial_gateway() {
        let m = load(FRONTEND_GATEWAY).unwrap();
        let gw = &m.gateways[0];
        assert_eq!(gw.id.to_string(), "test.yaml: Gateway/frontend-gateway");
        assert_eq!(gw.namespace.as_deref(), Some("user1"));
        let [simple, mutual, http] = gw.servers.as_slice() else {
            panic!("three servers")
        };
        assert_eq!(simple.addr(), "0.0.0.0:443".parse().unwrap());
        assert_eq!(simple.name, "https-frontend");
        assert_eq!(simple.protocol, Protocol::Https);
        assert_eq!(
            simple.hosts,
            [HostPattern::Exact("frontend.example.com".into())]
        );
        let tls = simple.tls.as_ref().unwrap();
        assert_eq!(tls.mode, ServerTlsMode::Simple);
        assert_eq!(
            tls.credential,
            CredentialSource::Named("frontend-credential".into())
        );
        assert_eq!(tls.min_version, Some(TlsVersion::V1_2));
        assert_eq!(tls.max_version, None);

        assert_eq!(
            mutual.hosts,
            [HostPattern::Suffix(".partner.example.com".into())]
        );
        let tls = mutual.tls.as_ref().unwrap();
        assert_eq!(tls.mode, ServerTlsMode::Mutual);
        assert_eq!(tls.subject_alt_names, ["spiffe://acme/partner"]);
        assert_eq!(tls.max_version, Some(TlsVersion::V1_3));

        assert_eq!(http.name, "frontend-gateway-2");
        assert_eq!(http.protocol, Protocol::Http);
        assert_eq!(http.hosts, [HostPattern::Any]);
        assert!(http.https_redirect);
        assert!(http.tls.is_none());
    }

    #[test]
    fn an_egressgateway_selector_marks_an_egress_gateway() {
        let m = load(FRONTEND_GATEWAY).unwrap();
        assert!(!m.gateways[0].egress, "istio: ingressgateway");
        for selector in ["{istio: egressgateway}", "{app: istio-egressgateway}"] {
            let yaml = format!(
                "{GATEWAY}metadata: {{name: egress}}\nspec:\n  selector: {selector}\n  \
                 servers:\n  - port: {{number: 80, name: http, protocol: HTTP}}\n    hosts: ['*']\n"
            );
            assert!(load(&yaml).unwrap().gateways[0].egress, "{selector}");
        }
    }

    /// Credentials are named, never looked at: a missing folder or CA
    /// bundle is found when the runtime loads the credential (runtime/refs.rs).
    #[test]
    fn credentials_are_only_named() {
        let m = load(FRONTEND_GATEWAY).unwrap();
        let tls = m.gateways[0].servers[1].tls.as_ref().unwrap();
        assert_eq!(
            tls.credential,
            CredentialSource::Named("partner-credential".into())
        );
    }

    #[test]
    fn unknown_field_has_its_path() {
        let yaml = FRONTEND_GATEWAY.replace("subjectAltNames", "subjectAltName");
        let e = one_error(&yaml);
        assert!(
            e.starts_with(
                "test.yaml: Gateway/frontend-gateway: spec.servers[1].tls.subjectAltName: \
                 unknown field `subjectAltName`"
            ),
            "{e}"
        );
    }

    #[test]
    fn inline_files_resolve_against_the_yaml_folder() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "{GATEWAY}metadata: {{name: g}}\nspec:\n  servers:\n  - port: {{number: 8443, protocol: https}}\n    \
             bind: 127.0.0.1\n    hosts: [a.example.com]\n    tls: {{mode: OPTIONAL_MUTUAL, serverCertificate: server.crt, \
             privateKey: server.key, caCertificates: ca.pem}}\n"
        );
        let m =
            crate::load_str(Path::new("g.yaml"), &yaml, dir.path(), &Default::default()).unwrap();
        let s = &m.gateways[0].servers[0];
        assert_eq!(s.addr(), "127.0.0.1:8443".parse().unwrap());
        assert_eq!(
            s.tls.as_ref().unwrap().credential,
            CredentialSource::Files {
                cert: dir.path().join("server.crt"),
                key: dir.path().join("server.key"),
                ca: Some(dir.path().join("ca.pem")),
            }
        );
        let no_ca = yaml.replace(", caCertificates: ca.pem", "");
        let e = crate::load_str(Path::new("g.yaml"), &no_ca, dir.path(), &Default::default())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "g.yaml: Gateway/g: spec.servers[0].tls.caCertificates: MUTUAL and OPTIONAL_MUTUAL \
             need the CA bundle client certificates must chain to"
        );
    }

    fn server(port: u32, protocol: &str, host: &str, tls: &str) -> String {
        format!(
            "  - port: {{number: {port}, protocol: {protocol}}}\n    hosts: [\"{host}\"]\n{tls}"
        )
    }
    const SIMPLE: &str = "    tls: {mode: SIMPLE, credentialName: frontend-credential}\n";

    #[test]
    fn unsupported_modes_and_versions_are_explained() {
        let tls = |t: &str| format!("    tls: {{{t}}}\n");
        let servers = [
            server(1, "TLS", "a", &tls("mode: AUTO_PASSTHROUGH")),
            server(2, "HTTPS", "a", &tls("mode: ISTIO_MUTUAL")),
            server(3, "HTTPS", "a", &tls("mode: SIMPLE, credentialName: frontend-credential, minProtocolVersion: TLSV1_1")),
            server(4, "HTTPS", "a", ""),
            server(5, "UDP", "a", ""),
            server(6, "HTTPS", "a", &tls("credentialName: frontend-credential")),
        ];
        let yaml = format!(
            "{GATEWAY}metadata: {{name: g}}\nspec:\n  servers:\n{}",
            servers.concat()
        );
        let e = errors(&yaml);
        let e: Vec<&str> = e
            .iter()
            .map(|e| e.strip_prefix("test.yaml: Gateway/g: ").unwrap())
            .collect();
        assert_eq!(
            e,
            [
                "spec.servers[0].tls.mode: AUTO_PASSTHROUGH routes by Istio's mesh-internal SNI names (multi-cluster east-west gateways), which tlsgate cannot know; use PASSTHROUGH with tls[] routes",
                "spec.servers[1].tls.mode: ISTIO_MUTUAL needs the gateway's mesh identity: add GatewayRuntime spec.mesh {credentialName: <folder with the workload certificate, key and mesh CA>, trustDomain}",
                "spec.servers[2].tls.minProtocolVersion: TLSV1_1 is refused: TLS 1.0 and 1.1 are insecure; use TLSV1_2 or TLSV1_3",
                "spec.servers[3].tls: an HTTPS or TLS server needs tls (mode and credentialName)",
                "spec.servers[4].port.protocol: protocol 'UDP' is not supported: tlsgate serves HTTP, HTTPS, TLS and TCP",
                "spec.servers[5].tls.mode: missing: expected SIMPLE, MUTUAL, OPTIONAL_MUTUAL or ISTIO_MUTUAL",
            ]
        );
    }

    #[test]
    fn one_protocol_per_port_and_one_server_per_tls_host() {
        let a = format!(
            "{GATEWAY}metadata: {{name: a}}\nspec:\n  servers:\n{}",
            server(443, "HTTPS", "x.example.com", SIMPLE)
        );
        let b = format!(
            "{GATEWAY}metadata: {{name: b}}\nspec:\n  servers:\n{}{}{}",
            server(443, "HTTP", "y.example.com", ""),
            server(8443, "HTTPS", "*.example.com", SIMPLE),
            server(443, "HTTPS", "X.example.com", SIMPLE),
        );
        let e = errors(&format!("{a}---\n{b}"));
        assert_eq!(
            e,
            [
                "test.yaml: Gateway/b: spec.servers[0].port.protocol: 0.0.0.0:443 is Http here but Https in \
                 test.yaml: Gateway/a: spec.servers[0] (a-0); one port has one protocol",
                "test.yaml: Gateway/b: spec.servers[2].hosts[0]: host 'x.example.com' on 0.0.0.0:443 is named by \
                 two servers: test.yaml: Gateway/a: spec.servers[0] (a-0) and test.yaml: Gateway/b: spec.servers[2] (b-2)",
            ]
        );
    }
}
