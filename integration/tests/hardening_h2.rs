//! Issue 10, findings 3 and 4 on HTTP/2: idle connections and streams that
//! never send their body end at their deadlines, and streams reset by the
//! client (Rapid Reset, CVE-2023-44487) or made to be reset by the server
//! (MadeYouReset, CVE-2025-8671) cancel their upstream requests, never
//! hold more than the stream limit at the backend, and past a budget get
//! the connection a GOAWAY(ENHANCE_YOUR_CALM). GET streams take the direct
//! path, POST streams Pingora's proxy.

use std::time::{Duration, Instant};

use tlsgate_integration::hostile::h2::{code, code_name, Event, H2};
use tlsgate_integration::hostile::harden::{Hardening, Target};
use tlsgate_integration::hostile::hpack;
use tlsgate_integration::hostile::proc::wait_until;
use tlsgate_integration::*;

const TIMEOUTS: &str = "tlsgate_timeouts_total";
const RESETS: &str = "tlsgate_h2_streams_reset_total";
/// Backend requests in flight allowed above the stream limit (good clients, timing).
const IN_FLIGHT_SLACK: usize = 10;

fn open(t: &Target) -> H2 {
    H2::open(t.port(), FRONTEND_HOST).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn idle_h2_connections_end_at_their_deadlines() {
    let t = Hardening::short().start();
    let good = t.good_clients();
    let (silent, idle) = std::thread::scope(|sc| {
        // ALPN h2, then not even the preface (firstRequest).
        let silent = sc.spawn(|| {
            let mut c =
                H2::connect(t.port(), FRONTEND_HOST, None).unwrap_or_else(|e| panic!("{e}"));
            let start = Instant::now();
            let end = c.wait(Duration::from_secs(4), |_| false);
            (end, start.elapsed())
        });
        // One request answered, then nothing (http2Idle).
        let idle = sc.spawn(|| {
            let mut c = open(&t);
            let id = c.request("GET", "/", FRONTEND_HOST, None).expect("request");
            let answered = c.wait(Duration::from_secs(3), |e| {
                matches!(e, Event::Data { stream, end_stream: true, .. } | Event::Headers { stream, end_stream: true, .. } if *stream == id)
            });
            let start = Instant::now();
            let goaway = c.wait(Duration::from_secs(4), |e| matches!(e, Event::GoAway { .. }));
            let closed = c.wait(Duration::from_secs(1), |_| false);
            (answered, goaway, closed, start.elapsed())
        });
        (silent.join().unwrap(), idle.join().unwrap())
    });
    let report = good.stop();
    t.check(
        matches!(
            silent.0,
            Some(Event::Closed { .. }) | Some(Event::GoAway { .. })
        ) && silent.1 < Duration::from_millis(2500),
        || {
            format!(
                "(a) no preface: ended with {:?} after {:?}, want a close within 2.5 s",
                silent.0, silent.1
            )
        },
    );
    let (answered, goaway, closed, took) = idle;
    t.check(
        answered.is_some() && !answered.as_ref().unwrap().is_end(),
        || format!("(control) GET / on h2 not answered: {answered:?}"),
    );
    t.check(
        matches!(goaway, Some(Event::GoAway { .. })) && took < Duration::from_millis(2500),
        || {
            format!(
                "(a) idle h2 connection: got {goaway:?} after {took:?}, want a GOAWAY within 2.5 s"
            )
        },
    );
    t.check(matches!(closed, Some(Event::Closed { .. })), || {
        format!("(a) idle h2 connection not closed after its GOAWAY: {closed:?}")
    });
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(2));
    t.check_counted(TIMEOUTS, &[("phase", "first_request")], 1.0);
    t.check_counted(TIMEOUTS, &[("phase", "http2_idle")], 1.0);
    t.finish();
}

#[test]
fn h2_post_stream_without_data_is_ended() {
    let t = Hardening::short().start();
    let good = t.good_clients();
    let mut c = open(&t);
    let id = c.next_stream();
    let block = hpack::request("POST", "/attack/no-data", FRONTEND_HOST, &[]);
    c.headers(id, &block, false, true).expect("HEADERS");
    // PINGs keep the connection busy: they must not keep the stream alive.
    let start = Instant::now();
    let mut ended = None;
    while ended.is_none() && start.elapsed() < Duration::from_secs(4) {
        let _ = c.ping(*b"still-up");
        match c.read_event(Duration::from_millis(300)) {
            e @ Event::Reset { stream, .. } if stream == id => ended = Some(e),
            e @ Event::Headers {
                stream,
                status: Some(408),
                ..
            } if stream == id => ended = Some(e),
            e if e.is_end() => ended = Some(e),
            _ => {}
        }
    }
    let took = start.elapsed();
    let report = good.stop();
    t.check(ended.is_some() && took < Duration::from_millis(2500), || {
        format!("(a) POST stream without DATA: ended by {ended:?} after {took:?}, want RST_STREAM or 408 within 2.5 s")
    });
    drop(c);
    t.check(
        wait_until(Duration::from_secs(1), || t.seed.frontend.in_flight() == 0),
        || {
            format!(
                "(c) backend still has {} request(s) in flight",
                t.seed.frontend.in_flight()
            )
        },
    );
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(2));
    t.check_counted(TIMEOUTS, &[("phase", "request_body_idle")], 1.0);
    t.finish();
}

/// How a flood makes streams end early.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flood {
    /// The client resets its streams (Rapid Reset), GET or POST.
    ClientReset { post: bool },
    /// WINDOW_UPDATE of 0 on each stream: the server must reset it (GET).
    WindowUpdateZero,
    /// DATA beyond the declared content-length: the server must reset it (POST).
    DataPastLength,
}

struct Outcome {
    streams: usize,
    goaway: Option<(u32, u32)>,
    server_resets: usize,
    first_reset: Option<u32>,
    max_in_flight: usize,
    limit: usize,
}

/// Batches of `limit` streams to `/delay/3000`: open them, wait until the
/// backend holds them (1.5 s at most), end them as `flood` says; up to
/// `total` streams or a GOAWAY.
fn flood(t: &Target, flood: Flood, total: usize) -> Outcome {
    let backend = &t.seed.frontend;
    let mut c = open(t);
    let limit = c.max_streams.unwrap_or(100).min(100) as usize;
    backend.reset_max_in_flight();
    let (mut streams, mut server_resets) = (0, 0);
    let mut first_reset = None;
    let mut note = |e: &Event| {
        if let Event::Reset { code, .. } = e {
            server_resets += 1;
            first_reset.get_or_insert(*code);
        }
    };
    'batches: while streams < total && c.goaway.is_none() && !c.closed {
        let before = backend.in_flight();
        let mut ids = Vec::new();
        for _ in 0..limit {
            let id = c.next_stream();
            let path = format!(
                "/delay/3000?attack={}",
                format!("{flood:?}").replace([' ', '{', '}', ':'], "")
            );
            let sent = match flood {
                Flood::ClientReset { post: false } | Flood::WindowUpdateZero => c.headers(
                    id,
                    &hpack::request("GET", &path, FRONTEND_HOST, &[]),
                    true,
                    true,
                ),
                Flood::ClientReset { post: true } => {
                    let block =
                        hpack::request("POST", &path, FRONTEND_HOST, &[("content-length", "5")]);
                    c.headers(id, &block, false, true)
                        .and_then(|_| c.data(id, b"hello", true))
                }
                Flood::DataPastLength => {
                    let block =
                        hpack::request("POST", &path, FRONTEND_HOST, &[("content-length", "1")]);
                    c.headers(id, &block, false, true)
                }
            };
            if sent.is_err() {
                break 'batches;
            }
            ids.push(id);
        }
        streams += ids.len();
        let deadline = Instant::now() + Duration::from_millis(1500);
        while backend.in_flight() < before + ids.len() && Instant::now() < deadline {
            let e = c.read_event(Duration::from_millis(10));
            note(&e);
            if e.is_end() {
                break 'batches;
            }
        }
        for id in ids {
            let sent = match flood {
                Flood::ClientReset { .. } => c.rst_stream(id, code::CANCEL),
                Flood::WindowUpdateZero => c.window_update(id, 0),
                Flood::DataPastLength => c.data(id, b"ab", true),
            };
            if sent.is_err() {
                break 'batches;
            }
        }
        for e in c.drain(Duration::from_millis(50)) {
            note(&e);
        }
    }
    if c.goaway.is_none() && !c.closed {
        for e in c.drain(Duration::from_secs(1)) {
            note(&e);
        }
    }
    Outcome {
        streams,
        goaway: c.goaway,
        server_resets,
        first_reset,
        max_in_flight: backend.max_in_flight(),
        limit,
    }
}

fn flood_case(kind: Flood, total: usize) {
    let t = Hardening::short().start();
    let good = t.good_clients();
    let o = flood(&t, kind, total);
    eprintln!(
        "{kind:?}: {} streams, GOAWAY {:?}, {} server resets (first {:?}), backend max in flight {}",
        o.streams,
        o.goaway.map(|(last, c)| (last, code_name(c))),
        o.server_resets,
        o.first_reset.map(code_name),
        o.max_in_flight
    );
    let report = good.stop();
    // A client reset budget of 100 and a stream limit of 100: the GOAWAY
    // comes within 200 streams. For resets the server is made to send, a
    // GOAWAY for the provoking frame itself cuts the attack off as well.
    let budget = 100 + o.limit;
    let cut_off = match (kind, o.goaway) {
        (Flood::ClientReset { .. }, Some((_, c))) => {
            c == code::ENHANCE_YOUR_CALM && o.streams <= budget
        }
        (_, Some((_, c))) => c != code::NO_ERROR && o.streams <= budget,
        (_, None) => false,
    };
    t.check(cut_off, || {
        format!(
            "(a) {kind:?}: after {} streams the connection got {:?}, want GOAWAY(ENHANCE_YOUR_CALM) within {budget} streams",
            o.streams,
            o.goaway.map(|(_, c)| code_name(c))
        )
    });
    t.check(o.max_in_flight <= o.limit + IN_FLIGHT_SLACK, || {
        format!(
            "(a) {kind:?}: the backend had {} requests in flight at once from one connection (stream limit {})",
            o.max_in_flight, o.limit
        )
    });
    t.check(
        wait_until(Duration::from_secs(1), || t.seed.frontend.in_flight() <= 2),
        || {
            format!(
                "(a) {kind:?}: upstream requests not cancelled: {} still in flight",
                t.seed.frontend.in_flight()
            )
        },
    );
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(4));
    match kind {
        Flood::ClientReset { .. } => {
            t.check_counted("tlsgate_h2_goaway_total", &[("reason", "rapid_reset")], 1.0);
            t.check_counted(RESETS, &[("by", "client")], 100.0);
        }
        _ => {
            t.check_goaway_counted(o.goaway.map_or(code::ENHANCE_YOUR_CALM, |(_, c)| c));
            let resets = o.server_resets.min(100) as f64;
            t.check_counted(RESETS, &[("by", "server")], resets);
        }
    }
    t.finish();
}

#[test]
fn rapid_reset_get_direct_path() {
    flood_case(Flood::ClientReset { post: false }, 800);
}

#[test]
fn rapid_reset_post_proxy_path() {
    flood_case(Flood::ClientReset { post: true }, 800);
}

#[test]
fn made_you_reset_window_update_zero() {
    flood_case(Flood::WindowUpdateZero, 400);
}

#[test]
fn made_you_reset_data_past_content_length() {
    flood_case(Flood::DataPastLength, 400);
}

/// Control: the raw client speaks HTTP/2 well enough to be answered, on
/// both paths, and reads the statuses (this passes on any gateway).
#[test]
fn raw_h2_client_is_answered_on_both_paths() {
    let t = Hardening::none().start();
    let mut c = open(&t);
    for (method, body) in [("GET", None), ("POST", Some(&b"hello"[..]))] {
        let id = c
            .request(method, "/control", FRONTEND_HOST, body)
            .expect("request");
        let head = c.wait(
            Duration::from_secs(3),
            |e| matches!(e, Event::Headers { stream, .. } if *stream == id),
        );
        t.check(
            matches!(
                head,
                Some(Event::Headers {
                    status: Some(200),
                    ..
                })
            ),
            || format!("(control) {method} on h2: want a 200 head, got {head:?}"),
        );
    }
    let id = c
        .request("GET", "/status/404", FRONTEND_HOST, None)
        .expect("request");
    let head = c.wait(
        Duration::from_secs(3),
        |e| matches!(e, Event::Headers { stream, .. } if *stream == id),
    );
    t.check(
        matches!(
            head,
            Some(Event::Headers {
                status: Some(404),
                ..
            })
        ),
        || format!("(control) GET /status/404 on h2: got {head:?}"),
    );
    let id = c
        .request("GET", "/status/418", FRONTEND_HOST, None)
        .expect("request");
    let head = c.wait(
        Duration::from_secs(3),
        |e| matches!(e, Event::Headers { stream, .. } if *stream == id),
    );
    t.check(
        matches!(
            head,
            Some(Event::Headers {
                status: Some(418),
                ..
            })
        ),
        || format!("(control) GET /status/418 on h2 (a literal status): got {head:?}"),
    );
    t.finish();
}
