//! Files as Istio's samples and istio.io's tasks write them, Kubernetes
//! kinds and mesh-only documents included: what loads, what is ignored with
//! which warning, what is still refused.

use crate::testutil::{findings, load};

/// `samples/httpbin/httpbin.yaml` from Istio, as it is.
const HTTPBIN: &str = include_str!("../../integration/istio-samples/httpbin.yaml");

/// istio.io "Ingress Gateways", with the route's port left out as the
/// Service has one port.
const INGRESS: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: httpbin-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - "httpbin.example.com"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
  - "httpbin.example.com"
  gateways:
  - httpbin-gateway
  http:
  - match:
    - uri:
        prefix: /status
    - uri:
        prefix: /delay
    route:
    - destination:
        host: httpbin
"#;

/// Bookinfo's `virtual-service-reviews-v3.yaml`: no `gateways`, so only
/// sidecars use it; a field no gateway route may carry is added to show
/// that nothing in it is checked.
const MESH_ONLY: &str = r"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
    - reviews
  http:
  - fault:
      abort: {httpStatus: 500, percentage: {value: 100}}
    route:
    - destination:
        host: reviews
        subset: v3
";

#[test]
fn kubernetes_kinds_and_mesh_only_routes_load_with_warnings() {
    let yaml = format!("{HTTPBIN}---{INGRESS}---{MESH_ONLY}");
    let (errors, warnings) = findings(&yaml);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        warnings,
        [
            "ServiceAccount/httpbin: kind: ignored: v1 ServiceAccount is not a kind tlsgate reads \
             (Gateway, VirtualService, DestinationRule, ServiceEntry, PeerAuthentication, \
             AuthorizationPolicy and GatewayRuntime); \
             Istio's gateway does not read it either",
            "Deployment/httpbin: kind: ignored: apps/v1 Deployment is not a kind tlsgate reads \
             (Gateway, VirtualService, DestinationRule, ServiceEntry, PeerAuthentication, \
             AuthorizationPolicy and GatewayRuntime); \
             Istio's gateway does not read it either",
            "VirtualService/reviews: spec.gateways: ignored: applies to sidecars (no gateways, \
             or only `mesh`), never to a gateway",
            "Service/httpbin: spec: ignored: a Kubernetes Service is not served by tlsgate; only \
             its ports are read, for destinations that name it without a port",
        ]
    );
    let m = load(&yaml).unwrap();
    assert_eq!(m.virtual_services.len(), 1, "the mesh-only one is skipped");
    assert_eq!(m.kubernetes_services[0].ports, [8000]);
    assert!(m.kubernetes_services[0].is_named_by("httpbin"));
    assert!(m.kubernetes_services[0].is_named_by("httpbin.default.svc.cluster.local"));
    for other in [
        "httpbin.example.com",
        "httpbin.default",
        "httpbin.other.svc.cluster.local",
    ] {
        assert!(!m.kubernetes_services[0].is_named_by(other), "{other}");
    }
}

#[test]
fn what_would_change_behaviour_or_protect_something_is_still_refused() {
    for (doc, why) in [
        (
            "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: f}\nspec: {}\n",
            "EnvoyFilter/f: kind: an EnvoyFilter patches Envoy's own configuration",
        ),
        (
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt}\nspec: {}\n",
            "RequestAuthentication/jwt: kind: security policy that tlsgate does not enforce yet",
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: {name: typo}\nspec: {}\n",
            "VirtualServce/typo: kind: unknown kind 'VirtualServce'",
        ),
    ] {
        let (errors, _) = findings(&format!("{INGRESS}---\n{doc}"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].starts_with(why), "{}", errors[0]);
    }
}

/// istio.io "Egress gateways": one VirtualService for both hops. Only the
/// gateway's routes are checked, and errors name the file's indexes.
#[test]
fn a_virtual_service_for_mesh_and_gateway_checks_only_the_gateway_part() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - edition.cnn.com
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - istio-egressgateway
  - mesh
  tls:
  - match:
    - gateways:
      - mesh
      port: 443
      sniHosts:
      - edition.cnn.com
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        port:
          number: 443
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    retries: {attempts: 3, perTryTimeout: banana}
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: cnn
        port:
          number: 80
  - match:
    - gateways:
      - istio-egressgateway
      port: 80
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 8080
      weight: 100
"#;
    let (errors, warnings) = findings(yaml);
    let vs = "VirtualService/direct-cnn-through-egress-gateway";
    assert_eq!(
        warnings,
        [
            format!(
                "{vs}: spec.http[0]: ignored: every match names only `gateways: [mesh]`: \
                 applies to sidecars"
            ),
            format!(
                "{vs}: spec.tls[0]: ignored: every match names only `gateways: [mesh]`: \
                 applies to sidecars"
            ),
        ]
    );
    assert!(errors.is_empty(), "{errors:#?}");
    let m = load(yaml).unwrap();
    let http = &m.virtual_services[0].http;
    assert_eq!(http.len(), 1);
    assert_eq!(http[0].index, 1, "the file's index, for errors found later");
}

#[test]
fn destination_rule_fields_for_sidecars_are_ignored_unless_they_ask_for_tls() {
    let dr = |extra: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r}}\n\
             spec:\n  host: api.example.com\n  exportTo: ['.']\n{extra}"
        )
    };
    let selected = "  workloadSelector:\n    matchLabels: {app: ratings}\n";
    let (errors, warnings) = findings(&dr(selected));
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        warnings,
        [
            "DestinationRule/r: spec.exportTo: ignored: namespace visibility is not applied: \
             tlsgate does not know the namespace it runs in, so the document is used as if \
             exported to it (`~` skips it)",
            "DestinationRule/r: spec.workloadSelector: ignored: selects only workloads whose \
             labels no Gateway's selector has: it never applies to this gateway",
        ]
    );
    assert!(load(&dr(selected)).unwrap().destination_rules.is_empty());
    let (errors, _) = findings(&dr(
        "  workloadSelector:\n    matchLabels: {app: ratings}\n  trafficPolicy:\n    tls: {mode: SIMPLE}\n",
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with(
            "DestinationRule/r: spec.workloadSelector: a rule limited to selected workloads carries TLS"
        ),
        "{}",
        errors[0]
    );
    // A selector the gateway's own pods match (or an empty one) selects
    // this gateway: the rule applies, as Istio applies it there.
    let gateway = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: egress}\n\
                   spec:\n  selector: {istio: egressgateway}\n  servers:\n  \
                   - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n---\n";
    for labels in ["{istio: egressgateway}", "{}"] {
        let rule = dr(&format!(
            "  workloadSelector:\n    matchLabels: {labels}\n  trafficPolicy:\n    tls: {{mode: SIMPLE}}\n"
        ));
        let m = load(&format!("{gateway}{rule}")).unwrap();
        assert_eq!(m.destination_rules.len(), 1, "{labels}");
        assert!(m.destination_rules[0].traffic_policy.tls.is_some());
    }
    // Istio's SIMPLE origination sends no client certificate, whatever the
    // rule names; the rule still applies.
    let (errors, warnings) = findings(&dr(
        "  trafficPolicy:\n    tls:\n      mode: SIMPLE\n      clientCertificate: /etc/certs/c.pem\n      privateKey: /etc/certs/k.pem\n",
    ));
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        warnings[1],
        "DestinationRule/r: spec.trafficPolicy.tls.clientCertificate: ignored: a client \
         certificate is only sent with mode MUTUAL"
    );
    let m = load(&dr(
        "  trafficPolicy:\n    tls:\n      mode: SIMPLE\n      clientCertificate: /c.pem\n      privateKey: /k.pem\n",
    ))
    .unwrap();
    let tls = m.destination_rules[0].traffic_policy.tls.as_ref().unwrap();
    assert!(tls.credential.is_none());
}

/// Two Gateways for two deployments (ingress, egress) on one port would be
/// two listeners in Istio; merged here, the egress Gateway's hosts would
/// be served on the ingress port. Refused.
#[test]
fn gateways_for_two_deployments_cannot_share_a_port() {
    let gw = |name: &str, selector: &str, port: u16, host: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\n\
             spec:\n  selector: {{istio: {selector}}}\n  servers:\n  \
             - port: {{number: {port}, name: http, protocol: HTTP}}\n    hosts: [\"{host}\"]\n"
        )
    };
    let yaml = format!(
        "{}---\n{}---\n{}---\n{}",
        gw("in", "ingressgateway", 8080, "a.example.com"),
        gw("out", "egressgateway", 8080, "*"),
        gw("in2", "ingressgateway", 8080, "c.example.com"),
        gw("out2", "egressgateway", 8081, "*"),
    );
    let (errors, warnings) = findings(&yaml);
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(
        errors,
        [
            "Gateway/out: spec.selector: 0.0.0.0:8080 is also a port of test.yaml: Gateway/in, \
          whose selector differs: Istio would serve them from two deployments; run one tlsgate \
          for each, or put them on different ports"
        ]
    );
}

#[test]
fn service_entry_virtual_ips_are_ignored() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: db}\n\
                spec:\n  hosts: [db.example.com]\n  addresses: [240.0.0.1]\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  location: MESH_EXTERNAL\n  resolution: DNS\n";
    let (errors, warnings) = findings(yaml);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        warnings,
        [
            "ServiceEntry/db: spec.addresses: ignored: virtual IPs are for sidecars' traffic \
          capture; tlsgate routes by host name"
        ]
    );
}

#[test]
fn a_kubernetes_service_port_that_is_not_a_number_is_an_error() {
    let (errors, _) = findings(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - {port: http}\n",
    );
    assert_eq!(
        errors,
        ["Service/s: spec.ports[0].port: missing, or not a port number from 1 to 65535"]
    );
}

/// istio.io's DestinationRule reference: `consistentHash` by header,
/// cookie, query parameter or source IP is applied; `warmup` is refused
/// with a reason (not as an unknown field); `localityLbSetting` is ignored.
#[test]
fn consistent_hash_is_applied_or_refused_by_name() {
    let dr = |lb: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: bookinfo-ratings}}\n\
             spec:\n  host: ratings.prod.svc.cluster.local\n  trafficPolicy:\n    loadBalancer:\n{lb}"
        )
    };
    let m = load(&dr(
        "      consistentHash:\n        httpHeaderName: X-User\n",
    ))
    .unwrap();
    let tp = &m.destination_rules[0].traffic_policy;
    assert_eq!(tp.load_balancer, Some(crate::LbPolicy::ConsistentHash));
    assert_eq!(tp.hash_key, Some(crate::HashKey::Header("x-user".into())));
    let m = load(&dr(
        "      consistentHash:\n        httpCookie:\n          name: user\n          path: /\n          ttl: 0s\n",
    ))
    .unwrap();
    assert_eq!(
        m.destination_rules[0].traffic_policy.hash_key,
        Some(crate::HashKey::Cookie {
            name: "user".into(),
            path: Some("/".into()),
            ttl: Some(std::time::Duration::ZERO)
        })
    );
    let m = load(&dr("      consistentHash: {useSourceIp: true}\n")).unwrap();
    assert_eq!(
        m.destination_rules[0].traffic_policy.hash_key,
        Some(crate::HashKey::SourceIp)
    );

    let p = "DestinationRule/bookinfo-ratings: spec.trafficPolicy.loadBalancer";
    for (lb, want) in [
        (
            "      consistentHash:\n        httpCookie:\n          name: \"user;x\"\n          ttl: 0s\n",
            format!("{p}.consistentHash.httpCookie.name: not a cookie name (a token)"),
        ),
        (
            "      consistentHash: {httpHeaderName: x-user, useSourceIp: true}\n",
            format!("{p}.consistentHash: needs exactly one of httpHeaderName"),
        ),
        (
            "      simple: ROUND_ROBIN\n      consistentHash: {useSourceIp: true}\n",
            format!("{p}.consistentHash: a loadBalancer has either simple or consistentHash"),
        ),
        (
            "      warmupDurationSecs: 60s\n",
            format!("{p}.warmupDurationSecs: not supported by tlsgate: slow start"),
        ),
    ] {
        let (errors, _) = findings(&dr(lb));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].starts_with(&want), "{}", errors[0]);
    }
    let (errors, warnings) = findings(&dr(
        "      simple: ROUND_ROBIN\n      localityLbSetting:\n        enabled: true\n",
    ));
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        warnings,
        [format!(
            "{p}.localityLbSetting: ignored: there is one locality here: every endpoint is local"
        )]
    );
}

/// Skipping a VirtualService as "for sidecars" must not hide a typo that
/// made it one: its top level is checked first.
#[test]
fn a_misspelt_gateways_key_is_an_error_not_a_skipped_route() {
    let vs = |spec: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: admin}}\n{spec}")
    };
    let (errors, warnings) = findings(&vs(
        "spec:\n  hosts: [a.example.com]\n  gateway: [gw]\n  http:\n  - directResponse: {status: 403}\n",
    ));
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(
        errors,
        [
            "VirtualService/admin: spec.gateway: unknown field `gateway`, expected one of hosts, \
          gateways, exportTo, http, tls, tcp"
        ]
    );
    let (errors, _) = findings(&vs(""));
    assert_eq!(
        errors,
        ["VirtualService/admin: spec: a VirtualService needs a spec"]
    );
}

/// `exportTo: ["~"]` turns a document off in Istio: a VirtualService or a
/// ServiceEntry so marked is skipped (a ServiceEntry registered anyway
/// would open REGISTRY_ONLY egress); `*` is applied without a word.
#[test]
fn exported_to_no_namespace_is_not_used() {
    let yaml = format!(
        "{INGRESS}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: off}}\n\
         spec:\n  hosts: [httpbin.example.com]\n  gateways: [httpbin-gateway]\n  exportTo: ['~']\n  http:\n  \
         - directResponse: {{status: 204}}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: off}}\n\
         spec:\n  hosts: [api.example.com]\n  exportTo: ['~']\n  ports: [{{number: 443, name: tls, protocol: TLS}}]\n  resolution: DNS\n\
         ---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: on}}\n\
         spec:\n  hosts: [api2.example.com]\n  exportTo: ['*']\n  ports: [{{number: 443, name: tls, protocol: TLS}}]\n  resolution: DNS\n"
    );
    let (errors, warnings) = findings(&yaml);
    assert!(errors.is_empty(), "{errors:#?}");
    let why = "exported to no namespace (`~`): Istio never uses it, so neither does tlsgate";
    assert_eq!(
        warnings,
        [
            format!("VirtualService/off: spec.exportTo: ignored: {why}"),
            format!("ServiceEntry/off: spec.exportTo: ignored: {why}"),
        ]
    );
    let m = load(&yaml).unwrap();
    assert_eq!(m.virtual_services.len(), 1);
    assert_eq!(m.service_entries.len(), 1);
    assert_eq!(m.service_entries[0].hosts, ["api2.example.com"]);
}

/// In a `tls:` or `tcp:` match, no `gateways` means every gateway: such a
/// section reaches the gateway, so it is refused like any other.
#[test]
fn a_tls_section_without_match_gateways_reaches_the_gateway() {
    let yaml = format!(
        "{INGRESS}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: sni}}\n\
         spec:\n  hosts: [httpbin.example.com]\n  gateways: [httpbin-gateway, mesh]\n  tls:\n  \
         - match: [{{sniHosts: [httpbin.example.com], gateways: []}}]\n    route: [{{destination: {{host: httpbin, port: {{number: 443}}}}}}]\n"
    );
    let (errors, warnings) = findings(&yaml);
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert!(errors.is_empty(), "{errors:#?}");
    let m = load(&yaml).unwrap();
    let sni = m
        .virtual_services
        .iter()
        .find(|v| v.id.name == "sni")
        .unwrap();
    assert_eq!(sni.tls.len(), 1, "an empty `gateways` means every gateway");
}

/// istio.io "Circuit Breaking", its DestinationRule as written: the
/// connectionPool and outlierDetection are applied; what a gateway cannot
/// apply per connection is ignored with a reason.
#[test]
fn the_circuit_breaking_task_connection_pool_is_applied() {
    let dr = |pool: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: httpbin}}\n\
             spec:\n  host: httpbin\n  trafficPolicy:\n    connectionPool:\n{pool}"
        )
    };
    let yaml = dr(
        "      tcp:\n        maxConnections: 1\n      http:\n        \
                   http1MaxPendingRequests: 1\n        maxRequestsPerConnection: 1\n    \
                   outlierDetection:\n      consecutive5xxErrors: 1\n      interval: 1s\n      \
                   baseEjectionTime: 3m\n      maxEjectionPercent: 100\n",
    );
    let (errors, warnings) = findings(&yaml);
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(warnings.is_empty(), "all of it is applied: {warnings:#?}");
    let pool = load(&yaml).unwrap().destination_rules[0]
        .traffic_policy
        .connection_pool
        .unwrap();
    assert_eq!(
        (pool.max_connections, pool.max_pending, pool.max_requests),
        (Some(1), Some(1), None)
    );
    assert_eq!(pool.max_requests_per_connection, Some(1));
    let outlier = load(&yaml).unwrap().destination_rules[0]
        .traffic_policy
        .outlier_detection
        .unwrap();
    assert_eq!(
        outlier,
        crate::OutlierDetection {
            consecutive_5xx: 1,
            consecutive_gateway: 0,
            interval: std::time::Duration::from_secs(1),
            base_ejection_time: std::time::Duration::from_secs(180),
            max_ejection_percent: 100,
            min_health_percent: 0,
        }
    );

    // Each limit apart: connections queue, requests are refused.
    let yaml = dr("      tcp: {maxConnections: 100, connectTimeout: 30ms, tcpKeepalive: {time: 7200s, interval: 75s}}\n      \
                   http: {http2MaxRequests: 10, idleTimeout: 20s}\n");
    let pool = load(&yaml).unwrap().destination_rules[0]
        .traffic_policy
        .connection_pool
        .unwrap();
    assert_eq!(
        (pool.max_connections, pool.max_requests),
        (Some(100), Some(10))
    );
    assert_eq!(pool.idle_timeout, Some(std::time::Duration::from_secs(20)));
    assert_eq!(
        pool.tcp_keepalive.map(|k| (k.time, k.probes)),
        Some((Some(std::time::Duration::from_secs(7200)), None))
    );
    assert_eq!(
        pool.connect_timeout,
        Some(std::time::Duration::from_millis(30))
    );

    // As in Istio, 0 is "not set".
    let pool = load(&dr("      tcp: {maxConnections: 0}\n"))
        .unwrap()
        .destination_rules[0]
        .traffic_policy
        .connection_pool
        .unwrap();
    assert_eq!(pool.max_connections, None);
}

/// With the gateway's mesh identity, ISTIO_MUTUAL is MUTUAL with the mesh
/// credential and a SPIFFE trust-domain check, on both sides; what it
/// would replace (a credential of its own) is an error.
#[test]
fn istio_mutual_uses_the_mesh_identity() {
    let yaml = "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {name: rt}\n\
                spec:\n  mesh: {credentialName: istio-certs, trustDomain: example.org}\n---\n\
                apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\n\
                spec:\n  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [a.example.com]\n    tls: {mode: ISTIO_MUTUAL}\n\
                ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n\
                spec:\n  host: reviews\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL, subjectAltNames: [spiffe://example.org/ns/x/sa/reviews]}\n";
    let m = load(yaml).unwrap();
    let server = m.gateways[0].servers[0].tls.as_ref().unwrap();
    assert_eq!(server.mode, crate::ServerTlsMode::Mutual);
    assert_eq!(
        server.credential,
        crate::CredentialSource::Named("istio-certs".into())
    );
    assert_eq!(server.trust_domain.as_deref(), Some("example.org"));
    let client = m.destination_rules[0].traffic_policy.tls.as_ref().unwrap();
    assert_eq!(client.mode, crate::ClientTlsMode::Mutual);
    assert_eq!(
        client.credential,
        Some(crate::CredentialSource::Named("istio-certs".into()))
    );
    assert_eq!(client.trust_domain.as_deref(), Some("example.org"));
    assert_eq!(
        client.subject_alt_names,
        ["spiffe://example.org/ns/x/sa/reviews"]
    );

    let (errors, _) = findings(&yaml.replace(
        "tls: {mode: ISTIO_MUTUAL}",
        "tls: {mode: ISTIO_MUTUAL, credentialName: mine}",
    ));
    assert_eq!(
        errors,
        ["Gateway/gw: spec.servers[0].tls: ISTIO_MUTUAL uses the mesh credential (GatewayRuntime \
          spec.mesh); remove credentialName, serverCertificate, privateKey and caCertificates"]
    );
}

/// istio.io's ServiceEntry reference: a Unix domain socket endpoint is
/// refused with the reason, not as a malformed address.
#[test]
fn unix_socket_endpoints_are_refused_with_a_reason() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: unix-domain-socket-example}\n\
                spec:\n  hosts:\n  - \"example.unix.local\"\n  location: MESH_EXTERNAL\n  ports:\n  \
                - number: 80\n    name: http\n    protocol: HTTP\n  resolution: STATIC\n  endpoints:\n  \
                - address: unix:///var/run/example/socket\n";
    let (errors, _) = findings(yaml);
    assert_eq!(
        errors,
        [
            "ServiceEntry/unix-domain-socket-example: spec.endpoints[0].address: \
          'unix:///var/run/example/socket': Unix domain socket endpoints are not supported by \
          tlsgate; give the service a TCP address"
        ]
    );
}
