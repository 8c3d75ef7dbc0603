//! Session tickets: one per TLS 1.3 handshake (each costs the server an
//! encoding and a decoding of the session, client certificate included),
//! and it resumes.

use tlsgate_integration::*;

#[test]
fn one_ticket_per_handshake_and_it_resumes() {
    let s = Seed000::start();
    let dir = tempfile::tempdir().unwrap();
    let sess = dir.path().join("frontend.sess");
    let sess = sess.to_string_lossy().into_owned();
    let first = s_client_get(
        s.port,
        FRONTEND_HOST,
        FRONTEND_HOST,
        "/",
        &["-tls1_3", "-sess_out", &sess],
    );
    assert!(first.stdout.contains("HTTP/1.1 200"), "{first}");
    let tickets = first
        .stdout
        .matches("Post-Handshake New Session Ticket arrived")
        .count();
    assert_eq!(tickets, 1, "{first}");
    let again = s_client_get(
        s.port,
        FRONTEND_HOST,
        FRONTEND_HOST,
        "/",
        &["-tls1_3", "-sess_in", &sess],
    );
    assert!(again.stdout.contains("Reused, TLSv1.3"), "{again}");
    assert!(again.stdout.contains("HTTP/1.1 200"), "{again}");
    // A resumption is given one new ticket too.
    assert_eq!(
        again
            .stdout
            .matches("Post-Handshake New Session Ticket arrived")
            .count(),
        1,
        "{again}"
    );
}

/// A ticket never carries a client certificate past its end: once the
/// certificate has expired, its session is not resumed, and the full
/// handshake refuses the certificate.
#[test]
fn a_session_does_not_outlive_its_client_certificate() {
    session_ends_with_the_certificate(&["-tls1_3"]);
}

/// The same for a TLS 1.2 client without tickets, resuming by session id
/// (libssl's cache on OpenSSL, sessions.rs on rustls).
#[test]
fn a_tls12_session_id_does_not_outlive_its_client_certificate() {
    session_ends_with_the_certificate(&["-tls1_2", "-no_ticket"]);
}

/// And for a TLS 1.2 ticket.
#[test]
fn a_tls12_ticket_does_not_outlive_its_client_certificate() {
    session_ends_with_the_certificate(&["-tls1_2"]);
}

fn session_ends_with_the_certificate(version: &[&str]) {
    use std::time::Duration;
    let s = Seed000::start();
    let work = tempfile::tempdir().unwrap();
    let client = short_lived_acme_client(work.path(), "brief.apps.acme.com", 4);
    let sess = work.path().join("s.pem").to_string_lossy().into_owned();
    let (crt, key) = (
        client.join("tls.crt").to_string_lossy().into_owned(),
        client.join("tls.key").to_string_lossy().into_owned(),
    );
    let get = |save: bool| {
        s_client_get(
            s.port,
            PARTNER_HOST,
            PARTNER_HOST,
            "/",
            &[
                version,
                &[
                    if save { "-sess_out" } else { "-sess_in" },
                    &sess,
                    "-cert",
                    &crt,
                    "-key",
                    &key,
                ],
            ]
            .concat(),
        )
    };
    let first = get(true);
    assert!(first.stdout.contains("HTTP/1.1 200"), "{first}");
    let again = get(false);
    assert!(
        again.stdout.contains("Reused, TLSv1."),
        "{version:?} resumes while valid: {again}"
    );
    std::thread::sleep(Duration::from_secs(6));
    let late = get(false);
    assert!(
        !late.stdout.contains("Reused"),
        "{version:?}: a session resumed past its certificate's end: {late}"
    );
    assert!(!late.stdout.contains("HTTP/1.1 200"), "{late}");
}

/// A TLS 1.2 client that sends no ticket extension resumes by session id,
/// on either library, and is served on the resumed session; on rustls the
/// cache's gauges show the session.
#[test]
fn tls12_clients_without_tickets_resume_by_session_id() {
    let s = Seed000::start();
    let dir = tempfile::tempdir().unwrap();
    let sess = dir.path().join("id.sess").to_string_lossy().into_owned();
    let get = |save: bool| s_client_session_id(s.port, "great-partner", &sess, save);
    let first = get(true);
    assert!(first.stdout.contains("HTTP/1.1 200"), "{first}");
    assert!(
        !first.stdout.contains("TLS session ticket:"),
        "a ticket was issued to a client that asked for none: {first}"
    );
    for _ in 0..2 {
        let again = get(false);
        assert!(again.stdout.contains("Reused, TLSv1.2"), "{again}");
        assert!(again.stdout.contains("HTTP/1.1 200"), "{again}");
    }
    assert_eq!(s.backend_total(), 3);
    // A TLS 1.2 client with tickets resumes by its ticket: no session of
    // its own is kept by id.
    let (crt, key) = client_cert("great-partner");
    let (crt, key) = (crt.display().to_string(), key.display().to_string());
    let ticketed = s_client_get(
        s.port,
        PARTNER_HOST,
        PARTNER_HOST,
        "/",
        &["-tls1_2", "-cert", &crt, "-key", &key],
    );
    assert!(ticketed.stdout.contains("HTTP/1.1 200"), "{ticketed}");
    if suite_tls_library() == "rustls" {
        let m = s.gateway.metrics();
        assert_eq!(m.sum("tlsgate_tls_session_cache_entries", &[]), 1.0);
        let bytes = m.sum("tlsgate_tls_session_cache_bytes", &[]);
        assert!(
            bytes > 500.0,
            "{bytes} bytes for a session with a certificate"
        );
    }
}

/// `limits.tlsSessionCacheBytes` on reload: rustls listeners apply it at
/// once (0 empties the cache: the session no longer resumes); OpenSSL
/// listeners sized libssl's cache at start, so the reload says it needs a
/// restart for it.
#[test]
fn the_session_cache_bound_follows_a_reload_or_asks_for_a_restart() {
    let s = Seed000::start_partner_trusting(
        &std::fs::read(ca_cert("acme")).unwrap(),
        "  limits:\n    tlsSessionCacheBytes: 1Mi\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let sess = dir.path().join("id.sess").to_string_lossy().into_owned();
    let get = |save: bool| s_client_session_id(s.port, "great-partner", &sess, save);
    assert!(get(true).stdout.contains("HTTP/1.1 200"));
    let again = get(false);
    assert!(again.stdout.contains("Reused, TLSv1.2"), "{again}");

    let yaml = std::fs::read_to_string(&s.config_path).unwrap();
    let off = yaml.replace("tlsSessionCacheBytes: 1Mi", "tlsSessionCacheBytes: 0");
    assert_ne!(yaml, off);
    std::fs::write(&s.config_path, off).unwrap();
    let url = format!("http://{}/reload", s.gateway.admin_addr());
    let r = Curl::new(url).args(["-X", "POST"]).run();
    assert_eq!(r.status, 200, "{r}");
    if suite_tls_library() == "rustls" {
        let m = s.gateway.metrics();
        assert_eq!(m.sum("tlsgate_tls_session_cache_entries", &[]), 0.0);
        let late = get(false);
        assert!(!late.stdout.contains("Reused,"), "{late}");
        assert!(late.stdout.contains("HTTP/1.1 200"), "{late}");
        assert!(!r.body.contains("tlsSessionCacheBytes"), "{r}");
    } else {
        assert!(
            r.body.contains("limits.tlsSessionCacheBytes 1048576 -> 0"),
            "the reload does not say the bound needs a restart: {r}"
        );
    }
}
