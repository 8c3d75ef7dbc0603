//! Ways around per-host TLS policy: SNI/Host mismatch, session resumption
//! across hosts, plain HTTP on the TLS port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tlsgate_integration::*;

#[test]
fn host_of_another_tls_policy_gets_421() {
    let s = Seed000::start();
    // SNI frontend.example.com (SIMPLE, no client certificate), Host of the MUTUAL host.
    for h2 in [false, true] {
        let mut c = s.frontend("/").header(&format!("Host: {PARTNER_HOST}"));
        if h2 {
            c = c.http2();
        }
        let r = c.run();
        assert_eq!(r.status, 421, "h2={h2}: {r}\n{}", s.gateway.describe());
    }
    // With the port, as a browser would write it.
    let r = s
        .frontend("/")
        .header(&format!("Host: {PARTNER_HOST}:{}", s.port))
        .run();
    assert_eq!(r.status, 421, "{r}");
    // The other way round: a verified partner connection asking for the SIMPLE host.
    let r = s
        .partner("/")
        .client("great-partner")
        .header(&format!("Host: {FRONTEND_HOST}"))
        .run();
    assert_eq!(r.status, 421, "{r}");
    // A host no server on this port knows.
    let r = s.frontend("/").header("Host: elsewhere.example.net").run();
    assert_eq!(r.status, 421, "unknown Host on a known SNI: {r}");
    assert_eq!(
        s.backend_total(),
        0,
        "a mismatched request reached a backend"
    );

    // Control: the matching Host still works on the same connection kind.
    let r = s
        .frontend("/")
        .header(&format!("Host: {FRONTEND_HOST}"))
        .run();
    assert_eq!(r.status, 200, "{r}");
}

fn resumption_attack(tls: &[&str]) {
    let s = Seed000::start();
    let dir = tempfile::tempdir().unwrap();
    let sess = dir.path().join("frontend.sess");
    let sess_s = sess.to_string_lossy().into_owned();

    // 1. A full handshake on the SIMPLE host, saving the session.
    let first = s_client_get(
        s.port,
        FRONTEND_HOST,
        FRONTEND_HOST,
        "/",
        &[tls, &["-sess_out", &sess_s]].concat(),
    );
    assert!(
        first.stdout.contains("HTTP/1.1 200"),
        "{tls:?}: first connection failed: {first}\n{}",
        s.gateway.describe()
    );
    assert_eq!(s.frontend.count(), 1);
    let issued = std::fs::metadata(&sess)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    if !issued {
        // No session or ticket was issued at all: nothing can be resumed.
        eprintln!("{tls:?}: the gateway issued no resumable session (resumption off)");
        return;
    }

    // Control (not asserted): may the session resume on its own host?
    let same = s_client_get(
        s.port,
        FRONTEND_HOST,
        FRONTEND_HOST,
        "/",
        &[tls, &["-sess_in", &sess_s]].concat(),
    );
    eprintln!(
        "{tls:?}: resumption on the same host: {}",
        if same.stdout.contains("Reused,") {
            "yes"
        } else {
            "no"
        }
    );
    let before = s.frontend.count();

    // 2. The attack: offer that session to the MUTUAL host, no client certificate.
    let attack = s_client_get(
        s.port,
        PARTNER_HOST,
        PARTNER_HOST,
        "/",
        &[tls, &["-sess_in", &sess_s]].concat(),
    );
    assert!(
        !attack.stdout.contains("Reused,"),
        "{tls:?}: a SIMPLE host's session resumed on the MUTUAL host: {attack}"
    );
    assert!(
        !attack.stdout.contains("HTTP/1.1 200"),
        "{tls:?}: the MUTUAL host answered without a client certificate: {attack}"
    );
    assert_eq!(
        s.frontend.count(),
        before,
        "{tls:?}: the attack reached the backend"
    );

    // 3. Same with the Host header of the SIMPLE host (a session for the
    // MUTUAL SNI must not be usable to reach anything either).
    let attack = s_client_get(
        s.port,
        PARTNER_HOST,
        FRONTEND_HOST,
        "/",
        &[tls, &["-sess_in", &sess_s]].concat(),
    );
    assert!(!attack.stdout.contains("Reused,"), "{tls:?}: {attack}");
    assert!(!attack.stdout.contains("HTTP/1.1 200"), "{tls:?}: {attack}");
}

#[test]
fn simple_host_session_does_not_resume_on_mutual_host_tls13() {
    resumption_attack(&["-tls1_3"]);
}

#[test]
fn simple_host_session_does_not_resume_on_mutual_host_tls12() {
    resumption_attack(&["-tls1_2"]);
}

/// A TLS 1.2 client without tickets offers its session id instead.
#[test]
fn simple_host_session_id_does_not_resume_on_mutual_host_tls12() {
    resumption_attack(&["-tls1_2", "-no_ticket"]);
}

#[test]
fn plain_http_on_the_tls_port_is_refused() {
    let s = Seed000::start();
    let r = Curl::http(FRONTEND_HOST, s.port, "/").run();
    assert_ne!(r.status, 200, "plain HTTP got 200: {r}");
    assert_eq!(s.backend_total(), 0, "plain HTTP reached a backend");

    // Raw bytes: the gateway answers nothing that looks like a proxied response.
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(format!("GET / HTTP/1.1\r\nHost: {FRONTEND_HOST}\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.contains(" 200 "), "got {text:?}");
    assert_eq!(s.backend_total(), 0);
    // And the gateway still serves TLS afterwards.
    let r = s.frontend("/").run();
    assert_eq!(r.status, 200, "{r}");
}

#[test]
fn pirate_certificate_never_reaches_backend_even_with_frontend_host() {
    // SNI partner + Pirate client certificate + Host frontend: refused at the handshake.
    let s = Seed000::start();
    let r = s
        .partner("/")
        .client("bad-partner")
        .header(&format!("Host: {FRONTEND_HOST}"))
        .run();
    assert!(!r.success() && r.status == 0, "{r}");
    assert_eq!(s.backend_total(), 0);
}
