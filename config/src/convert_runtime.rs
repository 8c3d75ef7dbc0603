//! `GatewayRuntime` (tlsgate's own kind) -> [`RuntimeSettings`], with the
//! command line's [`Overrides`] applied last.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::limits::{limits, timeouts};
use super::load::{absolute, Document};
use super::parse::{duration, resolve, spec, upper, Report};
use super::raw::GatewayRuntimeSpec;
use super::{
    AccessLogFormat, Findings, Limits, Mesh, OutboundPolicy, Overrides, ReloadSettings,
    RuntimeSettings, Timeouts, TlsLibrary,
};

pub(crate) const DEFAULT_ADMIN: &str = "127.0.0.1:15021";
pub(crate) const DEFAULT_CREDENTIALS_DIR: &str = "/etc/tlsgate/credentials";

/// A gateway's regular clients. Each holds the client's identity (under a
/// KB) and, with CRLs, its decoded path (a few KB): a few MB at most.
pub const DEFAULT_CLIENT_CERTIFICATE_CACHE: usize = 1024;

pub(crate) fn defaults() -> RuntimeSettings {
    RuntimeSettings {
        admin: DEFAULT_ADMIN.parse().expect("valid default admin address"),
        credentials_dir: PathBuf::from(DEFAULT_CREDENTIALS_DIR),
        outbound_policy: OutboundPolicy::AllowAny,
        access_log: AccessLogFormat::Text,
        threads: 1,
        grace_period: Duration::ZERO,
        shutdown_timeout: Duration::from_secs(1),
        reload: ReloadSettings::default(),
        limits: Limits::default(),
        timeouts: Timeouts::default(),
        admin_token_file: None,
        mesh: None,
        listeners: Vec::new(),
        client_cert: Default::default(),
        num_trusted_proxies: 0,
        send_client_ca_names: true,
        client_certificate_cache: DEFAULT_CLIENT_CERTIFICATE_CACHE,
        revocation: Default::default(),
        ocsp_stapling: Default::default(),
        session_tickets: Default::default(),
        tls_library: Default::default(),
    }
}

/// Settings from the (at most one) GatewayRuntime document, then overrides.
/// A second document is an error rather than a merge: which one wins
/// would depend on file order.
pub(crate) fn convert(
    docs: &[&Document],
    overrides: &Overrides,
    out: &mut Findings,
) -> RuntimeSettings {
    let mut settings = defaults();
    if let Some((first, rest)) = docs.split_first() {
        for doc in rest {
            Report::new(&doc.id, out).error(
                "kind",
                format!(
                    "only one GatewayRuntime is allowed; {} is already one",
                    first.id
                ),
            );
        }
        apply(first, &mut settings, &mut Report::new(&first.id, out));
    }
    if let Some(admin) = overrides.admin {
        settings.admin = admin;
    }
    if let Some(dir) = &overrides.credentials_dir {
        settings.credentials_dir = absolute(dir);
    }
    if let Some(lib) = overrides.tls_library {
        settings.tls_library = lib;
    }
    settings
}

fn apply(doc: &Document, s: &mut RuntimeSettings, report: &mut Report<'_>) {
    let Some(raw) = spec::<GatewayRuntimeSpec>(doc, report) else {
        return;
    };
    if let Some(admin) = &raw.admin {
        let parsed = admin.parse::<SocketAddr>().map_err(|_| {
            format!("invalid address '{admin}': expected IP:port, e.g. {DEFAULT_ADMIN}")
        });
        if let Some(a) = report.check("spec.admin", parsed) {
            s.admin = a;
        }
    }
    if let Some(dir) = &raw.credentials_dir {
        s.credentials_dir = resolve(&doc.base_dir, dir);
    }
    if let Some(mode) = raw.outbound_traffic_policy.and_then(|p| upper(&p.mode)) {
        match mode.as_str() {
            "REGISTRY_ONLY" => s.outbound_policy = OutboundPolicy::RegistryOnly,
            "ALLOW_ANY" => s.outbound_policy = OutboundPolicy::AllowAny,
            _ => report.error(
                "spec.outboundTrafficPolicy.mode",
                format!("unknown mode '{mode}': expected REGISTRY_ONLY or ALLOW_ANY"),
            ),
        }
    }
    if let Some(format) = raw.access_log.and_then(|a| a.format) {
        match format.trim().to_ascii_lowercase().as_str() {
            "text" => s.access_log = AccessLogFormat::Text,
            "json" => s.access_log = AccessLogFormat::Json,
            "off" => s.access_log = AccessLogFormat::Off,
            _ => report.error(
                "spec.accessLog.format",
                format!("unknown format '{format}': expected text, json or off"),
            ),
        }
    }
    match raw.threads {
        Some(0) => report.error("spec.threads", "must be at least 1"),
        Some(n) => s.threads = n,
        None => {}
    }
    if let Some(shutdown) = raw.shutdown {
        if let Some(g) = &shutdown.grace_period {
            if let Some(d) = report.check("spec.shutdown.gracePeriod", duration(g)) {
                s.grace_period = d;
            }
        }
        if let Some(t) = &shutdown.timeout {
            if let Some(d) = report.check("spec.shutdown.timeout", duration(t)) {
                s.shutdown_timeout = d;
            }
        }
    }
    if let Some(reload) = raw.reload {
        let r = &mut s.reload;
        if let Some(w) = reload.watch {
            r.watch = w;
        }
        if let Some(d) = &reload.debounce {
            if let Some(d) = report.check("spec.reload.debounce", duration(d)) {
                r.debounce = d;
            }
        }
        if let Some(d) = &reload.rescan_interval {
            match report.check("spec.reload.rescanInterval", duration(d)) {
                Some(d) if d.is_zero() => {
                    report.error("spec.reload.rescanInterval", "must be more than 0s")
                }
                Some(d) => r.rescan_interval = d,
                None => {}
            }
        }
        if let Some(a) = reload.allow_expired_credentials {
            r.allow_expired_credentials = a;
        }
    }
    if let Some(raw) = &raw.limits {
        s.limits = limits(raw, report);
    }
    if let Some(raw) = &raw.timeouts {
        s.timeouts = timeouts(raw, report);
    }
    if let Some(f) = &raw.admin_token_file {
        s.admin_token_file = Some(resolve(&doc.base_dir, f));
    }
    if let Some(m) = &raw.mesh {
        let trust_domain = m
            .trust_domain
            .clone()
            .unwrap_or_else(|| "cluster.local".into());
        if m.credential_name.is_empty() || m.credential_name.contains('/') {
            report.error("spec.mesh.credentialName", "a credential folder name");
        }
        // SPIFFE: lower-case letters, digits, '.', '-' and '_'.
        let spiffe = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
        if trust_domain.is_empty() || !trust_domain.chars().all(spiffe) {
            report.error(
                "spec.mesh.trustDomain",
                "a trust domain such as cluster.local (no scheme, no path)",
            );
        }
        s.mesh = Some(Mesh {
            credential_name: m.credential_name.clone(),
            trust_domain,
        });
    }
    s.listeners = super::listeners::convert(&raw.listeners, report);
    if let Some(b) = raw
        .client_certificate_request
        .as_ref()
        .and_then(|r| r.send_ca_names)
    {
        s.send_client_ca_names = b;
    }
    if let Some(n) = raw
        .client_certificate_cache
        .as_ref()
        .and_then(|c| c.entries)
    {
        let path = "spec.clientCertificateCache.entries";
        if let Some(n) = report.check(path, super::limits::in_range(n, 0, 100_000)) {
            s.client_certificate_cache = n as usize;
        }
    }
    if let Some(r) = &raw.revocation {
        s.revocation = super::revocation::convert(r, report);
    }
    if let Some(t) = &raw.session_tickets {
        s.session_tickets = super::session_tickets::convert(t, &doc.base_dir, report);
    }
    if let Some(lib) = &raw.tls_library {
        match TlsLibrary::parse(lib) {
            Some(l) => s.tls_library = l,
            None => report.error(
                "spec.tlsLibrary",
                format!("unknown TLS library '{lib}': expected openssl or rustls"),
            ),
        }
    }
    if let Some(o) = &raw.ocsp_stapling {
        s.ocsp_stapling = super::revocation::convert_stapling(o);
    }
    (s.client_cert, s.num_trusted_proxies) = super::client_cert::runtime(
        raw.gateway_topology.as_ref(),
        raw.client_cert_details.as_ref(),
        report,
    );
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::load::documents;

    fn run(yaml: &str, overrides: &Overrides) -> (RuntimeSettings, Vec<String>) {
        let mut out = Findings::default();
        let docs = documents(Path::new("rt.yaml"), yaml, Path::new("/conf"), &mut out);
        let refs: Vec<&Document> = docs.iter().collect();
        let s = convert(&refs, overrides, &mut out);
        (s, out.errors.iter().map(ToString::to_string).collect())
    }

    const FULL: &str = r"
apiVersion: tlsgate.io/v1
kind: GatewayRuntime
metadata: {name: rt}
spec:
  admin: 0.0.0.0:9901
  credentialsDir: ../creds
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  accessLog: {format: json}
  threads: 4
  shutdown: {gracePeriod: 2s, timeout: 500ms}
  limits: {maxConnections: 500, requestHeadBytes: 32Ki, requestHeaders: 50, requestHeadMemory: 8Mi,
           http2MaxConcurrentStreams: 20, http2MaxResetStreams: 7, clientCertificateIntermediates: 3,
           tlsSessionCacheBytes: 1Mi}
  timeouts: {tlsHandshake: 2s, firstRequest: 3s, requestHead: 4s, requestBodyIdle: 5s,
             keepAliveIdle: 6s, http2Idle: 7s, responseSendIdle: 8s}
  adminTokenFile: token
  clientCertificateCache: {entries: 50}
";

    #[test]
    fn every_field_and_defaults() {
        let (s, errors) = run(FULL, &Overrides::default());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.admin, "0.0.0.0:9901".parse().unwrap());
        assert_eq!(s.credentials_dir, Path::new("/conf/../creds"));
        assert_eq!(s.outbound_policy, OutboundPolicy::RegistryOnly);
        assert_eq!(s.access_log, AccessLogFormat::Json);
        assert_eq!(s.threads, 4);
        assert_eq!(s.grace_period, Duration::from_secs(2));
        assert_eq!(s.shutdown_timeout, Duration::from_millis(500));
        let l = s.limits;
        assert_eq!(
            (l.max_connections, l.request_head_bytes, l.request_headers),
            (500, 32 * 1024, 50)
        );
        assert_eq!(l.request_head_memory, 8 << 20);
        assert_eq!(
            (l.http2_max_concurrent_streams, l.http2_max_reset_streams),
            (20, 7)
        );
        assert_eq!(l.client_certificate_intermediates, 3);
        assert_eq!(l.tls_session_cache_bytes, 1 << 20);
        let t = s.timeouts;
        let secs = |d: Duration| d.as_secs();
        assert_eq!(
            [
                t.tls_handshake,
                t.first_request,
                t.request_head,
                t.request_body_idle,
                t.keep_alive_idle,
                t.http2_idle,
                t.response_send_idle
            ]
            .map(secs),
            [2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(
            s.admin_token_file.as_deref(),
            Some(Path::new("/conf/token"))
        );
        assert_eq!(s.client_certificate_cache, 50);

        let (d, errors) = run("", &Overrides::default());
        assert!(errors.is_empty());
        assert_eq!(d.admin, DEFAULT_ADMIN.parse().unwrap());
        assert_eq!(d.credentials_dir, Path::new(DEFAULT_CREDENTIALS_DIR));
        assert_eq!(d.outbound_policy, OutboundPolicy::AllowAny);
        assert_eq!(d.shutdown_timeout, Duration::from_secs(1));
        assert_eq!(d.limits, Limits::default());
        assert_eq!(d.timeouts, Timeouts::default());
        assert_eq!(d.client_certificate_cache, DEFAULT_CLIENT_CERTIFICATE_CACHE);
    }

    #[test]
    fn client_certificate_cache_off_and_out_of_range() {
        let doc = |entries: &str| {
            format!(
                "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {{name: a}}\n\
                 spec: {{clientCertificateCache: {{entries: {entries}}}}}\n"
            )
        };
        let (s, errors) = run(&doc("0"), &Overrides::default());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.client_certificate_cache, 0);
        let (s, errors) = run(&doc("200000"), &Overrides::default());
        assert_eq!(
            errors,
            [
                "rt.yaml: GatewayRuntime/a: spec.clientCertificateCache.entries: 200000 is out of \
              range: expected 0 to 100000"
            ]
        );
        assert_eq!(s.client_certificate_cache, DEFAULT_CLIENT_CERTIFICATE_CACHE);
        let (_, errors) = run(&doc("-1"), &Overrides::default());
        assert!(
            errors.len() == 1 && errors[0].contains("spec.clientCertificateCache"),
            "{errors:?}"
        );
    }

    #[test]
    fn limits_out_of_range_and_zero_timeouts() {
        let yaml = "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {name: a}\n\
            spec: {limits: {requestHeadBytes: 10, requestHeaders: 5000, http2MaxResetStreams: 0, \
            clientCertificateIntermediates: 65, tlsSessionCacheBytes: 5Gi}, timeouts: {requestHead: 0s, http2Idle: soon}}\n";
        let (_, errors) = run(yaml, &Overrides::default());
        assert_eq!(errors.len(), 7, "{errors:?}");
        let all = errors.join("\n");
        for want in [
            "spec.limits.requestHeaders: 5000 is out of range: expected 8 to 1000",
            "spec.limits.http2MaxResetStreams: 0 is out of range",
            "spec.limits.clientCertificateIntermediates: 65 is out of range: expected 0 to 64",
            "spec.limits.tlsSessionCacheBytes: 5368709120 is out of range",
            "spec.limits.requestHeadBytes: 10 is out of range",
            "spec.timeouts.requestHead: must be more than 0s",
            "spec.timeouts.http2Idle: invalid duration 'soon'",
        ] {
            assert!(all.contains(want), "{want} not in {all}");
        }
    }

    #[test]
    fn overrides_win() {
        let o = Overrides {
            admin: Some("127.0.0.1:1".parse().unwrap()),
            credentials_dir: Some("/other".into()),
            tls_library: Some(TlsLibrary::OpenSsl),
        };
        let (s, _) = run(FULL, &o);
        assert_eq!(s.admin, "127.0.0.1:1".parse().unwrap());
        assert_eq!(s.credentials_dir, Path::new("/other"));
        assert_eq!(s.tls_library, TlsLibrary::OpenSsl);
        // Without the override, the default: rustls.
        assert_eq!(defaults().tls_library, TlsLibrary::Rustls);
    }

    #[test]
    fn bad_values_and_second_document() {
        let yaml = "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {name: a}\n\
            spec: {admin: localhost, threads: 0, accessLog: {format: xml}, tlsLibrary: gnutls}\n---\n\
            apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {name: b}\n";
        let (_, errors) = run(yaml, &Overrides::default());
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].starts_with("rt.yaml: GatewayRuntime/b: kind: only one GatewayRuntime"));
        assert!(errors[1].starts_with("rt.yaml: GatewayRuntime/a: spec.admin: invalid address"));
        assert!(errors[2].contains("spec.accessLog.format: unknown format 'xml'"));
        assert!(errors[3].contains("spec.threads: must be at least 1"));
        assert!(errors[4].contains("spec.tlsLibrary: unknown TLS library 'gnutls'"));
    }

    #[test]
    fn revocation() {
        let yaml = r#"
apiVersion: tlsgate.io/v1
kind: GatewayRuntime
metadata: {name: rt}
spec:
  revocation:
    staleCrl: failOpen
    leafOnly: true
    refreshInterval: 10m
    fetchTimeout: 5s
    maxCrlBytes: 8Mi
    credentials:
      partners:
        crlUrls: ["http://pki.example/partners.crl"]
        staleCrl: failClosed
        distributionPoints: true
"#;
        let (s, errors) = run(yaml, &Overrides::default());
        assert!(errors.is_empty(), "{errors:?}");
        let r = &s.revocation;
        assert_eq!(r.refresh_interval, Duration::from_secs(600));
        assert_eq!(r.retry_interval, Duration::from_secs(30));
        assert_eq!(r.fetch_timeout, Duration::from_secs(5));
        assert_eq!(r.max_crl_bytes, 8 << 20);
        let p = |n| {
            let c = r.for_credential(n);
            (c.stale_crl, c.leaf_only, c.distribution_points)
        };
        assert_eq!(p("partners"), (crate::StaleCrl::FailClosed, true, true));
        assert_eq!(p("x"), (crate::StaleCrl::FailOpen, true, false));
        assert_eq!(
            r.credentials["partners"].crl_urls,
            ["http://pki.example/partners.crl"]
        );

        let bad = r#"
apiVersion: tlsgate.io/v1
kind: GatewayRuntime
metadata: {name: rt}
spec:
  revocation:
    staleCrl: open
    refreshInterval: 0s
    credentials:
      partners: {crlUrls: ["ldap://pki.example/cn=ca"]}
"#;
        let (_, errors) = run(bad, &Overrides::default());
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains("spec.revocation.staleCrl: 'open'"),
            "{errors:?}"
        );
        assert!(errors[1].contains("spec.revocation.refreshInterval: must be more than 0s"));
        assert!(errors[2].contains("spec.revocation.credentials.partners.crlUrls[0]"));
    }

    #[test]
    fn session_tickets() {
        let yaml = "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {name: rt}\n\
                    spec: {sessionTickets: {keyFiles: [k0, /abs/k1], rotation: 30m}}\n";
        let (s, errors) = run(yaml, &Overrides::default());
        assert!(errors.is_empty(), "{errors:?}");
        let t = &s.session_tickets;
        assert_eq!(t.key_files, [Path::new("/conf/k0"), Path::new("/abs/k1")]);
        assert_eq!(t.rotation, Duration::from_secs(1800));
        assert!(t.from_files());
        let bad = "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {name: rt}\n\
                   spec: {sessionTickets: {keyFiles: [k0], keyDirectory: d, rotation: 5s}}\n";
        let (_, errors) = run(bad, &Overrides::default());
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("keyFiles or keyDirectory"), "{errors:?}");
        assert!(errors[1].contains("spec.sessionTickets.rotation: at least 60s"));
    }
}
