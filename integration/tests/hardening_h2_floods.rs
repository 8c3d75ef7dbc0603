//! Issue 10, finding 6 on HTTP/2: floods the HTTP/2 layer refuses by
//! itself (CONTINUATION flood, HPACK bomb, more streams than the limit)
//! are cut off, leave memory and descriptors as they were, and every
//! GOAWAY or reset they cause is counted (`tlsgate_h2_goaway_total{reason}`,
//! `tlsgate_h2_streams_reset_total{by="server"}`).

use std::time::{Duration, Instant};

use tlsgate_integration::hostile::h2::{code, code_name, Event, H2};
use tlsgate_integration::hostile::harden::{Hardening, Target};
use tlsgate_integration::hostile::hpack;
use tlsgate_integration::hostile::proc::wait_until;
use tlsgate_integration::*;

const RESETS: &str = "tlsgate_h2_streams_reset_total";
/// Largest frame payload every peer accepts (SETTINGS_MAX_FRAME_SIZE default).
const FRAME: usize = 16_384;

fn open(t: &Target) -> H2 {
    H2::open(t.port(), FRONTEND_HOST).unwrap_or_else(|e| panic!("{e}"))
}

/// Send `block` as HEADERS plus CONTINUATIONs of at most [`FRAME`] bytes.
fn send_block(c: &mut H2, id: u32, block: &[u8], end_stream: bool) -> std::io::Result<()> {
    let mut parts = block.chunks(FRAME).peekable();
    let first = parts.next().unwrap_or_default();
    c.headers(id, first, end_stream, parts.peek().is_none())?;
    while let Some(p) = parts.next() {
        c.continuation(id, p, parts.peek().is_none())?;
    }
    Ok(())
}

#[test]
fn continuation_flood_is_cut_off_and_counted() {
    let t = Hardening::short().start();
    let good = t.good_clients();
    let mut c = open(&t);
    let id = c.next_stream();
    let block = hpack::request("GET", "/attack/continuation", FRONTEND_HOST, &[]);
    c.headers(id, &block, true, false).expect("HEADERS");
    // One 16 KB field per CONTINUATION, never END_HEADERS: up to 16 MiB, 4 s.
    let mut field = Vec::new();
    hpack::literal(&mut field, "x-flood", &[b'f'; 16_000]);
    let (start, mut sent, mut end) = (Instant::now(), 0usize, None);
    while sent < 16 << 20 && start.elapsed() < Duration::from_secs(4) {
        if c.continuation(id, &field, false).is_err() {
            break;
        }
        sent += field.len();
        let e = c.read_event(Duration::from_millis(1));
        if e.is_end() {
            end = Some(e);
            break;
        }
    }
    if end.is_none() {
        end = c.wait(Duration::from_secs(2), |e| e.is_end());
    }
    eprintln!(
        "CONTINUATION flood: {sent} bytes sent in {:?}, ended by {end:?}",
        start.elapsed()
    );
    let report = good.stop();
    let goaway = c.goaway;
    t.check(goaway.is_some() && sent < 1 << 20, || {
        format!("(a) CONTINUATION flood: {sent} bytes accepted, ended by {end:?}; want a GOAWAY within 1 MiB")
    });
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(3));
    t.check_goaway_counted(goaway.map_or(code::ENHANCE_YOUR_CALM, |(_, c)| c));
    t.finish();
}

#[test]
fn hpack_bomb_is_refused_and_counted() {
    let t = Hardening::short().start();
    let good = t.good_clients();
    let mut c = open(&t);
    // One 4 KB field in the server's dynamic table (index 62), then 16,000
    // one-byte references to it per stream: 64 MB of header list from 16 KB.
    let (mut refused, mut answered, mut streams) = (0, 0, 0);
    for k in 0..20 {
        let id = c.next_stream();
        let mut block = hpack::request("GET", "/attack/hpack", FRONTEND_HOST, &[]);
        if k == 0 {
            hpack::literal_indexed(&mut block, "x-bomb", &[b'b'; 4000]);
        }
        for _ in 0..16_000 {
            hpack::indexed(&mut block, 62);
        }
        if send_block(&mut c, id, &block, true).is_err() {
            break;
        }
        streams += 1;
        let e = c.wait(Duration::from_secs(2), |e| match e {
            Event::Reset { stream, .. } | Event::Headers { stream, .. } => *stream == id,
            _ => false,
        });
        match e {
            Some(Event::Headers {
                status: Some(s), ..
            }) if s < 400 => answered += 1,
            Some(ref e) if e.is_end() => break,
            Some(_) => refused += 1,
            None => {}
        }
    }
    eprintln!(
        "HPACK bomb: {streams} streams, {refused} refused, {answered} answered, GOAWAY {:?}",
        c.goaway.map(|(_, c)| code_name(c))
    );
    let rss_now = t.usage().rss_kb;
    let report = good.stop();
    let reached = t
        .seed
        .frontend
        .requests()
        .iter()
        .any(|r| r.path.starts_with("/attack"));
    t.check(answered == 0 && !reached, || {
        format!(
            "(a) HPACK bomb: {answered} bomb stream(s) answered, reached the backend: {reached}"
        )
    });
    t.check(refused > 0 || c.goaway.is_some(), || {
        "(a) HPACK bomb: neither a refusal nor a GOAWAY".to_string()
    });
    t.check(rss_now <= t.base.rss_kb + 20 * 1024, || {
        format!(
            "(c) RSS during the bomb: {rss_now} KiB, baseline {} KiB",
            t.base.rss_kb
        )
    });
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(3));
    match c.goaway {
        Some((_, code)) => t.check_goaway_counted(code),
        None => t.check_counted(RESETS, &[("by", "server")], refused as f64),
    }
    t.finish();
}

#[test]
fn streams_over_the_limit_are_refused_and_counted() {
    let t = Hardening::short().start();
    let backend = &t.seed.frontend;
    let good = t.good_clients();
    let mut c = open(&t);
    let limit = c.max_streams.unwrap_or(100).min(100) as usize;
    backend.reset_max_in_flight();
    // 150 requests at once, without waiting for the server's limit to matter.
    let mut ids = Vec::new();
    for _ in 0..limit + 50 {
        match c.request("GET", "/delay/5000?attack=streams", FRONTEND_HOST, None) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
    }
    let events = c.drain(Duration::from_millis(1500));
    let refused = events
        .iter()
        .filter(|e| matches!(e, Event::Reset { code, .. } if *code == code::REFUSED_STREAM || *code == code::PROTOCOL_ERROR))
        .count();
    let max_in_flight = backend.max_in_flight();
    eprintln!(
        "{} streams opened, {refused} refused, GOAWAY {:?}, backend max in flight {max_in_flight}",
        ids.len(),
        c.goaway.map(|(_, c)| code_name(c))
    );
    drop(c);
    let report = good.stop();
    t.check(refused >= 50 || c_goaway_ok(&events), || {
        format!(
            "(a) {} streams with a limit of {limit}: {refused} refused, no GOAWAY",
            ids.len()
        )
    });
    t.check(max_in_flight <= limit + 10, || {
        format!("(a) the backend had {max_in_flight} requests in flight from one connection (limit {limit})")
    });
    t.check(
        wait_until(Duration::from_secs(1), || backend.in_flight() <= 2),
        || {
            format!(
                "(c) {} upstream requests still in flight after the client left",
                backend.in_flight()
            )
        },
    );
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(3));
    match events.iter().find_map(|e| match e {
        Event::GoAway { code, .. } => Some(*code),
        _ => None,
    }) {
        Some(code) => t.check_goaway_counted(code),
        None => t.check_counted(RESETS, &[("by", "server")], refused as f64),
    }
    t.finish();
}

/// A GOAWAY with an error code among `events`.
fn c_goaway_ok(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::GoAway { code, .. } if *code != code::NO_ERROR))
}
