//! OCSP stapling and two certificates per host (issue 16): a credential
//! with an ECDSA and an RSA certificate serves each to the client whose
//! signature algorithms take it, each with its own OCSP response, seen
//! with `openssl s_client -status`; a response past nextUpdate is never
//! stapled, and one that is not good for the certificate is refused with
//! the credential, whose last good version keeps serving.

use std::path::Path;
use std::time::Duration;

use tlsgate_integration::hostile::proc::wait_until;
use tlsgate_integration::*;

fn tlsgate(args: &[&str]) -> String {
    let out = run_tlsgate(args, Duration::from_secs(30));
    assert!(out.success(), "{args:?}: {out}");
    out.stdout
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `openssl s_client -status` against the host, with `extra` options.
fn handshake(port: u16, extra: &[&str]) -> String {
    let target = format!("127.0.0.1:{port}");
    let mut args = vec![
        "-connect",
        &target,
        "-servername",
        "svc.test.example",
        "-status",
    ];
    args.extend_from_slice(extra);
    let out = openssl_s_client(&args, b"", Duration::from_secs(10));
    format!("{}{}", out.stdout, out.stderr)
}

#[test]
fn each_certificate_is_served_with_its_own_ocsp_response() {
    let work = tempfile::tempdir().unwrap();
    let ca = work.path().join("ca");
    let creds = work.path().join("credentials");
    let svc = creds.join("svc");
    assert!(tlsgate_certs_ca(&ca, "Stapling CA").success());
    let out = tlsgate_certs_server(&ca, &svc, "svc.test.example", &["svc.test.example"]);
    assert!(out.success(), "{out}");
    let out = tlsgate(&[
        "certs",
        "server",
        "--ca",
        &s(&ca),
        "--out",
        &s(&svc),
        "--host",
        "svc.test.example",
        "--rsa",
        "2048",
        "--alternate",
    ]);
    assert!(out.contains("tls-rsa.crt"), "{out}");
    for cert in ["tls.crt", "tls-rsa.crt"] {
        tlsgate(&[
            "certs",
            "ocsp",
            "--ca",
            &s(&ca),
            "--cert",
            &s(&svc.join(cert)),
        ]);
    }
    let backend = Backend::start("svc");
    let port = free_port();
    let conf = ConfigDir::new();
    let cfg = conf.write(
        "gw.yaml",
        &format!(
            "{}  - port: {{number: {port}, name: https, protocol: HTTPS}}\n    bind: 127.0.0.1\n    \
             hosts: [svc.test.example]\n    tls: {{mode: SIMPLE, credentialName: svc}}\n---\n{}",
            gateway_preamble(&creds),
            route_all("svc.test.example", backend.port())
        ),
    );
    let gw = Gateway::start(&[&cfg], &[]);

    // TLS 1.3 and 1.2, ECDSA and RSA: each gets its certificate and its
    // own response.
    for (version, sigalgs, bits) in [
        ("-tls1_3", "ECDSA+SHA256", "256 bit"),
        ("-tls1_3", "rsa_pss_rsae_sha256", "2048 bit"),
        ("-tls1_2", "ECDSA+SHA256", "256 bit"),
        ("-tls1_2", "RSA+SHA256", "2048 bit"),
    ] {
        let out = handshake(port, &[version, "-sigalgs", sigalgs]);
        assert!(
            out.contains("OCSP Response Status: successful") && out.contains("Cert Status: good"),
            "{version} {sigalgs}: {out}"
        );
        let full = openssl_s_client(
            &[
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-servername",
                "svc.test.example",
                version,
                "-sigalgs",
                sigalgs,
            ],
            b"",
            Duration::from_secs(10),
        );
        assert!(
            full.stdout.contains(&format!("public key is {bits}")),
            "{version} {sigalgs}: {full}"
        );
    }
    // A client that does not ask gets none.
    let out = handshake(port, &[]);
    assert!(out.contains("Cert Status: good"), "{out}");
    let m = gw.metrics();
    assert!(
        m.sum(
            "tlsgate_ocsp_staples_total",
            &[("credential", "svc"), ("result", "stapled")]
        ) >= 5.0
    );
    assert_eq!(
        m.select(
            "tlsgate_ocsp_next_update_timestamp_seconds",
            &[("credential", "svc")]
        )
        .count(),
        2,
        "one response per certificate"
    );
    let certs = gw.admin_get("/certs").unwrap().body;
    assert!(
        certs.contains("\"ocsp\"") && certs.contains("tls-rsa.ocsp"),
        "{certs}"
    );

    // A response that does not say "good" is refused, with the credential:
    // the last good one keeps serving, and stapling.
    tlsgate(&[
        "certs",
        "ocsp",
        "--ca",
        &s(&ca),
        "--cert",
        &s(&svc.join("tls.crt")),
        "--revoked",
    ]);
    assert!(
        gw.wait_metrics(Duration::from_secs(10), |m| {
            m.sum("tlsgate_credential_reloads_total", &[("result", "refused")]) >= 1.0
        })
        .0,
        "{}",
        gw.describe()
    );
    assert!(gw.logs_with("credential refused").contains("REVOKED"));
    let out = handshake(port, &["-sigalgs", "ECDSA+SHA256"]);
    assert!(out.contains("Cert Status: good"), "{out}");

    // A good response valid for 2 s: loaded, stapled while current, and
    // never once past its nextUpdate.
    tlsgate(&[
        "certs",
        "ocsp",
        "--ca",
        &s(&ca),
        "--cert",
        &s(&svc.join("tls.crt")),
        "--seconds",
        "2",
    ]);
    assert!(
        gw.wait_metrics(Duration::from_secs(10), |m| {
            m.sum("tlsgate_credential_reloads_total", &[("result", "applied")]) >= 1.0
        })
        .0,
        "{}",
        gw.describe()
    );
    assert!(wait_until(Duration::from_secs(10), || {
        handshake(port, &["-sigalgs", "ECDSA+SHA256"]).contains("OCSP response: no response sent")
    }));
    assert!(
        gw.metrics().sum(
            "tlsgate_ocsp_staples_total",
            &[("credential", "svc"), ("result", "stale")]
        ) >= 1.0
    );
    // The RSA certificate's response is its own, and still current.
    let out = handshake(port, &["-sigalgs", "RSA+SHA256", "-tls1_2"]);
    assert!(out.contains("Cert Status: good"), "{out}");
    let r = Curl::https("svc.test.example", port, "/")
        .cacert(&ca.join("ca.crt"))
        .run();
    assert_eq!(r.status, 200, "{r}");
}

#[test]
fn a_second_certificate_of_the_same_key_type_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let ca = work.path().join("ca");
    let creds = work.path().join("credentials");
    let svc = creds.join("svc");
    assert!(tlsgate_certs_ca(&ca, "CA").success());
    let out = tlsgate_certs_server(&ca, &svc, "svc.test.example", &["svc.test.example"]);
    assert!(out.success(), "{out}");
    // An ECDSA "second" certificate beside an ECDSA first.
    tlsgate(&[
        "certs",
        "server",
        "--ca",
        &s(&ca),
        "--out",
        &s(&svc),
        "--host",
        "svc.test.example",
        "--alternate",
    ]);
    let conf = ConfigDir::new();
    let cfg = conf.write(
        "gw.yaml",
        &format!(
            "{}  - port: {{number: 8443, protocol: HTTPS}}\n    bind: 127.0.0.1\n    \
             hosts: [svc.test.example]\n    tls: {{mode: SIMPLE, credentialName: svc}}\n",
            gateway_preamble(&creds)
        ),
    );
    let out = run_tlsgate(&["check", "--config", &s(&cfg)], Duration::from_secs(30));
    assert!(!out.success(), "{out}");
    assert!(
        out.stdout.contains("must hold a key of another type")
            || out.stderr.contains("must hold a key of another type"),
        "{out}"
    );
}

/// `ocspStapling.fetch`: the response comes from the responder the
/// certificate names (AIA), no file needed; one the gateway cannot use
/// (garbage, or "revoked") leaves the last good one stapled.
#[test]
fn the_response_is_fetched_from_the_certificates_responder() {
    use tlsgate_integration::crl_server::{CrlServer, Mode};
    let work = tempfile::tempdir().unwrap();
    let ca = work.path().join("ca");
    let creds = work.path().join("credentials");
    let svc = creds.join("svc");
    let responder = CrlServer::start(Mode::Status(503));
    assert!(tlsgate_certs_ca(&ca, "Responder CA").success());
    tlsgate(&[
        "certs",
        "server",
        "--ca",
        &s(&ca),
        "--out",
        &s(&svc),
        "--host",
        "svc.test.example",
        "--ocsp-url",
        &responder.url("/ocsp"),
    ]);
    let response = |extra: &[&str]| {
        let out = work.path().join("r.ocsp");
        let (c, cert, o) = (s(&ca), s(&svc.join("tls.crt")), s(&out));
        let mut args = vec!["certs", "ocsp", "--ca", &c, "--cert", &cert, "--out", &o];
        args.extend_from_slice(extra);
        tlsgate(&args);
        std::fs::read(out).unwrap()
    };
    responder.set(Mode::Serve(response(&[])));
    let backend = Backend::start("svc");
    let port = free_port();
    let conf = ConfigDir::new();
    let mut yaml = gateway_preamble(&creds).replace(
        "spec:\n  credentialsDir",
        "spec:\n  ocspStapling: {fetch: true}\n  revocation: {refreshInterval: 1s, retryInterval: 1s}\n  credentialsDir",
    );
    yaml.push_str(&format!(
        "  - port: {{number: {port}, name: https, protocol: HTTPS}}\n    bind: 127.0.0.1\n    \
         hosts: [svc.test.example]\n    tls: {{mode: SIMPLE, credentialName: svc}}\n---\n{}",
        route_all("svc.test.example", backend.port())
    ));
    let cfg = conf.write("gw.yaml", &yaml);
    let gw = Gateway::start(&[&cfg], &[]);
    assert!(
        wait_until(Duration::from_secs(10), || {
            handshake(port, &[]).contains("Cert Status: good")
        }),
        "{}",
        gw.describe()
    );
    assert!(responder.requests() >= 1);
    let count = |result: &str| {
        gw.metrics().sum(
            "tlsgate_ocsp_fetch_total",
            &[("credential", "svc"), ("result", result)],
        )
    };
    // The staple is published a moment before its fetch is counted.
    assert!(
        wait_until(Duration::from_secs(5), || count("ok") >= 1.0),
        "{}",
        gw.describe()
    );
    for (mode, result) in [
        (Mode::Garbage, "refused"),
        (Mode::Serve(response(&["--revoked"])), "revoked"),
        (Mode::Vanish, "bad_response"),
    ] {
        let before = count(result);
        responder.set(mode);
        assert!(
            wait_until(Duration::from_secs(10), || count(result) > before),
            "{result}: {}",
            gw.describe()
        );
        let out = handshake(port, &[]);
        assert!(out.contains("Cert Status: good"), "{result}: {out}");
    }
    let certs = gw.admin_get("/certs").unwrap().body;
    assert!(
        certs.contains("\"ocsp_fetch\"") && certs.contains("/ocsp"),
        "{certs}"
    );
}
