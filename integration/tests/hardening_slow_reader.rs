//! A client that asks for a response and never reads it (a zero TCP
//! window, or an HTTP/2 stream window of 0) would hold its connection and
//! the upstream connection behind it forever: `timeouts.responseSendIdle`
//! (1 s here) cuts it off on both request engines and both HTTP versions,
//! counted as `tlsgate_timeouts_total{phase="response_send"}`.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use tlsgate_integration::hostile::h2::{ty, Event, H2};
use tlsgate_integration::hostile::harden::{Hardening, Target};
use tlsgate_integration::hostile::tls::{self, TlsOpts};
use tlsgate_integration::*;

const TIMEOUTS: &str = "tlsgate_timeouts_total";
/// Far more than the kernel buffers between the gateway and the client.
const BIG: usize = 48 << 20;
/// The deadline (1 s) and some room.
const STALL: Duration = Duration::from_millis(3000);

/// Asks for `BIG` bytes over HTTP/1.1 and reads nothing for `STALL`; then
/// reads what is there: the gateway must have closed before the end.
fn h1_stall(t: &Target, method: &str) -> Result<usize, String> {
    let mut s = tls::connect(
        t.port(),
        FRONTEND_HOST,
        &TlsOpts::default(),
        Duration::from_secs(3),
    )?;
    let req = format!(
        "{method} /bytes/{BIG} HTTP/1.1\r\nHost: {FRONTEND_HOST}\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    std::thread::sleep(STALL);
    s.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got += n,
            // A reset after the gateway gave up is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e) => return Err(format!("{method}: read after {got} bytes: {e}")),
        }
    }
    Err(format!("{method}: still sending after {got} bytes"))
}

#[test]
fn a_client_that_reads_nothing_is_cut_off() {
    let t = Hardening::short().start();
    let good = t.good_clients();
    // GET takes the direct path, POST Pingora's proxy.
    for method in ["GET", "POST"] {
        match h1_stall(&t, method) {
            Ok(got) => t.check(got < BIG, || {
                format!(
                    "(a) HTTP/1.1 {method}: the whole {got} bytes came, the gateway never gave up"
                )
            }),
            Err(e) => t.check(false, || format!("(a) HTTP/1.1 {e}")),
        }
    }

    // HTTP/2: a stream window of 0, so no DATA may be sent.
    let mut c = H2::open(t.port(), FRONTEND_HOST).unwrap_or_else(|e| panic!("{e}"));
    c.frame(ty::SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0])
        .expect("SETTINGS_INITIAL_WINDOW_SIZE 0");
    let mut ended = Vec::new();
    for method in ["GET", "POST"] {
        let body = (method == "POST").then_some(&b"x"[..]);
        let id = c
            .request(method, &format!("/bytes/{}", 1 << 20), FRONTEND_HOST, body)
            .expect("request");
        let end = c.wait(
            Duration::from_secs(4),
            |e| matches!(e, Event::Reset { stream, .. } if *stream == id),
        );
        ended.push((method, end));
    }
    for (method, end) in ended {
        t.check(matches!(end, Some(Event::Reset { .. })), || {
            format!("(a) HTTP/2 {method} with a window of 0: the stream was not reset ({end:?})")
        });
    }
    drop(c);

    let report = good.stop();
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(3));
    t.check_counted(TIMEOUTS, &[("phase", "response_send")], 4.0);
    t.finish();
}
