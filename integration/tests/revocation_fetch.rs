//! CRLs fetched from the CA's distribution point (issue 16): a partner
//! revoked at the CA is refused within the refresh interval, with no
//! restart, no reload and no file copied beside the credential; a CRL that
//! goes stale meets the credential's policy; a CRL the gateway cannot use
//! (wrong key, garbage, cut short, too big, too slow, no answer, a flood
//! of headers) leaves the last good one in place, is counted, and costs
//! no descriptor.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tlsgate_integration::crl_server::{CrlServer, Mode};
use tlsgate_integration::hostile::proc::{fd_count, rss_kb, wait_until};
use tlsgate_integration::*;

struct Pki {
    _work: tempfile::TempDir,
    ca: PathBuf,
    creds: PathBuf,
    alice: PathBuf,
    bob: PathBuf,
}

fn tlsgate(cmd: &[&str]) {
    let out = run_tlsgate(cmd, Duration::from_secs(30));
    assert!(out.success(), "{cmd:?}: {out}");
}

/// A partners CA, the credentials `names` (server certificates for
/// `<name>.test.example`, the CA as their client CA) and two partners.
fn pki(names: &[&str]) -> Pki {
    let work = tempfile::tempdir().unwrap();
    let ca = work.path().join("partners-ca");
    let creds = work.path().join("credentials");
    assert!(tlsgate_certs_ca(&ca, "Partners CA").success());
    for name in names {
        let server = creds.join(name);
        let host = format!("{name}.test.example");
        let out = tlsgate_certs_server(&ca, &server, &host, &[host.as_str()]);
        assert!(out.success(), "{out}");
        std::fs::copy(ca.join("ca.crt"), server.join("ca.crt")).unwrap();
    }
    let client = |name: &str| {
        let dir = work.path().join(name);
        let out =
            tlsgate_certs_client(&ca, &dir, name, &[&format!("spiffe://test.example/{name}")]);
        assert!(out.success(), "{out}");
        dir
    };
    let (alice, bob) = (client("alice"), client("bob"));
    Pki {
        ca,
        creds,
        alice,
        bob,
        _work: work,
    }
}

fn crl_bytes(ca: &Path) -> Vec<u8> {
    std::fs::read(ca.join("ca.crl")).unwrap()
}

/// One MUTUAL server per credential on `port`, each `<name>.test.example`,
/// routed to `backend`; `revocation` is the GatewayRuntime's
/// `spec.revocation` (YAML flow).
fn config(p: &Pki, port: u16, backend: u16, names: &[&str], revocation: &str) -> String {
    let mut y = format!(
        "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {{name: rt}}\nspec:\n  \
         credentialsDir: {}\n  revocation: {revocation}\n---\napiVersion: networking.istio.io/v1\n\
         kind: Gateway\nmetadata: {{name: gw}}\nspec:\n  servers:\n",
        p.creds.display()
    );
    for n in names {
        y.push_str(&format!(
            "  - port: {{number: {port}, name: https-{n}, protocol: HTTPS}}\n    bind: 127.0.0.1\n    \
             hosts: [{n}.test.example]\n    tls: {{mode: MUTUAL, credentialName: {n}}}\n"
        ));
    }
    y.push_str(&format!(
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc}}\n\
         spec:\n  hosts: [\"*.test.example\"]\n  gateways: [gw]\n  http:\n  - route:\n    - \
         destination: {{host: 127.0.0.1, port: {{number: {backend}}}}}\n"
    ));
    y
}

fn get(p: &Pki, host: &str, port: u16, who: &Path) -> CurlResult {
    Curl::https(host, port, "/")
        .cacert(&p.ca.join("ca.crt"))
        .cert_files(&who.join("tls.crt"), &who.join("tls.key"))
        .run()
}

fn revoke(p: &Pki, who: &Path) {
    tlsgate(&[
        "certs",
        "revoke",
        "--ca",
        &p.ca.to_string_lossy(),
        &who.join("tls.crt").to_string_lossy(),
    ]);
}

fn cred<'a>(certs: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    certs
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("{name} not in {certs}"))
}

#[test]
fn a_partner_revoked_at_the_ca_is_refused_within_the_refresh_interval() {
    let p = pki(&["svc"]);
    tlsgate(&["certs", "crl", "--ca", &p.ca.to_string_lossy()]);
    let cdp = CrlServer::start(Mode::Serve(crl_bytes(&p.ca)));
    // Where the CA publishes: a file of the credential (it can be a key of
    // the Kubernetes Secret), never the CRL itself.
    std::fs::write(
        p.creds.join("svc/ca.crl.url"),
        format!("# Partners CA\n{}\n", cdp.url("/partners.crl")),
    )
    .unwrap();
    let backend = Backend::start("svc");
    let port = free_port();
    let conf = ConfigDir::new();
    let cfg = conf.write(
        "gw.yaml",
        &config(
            &p,
            port,
            backend.port(),
            &["svc"],
            "{refreshInterval: 1s, retryInterval: 1s}",
        ),
    );
    let gw = Gateway::start(&[&cfg], &[]);
    let fetched = |gw: &Gateway, result: &str, n: f64| {
        gw.wait_metrics(Duration::from_secs(10), |m| {
            m.sum(
                "tlsgate_crl_fetch_total",
                &[("credential", "svc"), ("result", result)],
            ) >= n
        })
        .0
    };
    assert!(fetched(&gw, "ok", 1.0), "{}", gw.describe());
    for who in [&p.alice, &p.bob, &p.alice] {
        let r = get(&p, "svc.test.example", port, who);
        assert_eq!(r.status, 200, "{r}\n{}", gw.describe());
    }
    // On rustls, alice's chain is now remembered as verified
    // (`clientCertificateCache`): the CRL must still refuse her.
    if suite_tls_library() == "rustls" {
        let hits = gw.metrics().sum(
            "tlsgate_client_chain_cache_total",
            &[("credential", "svc"), ("result", "hit")],
        );
        assert_eq!(hits, 1.0, "{}", gw.describe());
    }

    // At the CA: alice revoked and the CRL republished. Nothing is done
    // at the gateway.
    revoke(&p, &p.alice);
    let published = Instant::now();
    cdp.set(Mode::Serve(crl_bytes(&p.ca)));
    let refused = wait_until(Duration::from_secs(10), || {
        get(&p, "svc.test.example", port, &p.alice).status == 0
    });
    let took = published.elapsed();
    assert!(refused, "still served: {}", gw.describe());
    assert!(
        took < Duration::from_secs(4),
        "refused after {took:?}, the refresh interval is 1s"
    );
    let served = backend.count();
    let r = get(&p, "svc.test.example", port, &p.alice);
    assert!(r.stderr.contains("revoked"), "{r}");
    if suite_tls_library() == "rustls" {
        let hits = gw.metrics().sum(
            "tlsgate_client_chain_cache_total",
            &[("credential", "svc"), ("result", "hit")],
        );
        assert!(
            hits >= 2.0,
            "the refusals came from a remembered chain: {hits}"
        );
    }
    assert_eq!(get(&p, "svc.test.example", port, &p.bob).status, 200);
    let m = gw.metrics();
    assert_eq!(
        m.sum("tlsgate_runtime_generation", &[]),
        1.0,
        "no reload was needed"
    );
    assert!(
        m.sum(
            "tlsgate_client_cert_revoked_total",
            &[("credential", "svc")]
        ) >= 1.0
    );
    assert!(
        m.sum(
            "tlsgate_tls_handshake_failures_total",
            &[("reason", "revoked")]
        ) >= 1.0
    );
    let certs: serde_json::Value =
        serde_json::from_str(&gw.admin_get("/certs").unwrap().body).unwrap();
    let f = &cred(&certs, "svc")["revocation"]["fetched"][0];
    assert_eq!(f["url"], cdp.url("/partners.crl"), "{certs}");
    assert_eq!(f["crl"]["entries"], 1, "{certs}");
    assert!(
        f["fetch"]["last_result"] == "ok" || f["fetch"]["last_result"] == "unchanged",
        "{certs}"
    );
    assert_eq!(cred(&certs, "svc")["revocation"]["stale_crl"], "FailClosed");

    // An unchanged CRL is not downloaded again (ETag): 304s, counted.
    assert!(fetched(&gw, "unchanged", 2.0), "{}", gw.describe());

    // A CRL of the same name signed by another key (an impostor CA) is
    // refused: the last good one stays, alice stays out.
    let impostor = p.ca.parent().unwrap().join("impostor");
    assert!(tlsgate_certs_ca(&impostor, "Partners CA").success());
    tlsgate(&["certs", "crl", "--ca", &impostor.to_string_lossy()]);
    cdp.set(Mode::Serve(crl_bytes(&impostor)));
    assert!(fetched(&gw, "bad_signature", 1.0), "{}", gw.describe());
    assert_eq!(get(&p, "svc.test.example", port, &p.alice).status, 0);
    assert_eq!(get(&p, "svc.test.example", port, &p.bob).status, 200);
    let logs = gw.logs_with("CRL fetch failed");
    assert!(logs.contains("is not signed by"), "{logs}");
    assert_eq!(
        backend.count(),
        served + 2,
        "once refused, alice never reached the backend"
    );
}

#[test]
fn a_stale_crl_meets_each_credentials_policy() {
    let p = pki(&["closed", "open"]);
    revoke(&p, &p.alice);
    // Valid for 3 s, and never re-signed: the CA's publisher is down.
    tlsgate(&[
        "certs",
        "crl",
        "--ca",
        &p.ca.to_string_lossy(),
        "--seconds",
        "3",
    ]);
    let cdp = CrlServer::start(Mode::Serve(crl_bytes(&p.ca)));
    let backend = Backend::start("svc");
    let port = free_port();
    let conf = ConfigDir::new();
    let url = cdp.url("/ca.crl");
    let cfg = conf.write(
        "gw.yaml",
        &config(
            &p,
            port,
            backend.port(),
            &["closed", "open"],
            &format!(
                "{{refreshInterval: 1s, retryInterval: 1s, credentials: {{\
                 closed: {{crlUrls: [\"{url}\"]}}, \
                 open: {{crlUrls: [\"{url}\"], staleCrl: failOpen}}}}}}"
            ),
        ),
    );
    let gw = Gateway::start(&[&cfg], &[]);
    let (ok, _) = gw.wait_metrics(Duration::from_secs(10), |m| {
        m.sum("tlsgate_crl_fetch_total", &[("result", "ok")]) >= 2.0
    });
    assert!(ok, "{}", gw.describe());
    assert_eq!(get(&p, "closed.test.example", port, &p.bob).status, 200);
    assert_eq!(get(&p, "open.test.example", port, &p.bob).status, 200);

    // Past nextUpdate.
    assert!(wait_until(Duration::from_secs(10), || {
        get(&p, "closed.test.example", port, &p.bob).status == 0
    }));
    let r = get(&p, "closed.test.example", port, &p.bob);
    assert!(r.stderr.contains("certificate unknown"), "{r}");
    let r = get(&p, "open.test.example", port, &p.bob);
    assert_eq!(r.status, 200, "failOpen accepts: {r}\n{}", gw.describe());
    for host in ["closed.test.example", "open.test.example"] {
        let r = get(&p, host, port, &p.alice);
        assert!(
            r.status == 0 && r.stderr.contains("revoked"),
            "a stale CRL still revokes: {r}"
        );
    }
    let m = gw.metrics();
    assert!(
        m.sum(
            "tlsgate_tls_handshake_failures_total",
            &[("reason", "crl_stale")]
        ) >= 1.0
    );
    assert!(
        m.sum(
            "tlsgate_crl_stale_accepted_total",
            &[("credential", "open")]
        ) >= 1.0
    );
    assert!(gw
        .logs_with("past its nextUpdate")
        .contains("staleCrl: failOpen"));

    // The CA comes back: a fresh CRL ends the refusals with no restart.
    tlsgate(&["certs", "crl", "--ca", &p.ca.to_string_lossy()]);
    cdp.set(Mode::Serve(crl_bytes(&p.ca)));
    assert!(wait_until(Duration::from_secs(10), || {
        get(&p, "closed.test.example", port, &p.bob).status == 200
    }));
    assert_eq!(get(&p, "closed.test.example", port, &p.alice).status, 0);
}

/// The distribution point is a server like any other: it may break, or
/// be hostile. Each way leaves the last good CRL, is counted under its
/// result, and costs the gateway no descriptor.
#[test]
fn a_broken_or_hostile_distribution_point_leaves_the_last_good_crl() {
    let p = pki(&["svc"]);
    revoke(&p, &p.alice);
    let good = crl_bytes(&p.ca);
    let cdp = CrlServer::start(Mode::Chunked(good.clone()));
    std::fs::write(p.creds.join("svc/ca.crl.url"), cdp.url("/ca.crl")).unwrap();
    let backend = Backend::start("svc");
    let port = free_port();
    let conf = ConfigDir::new();
    let cfg = conf.write(
        "gw.yaml",
        &config(
            &p,
            port,
            backend.port(),
            &["svc"],
            "{refreshInterval: 1s, retryInterval: 1s, fetchTimeout: 1s, maxCrlBytes: 64Ki}",
        ),
    );
    let gw = Gateway::start(&[&cfg], &[]);
    let count = |gw: &Gateway, result: &str| {
        gw.metrics().sum(
            "tlsgate_crl_fetch_total",
            &[("credential", "svc"), ("result", result)],
        )
    };
    assert!(
        wait_until(Duration::from_secs(10), || count(&gw, "ok") >= 1.0),
        "a chunked CRL is read: {}",
        gw.describe()
    );
    let (fds, rss) = (fd_count(gw.pid()), rss_kb(gw.pid()));
    let cases = [
        (Mode::Status(503), "http_status"),
        (Mode::Garbage, "parse"),
        (Mode::Truncated(good.clone()), "truncated"),
        (Mode::Oversized(10 << 20), "too_large"),
        (Mode::Trickle, "timeout"),
        (Mode::Vanish, "bad_response"),
        (Mode::EndlessHead, "bad_response"),
    ];
    let served = cases.len();
    for (mode, result) in cases {
        let before = count(&gw, result);
        cdp.set(mode.clone());
        assert!(
            wait_until(Duration::from_secs(10), || count(&gw, result)
                >= before + 2.0),
            "{mode:?}: not counted as {result}: {}",
            gw.describe()
        );
        let r = get(&p, "svc.test.example", port, &p.alice);
        assert!(
            r.status == 0 && r.stderr.contains("revoked"),
            "{mode:?}: the last good CRL was lost: {r}"
        );
        assert_eq!(
            get(&p, "svc.test.example", port, &p.bob).status,
            200,
            "{mode:?}"
        );
    }
    cdp.set(Mode::Serve(good));
    assert!(wait_until(Duration::from_secs(10), || {
        fd_count(gw.pid()) <= fds + 2
    }));
    // A 10 MiB body against maxCrlBytes 64Ki was never held whole.
    let grown = rss_kb(gw.pid()).saturating_sub(rss);
    assert!(grown < 8 * 1024, "RSS grew {grown} KiB");
    let certs: serde_json::Value =
        serde_json::from_str(&gw.admin_get("/certs").unwrap().body).unwrap();
    let f = &cred(&certs, "svc")["revocation"]["fetched"][0];
    assert_eq!(f["crl"]["entries"], 1, "{certs}");
    assert_eq!(backend.count(), served, "bob once per case, alice never");
}

/// The CA writes where it publishes into the certificates it issues (a
/// CRL distribution point); with `distributionPoints` the gateway learns
/// that URL from the first client certificate naming it, and keeps its
/// CRL fresh from then on: nothing to configure per CA.
#[test]
fn crls_are_fetched_from_the_distribution_points_certificates_name() {
    let p = pki(&["svc"]);
    tlsgate(&["certs", "crl", "--ca", &p.ca.to_string_lossy()]);
    let cdp = CrlServer::start(Mode::Serve(crl_bytes(&p.ca)));
    let client = |name: &str| {
        let dir = p.ca.parent().unwrap().join(name);
        tlsgate(&[
            "certs",
            "client",
            "--ca",
            &p.ca.to_string_lossy(),
            "--name",
            name,
            "--out",
            &dir.to_string_lossy(),
            "--crl-url",
            &cdp.url("/partners.crl"),
        ]);
        dir
    };
    let (carol, dave) = (client("carol"), client("dave"));
    let backend = Backend::start("svc");
    let port = free_port();
    let conf = ConfigDir::new();
    let cfg = conf.write(
        "gw.yaml",
        &config(
            &p,
            port,
            backend.port(),
            &["svc"],
            "{refreshInterval: 1s, retryInterval: 1s, distributionPoints: true}",
        ),
    );
    let gw = Gateway::start(&[&cfg], &[]);
    // The first handshake teaches the URL; until its CRL is in, the CA's
    // certificates have no CRL and are refused (crl_missing).
    assert!(
        wait_until(Duration::from_secs(10), || {
            get(&p, "svc.test.example", port, &carol).status == 200
        }),
        "{}",
        gw.describe()
    );
    assert!(cdp.requests() >= 1);
    assert!(gw
        .logs_with("CRL distribution point learned")
        .contains("/partners.crl"));
    assert_eq!(get(&p, "svc.test.example", port, &dave).status, 200);

    revoke(&p, &carol);
    cdp.set(Mode::Serve(crl_bytes(&p.ca)));
    assert!(
        wait_until(Duration::from_secs(10), || {
            get(&p, "svc.test.example", port, &carol).status == 0
        }),
        "{}",
        gw.describe()
    );
    assert!(get(&p, "svc.test.example", port, &carol)
        .stderr
        .contains("revoked"));
    assert_eq!(get(&p, "svc.test.example", port, &dave).status, 200);
    let certs: serde_json::Value =
        serde_json::from_str(&gw.admin_get("/certs").unwrap().body).unwrap();
    let f = &cred(&certs, "svc")["revocation"]["fetched"][0];
    assert_eq!(f["url"], cdp.url("/partners.crl"), "{certs}");
    assert_eq!(f["crl"]["entries"], 1, "{certs}");
}

/// A partner whose certificate is revoked while its handshake is under
/// way: in TLS 1.2 it holds back its Finished after its certificate was
/// checked (against the old CRL) until the gateway has fetched the CRL
/// that revokes it. On an HTTPS server its request gets `421`; on a `TLS`
/// server (the decrypted stream relayed, no HTTP) the stream is closed
/// before a byte is relayed. No session comes out of either handshake that
/// resumes: the certificate was never checked against the new CRL. A full
/// handshake then refuses the partner. (A rustls client sends TLS 1.3's
/// Certificate and Finished in one record, so the same hold is not made in
/// TLS 1.3 here; the tickets' unit tests cover that path.)
#[test]
fn a_crl_fetched_during_a_handshake_leaves_that_handshake_no_session() {
    let p = pki(&["svc", "db"]);
    tlsgate(&["certs", "crl", "--ca", &p.ca.to_string_lossy()]);
    let carol = p.ca.parent().unwrap().join("carol");
    assert!(
        tlsgate_certs_client(&p.ca, &carol, "carol", &["spiffe://test.example/carol"]).success()
    );
    let cdp = CrlServer::start(Mode::Serve(crl_bytes(&p.ca)));
    for cred in ["svc", "db"] {
        std::fs::write(
            p.creds.join(cred).join("ca.crl.url"),
            format!("{}\n", cdp.url("/partners.crl")),
        )
        .unwrap();
    }
    let backend = Backend::start("svc");
    let echo = StreamBackend::echo(false);
    let (port, stream_port) = (free_port(), free_port());
    let conf = ConfigDir::new();
    let mut yaml = config(
        &p,
        port,
        backend.port(),
        &["svc"],
        "{refreshInterval: 1s, retryInterval: 1s}",
    );
    yaml.push_str(&format!(
        "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: db}}\n\
         spec:\n  servers:\n  - port: {{number: {stream_port}, name: tls-db, protocol: TLS}}\n    \
         bind: 127.0.0.1\n    hosts: [db.test.example]\n    tls: {{mode: MUTUAL, credentialName: db}}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: db}}\n\
         spec:\n  hosts: [\"*\"]\n  gateways: [db]\n  tcp:\n  - route:\n    - destination: \
         {{host: db.internal, port: {{number: 5432}}}}\n---\napiVersion: networking.istio.io/v1\n\
         kind: ServiceEntry\nmetadata: {{name: db}}\nspec:\n  hosts: [db.internal]\n  \
         location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 5432, name: tcp-pg, \
         protocol: TCP}}]\n  endpoints:\n  - address: 127.0.0.1\n    ports: {{tcp-pg: {}}}\n",
        echo.port()
    ));
    let cfg = conf.write("gw.yaml", &yaml);
    let gw = Gateway::start(&[&cfg], &[]);
    let fetched = |cred: &str, n: f64| {
        gw.wait_metrics(Duration::from_secs(5), |m| {
            m.sum(
                "tlsgate_crl_fetch_total",
                &[("credential", cred), ("result", "ok")],
            ) >= n
        })
        .0
    };
    assert!(
        fetched("svc", 1.0) && fetched("db", 1.0),
        "{}",
        gw.describe()
    );
    let (host, db) = ("svc.test.example", "db.test.example");
    let server_ca = p.ca.join("ca.crt");
    let client = |who: &Path| {
        tls_client::tls12_resuming_client(&server_ca, &who.join("tls.crt"), &who.join("tls.key"))
    };
    let answer = |a: Vec<u8>| String::from_utf8_lossy(&a).into_owned();
    // The client holds its Finished and resumes where the gateway lets it:
    // bob, with no CRL change meanwhile, on both servers.
    let bob = client(&p.bob);
    let a = answer(tls_client::get_holding_finished(&bob, port, host, || {
        std::thread::sleep(Duration::from_millis(300))
    }));
    assert!(a.starts_with("HTTP/1.1 200"), "bob: {a}");
    let a = answer(tls_client::get_holding_finished(
        &bob,
        stream_port,
        db,
        || {},
    ));
    assert!(
        a.starts_with("GET / HTTP/1.1"),
        "bob's stream was not echoed: {a}"
    );
    for (p, h) in [(port, host), (stream_port, db)] {
        assert_eq!(
            tls_client::handshake_kind(&bob, p, h),
            Some(rustls::HandshakeKind::Resumed),
            "bob on {h}: {}",
            gw.describe()
        );
    }
    // A certificate checked, then revoked at the CA and the new CRL
    // fetched, before its Finished is sent: alice on HTTPS, carol on the
    // stream.
    let mut crls = 1.0;
    let mut held = |who: &Path, port: u16, host: &str| {
        let config = client(who);
        let a = answer(tls_client::get_holding_finished(
            &config,
            port,
            host,
            || {
                revoke(&p, who);
                cdp.set(Mode::Serve(crl_bytes(&p.ca)));
                crls += 1.0;
                assert!(
                    fetched("svc", crls) && fetched("db", crls),
                    "{}",
                    gw.describe()
                );
            },
        ));
        let resumed = tls_client::handshake_kind(&config, port, host);
        assert_eq!(resumed, None, "not refused on {host}: {}", gw.describe());
        a
    };
    let a = held(&p.alice, port, host);
    assert!(a.starts_with("HTTP/1.1 421"), "alice's request: {a}");
    let relayed = echo.accepted();
    let a = held(&carol, stream_port, db);
    assert!(a.is_empty(), "carol's stream was relayed: {a}");
    assert_eq!(echo.accepted(), relayed, "carol reached the backend");
    // OpenSSL counts a refused handshake once its alert is written.
    let (_, m) = gw.wait_metrics(Duration::from_secs(5), |m| {
        m.sum(
            "tlsgate_tls_handshake_failures_total",
            &[("reason", "revoked")],
        ) >= 2.0
    });
    assert_eq!(
        m.sum(
            "tlsgate_connections_refused_total",
            &[("reason", "revoked")]
        ),
        1.0,
        "{}",
        gw.describe()
    );
    assert_eq!(
        m.sum(
            "tlsgate_tls_handshake_failures_total",
            &[("reason", "timeout")]
        ),
        0.0,
        "a held handshake outlived timeouts.tlsHandshake: {}",
        gw.describe()
    );
    // Refused at their full handshakes once each, not at the held ones.
    assert_eq!(
        m.sum(
            "tlsgate_tls_handshake_failures_total",
            &[("reason", "revoked")]
        ),
        2.0,
        "{}",
        gw.describe()
    );
    let r = get(&p, host, port, &p.alice);
    assert!(r.stderr.contains("revoked"), "{r}");
}
