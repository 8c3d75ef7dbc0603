//! The operator's recipe for revoking a partner (README "Revoking a
//! client certificate"): `tlsgate certs revoke` at the CA, the CRL put
//! beside the credential's client CA, and the same client refused at its
//! next handshake with no restart, while the others are served.

use std::time::Duration;

use tlsgate_integration::*;

#[test]
fn a_revoked_partner_is_refused_after_the_crl_is_put_in_place() {
    let work = tempfile::tempdir().unwrap();
    let ca = work.path().join("partners-ca");
    let creds = work.path().join("credentials");
    assert!(tlsgate_certs_ca(&ca, "Partners CA").success());
    let server = creds.join("svc-credential");
    let out = tlsgate_certs_server(&ca, &server, "svc.test.example", &["svc.test.example"]);
    assert!(out.success(), "{out}");
    std::fs::copy(ca.join("ca.crt"), server.join("ca.crt")).unwrap();
    let client = |name: &str| {
        let dir = work.path().join(name);
        let out =
            tlsgate_certs_client(&ca, &dir, name, &[&format!("spiffe://test.example/{name}")]);
        assert!(out.success(), "{out}");
        dir
    };
    let (alice, bob) = (client("alice"), client("bob"));

    let backend = Backend::start("svc");
    let port = free_port();
    let conf = ConfigDir::new();
    let cfg = conf.write(
        "svc.yaml",
        &format!(
            "{}  - port: {{number: {port}, name: https, protocol: HTTPS}}\n    bind: 127.0.0.1\n    \
             hosts: [svc.test.example]\n    tls: {{mode: MUTUAL, credentialName: svc-credential}}\n\
             ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc}}\n\
             spec:\n  hosts: [svc.test.example]\n  gateways: [gw]\n  http:\n  - route:\n    - \
             destination: {{host: 127.0.0.1, port: {{number: {b}}}}}\n",
            gateway_preamble(&creds),
            b = backend.port()
        ),
    );
    let gw = Gateway::start(&[&cfg], &[]);
    let get = |who: &std::path::Path| {
        Curl::https("svc.test.example", port, "/")
            .cacert(&ca.join("ca.crt"))
            .cert_files(&who.join("tls.crt"), &who.join("tls.key"))
            .run()
    };
    for who in [&alice, &bob] {
        let r = get(who);
        assert_eq!(r.status, 200, "{r}\n{}", gw.describe());
    }

    // At the CA: revoke alice, then put the CRL in place as a rotation
    // does (written beside, renamed in).
    let out = run_tlsgate(
        &[
            "certs",
            "revoke",
            "--ca",
            &ca.to_string_lossy(),
            &alice.join("tls.crt").to_string_lossy(),
        ],
        Duration::from_secs(30),
    );
    assert!(out.success() && out.stdout.contains("revoked"), "{out}");
    std::fs::copy(ca.join("ca.crl"), server.join(".ca.crl.new")).unwrap();
    std::fs::rename(server.join(".ca.crl.new"), server.join("ca.crl")).unwrap();
    let (ok, _) = gw.wait_metrics(Duration::from_secs(10), |m| {
        m.sum("tlsgate_runtime_generation", &[]) >= 2.0
    });
    assert!(ok, "the CRL was not picked up: {}", gw.describe());

    // What the gateway loaded: the CRL in /certs and its nextUpdate as a
    // metric (30 days from now by default).
    let certs = gw.admin_get("/certs").unwrap().body;
    let v: serde_json::Value = serde_json::from_str(&certs).unwrap();
    let crls = v
        .as_array()
        .and_then(|a| {
            a.iter().find(|c| {
                c["name"]
                    .as_str()
                    .is_some_and(|n| n.contains("svc-credential"))
            })
        })
        .map(|c| c["crls"].clone())
        .unwrap_or_else(|| panic!("{certs}"));
    assert_eq!(crls[0]["entries"], 1, "{certs}");
    assert!(
        crls[0]["issuer"].as_str().unwrap().contains("Partners CA"),
        "{certs}"
    );
    let next = gw
        .metrics()
        .sum("tlsgate_crl_next_update_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    assert!(
        (next - now - 30.0 * 86_400.0).abs() < 3_600.0,
        "nextUpdate {next}, now {now}"
    );

    let r = get(&alice);
    assert_eq!(r.status, 0, "a revoked certificate got in: {r}");
    assert!(r.stderr.contains("revoked"), "{r}");
    let r = get(&bob);
    assert_eq!(r.status, 200, "{r}");

    // Re-signed later (before nextUpdate): alice stays revoked.
    let out = run_tlsgate(
        &["certs", "crl", "--ca", &ca.to_string_lossy(), "--days", "7"],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{out}");
    std::fs::copy(ca.join("ca.crl"), server.join(".ca.crl.new")).unwrap();
    std::fs::rename(server.join(".ca.crl.new"), server.join("ca.crl")).unwrap();
    let (ok, _) = gw.wait_metrics(Duration::from_secs(10), |m| {
        m.sum("tlsgate_runtime_generation", &[]) >= 3.0
    });
    assert!(ok, "{}", gw.describe());
    assert!(get(&alice).stderr.contains("revoked"));
    assert_eq!(get(&bob).status, 200);
    assert_eq!(backend.count(), 4, "only good clients reached the backend");
}

/// A served certificate within 14 days of its notAfter is flagged: a
/// gauge and a warning in the log, so a rotation that did not happen is
/// seen before clients see it.
#[test]
fn a_certificate_near_its_end_is_flagged() {
    let work = tempfile::tempdir().unwrap();
    let ca = work.path().join("ca");
    let creds = work.path().join("credentials");
    assert!(tlsgate_certs_ca(&ca, "Example CA").success());
    for (name, days) in [("soon-credential", "7"), ("later-credential", "90")] {
        let out = run_tlsgate(
            &[
                "certs",
                "server",
                "--ca",
                &ca.to_string_lossy(),
                "--out",
                &creds.join(name).to_string_lossy(),
                "--san",
                &format!("{name}.test.example"),
                "--days",
                days,
            ],
            Duration::from_secs(30),
        );
        assert!(out.success(), "{out}");
    }
    let port = free_port();
    let conf = ConfigDir::new();
    let mut yaml = gateway_preamble(&creds);
    for name in ["soon-credential", "later-credential"] {
        yaml.push_str(&format!(
            "  - port: {{number: {port}, protocol: HTTPS}}\n    bind: 127.0.0.1\n    \
             hosts: [{name}.test.example]\n    tls: {{mode: SIMPLE, credentialName: {name}}}\n"
        ));
    }
    let cfg = conf.write("gw.yaml", &yaml);
    let gw = Gateway::start(&[&cfg], &[]);
    let m = gw.metrics();
    let flagged = |name: &str| m.sum("tlsgate_credential_expiring_soon", &[("credential", name)]);
    assert_eq!(flagged("soon-credential"), 1.0, "{}", gw.describe());
    assert_eq!(flagged("later-credential"), 0.0, "{}", gw.describe());
    let logs = gw.logs_with("expires within 14 days");
    assert!(logs.contains("soon-credential"), "{logs}");
    assert!(!logs.contains("later-credential"), "{logs}");
}
