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
