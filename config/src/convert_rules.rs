//! `DestinationRule` -> [`DestinationRule`]: upstream TLS origination,
//! load balancing and subsets.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::load::Document;
use super::parse::{
    dest_host, duration, exported_everywhere, resolve, spec, upper, Report, EXPORT_TO, NEEDS_MESH,
};
use super::{
    raw, ClientTls, ClientTlsMode, ConnectionPool, CredentialSource, DestinationRule, Findings,
    HashKey, LbPolicy, Mesh, OutlierDetection, PortLevel, ProxyVersion, Subset, TcpKeepalive,
    TrafficPolicy,
};

/// `gateway_selectors`: the `selector` of every Gateway, which says which
/// pods a `workloadSelector` would have to select to reach this gateway.
pub(crate) fn convert(
    doc: &Document,
    gateway_selectors: &[BTreeMap<String, String>],
    mesh: Option<&Mesh>,
    out: &mut Findings,
) -> Option<DestinationRule> {
    let mut report = Report::new(&doc.id, out);
    let raw: raw::DestinationRuleSpec = spec(doc, &mut report)?;
    if !exported_everywhere(raw.export_to.as_ref()) {
        report.warn("spec.exportTo", EXPORT_TO);
    }
    if let Some(selector) = &raw.workload_selector {
        if !selects_a_gateway(selector, gateway_selectors) {
            return selected_workloads_only(&raw, &mut report);
        }
    }
    let host = report.check("spec.host", dest_host(&raw.host));
    let ctx = Ctx { doc, mesh };
    let traffic_policy = match &raw.traffic_policy {
        Some(tp) => ctx.policy("spec.trafficPolicy", tp, &mut report),
        None => TrafficPolicy::default(),
    };
    let mut names = BTreeSet::new();
    let mut subsets = Vec::new();
    for (i, s) in raw.subsets.iter().enumerate() {
        let p = format!("spec.subsets[{i}]");
        if s.name.is_empty() {
            report.error(format!("{p}.name"), "must not be empty");
        } else if !names.insert(s.name.as_str()) {
            report.error(
                format!("{p}.name"),
                format!("duplicate subset '{}'", s.name),
            );
        }
        subsets.push(Subset {
            name: s.name.clone(),
            labels: s.labels.clone(),
            traffic_policy: s
                .traffic_policy
                .as_ref()
                .map(|tp| ctx.policy(&format!("{p}.trafficPolicy"), tp, &mut report)),
        });
    }
    if report.failed() {
        return None;
    }
    Some(DestinationRule {
        id: doc.id.clone(),
        host: host?,
        traffic_policy,
        subsets,
    })
}

/// Does `workloadSelector` select the pods of some Gateway's selector (its
/// `matchLabels` empty, or all among that selector's labels)? Then Istio
/// applies the rule at that gateway, and so does tlsgate.
pub(crate) fn selects_a_gateway(
    selector: &serde_yaml::Value,
    gateway_selectors: &[BTreeMap<String, String>],
) -> bool {
    let labels: Vec<(&str, &str)> = selector
        .get("matchLabels")
        .and_then(|m| m.as_mapping())
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
        .collect();
    labels.is_empty()
        || gateway_selectors.iter().any(|sel| {
            labels
                .iter()
                .all(|(k, v)| sel.get(*k).is_some_and(|s| s == v))
        })
}

/// A rule with a `workloadSelector` applies only to the workloads whose
/// labels it selects, and tlsgate has no labels to be selected by: it is
/// skipped. Unless it asks for TLS: skipping that could send in plaintext
/// what the user meant to encrypt, so it is an error.
fn selected_workloads_only(
    raw: &raw::DestinationRuleSpec,
    report: &mut Report<'_>,
) -> Option<DestinationRule> {
    let asks_tls = |tp: &Option<raw::TrafficPolicy>| {
        tp.as_ref().is_some_and(|tp| {
            tp.tls.is_some() || tp.port_level_settings.iter().any(|p| p.tls.is_some())
        })
    };
    if asks_tls(&raw.traffic_policy) || raw.subsets.iter().any(|s| asks_tls(&s.traffic_policy)) {
        report.error(
            "spec.workloadSelector",
            "a rule limited to selected workloads carries TLS settings: tlsgate cannot tell \
             whether it selects this gateway; remove workloadSelector to apply it here",
        );
    } else {
        report.warn(
            "spec.workloadSelector",
            "selects only workloads whose labels no Gateway's selector has: it never applies \
             to this gateway",
        );
    }
    None
}

struct Ctx<'a> {
    doc: &'a Document,
    mesh: Option<&'a Mesh>,
}

impl Ctx<'_> {
    /// Errors go to `report`; the returned policy is only used when there were none.
    fn policy(&self, p: &str, tp: &raw::TrafficPolicy, report: &mut Report<'_>) -> TrafficPolicy {
        let outlier_detection = tp
            .outlier_detection
            .as_ref()
            .map(|o| outlier(&format!("{p}.outlierDetection"), o, report));
        let connection_pool = tp
            .connection_pool
            .as_ref()
            .map(|cp| connection_pool(&format!("{p}.connectionPool"), cp, report));
        let (load_balancer, hash_key) = match &tp.load_balancer {
            Some(lb) => load_balancer(&format!("{p}.loadBalancer"), lb, report),
            None => (None, None),
        };
        let tls = tp
            .tls
            .as_ref()
            .and_then(|t| self.client_tls(&format!("{p}.tls"), t, report));
        let mut port_tls = Vec::new();
        let mut port_level = Vec::new();
        for (i, pl) in tp.port_level_settings.iter().enumerate() {
            let q = format!("{p}.portLevelSettings[{i}]");
            let Some(port) = pl.port.as_ref().map(|p| p.number).filter(|n| *n != 0) else {
                report.error(format!("{q}.port.number"), "missing or 0");
                continue;
            };
            if port_level.iter().any(|l: &PortLevel| l.port == port) {
                report.error(
                    format!("{q}.port.number"),
                    format!("port {port} is set twice"),
                );
                continue;
            }
            let (load_balancer, hash_key) = match &pl.load_balancer {
                Some(lb) => self::load_balancer(&format!("{q}.loadBalancer"), lb, report),
                None => (None, None),
            };
            port_level.push(PortLevel {
                port,
                load_balancer,
                hash_key,
                connection_pool: pl
                    .connection_pool
                    .as_ref()
                    .map(|cp| self::connection_pool(&format!("{q}.connectionPool"), cp, report)),
                outlier_detection: pl
                    .outlier_detection
                    .as_ref()
                    .map(|o| outlier(&format!("{q}.outlierDetection"), o, report)),
            });
            if let Some(t) = &pl.tls {
                if let Some(t) = self.client_tls(&format!("{q}.tls"), t, report) {
                    port_tls.push((port, t));
                }
            }
        }
        let proxy_protocol = tp.proxy_protocol.as_ref().and_then(|pp| {
            let field = format!("{p}.proxyProtocol.version");
            match upper(&pp.version).as_deref() {
                None | Some("V1") => Some(ProxyVersion::V1),
                Some("V2") => Some(ProxyVersion::V2),
                Some(other) => {
                    report.error(
                        field,
                        format!("unknown version '{other}': expected V1 or V2"),
                    );
                    None
                }
            }
        });
        TrafficPolicy {
            tls,
            load_balancer,
            hash_key,
            connection_pool,
            outlier_detection,
            port_tls,
            port_level,
            proxy_protocol,
        }
    }

    fn client_tls(
        &self,
        p: &str,
        t: &raw::ClientTls,
        report: &mut Report<'_>,
    ) -> Option<ClientTls> {
        let mode = match upper(&t.mode).as_deref() {
            None | Some("DISABLE") => ClientTlsMode::Disable,
            Some("SIMPLE") => ClientTlsMode::Simple,
            Some("MUTUAL") => ClientTlsMode::Mutual,
            Some("ISTIO_MUTUAL") => return self.istio_mutual(p, t, report),
            Some(m) => {
                report.error(
                    format!("{p}.mode"),
                    format!("unknown mode '{m}': expected DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL"),
                );
                return None;
            }
        };
        if mode == ClientTlsMode::Disable {
            // Nothing else in the block matters, so nothing else is checked.
            return Some(ClientTls {
                mode,
                credential: None,
                ca_certificates: None,
                sni: None,
                subject_alt_names: Vec::new(),
                trust_domain: None,
                insecure_skip_verify: false,
            });
        }
        let base = &self.doc.base_dir;
        let ca_certificates = t.ca_certificates.as_ref().map(|c| resolve(base, c));
        let inline = t.client_certificate.is_some() || t.private_key.is_some();
        let credential = match (&t.credential_name, inline) {
            (Some(_), true) => {
                report.error(
                    format!("{p}.credentialName"),
                    "credentialName excludes clientCertificate/privateKey",
                );
                return None;
            }
            // What the credential must hold (a CA bundle for SIMPLE) is
            // checked when it is loaded, see runtime/refs.rs.
            (Some(name), false) => Some(CredentialSource::Named(name.clone())),
            (None, true) if mode != ClientTlsMode::Mutual => {
                // Istio's SIMPLE ignores them too: no certificate is sent.
                report.warn(
                    format!("{p}.clientCertificate"),
                    "a client certificate is only sent with mode MUTUAL",
                );
                None
            }
            (None, true) => {
                let (Some(cert), Some(key)) = (&t.client_certificate, &t.private_key) else {
                    report.error(p, "clientCertificate and privateKey go together");
                    return None;
                };
                Some(CredentialSource::Files {
                    cert: resolve(base, cert),
                    key: resolve(base, key),
                    ca: None,
                })
            }
            (None, false) if mode == ClientTlsMode::Mutual => {
                report.error(
                    p,
                    "mode MUTUAL needs credentialName, or clientCertificate and privateKey",
                );
                return None;
            }
            (None, false) => None,
        };
        Some(ClientTls {
            mode,
            credential,
            ca_certificates,
            sni: t.sni.clone(),
            subject_alt_names: t.subject_alt_names.clone(),
            trust_domain: None,
            insecure_skip_verify: t.insecure_skip_verify,
        })
    }

    /// `ISTIO_MUTUAL`: mTLS with the gateway's mesh identity; the upstream
    /// must present a SPIFFE identity of the trust domain (or one of
    /// `subjectAltNames`), signed by the mesh CA.
    fn istio_mutual(
        &self,
        p: &str,
        t: &raw::ClientTls,
        report: &mut Report<'_>,
    ) -> Option<ClientTls> {
        let Some(mesh) = self.mesh else {
            report.error(format!("{p}.mode"), NEEDS_MESH);
            return None;
        };
        let own = [
            ("credentialName", t.credential_name.is_some()),
            ("clientCertificate", t.client_certificate.is_some()),
            ("privateKey", t.private_key.is_some()),
            ("caCertificates", t.ca_certificates.is_some()),
            ("insecureSkipVerify", t.insecure_skip_verify),
        ];
        for (field, set) in own {
            if set {
                report.error(
                    format!("{p}.{field}"),
                    "ISTIO_MUTUAL uses the mesh credential and CA (GatewayRuntime spec.mesh)",
                );
            }
        }
        if own.iter().any(|(_, set)| *set) {
            return None;
        }
        Some(ClientTls {
            mode: ClientTlsMode::Mutual,
            credential: Some(CredentialSource::Named(mesh.credential_name.clone())),
            ca_certificates: None,
            sni: t.sni.clone(),
            subject_alt_names: t.subject_alt_names.clone(),
            trust_domain: Some(mesh.trust_domain.clone()),
            insecure_skip_verify: false,
        })
    }
}

fn outlier(p: &str, o: &raw::RawOutlier, report: &mut Report<'_>) -> OutlierDetection {
    let mut d = OutlierDetection {
        consecutive_5xx: o.consecutive_5xx_errors.unwrap_or(5),
        consecutive_gateway: o.consecutive_gateway_errors.unwrap_or(0),
        interval: Duration::from_secs(10),
        base_ejection_time: Duration::from_secs(30),
        max_ejection_percent: o.max_ejection_percent.unwrap_or(10),
        min_health_percent: o.min_health_percent.unwrap_or(0),
    };
    if let Some(n) = o.consecutive_errors {
        report.warn(
            format!("{p}.consecutiveErrors"),
            "deprecated by Istio; applied as consecutiveGatewayErrors (502, 503, 504)",
        );
        if o.consecutive_gateway_errors.is_none() {
            d.consecutive_gateway = n;
        }
    }
    for (field, raw, slot) in [
        ("interval", &o.interval, &mut d.interval),
        (
            "baseEjectionTime",
            &o.base_ejection_time,
            &mut d.base_ejection_time,
        ),
    ] {
        let Some(raw) = raw else { continue };
        match report.check(&format!("{p}.{field}"), duration(raw)) {
            Some(t) if t.is_zero() => report.error(format!("{p}.{field}"), "must be more than 0"),
            Some(t) => *slot = t,
            None => {}
        }
    }
    for (field, v) in [
        ("maxEjectionPercent", d.max_ejection_percent),
        ("minHealthPercent", d.min_health_percent),
    ] {
        if v > 100 {
            report.error(format!("{p}.{field}"), "a percentage: 0 to 100");
        }
    }
    let local = "local-origin errors are counted with the upstream's 5xx";
    report.unsupported(
        &o.split_external_local_origin_errors,
        &format!("{p}.splitExternalLocalOriginErrors"),
        local,
    );
    report.unsupported(
        &o.consecutive_local_origin_failures,
        &format!("{p}.consecutiveLocalOriginFailures"),
        local,
    );
    d
}

fn connection_pool(p: &str, cp: &raw::ConnectionPool, report: &mut Report<'_>) -> ConnectionPool {
    let mut pool = ConnectionPool::default();
    let time = |field: String, raw: &Option<String>, report: &mut Report<'_>| {
        let t = raw
            .as_ref()
            .and_then(|t| report.check(&field, duration(t)))?;
        if t.is_zero() {
            report.error(field, "must be more than 0");
            return None;
        }
        Some(t)
    };
    // As in Istio, 0 means "not set".
    let positive = |n: Option<u32>| n.filter(|n| *n > 0);
    if let Some(tcp) = &cp.tcp {
        let q = format!("{p}.tcp");
        pool.max_connections = positive(tcp.max_connections);
        pool.connect_timeout = tcp
            .connect_timeout
            .as_ref()
            .and_then(|t| report.check(&format!("{q}.connectTimeout"), duration(t)));
        if pool.connect_timeout == Some(Duration::ZERO) {
            report.error(format!("{q}.connectTimeout"), "must be more than 0");
        }
        pool.idle_timeout = time(format!("{q}.idleTimeout"), &tcp.idle_timeout, report);
        pool.tcp_keepalive = tcp.tcp_keepalive.as_ref().map(|k| TcpKeepalive {
            time: time(format!("{q}.tcpKeepalive.time"), &k.time, report),
            interval: time(format!("{q}.tcpKeepalive.interval"), &k.interval, report),
            probes: k.probes.filter(|p| *p > 0),
        });
        report.unsupported(
            &tcp.max_connection_duration,
            &format!("{q}.maxConnectionDuration"),
            "connections are not closed by age",
        );
    }
    if let Some(http) = &cp.http {
        let q = format!("{p}.http");
        pool.max_pending = positive(http.http1_max_pending_requests);
        pool.max_requests = positive(http.http2_max_requests);
        pool.max_requests_per_connection = positive(http.max_requests_per_connection);
        if let Some(t) = time(format!("{q}.idleTimeout"), &http.idle_timeout, report) {
            pool.idle_timeout = Some(t);
        }
        report.ignored(
            &http.max_retries,
            &format!("{q}.maxRetries"),
            "retries are bounded per request by the route's retries.attempts",
        );
        let proto = "the upstream protocol is the ServiceEntry port's (HTTP2/GRPC: h2)";
        report.ignored(
            &http.h2_upgrade_policy,
            &format!("{q}.h2UpgradePolicy"),
            proto,
        );
        report.ignored(
            &http.use_client_protocol,
            &format!("{q}.useClientProtocol"),
            proto,
        );
        report.ignored(
            &http.max_concurrent_streams,
            &format!("{q}.maxConcurrentStreams"),
            "requests in flight are bounded by maxConnections and http2MaxRequests",
        );
    }
    pool
}

fn load_balancer(
    p: &str,
    lb: &raw::LoadBalancer,
    report: &mut Report<'_>,
) -> (Option<LbPolicy>, Option<HashKey>) {
    report.ignored(
        &lb.locality_lb_setting,
        &format!("{p}.localityLbSetting"),
        "there is one locality here: every endpoint is local",
    );
    let not_yet = "slow start is not implemented";
    report.unsupported(
        &lb.warmup_duration_secs,
        &format!("{p}.warmupDurationSecs"),
        not_yet,
    );
    report.unsupported(&lb.warmup, &format!("{p}.warmup"), not_yet);
    let field = format!("{p}.simple");
    let simple = match upper(&lb.simple).as_deref() {
        None | Some("UNSPECIFIED") => None,
        Some("ROUND_ROBIN") => Some(LbPolicy::RoundRobin),
        Some("RANDOM") => Some(LbPolicy::Random),
        Some("LEAST_REQUEST" | "LEAST_CONN") => Some(LbPolicy::LeastRequest),
        Some("PASSTHROUGH") => {
            report.error(
                field,
                "PASSTHROUGH is not supported: tlsgate picks the endpoint itself",
            );
            None
        }
        Some(other) => {
            report.error(
                field,
                format!("unknown policy '{other}': expected ROUND_ROBIN, RANDOM or LEAST_REQUEST"),
            );
            None
        }
    };
    let Some(ch) = &lb.consistent_hash else {
        return (simple, None);
    };
    let q = format!("{p}.consistentHash");
    if lb.simple.is_some() {
        report.error(&q, "a loadBalancer has either simple or consistentHash");
    }

    let ring = "tlsgate keeps one ring of 256 points per endpoint";
    report.ignored(&ch.ring_hash, &format!("{q}.ringHash"), ring);
    report.ignored(&ch.maglev, &format!("{q}.maglev"), ring);
    report.ignored(&ch.minimum_ring_size, &format!("{q}.minimumRingSize"), ring);
    let mut keys = Vec::new();
    if let Some(h) = &ch.http_header_name {
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            report.error(format!("{q}.httpHeaderName"), "not a valid header name");
        }
        keys.push(HashKey::Header(h.to_ascii_lowercase()));
    }
    if let Some(name) = &ch.http_query_parameter_name {
        if name.is_empty() {
            report.error(format!("{q}.httpQueryParameterName"), "must not be empty");
        }
        keys.push(HashKey::QueryParameter(name.clone()));
    }
    if ch.use_source_ip == Some(true) {
        keys.push(HashKey::SourceIp);
    }
    if let Some(c) = &ch.http_cookie {
        let r = format!("{q}.httpCookie");
        // Written into a Set-Cookie header as is.
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
        };
        if !token(&c.name) {
            report.error(format!("{r}.name"), "not a cookie name (a token)");
        }
        if let Some(path) = &c.path {
            if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
                report.error(
                    format!("{r}.path"),
                    "a path: '/' then visible characters, no ';'",
                );
            }
        }
        report.unsupported(
            &c.attributes,
            &format!("{r}.attributes"),
            "cookie attributes are not implemented",
        );
        let ttl = c
            .ttl
            .as_ref()
            .and_then(|t| report.check(&format!("{r}.ttl"), duration(t)));
        keys.push(HashKey::Cookie {
            name: c.name.clone(),
            path: c.path.clone(),
            ttl,
        });
    }
    match keys.len() {
        1 => (Some(LbPolicy::ConsistentHash), keys.pop()),
        _ => {
            report.error(
                &q,
                "needs exactly one of httpHeaderName, httpCookie, httpQueryParameterName and useSourceIp",
            );
            (None, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::testutil::{errors, DESTINATION_RULE};

    /// Egress origination as in Istio's "egress TLS origination" task, plus subsets.
    const DR: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: originate-mtls-for-nginx
spec:
  host: My-Nginx.mesh-external.svc.cluster.local
  exportTo: ["."]
  trafficPolicy:
    loadBalancer:
      simple: LEAST_CONN
    portLevelSettings:
    - port:
        number: 443
      loadBalancer: {simple: RANDOM}
      tls:
        mode: MUTUAL
        credentialName: client-credential
        sni: my-nginx.mesh-external.svc.cluster.local
        subjectAltNames: [my-nginx.mesh-external.svc.cluster.local]
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      tls: {mode: SIMPLE, caCertificates: ca.pem, insecureSkipVerify: false}
  - name: plain
    trafficPolicy:
      tls: {mode: DISABLE}
"#;

    #[test]
    fn origination_and_subsets() {
        let dir = tempfile::tempdir().unwrap();
        let m = crate::load_str(Path::new("dr.yaml"), DR, dir.path(), &Default::default()).unwrap();
        let dr = &m.destination_rules[0];
        assert_eq!(dr.host, "my-nginx.mesh-external.svc.cluster.local");
        assert_eq!(
            dr.traffic_policy.load_balancer,
            Some(LbPolicy::LeastRequest)
        );
        assert!(dr.traffic_policy.tls.is_none());
        let (port, tls) = &dr.traffic_policy.port_tls[0];
        assert_eq!(*port, 443);
        assert_eq!(tls.mode, ClientTlsMode::Mutual);
        assert_eq!(
            tls.credential,
            Some(CredentialSource::Named("client-credential".into()))
        );
        assert_eq!(
            tls.sni.as_deref(),
            Some("my-nginx.mesh-external.svc.cluster.local")
        );
        assert_eq!(tls.subject_alt_names.len(), 1);

        assert_eq!(dr.subsets[0].name, "v1");
        assert_eq!(dr.subsets[0].labels["version"], "v1");
        let v1 = dr.subsets[0]
            .traffic_policy
            .as_ref()
            .unwrap()
            .tls
            .as_ref()
            .unwrap();
        assert_eq!(v1.mode, ClientTlsMode::Simple);
        assert_eq!(v1.ca_certificates, Some(dir.path().join("ca.pem")));
        assert_eq!(v1.credential, None);
        let plain = dr.subsets[1]
            .traffic_policy
            .as_ref()
            .unwrap()
            .tls
            .as_ref()
            .unwrap();
        assert_eq!(plain.mode, ClientTlsMode::Disable);
    }

    #[test]
    fn refused_settings() {
        let yaml = format!(
            r#"{DESTINATION_RULE}metadata: {{name: dr}}
spec:
  host: api.example.com
  trafficPolicy:
    tls: {{mode: ISTIO_MUTUAL}}
    outlierDetection: {{splitExternalLocalOriginErrors: true}}
    loadBalancer: {{simple: PASSTHROUGH}}
  subsets:
  - name: a
    trafficPolicy:
      tls: {{mode: MUTUAL}}
  - name: a
    trafficPolicy:
      tls: {{mode: MUTUAL, credentialName: nope}}
"#
        );
        let e = errors(&yaml);
        let e: Vec<&str> = e
            .iter()
            .map(|e| e.strip_prefix("test.yaml: DestinationRule/dr: ").unwrap())
            .collect();
        assert_eq!(
            e,
            [
                "spec.trafficPolicy.outlierDetection.splitExternalLocalOriginErrors: not supported by tlsgate: local-origin errors are counted with the upstream's 5xx",
                "spec.trafficPolicy.loadBalancer.simple: PASSTHROUGH is not supported: tlsgate picks the endpoint itself",
                "spec.trafficPolicy.tls.mode: ISTIO_MUTUAL needs the gateway's mesh identity: add GatewayRuntime spec.mesh {credentialName: <folder with the workload certificate, key and mesh CA>, trustDomain}",
                "spec.subsets[0].trafficPolicy.tls: mode MUTUAL needs credentialName, or clientCertificate and privateKey",
                "spec.subsets[1].name: duplicate subset 'a'",
            ]
        );
    }
}
