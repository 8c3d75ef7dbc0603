//! Seed 000 "Secure Service with Mutual TLS": every curl of the tutorial,
//! against `conf/seed-000-ingress.yaml`, for TLS 1.3 and TLS 1.2.

use tlsgate_integration::*;

#[derive(Clone, Copy, Debug)]
enum Tls {
    V13,
    V12,
}

impl Tls {
    fn apply(self, c: Curl) -> Curl {
        match self {
            Tls::V13 => c.tls13(),
            Tls::V12 => c.tls12(),
        }
    }
}

const BOTH: [Tls; 2] = [Tls::V13, Tls::V12];

#[test]
fn simple_host_without_client_certificate_gets_200() {
    let s = Seed000::start();
    for v in BOTH {
        let r = v.apply(s.frontend("/")).run();
        assert_eq!(r.status, 200, "{v:?}: {r}\n{}", s.gateway.describe());
        assert!(r.success(), "{v:?}: {r}");
        assert_eq!(r.json()["backend"], "frontend-v1", "{r}");
    }
    assert_eq!(s.frontend.count(), 2);
}

#[test]
fn acme_client_certificate_gets_200_on_mutual_host() {
    let s = Seed000::start();
    for v in BOTH {
        // As in the tutorial: curl -kv --cacert acme.com.crt --cert great-partner.crt --key ...
        let r = v
            .apply(s.partner("/"))
            .cacert(&ca_cert("acme"))
            .client("great-partner")
            .verbose()
            .run();
        assert_eq!(r.status, 200, "{v:?}: {r}\n{}", s.gateway.describe());
        assert_eq!(r.json()["backend"], "frontend-v1", "{r}");
        let expected = match v {
            Tls::V13 => "TLSv1.3",
            Tls::V12 => "TLSv1.2",
        };
        assert!(
            r.stderr
                .contains(&format!("SSL connection using {expected}")),
            "{v:?}: not negotiated with {expected}: {r}"
        );
    }
    assert_eq!(s.frontend.count(), 2);
}

#[test]
fn mutual_host_refuses_a_client_without_certificate() {
    let s = Seed000::start();
    for v in BOTH {
        let r = v.apply(s.partner("/")).run();
        assert!(!r.success(), "{v:?}: expected a failure: {r}");
        assert_ne!(r.status, 200, "{v:?}: {r}");
        // TLS 1.3: `alert certificate required`; TLS 1.2: `alert handshake failure`.
        let alert = match v {
            Tls::V13 => "certificate required",
            Tls::V12 => "handshake failure",
        };
        assert!(
            r.stderr.contains(alert),
            "{v:?}: expected `{alert}` in curl's error: {r}"
        );
    }
    assert_eq!(s.backend_total(), 0, "a backend was reached");
}

#[test]
fn mutual_host_refuses_a_pirate_certificate_with_unknown_ca() {
    let s = Seed000::start();
    for v in BOTH {
        let r = v
            .apply(s.partner("/"))
            .cacert(&ca_cert("pirate"))
            .client("bad-partner")
            .run();
        assert!(!r.success(), "{v:?}: expected a failure: {r}");
        assert_ne!(r.status, 200, "{v:?}: {r}");
        assert!(
            r.stderr.contains("unknown ca"),
            "{v:?}: expected `tlsv1 alert unknown ca`: {r}"
        );
    }
    assert_eq!(s.backend_total(), 0, "a backend was reached");
}

#[test]
fn acme_client_certificate_is_not_needed_on_simple_host() {
    // A client certificate offered to a SIMPLE host is simply not asked for.
    let s = Seed000::start();
    let r = s.frontend("/").client("bad-partner").run();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        s.frontend
            .last_request()
            .expect("one request")
            .header("x-forwarded-client-cert"),
        None,
        "no client certificate may be forwarded from a SIMPLE host"
    );
}

#[test]
fn simple_host_sends_no_certificate_request_and_mutual_host_does() {
    let s = Seed000::start();
    for tls in ["-tls1_3", "-tls1_2"] {
        let simple = s_client_get(s.port, FRONTEND_HOST, FRONTEND_HOST, "/", &[tls, "-msg"]);
        assert!(
            simple.stdout.contains("HTTP/1.1 200"),
            "{tls}: SIMPLE host did not answer 200: {simple}"
        );
        assert!(
            !simple.combined().contains("CertificateRequest"),
            "{tls}: SIMPLE host sent a CertificateRequest: {simple}"
        );

        let mutual = s_client_get(
            s.port,
            PARTNER_HOST,
            PARTNER_HOST,
            "/",
            &[
                tls,
                "-msg",
                "-cert",
                &client_cert("great-partner").0.to_string_lossy(),
                "-key",
                &client_cert("great-partner").1.to_string_lossy(),
            ],
        );
        assert!(
            mutual.combined().contains("CertificateRequest"),
            "{tls}: MUTUAL host sent no CertificateRequest: {mutual}"
        );
        assert!(
            mutual.stdout.contains("HTTP/1.1 200"),
            "{tls}: MUTUAL host did not answer 200 to great-partner: {mutual}"
        );
        // The acceptable CA names are Acme's, not the server's own issuer.
        assert!(
            mutual
                .stdout
                .contains("Acceptable client certificate CA names"),
            "{tls}: {mutual}"
        );
    }
}

#[test]
fn backend_50_50_split_from_the_seed_file() {
    let s = Seed000::start();
    let url = format!("https://{FRONTEND_HOST}:{}/backend/[1-200]", s.port);
    let resolve = format!("{FRONTEND_HOST}:{}:127.0.0.1", s.port);
    let ca = ca_cert("example");
    let out = curl(&[
        "--max-time",
        "60",
        "--resolve",
        &resolve,
        "--cacert",
        &ca.to_string_lossy(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}\n",
        &url,
    ]);
    let ok = out.stdout.lines().filter(|l| l.trim() == "200").count();
    assert_eq!(ok, 200, "not every request got 200: {out}");
    let (v1, v2) = (s.backend_v1.count(), s.backend_v2.count());
    assert_eq!(v1 + v2, 200, "v1 {v1} + v2 {v2}");
    assert!(
        (70..=130).contains(&v1) && (70..=130).contains(&v2),
        "50/50 split gave v1 {v1}, v2 {v2}"
    );
    assert_eq!(s.frontend.count(), 0, "/backend must not reach frontend");
    let last = s.backend_v1.last_request().expect("v1 got requests");
    assert!(last.path.starts_with("/backend/"), "{last:?}");
}
