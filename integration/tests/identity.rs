//! The client identity forwarded to backends (x-forwarded-client-cert),
//! OPTIONAL_MUTUAL, subjectAltNames, x-forwarded-for / -proto.

use std::time::Duration;

use tlsgate_integration::*;

/// `Key=value` pairs of one XFCC element (quotes removed).
fn xfcc_fields(xfcc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = xfcc;
    while !rest.is_empty() {
        let (k, after) = rest.split_once('=').unwrap_or((rest, ""));
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            // Quoted value: up to the next unescaped quote.
            let mut end = None;
            let b = q.as_bytes();
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 2,
                    b'"' => {
                        end = Some(i);
                        break;
                    }
                    _ => i += 1,
                }
            }
            let end = end.unwrap_or(q.len());
            let tail = q.get(end + 1..).unwrap_or("");
            (q[..end].to_string(), tail.strip_prefix(';').unwrap_or(tail))
        } else {
            let (v, n) = after.split_once(';').unwrap_or((after, ""));
            (v.to_string(), n)
        };
        out.push((k.trim().to_string(), v));
        rest = next;
    }
    out
}

fn field<'a>(f: &'a [(String, String)], k: &str) -> Vec<&'a str> {
    f.iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(k))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn xfcc_carries_the_verified_client_certificate() {
    let s = Seed000::start();
    let r = s.partner("/").client("great-partner").run();
    assert_eq!(r.status, 200, "{r}\n{}", s.gateway.describe());
    let xfcc = r
        .backend_header("x-forwarded-client-cert")
        .unwrap_or_else(|| panic!("no x-forwarded-client-cert at the backend: {r}"));
    let f = xfcc_fields(&xfcc);
    let hash = cert_sha256_hex(&client_cert("great-partner").0);
    assert_eq!(field(&f, "Hash"), vec![hash.as_str()], "XFCC {xfcc}");
    let subject = field(&f, "Subject");
    assert_eq!(subject.len(), 1, "XFCC {xfcc}");
    assert!(
        subject[0].contains("CN=great-partner.apps.acme.com"),
        "XFCC Subject {subject:?}"
    );
    assert!(
        field(&f, "URI").contains(&"spiffe://acme.com/great-partner"),
        "XFCC {xfcc}"
    );
    assert!(
        xfcc.contains(r#"Subject=""#),
        "Subject must be quoted as Envoy does: {xfcc}"
    );
}

#[test]
fn client_sent_xfcc_never_reaches_the_backend() {
    let s = Seed000::start();
    // MUTUAL host: replaced by the verified identity.
    let r = s
        .partner("/")
        .client("great-partner")
        .header("x-forwarded-client-cert: evil")
        .header("X-Forwarded-Client-Cert: URI=spiffe://acme.com/admin")
        .run();
    assert_eq!(r.status, 200, "{r}\n{}", s.gateway.describe());
    let seen = s.frontend.last_request().unwrap();
    let all = seen.header_all("x-forwarded-client-cert");
    assert_eq!(all.len(), 1, "exactly one XFCC expected: {seen:?}");
    assert!(!all[0].contains("evil"), "{seen:?}");
    assert!(!all[0].contains("spiffe://acme.com/admin"), "{seen:?}");
    assert!(
        all[0].contains("URI=spiffe://acme.com/great-partner"),
        "{seen:?}"
    );

    // SIMPLE host: no client certificate, so no XFCC at all.
    for h2 in [false, true] {
        let mut c = s
            .frontend("/")
            .header("x-forwarded-client-cert: evil")
            .header("x-forwarded-client-cert: Hash=00;URI=spiffe://acme.com/great-partner");
        if h2 {
            c = c.http2();
        }
        let r = c.run();
        assert_eq!(r.status, 200, "h2={h2}: {r}");
        let seen = s.frontend.last_request().unwrap();
        assert!(
            seen.header_all("x-forwarded-client-cert").is_empty(),
            "h2={h2}: client-sent XFCC reached the backend: {seen:?}"
        );
    }
}

#[test]
fn forwarded_for_and_proto_are_set() {
    let s = Seed000::start();
    let r = s.frontend("/").run();
    assert_eq!(r.status, 200, "{r}\n{}", s.gateway.describe());
    let seen = s.frontend.last_request().unwrap();
    let xff = seen.header("x-forwarded-for").unwrap_or_default();
    assert!(
        xff.contains("127.0.0.1"),
        "x-forwarded-for {xff:?}: {seen:?}"
    );
    assert_eq!(
        seen.header("x-forwarded-proto").as_deref(),
        Some("https"),
        "{seen:?}"
    );
    // The backend sees the Host the client asked for.
    let host = seen.header("host").unwrap_or_default();
    assert!(host.starts_with(FRONTEND_HOST), "host {host:?}");
}

fn two_host_config(
    conf: &ConfigDir,
    creds: &std::path::Path,
    port: u16,
    backend: u16,
    servers: &str,
    hosts: &[&str],
) -> std::path::PathBuf {
    let yaml = format!(
        r#"{preamble}{servers}
---
{vs}"#,
        preamble = gateway_preamble(creds),
        servers = servers.replace("PORT", &port.to_string()),
        vs = route_all(&hosts.join(", "), backend),
    );
    conf.write("identity.yaml", &yaml)
}

#[test]
fn optional_mutual_verifies_a_certificate_only_when_given() {
    require_certs_example();
    let backend = Backend::start("opt");
    let port = free_port();
    let conf = ConfigDir::new();
    let cfg = two_host_config(
        &conf,
        &credentials_dir(),
        port,
        backend.port(),
        "  - port: {number: PORT, name: https-opt, protocol: HTTPS}\n    bind: 127.0.0.1\n    hosts: [partner.example.com]\n    tls: {mode: OPTIONAL_MUTUAL, credentialName: partner-credential}",
        &["partner.example.com"],
    );
    let gw = Gateway::start(&[&cfg], &[]);
    let base = || Curl::https(PARTNER_HOST, port, "/").insecure();

    let r = base().header("x-forwarded-client-cert: evil").run();
    assert_eq!(r.status, 200, "no certificate: {r}\n{}", gw.describe());
    assert_eq!(r.backend_header("x-forwarded-client-cert"), None, "{r}");

    let r = base().client("great-partner").run();
    assert_eq!(r.status, 200, "Acme certificate: {r}");
    let xfcc = r
        .backend_header("x-forwarded-client-cert")
        .unwrap_or_default();
    assert!(xfcc.contains("URI=spiffe://acme.com/great-partner"), "{r}");

    for v in ["--tlsv1.3", "--tlsv1.2"] {
        let mut c = base().client("bad-partner").arg(v);
        if v == "--tlsv1.2" {
            c = c.args(["--tls-max", "1.2"]);
        }
        let r = c.run();
        assert!(
            !r.success() && r.status == 0,
            "{v}: Pirate certificate got in: {r}"
        );
        assert!(r.stderr.contains("unknown ca"), "{v}: {r}");
    }
    assert_eq!(backend.count(), 2);
}

#[test]
fn subject_alt_names_restrict_which_clients_get_in() {
    require_certs_example();
    let backend = Backend::start("san");
    let port = free_port();
    let conf = ConfigDir::new();
    // other.example.com needs a certificate naming it (tlsgate refuses to
    // serve one that does not); its clients are Acme's, as partner's are.
    let creds = conf.path().join("credentials");
    copy_credentials(&creds).unwrap();
    let out = run_tlsgate(
        &[
            "certs",
            "server",
            "--ca",
            &certs_example().join("ca/example").to_string_lossy(),
            "--host",
            "other.example.com",
            "--client-ca",
            &certs_example().join("ca/acme").to_string_lossy(),
            "--out",
            &creds.join("other-credential").to_string_lossy(),
        ],
        Duration::from_secs(30),
    );
    assert!(out.success(), "tlsgate certs server: {out}");
    let servers = "  - port: {number: PORT, name: https-allowed, protocol: HTTPS}\n    bind: 127.0.0.1\n    hosts: [partner.example.com]\n    tls:\n      mode: MUTUAL\n      credentialName: partner-credential\n      subjectAltNames: [spiffe://acme.com/great-partner]\n  - port: {number: PORT, name: https-denied, protocol: HTTPS}\n    bind: 127.0.0.1\n    hosts: [other.example.com]\n    tls:\n      mode: MUTUAL\n      credentialName: other-credential\n      subjectAltNames: [spiffe://acme.com/someone-else]";
    let cfg = two_host_config(
        &conf,
        &creds,
        port,
        backend.port(),
        servers,
        &["partner.example.com", "other.example.com"],
    );
    let gw = Gateway::start(&[&cfg], &[]);

    let r = Curl::https(PARTNER_HOST, port, "/")
        .insecure()
        .client("great-partner")
        .run();
    assert_eq!(r.status, 200, "allowed SAN: {r}\n{}", gw.describe());

    for tls in ["1.3", "1.2"] {
        let r = Curl::https("other.example.com", port, "/")
            .insecure()
            .client("great-partner")
            .args(["--tls-max", tls])
            .run();
        assert_ne!(
            r.status, 200,
            "TLS {tls}: SAN not in subjectAltNames got in: {r}"
        );
        assert!(!r.success(), "TLS {tls}: {r}");
    }
    assert_eq!(backend.count(), 1, "the refused client reached the backend");
    let (ok, m) = gw.wait_metrics(Duration::from_secs(3), |m| {
        m.sum(
            "tlsgate_tls_handshake_failures_total",
            &[("reason", "san_not_allowed")],
        ) >= 2.0
    });
    assert!(
        ok,
        "expected 2 failures with reason san_not_allowed:\n{}",
        m.text
    );
}
