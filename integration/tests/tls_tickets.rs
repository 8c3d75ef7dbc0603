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
                "-tls1_3",
                if save { "-sess_out" } else { "-sess_in" },
                &sess,
                "-cert",
                &crt,
                "-key",
                &key,
            ],
        )
    };
    let first = get(true);
    assert!(first.stdout.contains("HTTP/1.1 200"), "{first}");
    let again = get(false);
    assert!(
        again.stdout.contains("Reused, TLSv1.3"),
        "resumes while valid: {again}"
    );
    std::thread::sleep(Duration::from_secs(6));
    let late = get(false);
    assert!(
        !late.stdout.contains("Reused"),
        "a session resumed past its certificate's end: {late}"
    );
    assert!(!late.stdout.contains("HTTP/1.1 200"), "{late}");
}
