//! `tlsLibrary`: rustls by default, OpenSSL when the GatewayRuntime file
//! says so; either passes the seed's curls, and what rustls cannot serve
//! is a configuration error naming the server and the way out. (The whole
//! suite runs once more with every gateway on OpenSSL:
//! `TLSGATE_TEST_TLS_LIBRARY=openssl`, in `make test`.)

use std::time::Duration;

use tlsgate_integration::*;

const RUNTIME_LINE: &str = "  accessLog:\n    format: text\n";

fn with_library(yaml: String, library: &str) -> String {
    assert!(
        yaml.contains(RUNTIME_LINE),
        "the seed's GatewayRuntime changed"
    );
    yaml.replace(
        RUNTIME_LINE,
        &format!("{RUNTIME_LINE}  tlsLibrary: {library}\n"),
    )
}

/// The library named in the file serves the seed's curls (nothing to test
/// when the suite forces the other one: `--tls-library` wins over the file).
fn seed_curls_on(library: &str, logged: &str) {
    if test_tls_library().is_some_and(|forced| forced != library) {
        eprintln!("NOTE: --tls-library overrides the file here; nothing to test");
        return;
    }
    let s = Seed000::start_custom(&[], |_, yaml| with_library(yaml, library));
    assert!(
        s.gateway
            .logs()
            .contains(&format!("listeners terminate TLS with {logged}")),
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
fn rustls_from_the_file_serves_the_seed_curls() {
    seed_curls_on("rustls", "rustls");
}

#[test]
fn openssl_from_the_file_serves_the_seed_curls() {
    seed_curls_on("openssl", "OpenSSL");
}

/// With neither the file nor `--tls-library` naming one, rustls.
#[test]
fn the_default_library_is_rustls() {
    if test_tls_library().is_some() {
        eprintln!("NOTE: the suite forces a library here; nothing to test");
        return;
    }
    let s = Seed000::start();
    let logs = s.gateway.logs();
    assert!(
        logs.contains("listeners terminate TLS with rustls"),
        "{}",
        s.gateway.describe()
    );
    let r = s
        .partner("/")
        .cacert(&ca_cert("example"))
        .client("great-partner")
        .run();
    assert_eq!(r.status, 200, "{r}");
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
    let check = |lib: Option<&str>| {
        let mut args = vec!["check", "--config", &file, "--credentials", &creds];
        if let Some(lib) = lib {
            args.extend(["--tls-library", lib]);
        }
        run_tlsgate(&args, Duration::from_secs(30))
    };
    // rustls is the default: the same refusal with and without the flag,
    // and it says how to serve the suite.
    for lib in [Some("rustls"), None] {
        let out = check(lib);
        assert!(!out.success(), "a CBC suite accepted under rustls: {out}");
        for want in [
            "gw.yaml",
            "Gateway/frontend-gateway",
            "spec.servers[1].tls",
            "'ECDHE-ECDSA-AES128-SHA' is not available",
            "spec.tlsLibrary: openssl serves it",
        ] {
            assert!(out.stderr.contains(want), "missing `{want}`: {out}");
        }
    }
    // OpenSSL has the suite: the same file is fine there.
    let out = check(Some("openssl"));
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
