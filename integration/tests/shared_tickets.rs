//! Session ticket keys shared by replicas (issue 17, part 1): two
//! tlsgate processes reading the same key folder resume each other's
//! sessions; a rotated-out key's tickets still resume until the key leaves
//! the folder; a SIMPLE host's ticket never resumes on a MUTUAL host, on
//! another replica either; without shared keys, each process has its own.

use std::path::Path;
use std::time::Duration;

use tlsgate_integration::*;

fn key(path: &Path) {
    let out = run_tlsgate(
        &[
            "certs",
            "ticket-key",
            "--out",
            &path.to_string_lossy(),
            "--force",
        ],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{out}");
}

/// Seed 000 with `sessionTickets` set to `tickets` (YAML flow), or none.
fn replica(tickets: Option<&str>) -> Seed000 {
    Seed000::start_custom(&[], |_, yaml| match tickets {
        Some(t) => yaml.replacen(
            "  accessLog:\n    format: text\n",
            &format!("  accessLog:\n    format: text\n  sessionTickets: {t}\n"),
            1,
        ),
        None => yaml,
    })
}

/// An HTTPS GET to `host` on `port`, saving or resuming the session in
/// `sess`; whether it was resumed.
fn get(port: u16, host: &str, sess: &str, save: bool, extra: &[&str]) -> bool {
    let mut args = vec!["-tls1_3", if save { "-sess_out" } else { "-sess_in" }, sess];
    args.extend_from_slice(extra);
    let out = s_client_get(port, host, host, "/", &args);
    assert!(out.stdout.contains("HTTP/1.1 200"), "{out}");
    out.stdout.contains("Reused, TLSv1.3")
}

fn wait_generation(s: &Seed000, n: f64) {
    let (ok, _) = s.gateway.wait_metrics(Duration::from_secs(10), |m| {
        m.sum("tlsgate_runtime_generation", &[]) >= n
    });
    assert!(ok, "{}", s.gateway.describe());
}

#[test]
fn replicas_sharing_the_key_folder_resume_each_others_sessions() {
    let keys = tempfile::tempdir().unwrap();
    key(&keys.path().join("ticket-0.key"));
    let tickets = format!("{{keyDirectory: {}}}", keys.path().display());
    let (a, b) = (replica(Some(&tickets)), replica(Some(&tickets)));
    let work = tempfile::tempdir().unwrap();
    let sess = work.path().join("s.pem").to_string_lossy().into_owned();

    assert!(
        !get(a.port, FRONTEND_HOST, &sess, true, &[]),
        "first is full"
    );
    assert!(
        get(b.port, FRONTEND_HOST, &sess, false, &[]),
        "B resumes A's"
    );

    // Rotation: a new key first, the old one after it.
    std::fs::rename(
        keys.path().join("ticket-0.key"),
        keys.path().join("ticket-1.key"),
    )
    .unwrap();
    key(&keys.path().join("ticket-0.key"));
    wait_generation(&a, 2.0);
    wait_generation(&b, 2.0);
    assert!(
        get(b.port, FRONTEND_HOST, &sess, false, &[]),
        "a ticket of the previous key still resumes"
    );
    assert!(
        b.gateway
            .metrics()
            .sum("tlsgate_tls_ticket_keys_total", &[("key_age", "1")])
            >= 1.0
    );
    // A ticket of a key no longer listed: a full handshake.
    std::fs::remove_file(keys.path().join("ticket-1.key")).unwrap();
    wait_generation(&a, 3.0);
    assert!(!get(a.port, FRONTEND_HOST, &sess, false, &[]));
    assert!(
        a.gateway
            .metrics()
            .sum("tlsgate_tls_ticket_keys_total", &[("key_age", "unknown")])
            >= 1.0
    );

    // The policy check stays on top: a SIMPLE host's ticket, made on A,
    // never resumes on B's MUTUAL host.
    assert!(!get(a.port, FRONTEND_HOST, &sess, true, &[]));
    let (crt, k) = client_cert("great-partner");
    let (crt, k) = (crt.to_string_lossy(), k.to_string_lossy());
    assert!(
        !get(
            b.port,
            PARTNER_HOST,
            &sess,
            false,
            &["-cert", &crt, "-key", &k]
        ),
        "a SIMPLE ticket resumed on a MUTUAL host"
    );
}

#[test]
fn a_broken_key_file_keeps_the_last_good_keys() {
    let keys = tempfile::tempdir().unwrap();
    key(&keys.path().join("ticket-0.key"));
    let s = replica(Some(&format!(
        "{{keyDirectory: {}}}",
        keys.path().display()
    )));
    let work = tempfile::tempdir().unwrap();
    let sess = work.path().join("s.pem").to_string_lossy().into_owned();
    assert!(!get(s.port, FRONTEND_HOST, &sess, true, &[]));
    std::fs::write(keys.path().join("ticket-0.key"), b"too short").unwrap();
    let (ok, _) = s.gateway.wait_metrics(Duration::from_secs(10), |m| {
        m.sum(
            "tlsgate_credential_reloads_total",
            &[("credential", "sessionTickets"), ("result", "refused")],
        ) >= 1.0
    });
    assert!(ok, "{}", s.gateway.describe());
    assert!(
        get(s.port, FRONTEND_HOST, &sess, false, &[]),
        "the last good key still decrypts"
    );
    assert!(s
        .gateway
        .logs_with("credential refused")
        .contains("9 bytes"));
}

#[test]
fn without_shared_keys_each_process_has_its_own() {
    let (a, b) = (replica(None), replica(None));
    let work = tempfile::tempdir().unwrap();
    let sess = work.path().join("s.pem").to_string_lossy().into_owned();
    assert!(!get(a.port, FRONTEND_HOST, &sess, true, &[]));
    assert!(
        get(a.port, FRONTEND_HOST, &sess, false, &[]),
        "A resumes its own"
    );
    assert!(!get(b.port, FRONTEND_HOST, &sess, false, &[]), "B cannot");
}
