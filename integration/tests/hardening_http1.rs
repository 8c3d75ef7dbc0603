//! Issue 10, findings 2, 6 and 7 on HTTP/1.1: request heads are bounded
//! (431 above `requestHeadBytes` in all or `requestHeaders` lines; 503 and
//! a close when all unfinished heads together pass `requestHeadMemory`),
//! and ambiguous or malformed heads are refused (400) and counted. Each
//! shape goes both ways a request can take: GET (the direct path) and
//! POST (Pingora's proxy). Attack requests use paths under `/attack/`, so
//! that a refusal is known not to have reached the backend.

use std::time::Duration;

use tlsgate_integration::hostile::harden::{Hardening, Target};
use tlsgate_integration::hostile::raw;
use tlsgate_integration::hostile::tls::{self, TlsOpts};
use tlsgate_integration::*;

const REFUSED: &str = "tlsgate_http_refused_total";
const METHODS: [&str; 2] = ["GET", "POST"];

/// A request head: request line, Host, `lines` (each without CRLF), and
/// for POST a 5-byte body. `end` false leaves the head unfinished.
fn request(method: &str, target: &str, lines: &[String], end: bool) -> Vec<u8> {
    let mut h = format!("{method} {target} HTTP/1.1\r\nHost: {FRONTEND_HOST}\r\n").into_bytes();
    for l in lines {
        h.extend_from_slice(l.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    if !end {
        return h;
    }
    if method == "POST" {
        h.extend_from_slice(b"Content-Length: 5\r\n\r\nhello");
    } else {
        h.extend_from_slice(b"\r\n");
    }
    h
}

/// `n` header lines `x-pad-<i>: <len bytes>`.
fn pad(n: usize, len: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("x-pad-{i}: {}", "a".repeat(len)))
        .collect()
}

/// Did any request for `/attack/<case>...` reach the backend?
fn reached_backend(t: &Target, case: &str) -> bool {
    let prefix = format!("/attack/{case}");
    t.seed
        .frontend
        .requests()
        .iter()
        .any(|r| r.path.starts_with(&prefix))
}

/// Send `head`, expect one of `statuses`, and that it stayed away from the backend.
fn expect_refusal(t: &Target, case: &str, method: &str, head: &[u8], statuses: &[u16]) {
    let r = raw::send_request(t.port(), FRONTEND_HOST, head, Duration::from_secs(2));
    t.check(r.status.is_some_and(|s| statuses.contains(&s)), || {
        format!(
            "(a) {case} {method} ({} bytes): want {statuses:?}, got {r}",
            head.len()
        )
    });
    t.check(!reached_backend(t, case), || {
        format!("(a) {case} {method}: the request reached the backend")
    });
}

#[test]
fn oversized_heads_get_431() {
    let t = Hardening::short().start();
    let good = t.good_clients();
    for m in METHODS {
        // 70 lines of 1 KB: over 64 KiB in all, under 100 lines.
        let head = request(m, "/attack/bytes", &pad(70, 1000), true);
        expect_refusal(&t, "bytes", m, &head, &[431]);
        // 1 MiB in 16 lines.
        let head = request(m, "/attack/mib", &pad(16, 65_000), true);
        expect_refusal(&t, "mib", m, &head, &[431]);
        // 150 short lines: too many, though small.
        let head = request(m, "/attack/lines", &pad(150, 10), true);
        expect_refusal(&t, "lines", m, &head, &[431]);
        // 10,000 lines of 6 bytes (60 KB).
        let tiny: Vec<String> = (0..10_000).map(|_| "a: b".to_string()).collect();
        let head = request(m, "/attack/ten-thousand", &tiny, true);
        expect_refusal(&t, "ten-thousand", m, &head, &[431]);
        // Control: 40 lines of 1 KB pass.
        let head = request(m, "/fine", &pad(40, 1000), true);
        let r = raw::send_request(t.port(), FRONTEND_HOST, &head, Duration::from_secs(3));
        t.check(r.status == Some(200), || {
            format!("(control) {m} with a 40 KB head: want 200, got {r}")
        });
    }
    let report = good.stop();
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(3));
    t.check_counted(REFUSED, &[("reason", "head_too_large")], 4.0);
    t.check_counted(REFUSED, &[("reason", "too_many_headers")], 4.0);
    t.finish();
}

#[test]
fn unfinished_heads_are_bounded_in_total() {
    // 1 MiB for all unfinished heads: 17 heads of 60 KiB fit, 3 more do not.
    let t = Hardening::short()
        .set("limits.requestHeadMemory", "1048576")
        .set("timeouts.requestHead", "3s")
        .start();
    let good = t.good_clients();
    let head = request("GET", "/attack/memory", &pad(60, 1000), false);
    let mut held = Vec::new();
    for i in 0..20 {
        let opts = TlsOpts::default();
        match tls::connect(t.port(), FRONTEND_HOST, &opts, Duration::from_secs(2)) {
            Ok(mut s) => {
                raw::write_all(&mut s, &head);
                held.push(s);
            }
            Err(e) => t.check(false, || format!("(a) attacker {i}: {e}")),
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let m = t.seed.gateway.metrics();
    let gauge = m.sum("tlsgate_request_head_bytes", &[]) + 0.0;
    t.check(
        m.has("tlsgate_request_head_bytes") && gauge <= 1_048_576.0,
        || {
            format!(
                "(a) tlsgate_request_head_bytes is {gauge} (present: {}), want at most 1 MiB",
                m.has("tlsgate_request_head_bytes")
            )
        },
    );
    let replies: Vec<raw::Reply> = held
        .iter_mut()
        .map(|s| raw::read_reply(s, Duration::from_millis(50), Duration::from_millis(50)))
        .collect();
    let refused = replies.iter().filter(|r| r.status == Some(503)).count();
    t.check(refused >= 1, || {
        let got: Vec<Option<u16>> = replies.iter().map(|r| r.status).collect();
        format!("(a) 20 x 60 KiB unfinished heads over a 1 MiB budget: no 503; statuses {got:?}")
    });
    drop(held);
    let report = good.stop();
    t.check(!reached_backend(&t, "memory"), || {
        "(a) an unfinished head reached the backend".into()
    });
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(3));
    t.check_counted(REFUSED, &[("reason", "head_memory")], 1.0);
    t.finish();
}

/// Ambiguous heads (finding 6) and those forwarded or left unanswered
/// today (finding 7).
#[test]
fn ambiguous_and_malformed_heads_are_refused_and_counted() {
    let t = Hardening::short().start();
    let good = t.good_clients();
    let host = format!("Host: {FRONTEND_HOST}");
    // (case, head without the method, statuses, reason)
    let cases: Vec<(&str, Vec<u8>, &[u16], &str)> = vec![
        (
            "two-lengths",
            format!(" /attack/two-lengths HTTP/1.1\r\n{host}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!").into_bytes(),
            &[400],
            "duplicate_content_length",
        ),
        (
            "length-and-chunked",
            format!(" /attack/length-and-chunked HTTP/1.1\r\n{host}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").into_bytes(),
            &[400],
            "content_length_with_transfer_encoding",
        ),
        (
            "bad-coding",
            format!(" /attack/bad-coding HTTP/1.1\r\n{host}\r\nTransfer-Encoding: xchunked\r\n\r\n").into_bytes(),
            &[400, 501],
            "bad_transfer_encoding",
        ),
        (
            "obs-fold",
            format!(" /attack/obs-fold HTTP/1.1\r\n{host}\r\nX-Folded: a\r\n b\r\n\r\n").into_bytes(),
            &[400],
            "malformed",
        ),
        (
            "nul-value",
            format!(" /attack/nul-value HTTP/1.1\r\n{host}\r\nX-Nul: a\0b\r\n\r\n").into_bytes(),
            &[400],
            "nul_byte",
        ),
        (
            "nul-target",
            format!(" /attack/nul-target\0x HTTP/1.1\r\n{host}\r\n\r\n").into_bytes(),
            &[400],
            "nul_byte",
        ),
        (
            "bare-cr",
            format!(" /attack/bare-cr HTTP/1.1\r{host}\rX-A: b\r\r").into_bytes(),
            &[400],
            "bare_cr",
        ),
    ];
    for (case, rest, statuses, _) in &cases {
        for m in METHODS {
            let mut head = m.as_bytes().to_vec();
            head.extend_from_slice(rest);
            expect_refusal(&t, case, m, &head, statuses);
        }
    }
    let report = good.stop();
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(3));
    let mut reasons: Vec<&str> = cases.iter().map(|c| c.3).collect();
    reasons.dedup();
    for reason in reasons {
        let per_reason = cases.iter().filter(|c| c.3 == reason).count();
        t.check_counted(REFUSED, &[("reason", reason)], (2 * per_reason) as f64);
    }
    t.finish();
}
