//! Certificate selection by SNI, unknown or missing SNI, protocol versions.

use std::time::Duration;

use tlsgate_integration::*;

/// The `subject:` line curl -v prints for the server certificate.
fn served_subject(r: &CurlResult) -> String {
    r.stderr
        .lines()
        .find(|l| l.trim_start_matches(['*', ' ']).starts_with("subject:"))
        .map(|l| l.trim_start_matches(['*', ' ']).to_string())
        .unwrap_or_else(|| panic!("no server certificate subject in curl -v output: {r}"))
}

#[test]
fn served_certificate_follows_sni() {
    let s = Seed000::start();
    let r = s.frontend("/").verbose().run();
    assert_eq!(r.status, 200, "{r}");
    let subj = served_subject(&r);
    assert!(subj.contains(FRONTEND_HOST), "frontend SNI got {subj}");

    let r = s.partner("/").client("great-partner").verbose().run();
    assert_eq!(r.status, 200, "{r}");
    let subj = served_subject(&r);
    assert!(subj.contains(PARTNER_HOST), "partner SNI got {subj}");
    assert!(!subj.contains(FRONTEND_HOST), "partner SNI got {subj}");

    // The same with openssl s_client, which shows the served leaf's subject
    // even when the handshake then fails for want of a client certificate.
    let out = openssl_s_client(
        &[
            "-connect",
            &format!("127.0.0.1:{}", s.port),
            "-servername",
            PARTNER_HOST,
            "-tls1_2",
        ],
        b"",
        Duration::from_secs(10),
    );
    let subject_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no subject= line: {out}"));
    assert!(subject_line.contains(PARTNER_HOST), "{subject_line}\n{out}");
}

#[test]
fn unknown_sni_fails_the_handshake_and_is_counted() {
    let s = Seed000::start();
    let host = "unknown.example.org";
    let r = Curl::https(host, s.port, "/").insecure().run();
    assert!(!r.success(), "unknown SNI got through: {r}");
    assert_eq!(r.status, 0, "unknown SNI got an HTTP answer: {r}");
    assert!(
        r.stderr.contains("unrecognized name"),
        "expected alert unrecognized_name: {r}"
    );
    // Also with a Host header naming a served host: the handshake still fails.
    let r = Curl::https(host, s.port, "/")
        .insecure()
        .header(&format!("Host: {FRONTEND_HOST}"))
        .run();
    assert_eq!(r.status, 0, "{r}");
    assert_eq!(s.backend_total(), 0);
    let (ok, m) = s.gateway.wait_metrics(Duration::from_secs(3), |m| {
        m.sum(
            "tlsgate_tls_handshake_failures_total",
            &[("reason", "unknown_sni")],
        ) >= 2.0
    });
    assert!(
        ok,
        "expected 2 handshake failures with reason unknown_sni:\n{}",
        m.text
    );
}

#[test]
fn missing_sni_fails_the_handshake_and_is_counted() {
    let s = Seed000::start();
    // curl sends no SNI to an IP address.
    let r = Curl::new(format!("https://127.0.0.1:{}/", s.port))
        .insecure()
        .header(&format!("Host: {FRONTEND_HOST}"))
        .run();
    assert!(!r.success(), "a connection without SNI got through: {r}");
    assert_eq!(r.status, 0, "{r}");
    assert_eq!(s.backend_total(), 0);
    let (ok, m) = s.gateway.wait_metrics(Duration::from_secs(3), |m| {
        m.sum(
            "tlsgate_tls_handshake_failures_total",
            &[("reason", "no_sni")],
        ) >= 1.0
    });
    assert!(
        ok,
        "expected a handshake failure with reason no_sni:\n{}",
        m.text
    );
}

/// A CA (`<conf>/<name>-ca/`) and a server credential for `hosts`
/// (`creds/<name>/`), both made with `tlsgate certs`.
fn make_credential(creds: &std::path::Path, name: &str, cn: &str, hosts: &[&str]) {
    let ca_dir = creds.parent().unwrap().join(format!("{name}-ca"));
    let out = tlsgate_certs_ca(&ca_dir, &format!("{name} test CA"));
    assert!(out.success(), "tlsgate certs ca: {out}");
    let out = tlsgate_certs_server(&ca_dir, &creds.join(name), cn, hosts);
    assert!(out.success(), "tlsgate certs server: {out}");
    assert!(creds.join(name).join("tls.crt").is_file(), "{out}");
    assert!(creds.join(name).join("tls.key").is_file(), "{out}");
}

#[test]
fn exact_beats_wildcard_beats_catch_all() {
    require_certs_example();
    let backend = Backend::start("wild");
    let conf = ConfigDir::new();
    let creds = conf.path().join("credentials");
    copy_credentials(&creds).unwrap();
    make_credential(
        &creds,
        "wild-credential",
        "wild.example.com",
        &["*.wild.example.com"],
    );
    // The exact host's own certificate (tlsgate refuses one that does not
    // name it), so its CN shows the exact server won over the wildcard.
    make_credential(
        &creds,
        "exact-credential",
        "exact.wild.example.com",
        &["exact.wild.example.com"],
    );
    let port = free_port();
    let yaml = format!(
        r#"{preamble}  - port: {{number: {port}, name: https-exact, protocol: HTTPS}}
    bind: 127.0.0.1
    hosts: [exact.wild.example.com]
    tls: {{mode: SIMPLE, credentialName: exact-credential}}
  - port: {{number: {port}, name: https-wild, protocol: HTTPS}}
    bind: 127.0.0.1
    hosts: ["*.wild.example.com"]
    tls: {{mode: SIMPLE, credentialName: wild-credential}}
  - port: {{number: {port}, name: https-any, protocol: HTTPS}}
    bind: 127.0.0.1
    hosts: ["*"]
    tls: {{mode: SIMPLE, credentialName: frontend-credential}}
---
{vs}"#,
        preamble = gateway_preamble(&creds),
        vs = route_all("\"*\"", backend.port()),
    );
    let cfg = conf.write("wild.yaml", &yaml);
    let gw = Gateway::start(&[&cfg], &[]);

    let cases = [
        ("exact.wild.example.com", "exact.wild.example.com"),
        ("a.wild.example.com", "wild.example.com"),
        ("b.wild.example.com", "wild.example.com"),
        ("other.example.org", FRONTEND_HOST),
        // `*.wild.example.com` does not match the bare domain.
        ("wild.example.com", FRONTEND_HOST),
    ];
    for (sni, expected_cn) in cases {
        let r = Curl::https(sni, port, "/").insecure().verbose().run();
        assert_eq!(r.status, 200, "{sni}: {r}\n{}", gw.describe());
        let subj = served_subject(&r);
        assert!(
            subj.contains(&format!("CN={expected_cn}"))
                || subj.contains(&format!("CN = {expected_cn}")),
            "{sni}: expected CN={expected_cn}, served {subj}"
        );
    }
    // The wildcard certificate made by `tlsgate certs` verifies against its CA.
    let r = Curl::https("a.wild.example.com", port, "/")
        .cacert(&conf.path().join("wild-credential-ca").join("ca.crt"))
        .run();
    assert_eq!(r.status, 200, "verifying the wildcard credential: {r}");
    assert_eq!(backend.count(), cases.len() + 1);
}

#[test]
fn protocol_version_bounds_per_listener() {
    require_certs_example();
    let backend = Backend::start("versions");
    let (p13, p12) = (free_port(), free_port());
    let conf = ConfigDir::new();
    let yaml = format!(
        r#"{preamble}  - port: {{number: {p13}, name: https-13, protocol: HTTPS}}
    bind: 127.0.0.1
    hosts: [frontend.example.com]
    tls: {{mode: SIMPLE, credentialName: frontend-credential, minProtocolVersion: TLSV1_3}}
  - port: {{number: {p12}, name: https-12, protocol: HTTPS}}
    bind: 127.0.0.1
    hosts: [frontend.example.com]
    tls: {{mode: SIMPLE, credentialName: frontend-credential, maxProtocolVersion: TLSV1_2}}
---
{vs}"#,
        preamble = gateway_preamble(&credentials_dir()),
        vs = route_all(FRONTEND_HOST, backend.port()),
    );
    let cfg = conf.write("versions.yaml", &yaml);
    let gw = Gateway::start(&[&cfg], &[]);
    let h = FRONTEND_HOST;

    let r = Curl::https(h, p13, "/").insecure().tls13().run();
    assert_eq!(r.status, 200, "min 1.3, client 1.3: {r}\n{}", gw.describe());
    let r = Curl::https(h, p13, "/").insecure().tls12().run();
    assert!(
        !r.success() && r.status == 0,
        "min 1.3, client 1.2 got in: {r}"
    );

    let r = Curl::https(h, p12, "/").insecure().tls12().run();
    assert_eq!(r.status, 200, "max 1.2, client 1.2: {r}");
    let r = Curl::https(h, p12, "/").insecure().tls13().run();
    assert!(
        !r.success() && r.status == 0,
        "max 1.2, client 1.3 got in: {r}"
    );

    assert_eq!(backend.count(), 2);
}
