//! The direct HTTP/1.1 path (`server/src/proxy/direct.rs`): which requests
//! it serves, what it hands to Pingora's proxy, and how it relays responses
//! from an upstream that frames them every way HTTP/1.1 allows.

use std::time::Duration;

use tlsgate_integration::*;

const DIRECT: &str = "tlsgate_direct_path_total";

fn assert_direct(g: &Gateway, outcome: &str, expected: f64) {
    g.assert_counter(DIRECT, &[("outcome", outcome)], expected);
}

/// `curl` transfers over HTTP/1.1 joined by `--next`, each printing
/// `<status> <new connections made>`; one line per transfer.
fn transfers(port: u16, parts: &[&[&str]]) -> Vec<(u16, u32, String)> {
    transfers_as("--http1.1", port, parts)
}

/// [`transfers`] with curl's HTTP version flag `version`.
fn transfers_as(version: &str, port: u16, parts: &[&[&str]]) -> Vec<(u16, u32, String)> {
    let resolve = format!("{FRONTEND_HOST}:{port}:127.0.0.1");
    let ca = ca_cert("example");
    let ca = ca.to_str().unwrap();
    let mut args: Vec<String> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            args.push("--next".into());
        }
        args.extend(["-sS", version, "--resolve", &resolve, "--cacert", ca].map(String::from));
        args.extend(["-w", "\n@@%{http_code} %{num_connects}\n"].map(String::from));
        args.extend(p.iter().map(|s| s.to_string()));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = curl(&refs);
    assert!(out.success(), "curl failed: {}", out.combined());
    out.stdout
        .split("\n@@")
        .skip(1)
        .zip(out.stdout.split("\n@@"))
        .map(|(tail, body)| {
            let mut it = tail.split_whitespace();
            let status = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let connects = it.next().and_then(|s| s.parse().ok()).unwrap_or(99);
            let body = body.rsplit_once('\n').map_or(body, |(_, b)| b).to_string();
            (status, connects, body)
        })
        .collect()
}

#[test]
fn gets_go_direct_and_a_post_between_them_goes_through_pingora() {
    let s = Seed000::start();
    let url = |p: &str| format!("https://{FRONTEND_HOST}:{}{p}", s.port);
    let (a, b, c) = (url("/a"), url("/b"), url("/c"));
    let results = transfers(
        s.port,
        &[
            &[&a, "-H", "x-forwarded-client-cert: By=forged"],
            &["-d", "payload", &b],
            &[&c],
        ],
    );
    assert_eq!(results.len(), 3, "{results:?}");
    for (status, _, _) in &results {
        assert_eq!(*status, 200, "{results:?}\n{}", s.gateway.describe());
    }
    // One connection for all three: the POST did not cost the connection.
    let connects: Vec<u32> = results.iter().map(|r| r.1).collect();
    assert_eq!(connects, [1, 0, 0], "{results:?}");
    assert_direct(&s.gateway, "served", 2.0);
    assert_direct(&s.gateway, "handoff_request", 1.0);
    // What the backend saw: the same identity headers either way.
    let recorded = s.frontend.requests();
    assert_eq!(recorded.len(), 3);
    for r in &recorded {
        assert_eq!(
            r.header("x-forwarded-proto").as_deref(),
            Some("https"),
            "{r:?}"
        );
        assert_eq!(
            r.header("x-forwarded-for").as_deref(),
            Some("127.0.0.1"),
            "{r:?}"
        );
        assert_eq!(
            r.header("x-forwarded-client-cert"),
            None,
            "forged XFCC passed: {r:?}"
        );
        assert_eq!(
            r.header("connection"),
            None,
            "hop-by-hop header passed: {r:?}"
        );
    }
    assert_eq!(recorded[1].method, "POST");
    assert_eq!(recorded[1].body, b"payload");
}

#[test]
fn no_direct_serves_everything_through_pingora() {
    let s = Seed000::start_with(&["--no-direct"]);
    let r = s.frontend("/").http1().run();
    assert_eq!(r.status, 200, "{r}");
    let (counted, m) = s
        .gateway
        .wait_metrics(Duration::from_secs(5), |m| m.has("tlsgate_requests_total"));
    assert!(counted, "{}", s.gateway.describe());
    assert_eq!(
        m.sum(DIRECT, &[]),
        0.0,
        "direct path used despite --no-direct"
    );
}

/// The hand-written upstream's answers, by path; `/stale` and `/close`
/// close the connection after answering (the first without saying so).
fn script(_method: &str, path: &str) -> Answer {
    match path {
        "/chunked" => Answer::keep(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        ),
        "/close" => Answer::close(b"HTTP/1.1 200 OK\r\nX-Framing: none\r\n\r\nuntil close"),
        "/early" => Answer::keep(
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ),
        "/smuggle" => Answer::close(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(3));
            Answer::keep(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
        }
        "/stale" => Answer::close(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"),
        "/dated" => Answer::keep(
            b"HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Length: 4\r\n\r\nfine",
        ),
        "/head-with-body" => Answer::keep(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"),
        _ => Answer::keep(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine"),
    }
}

fn scripted() -> RawUpstream {
    RawUpstream::start(script)
}

/// frontend.example.com (SIMPLE) → the scripted upstream.
fn gateway_to(upstream: u16) -> (Gateway, u16, ConfigDir) {
    require_certs_example();
    let port = free_port();
    let conf = ConfigDir::new();
    let yaml = format!(
        r#"{preamble}  - port:
      number: {port}
      name: https
      protocol: HTTPS
    bind: 127.0.0.1
    hosts: [frontend.example.com]
    tls:
      mode: SIMPLE
      credentialName: frontend-credential
---
{vs}"#,
        preamble = gateway_preamble(&credentials_dir()),
        vs = route_all(FRONTEND_HOST, upstream),
    );
    let path = conf.write("direct.yaml", &yaml);
    (Gateway::start(&[&path], &[]), port, conf)
}

#[test]
fn every_response_framing_is_relayed() {
    let up = scripted();
    let (g, port, _conf) = gateway_to(up.port());
    let url = |p: &str| format!("https://{FRONTEND_HOST}:{port}{p}");
    let (chunked, early, fine, close) =
        (url("/chunked"), url("/early"), url("/fine"), url("/close"));
    let results = transfers(port, &[&[&chunked], &[&early], &[&fine], &[&close]]);
    assert_eq!(results.len(), 4, "{results:?}");
    let bodies: Vec<(u16, &str)> = results.iter().map(|r| (r.0, r.2.as_str())).collect();
    assert_eq!(
        bodies,
        [
            (200, "hello world"),
            (200, "ok"),
            (200, "fine"),
            (200, "until close")
        ],
        "{}",
        g.describe()
    );
    // Chunked, 103 + length and length kept the client connection; the
    // close-delimited body ended it.
    assert_eq!(
        results.iter().map(|r| r.1).collect::<Vec<_>>(),
        [1, 0, 0, 0]
    );
    assert_direct(&g, "served", 4.0);
    let again = transfers(port, &[&[&fine]]);
    assert_eq!((again[0].0, again[0].1), (200, 1));
}

#[test]
fn upstream_connections_are_pooled_and_closed_ones_not_reused() {
    let up = scripted();
    let (g, port, _conf) = gateway_to(up.port());
    let fine = format!("https://{FRONTEND_HOST}:{port}/fine");
    for _ in 0..5 {
        let r = transfers(port, &[&[&fine]]);
        assert_eq!(r[0].0, 200, "{r:?}");
    }
    // Five client connections, one upstream connection.
    assert_eq!(up.accepted(), 1);
    // `/stale` answers, then the upstream closes the pooled connection
    // without a word: the next request does not use it.
    let stale = format!("https://{FRONTEND_HOST}:{port}/stale");
    let r = transfers(port, &[&[&stale]]);
    assert_eq!((r[0].0, r[0].2.as_str()), (200, "stale"));
    std::thread::sleep(Duration::from_millis(200));
    let r = transfers(port, &[&[&fine]]);
    assert_eq!((r[0].0, r[0].2.as_str()), (200, "fine"), "{}", g.describe());
    assert_eq!(up.accepted(), 2);
    assert_direct(&g, "served", 7.0);
}

#[test]
fn bytes_an_upstream_sends_unasked_never_reach_the_next_request() {
    let up = scripted();
    let (g, port, _conf) = gateway_to(up.port());
    let head = format!("https://{FRONTEND_HOST}:{port}/head-with-body");
    let fine = format!("https://{FRONTEND_HOST}:{port}/fine");
    // A HEAD answered with a body, on a connection kept open: those bytes
    // would be the next request's response if the connection were reused.
    let r = transfers(port, &[&["-I", &head]]);
    assert_eq!(r[0].0, 200, "{r:?}");
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..3 {
        let r = transfers(port, &[&[&fine]]);
        assert_eq!((r[0].0, r[0].2.as_str()), (200, "fine"), "{}", g.describe());
    }
    assert_eq!(up.accepted(), 2, "the tainted connection was reused");
}

#[test]
fn a_response_with_two_framings_is_not_relayed_as_is() {
    let up = scripted();
    let (g, port, _conf) = gateway_to(up.port());
    let smuggle = format!("https://{FRONTEND_HOST}:{port}/smuggle");
    let r = transfers(port, &[&[&smuggle]]);
    // Refused with Pingora's 502, not passed on.
    assert_eq!(r[0].0, 502, "{r:?}");
    assert_direct(&g, "bad_response", 1.0);
}

#[test]
fn http2_streams_take_the_direct_path_too() {
    let up = scripted();
    let (g, port, _conf) = gateway_to(up.port());
    let url = |p: &str| format!("https://{FRONTEND_HOST}:{port}{p}");
    let (chunked, fine, close) = (url("/chunked"), url("/fine"), url("/close"));
    let results = transfers_as(
        "--http2",
        port,
        &[
            &[&chunked],
            &[&fine],
            &["-I", &fine],
            &[&close],
            &["-d", "x", &fine],
        ],
    );
    let got: Vec<(u16, u32, &str)> = results.iter().map(|r| (r.0, r.1, r.2.as_str())).collect();
    // A chunked body arrives de-chunked, a close-delimited one whole, and
    // all five streams share one connection.
    assert_eq!(
        got[0],
        (200, 1, "hello world"),
        "{results:?}\n{}",
        g.describe()
    );
    assert_eq!(got[1], (200, 0, "fine"));
    assert_eq!(got[2], (200, 0, ""), "HEAD: no body");
    assert_eq!(got[3], (200, 0, "until close"));
    assert_eq!(got[4], (200, 0, "fine"));
    assert_direct(&g, "served", 4.0);
    assert_direct(&g, "handoff_request", 1.0);
}

/// The upstream's `Date` is not relayed over HTTP/2: the stream carries
/// exactly one, the gateway's (as over HTTP/1.1 on the direct path).
#[test]
fn h2_responses_carry_one_date_of_their_own() {
    let up = scripted();
    let (g, port, _conf) = gateway_to(up.port());
    let ca = ca_cert("example");
    let resolve = format!("{FRONTEND_HOST}:{port}:127.0.0.1");
    let url = format!("https://{FRONTEND_HOST}:{port}/dated");
    let out = curl(&[
        "--http2",
        "-i",
        "--resolve",
        &resolve,
        "--cacert",
        ca.to_str().unwrap(),
        &url,
    ]);
    assert!(out.stdout.starts_with("HTTP/2 200"), "{}", out.combined());
    let dates: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("date: "))
        .collect();
    assert_eq!(dates.len(), 1, "{}", out.combined());
    assert!(dates[0].trim_end().ends_with(" GMT"), "{dates:?}");
    assert!(!dates[0].contains("1970"), "the upstream's: {dates:?}");
    assert_direct(&g, "served", 1.0);
}

#[test]
fn a_client_that_leaves_ends_the_wait_upstream() {
    let up = scripted();
    let (g, port, _conf) = gateway_to(up.port());
    let slow = format!("https://{FRONTEND_HOST}:{port}/slow");
    let ca = ca_cert("example");
    let resolve = format!("{FRONTEND_HOST}:{port}:127.0.0.1");
    let args = [
        "--http1.1",
        "--resolve",
        &resolve,
        "--cacert",
        ca.to_str().unwrap(),
        "--max-time",
        "1",
        &slow,
    ];
    let out = curl(&args);
    assert_eq!(
        out.code,
        Some(28),
        "curl should give up first: {}",
        out.combined()
    );
    // Noticed when the client left, not when the upstream answered (3 s).
    let seen = wait_for(Duration::from_millis(1500), || {
        g.logs()
            .contains("client closed before the response")
            .then_some(())
    });
    assert!(seen.is_some(), "{}", g.describe());
}

/// Acme's client over `version` (`http1` or `http2`): its identity reaches
/// the backend from the direct path, and SNI partner with Host frontend is
/// still refused (Pingora's path answers 421).
fn identity_and_misdirection(h2: bool) {
    let s = Seed000::start();
    let with = |c: Curl| if h2 { c.http2() } else { c.http1() };
    let r = with(s.partner("/who").client("great-partner")).run();
    let version = if h2 { "2" } else { "1.1" };
    assert_eq!(
        (r.status, r.http_version.as_str()),
        (200, version),
        "{r}\n{}",
        s.gateway.describe()
    );
    let xfcc = r
        .backend_header("x-forwarded-client-cert")
        .unwrap_or_default();
    assert!(
        xfcc.contains("Hash=") && xfcc.contains("Subject="),
        "{xfcc}"
    );
    assert_eq!(
        r.backend_header("x-forwarded-proto").as_deref(),
        Some("https")
    );
    // A Host reached the backend (HTTP/2 sends :authority).
    assert!(
        r.backend_header("host")
            .is_some_and(|h| h.starts_with(PARTNER_HOST)),
        "{r}"
    );
    assert_direct(&s.gateway, "served", 1.0);
    let misdirected = s
        .partner("/")
        .client("great-partner")
        .header(&format!("Host: {FRONTEND_HOST}"));
    let r = with(misdirected).run();
    assert_eq!(r.status, 421, "{r}");
    assert_direct(&s.gateway, "handoff_route", 1.0);
}

#[test]
fn mutual_tls_identity_and_misdirection_over_http1() {
    identity_and_misdirection(false);
}

#[test]
fn mutual_tls_identity_and_misdirection_over_http2() {
    identity_and_misdirection(true);
}
