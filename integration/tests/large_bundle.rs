//! A client CA bundle of hundreds of CAs (issue 16): it loads, the
//! partner of the last CA in it gets in, a client of none is refused, and
//! with `sendCaNames: false` the CertificateRequest carries no names while
//! the bundle still decides.

use std::time::Duration;

use tlsgate_certs::{make_ca, CaSpec};
use tlsgate_integration::*;

const CAS: usize = 300;

#[test]
fn a_bundle_of_hundreds_of_cas_works_with_and_without_names() {
    let work = tempfile::tempdir().unwrap();
    let creds = work.path().join("credentials");
    let partner_ca = work.path().join("partner-ca");
    assert!(tlsgate_certs_ca(&partner_ca, "Partner CA 300").success());
    let svc = creds.join("svc");
    let out = tlsgate_certs_server(&partner_ca, &svc, "svc.test.example", &["svc.test.example"]);
    assert!(out.success(), "{out}");
    // 299 other CAs, then the partner's: the one that matters is last.
    let mut bundle = Vec::new();
    for i in 0..CAS - 1 {
        let ca = make_ca(&CaSpec::new("Partners", &format!("Partner CA {i}"))).unwrap();
        bundle.extend(ca.cert_pem().unwrap());
    }
    bundle.extend(std::fs::read(partner_ca.join("ca.crt")).unwrap());
    std::fs::write(svc.join("ca.crt"), &bundle).unwrap();
    let alice = work.path().join("alice");
    assert!(tlsgate_certs_client(&partner_ca, &alice, "alice", &[]).success());
    let stranger_ca = work.path().join("stranger-ca");
    assert!(tlsgate_certs_ca(&stranger_ca, "Stranger CA").success());
    let mallory = work.path().join("mallory");
    assert!(tlsgate_certs_client(&stranger_ca, &mallory, "mallory", &[]).success());

    let backend = Backend::start("svc");
    for send_names in [true, false] {
        let port = free_port();
        let conf = ConfigDir::new();
        let cfg = conf.write(
            "gw.yaml",
            &format!(
                "{}  - port: {{number: {port}, name: https, protocol: HTTPS}}\n    bind: 127.0.0.1\n    \
                 hosts: [svc.test.example]\n    tls: {{mode: MUTUAL, credentialName: svc}}\n---\n{}",
                gateway_preamble(&creds).replace(
                    "spec:\n  credentialsDir",
                    &format!(
                        "spec:\n  clientCertificateRequest: {{sendCaNames: {send_names}}}\n  credentialsDir"
                    )
                ),
                route_all("svc.test.example", backend.port())
            ),
        );
        let gw = Gateway::start(&[&cfg], &[]);
        let certs = gw.admin_get("/certs").unwrap().body;
        assert!(certs.contains("Partner CA 0") && certs.contains("Partner CA 300"));
        let get = |who: &std::path::Path| {
            Curl::https("svc.test.example", port, "/")
                .cacert(&partner_ca.join("ca.crt"))
                .cert_files(&who.join("tls.crt"), &who.join("tls.key"))
                .run()
        };
        let r = get(&alice);
        assert_eq!(r.status, 200, "names {send_names}: {r}\n{}", gw.describe());
        let r = get(&mallory);
        assert!(r.stderr.contains("unknown ca"), "names {send_names}: {r}");
        let target = format!("127.0.0.1:{port}");
        let out = openssl_s_client(
            &["-connect", &target, "-servername", "svc.test.example"],
            b"",
            Duration::from_secs(10),
        );
        let names = out
            .stdout
            .lines()
            .filter(|l| l.contains("Partner CA"))
            .count();
        if send_names {
            assert!(names >= CAS, "{names} names sent");
        } else {
            assert!(
                out.stdout.contains("No client certificate CA names sent"),
                "{out}"
            );
        }
    }
}
