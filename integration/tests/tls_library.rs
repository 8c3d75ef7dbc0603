//! `tlsLibrary: rustls`: chosen in the GatewayRuntime file, the listeners
//! run on rustls and pass the seed's curls; what rustls cannot serve is a
//! configuration error naming the server. (The whole suite also runs with
//! every gateway on rustls: `TLSGATE_TEST_TLS_LIBRARY=rustls`, in
//! `make test`.)

use std::time::Duration;

use tlsgate_integration::*;

const RUNTIME_LINE: &str = "  accessLog:\n    format: text\n";

fn with_rustls(yaml: String) -> String {
    assert!(
        yaml.contains(RUNTIME_LINE),
        "the seed's GatewayRuntime changed"
    );
    yaml.replace(
        RUNTIME_LINE,
        &format!("{RUNTIME_LINE}  tlsLibrary: rustls\n"),
    )
}

#[test]
fn rustls_from_the_file_serves_the_seed_curls() {
    if test_tls_library().as_deref() == Some("openssl") {
        eprintln!("NOTE: --tls-library openssl overrides the file here; nothing to test");
        return;
    }
    let s = Seed000::start_custom(&[], |_, yaml| with_rustls(yaml));
    assert!(
        s.gateway
            .logs()
            .contains("listeners terminate TLS with rustls"),
        "{}",
        s.gateway.describe()
    );
    for (tls12, label) in [(false, "TLS 1.3"), (true, "TLS 1.2")] {
        let pick = |c: Curl| if tls12 { c.tls12() } else { c.tls13() };
        let ok = pick(s.partner("/"))
            .cacert(&ca_cert("example"))
            .client("great-partner")
            .run();
        assert_eq!(ok.status, 200, "{label}: {ok}");
        let pirate = pick(s.partner("/"))
            .cacert(&ca_cert("pirate"))
            .client("bad-partner")
            .run();
        assert!(pirate.stderr.contains("unknown ca"), "{label}: {pirate}");
        let simple = pick(s.frontend("/")).run();
        assert_eq!(simple.status, 200, "{label}: {simple}");
    }
    // ALPN: curl's default is h2 (or HTTP/1.1 under scripts/test-http1).
    let h2 = s.frontend("/").arg("--http2").run();
    assert_eq!(h2.status, 200, "{h2}");
    assert_eq!(h2.http_version, "2", "{h2}");
    let m = s.gateway.metrics();
    let refused = m.sum(
        "tlsgate_tls_handshake_failures_total",
        &[("reason", "unknown_ca")],
    );
    assert_eq!(refused, 2.0, "one refusal per Pirate curl");
    let done = m.sum("tlsgate_tls_handshakes_total", &[]);
    assert!(done >= 5.0, "handshakes counted: {done}");
    // Two Acme, two SIMPLE and one h2 request; no Pirate one.
    assert_eq!(s.backend_total(), 5, "requests that reached a backend");
}

#[test]
fn check_names_the_server_whose_cipher_suites_rustls_lacks() {
    require_certs_example();
    let conf = ConfigDir::new();
    let yaml = std::fs::read_to_string(conf_file("seed-000-ingress.yaml")).unwrap();
    let partner = "      mode: MUTUAL\n      credentialName: partner-credential\n";
    assert!(yaml.contains(partner), "the seed's partner server changed");
    let yaml = yaml.replace(
        partner,
        &format!("{partner}      cipherSuites: [ECDHE-ECDSA-AES128-SHA, ECDHE-ECDSA-AES128-GCM-SHA256]\n"),
    );
    let file = conf.write("gw.yaml", &yaml);
    let file = file.to_string_lossy().into_owned();
    let creds = credentials_dir().to_string_lossy().into_owned();
    let check = |lib: &str| {
        run_tlsgate(
            &[
                "check",
                "--config",
                &file,
                "--credentials",
                &creds,
                "--tls-library",
                lib,
            ],
            Duration::from_secs(30),
        )
    };
    let out = check("rustls");
    assert!(!out.success(), "a CBC suite accepted under rustls: {out}");
    for want in [
        "gw.yaml",
        "Gateway/frontend-gateway",
        "spec.servers[1].tls",
        "'ECDHE-ECDSA-AES128-SHA' is not available",
    ] {
        assert!(out.stderr.contains(want), "missing `{want}`: {out}");
    }
    // OpenSSL has the suite: the same file is fine there.
    let out = check("openssl");
    assert!(out.success(), "{out}");
    // And `run` refuses to start on it, naming the same field.
    let run = run_tlsgate(
        &[
            "run",
            "--config",
            &file,
            "--credentials",
            &creds,
            "--tls-library",
            "rustls",
            "--admin",
            &format!("127.0.0.1:{}", free_port()),
        ],
        Duration::from_secs(30),
    );
    assert!(!run.success(), "{run}");
    assert!(run.stderr.contains("spec.servers[1].tls"), "{run}");
}
