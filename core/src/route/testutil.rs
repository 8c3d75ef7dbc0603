//! Small constructors of model values for the route tests (the YAML loader
//! is tested on its own).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::*;

use super::destination::DestinationSpec;
use super::{Destination, UpstreamAddr};

pub fn doc(kind: &str, name: &str) -> DocId {
    DocId {
        file: PathBuf::from("test.yaml"),
        kind: kind.into(),
        name: name.into(),
    }
}

pub fn model() -> Model {
    Model {
        runtime: RuntimeSettings {
            admin: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 15021),
            credentials_dir: PathBuf::from("/tmp/creds"),
            outbound_policy: OutboundPolicy::AllowAny,
            access_log: AccessLogFormat::Off,
            threads: 1,
            grace_period: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(1),
            reload: Default::default(),
            limits: Default::default(),
            timeouts: Default::default(),
            admin_token_file: None,
            mesh: None,
            listeners: vec![],
            client_cert: Default::default(),
            num_trusted_proxies: 0,
            send_client_ca_names: true,
            client_certificate_cache: 0,
            revocation: Default::default(),
            ocsp_stapling: Default::default(),
            session_tickets: Default::default(),
            tls_library: Default::default(),
        },
        gateways: vec![],
        virtual_services: vec![],
        destination_rules: vec![],
        service_entries: vec![],
        kubernetes_services: vec![],
        sources: vec![],
        warnings: vec![],
        peer_authentication: None,
        authorization_policies: vec![],
    }
}

pub fn host(p: &str) -> HostPattern {
    if p == "*" {
        HostPattern::Any
    } else if let Some(s) = p.strip_prefix('*') {
        HostPattern::Suffix(s.into())
    } else {
        HostPattern::Exact(p.into())
    }
}

fn hosts(list: &[&str]) -> Vec<HostPattern> {
    list.iter().map(|h| host(h)).collect()
}

pub fn gateway(name: &str, servers: Vec<Server>) -> Gateway {
    Gateway {
        id: doc("Gateway", name),
        namespace: None,
        servers,
        egress: false,
        selector: Default::default(),
    }
}

pub fn http_server(port: u16, list: &[&str]) -> Server {
    Server {
        index: 0,
        name: format!("http-{port}"),
        bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port,
        protocol: Protocol::Http,
        hosts: hosts(list),
        tls: None,
        https_redirect: false,
        passthrough: false,
    }
}

pub fn https_server(port: u16, list: &[&str]) -> Server {
    Server {
        name: format!("https-{port}"),
        protocol: Protocol::Https,
        tls: Some(ServerTls {
            mode: ServerTlsMode::Simple,
            credential: CredentialSource::Named("cred".into()),
            subject_alt_names: vec![],
            trust_domain: None,
            min_version: None,
            max_version: None,
            cipher_suites: vec![],
        }),
        ..http_server(port, list)
    }
}

pub fn vs(name: &str, list: &[&str], gateways: &[&str], http: Vec<HttpRoute>) -> VirtualService {
    VirtualService {
        id: doc("VirtualService", name),
        namespace: None,
        hosts: hosts(list),
        gateways: gateways.iter().map(|g| g.to_string()).collect(),
        http,
        tls: vec![],
        tcp: vec![],
    }
}

pub fn wdest(
    host: &str,
    port: Option<u16>,
    subset: Option<&str>,
    weight: u32,
) -> WeightedDestination {
    WeightedDestination {
        host: host.into(),
        subset: subset.map(Into::into),
        port,
        weight,
    }
}

/// A match-all route forwarding to `host:port`.
pub fn fwd(name: &str, host: &str, port: u16) -> HttpRoute {
    HttpRoute {
        client_cert: None,
        index: 0,
        name: name.into(),
        matches: vec![],
        action: RouteAction::Forward(vec![wdest(host, Some(port), None, 100)]),
        rewrite_uri: None,
        timeout: None,
        retries: None,
        request_headers: HeaderEdits::default(),
    }
}

pub fn uri(m: StringMatch) -> RouteMatch {
    RouteMatch {
        uri: Some(m),
        ..Default::default()
    }
}

pub fn exact(s: &str) -> StringMatch {
    StringMatch::Exact(s.into())
}

pub fn prefix(s: &str) -> StringMatch {
    StringMatch::Prefix(s.into())
}

/// Anchored, as the loader compiles them.
pub fn regex(s: &str) -> StringMatch {
    StringMatch::Regex(regex::Regex::new(&format!("^(?:{s})$")).unwrap())
}

fn map<V: Copy>(pairs: &[(&str, V)]) -> BTreeMap<String, V> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// `ports`: `(number, name, protocol, targetPort)`.
pub fn se(
    host: &str,
    ports: &[(u16, &str, &str, Option<u16>)],
    resolution: Resolution,
) -> ServiceEntry {
    ServiceEntry {
        id: doc("ServiceEntry", host.trim_start_matches("*.")),
        hosts: vec![host.into()],
        ports: ports
            .iter()
            .map(|&(number, name, protocol, target_port)| ServicePort {
                number,
                name: name.into(),
                protocol: protocol.into(),
                target_port,
            })
            .collect(),
        location: Location::MeshExternal,
        resolution,
        endpoints: vec![],
    }
}

pub fn endpoint(address: &str, labels: &[(&str, &str)], ports: &[(&str, u16)]) -> Endpoint {
    Endpoint {
        address: address.into(),
        ports: map(ports),
        labels: map(labels)
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect(),
    }
}

/// `subsets`: `(name, labels)`.
pub fn dr(host: &str, subsets: &[(&str, &[(&str, &str)])]) -> DestinationRule {
    DestinationRule {
        id: doc("DestinationRule", host),
        host: host.into(),
        traffic_policy: TrafficPolicy::default(),
        subsets: subsets
            .iter()
            .map(|(name, labels)| Subset {
                name: name.to_string(),
                labels: map(labels)
                    .into_iter()
                    .map(|(k, v)| (k, v.to_string()))
                    .collect(),
                traffic_policy: None,
            })
            .collect(),
    }
}

/// TLS settings told apart in tests by their `sni`.
pub fn client_tls(mode: ClientTlsMode, sni: &str) -> ClientTls {
    ClientTls {
        mode,
        credential: None,
        ca_certificates: None,
        sni: Some(sni.into()),
        subject_alt_names: vec![],
        trust_domain: None,
        insecure_skip_verify: false,
    }
}

pub fn addr(host: &str, port: u16) -> UpstreamAddr {
    UpstreamAddr {
        host: host.into(),
        port,
    }
}

/// `svc:80` with endpoints `svc:1` ..= `svc:n`.
pub fn destination_with(lb: LbPolicy, n: u16) -> Arc<Destination> {
    Arc::new(Destination::new(DestinationSpec {
        host: "svc".into(),
        port: 80,
        subset: None,
        endpoints: (1..=n).map(|p| addr("svc", p)).collect(),
        lb,
        hash_key: None,
        pool: None,
        outlier: None,
        tls: None,
        h2: false,
        proxy_protocol: None,
    }))
}

/// A one-endpoint destination named `<host>:80`.
pub fn test_destination(host: &str) -> Arc<Destination> {
    Arc::new(Destination::new(DestinationSpec {
        host: host.into(),
        port: 80,
        subset: None,
        endpoints: vec![addr(host, 80)],
        lb: LbPolicy::RoundRobin,
        hash_key: None,
        pool: None,
        outlier: None,
        tls: None,
        h2: false,
        proxy_protocol: None,
    }))
}

/// A connection's local address on `port` (listeners bind 0.0.0.0 here).
pub fn at(port: u16) -> std::net::SocketAddr {
    ([127, 0, 0, 1], port).into()
}
