//! Issue 10, finding 3 on HTTP/1.1: every phase of a connection has a
//! deadline that a trickle cannot extend, and reaching it closes the
//! connection (descriptors come back) and is counted in
//! `tlsgate_timeouts_total{phase}`. All deadlines are 1 s here; a case
//! waits at most 4 s and wants the close within 2.5 s.

use std::time::Duration;

use tlsgate_integration::hostile::harden::{Hardening, Target};
use tlsgate_integration::hostile::raw;
use tlsgate_integration::hostile::tls::{self, TlsOpts};
use tlsgate_integration::*;

const TIMEOUTS: &str = "tlsgate_timeouts_total";
const WAIT: Duration = Duration::from_secs(4);
const WANT: Duration = Duration::from_millis(2500);

fn connect(t: &Target) -> openssl::ssl::SslStream<std::net::TcpStream> {
    tls::connect(
        t.port(),
        FRONTEND_HOST,
        &TlsOpts::default(),
        Duration::from_secs(3),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn closed_in_time(t: &Target, what: &str, closed: Option<Duration>) {
    t.check(closed.is_some_and(|d| d < WANT), || {
        format!("(a) {what}: closed after {closed:?}, want within {WANT:?} (deadline 1 s)")
    });
}

#[test]
fn silent_client_after_the_handshake_is_closed() {
    let t = Hardening::short().start();
    let good = t.good_clients();
    let mut s = connect(&t);
    let closed = raw::closed_within(&mut s, WAIT);
    closed_in_time(&t, "no request after the handshake", closed);
    let report = good.stop();
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(2));
    t.check_counted(TIMEOUTS, &[("phase", "first_request")], 1.0);
    t.finish();
}

#[test]
fn trickled_head_gets_408_at_the_deadline() {
    let t = Hardening::short().start();
    let good = t.good_clients();
    let results: Vec<(&str, raw::Trickle)> = std::thread::scope(|sc| {
        let handles: Vec<_> = ["GET", "POST"]
            .into_iter()
            .map(|m| {
                let mut s = connect(&t);
                sc.spawn(move || {
                    let head = format!(
                        "{m} /attack/slow HTTP/1.1\r\nHost: {FRONTEND_HOST}\r\nX-Slow: {}\r\nContent-Length: 0\r\n\r\n",
                        "z".repeat(100)
                    );
                    // 10 bytes a second: the head would take 15 s.
                    let mut tr = raw::trickle(&mut s, head.as_bytes(), Duration::from_millis(100), WAIT);
                    if tr.reply.status.is_some() && !tr.reply.closed {
                        tr.reply.closed = raw::closed_within(&mut s, Duration::from_secs(1)).is_some();
                    }
                    (m, tr)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let report = good.stop();
    for (m, tr) in &results {
        t.check(
            tr.reply.status == Some(408) && tr.reply.elapsed < WANT,
            || {
                format!(
                    "(a) {m} head at 10 bytes/s ({} bytes sent): want 408 within {WANT:?}, got {}",
                    tr.sent, tr.reply
                )
            },
        );
        t.check(tr.reply.closed, || {
            format!(
                "(a) {m} trickled head: connection still open after {:?}",
                tr.reply.elapsed
            )
        });
    }
    let reached = t
        .seed
        .frontend
        .requests()
        .iter()
        .any(|r| r.path.starts_with("/attack"));
    t.check(!reached, || {
        "(a) a trickled head reached the backend".into()
    });
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(2));
    t.check_counted(TIMEOUTS, &[("phase", "request_head")], 2.0);
    t.finish();
}

#[test]
fn idle_request_body_is_closed_and_its_upstream_request_ended() {
    let t = Hardening::short().start();
    let good = t.good_clients();
    let mut s = connect(&t);
    let head = format!(
        "POST /attack/body HTTP/1.1\r\nHost: {FRONTEND_HOST}\r\nContent-Length: 100\r\n\r\n0123456789"
    );
    raw::write_all(&mut s, head.as_bytes());
    let closed = raw::closed_within(&mut s, WAIT);
    closed_in_time(&t, "10 of 100 body bytes, then nothing", closed);
    let report = good.stop();
    let ended = tlsgate_integration::hostile::proc::wait_until(Duration::from_secs(1), || {
        t.seed.frontend.in_flight() == 0
    });
    t.check(ended, || {
        format!(
            "(c) the backend still has {} request(s) in flight",
            t.seed.frontend.in_flight()
        )
    });
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(2));
    t.check_counted(TIMEOUTS, &[("phase", "request_body_idle")], 1.0);
    t.finish();
}

#[test]
fn idle_keepalive_connection_is_closed() {
    let t = Hardening::short().start();
    let good = t.good_clients();
    let closed: Vec<(&str, raw::Reply, Option<Duration>)> = std::thread::scope(|sc| {
        let handles: Vec<_> = ["GET", "POST"]
            .into_iter()
            .map(|m| {
                let mut s = connect(&t);
                sc.spawn(move || {
                    let req = format!(
                        "{m} /keepalive HTTP/1.1\r\nHost: {FRONTEND_HOST}\r\nContent-Length: 0\r\n\r\n"
                    );
                    raw::write_all(&mut s, req.as_bytes());
                    let first = raw::read_reply(&mut s, Duration::from_secs(2), Duration::from_millis(100));
                    let closed = raw::closed_within(&mut s, WAIT);
                    (m, first, closed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let report = good.stop();
    for (m, first, after) in &closed {
        t.check(first.status == Some(200), || {
            format!("(control) {m} on a keep-alive connection: want 200, got {first}")
        });
        closed_in_time(
            &t,
            &format!("{m}, then an idle keep-alive connection"),
            *after,
        );
    }
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(2));
    t.check_counted(TIMEOUTS, &[("phase", "keepalive_idle")], 2.0);
    t.finish();
}
