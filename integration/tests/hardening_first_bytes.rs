//! Issue 13's new input path: what a listener reads before deciding (a
//! PROXY protocol header, the ClientHello's SNI on a port with
//! passthrough hosts). Each attack runs against seed 000's port with a
//! passthrough host and PROXY protocol added, good clients of both
//! terminated hosts running meanwhile; each ends with descriptors and
//! memory back at the baseline and the refusal counted.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tlsgate_integration::hostile::client_hello::ClientHello;
use tlsgate_integration::hostile::harden::Hardening;
use tlsgate_integration::*;

const REFUSED: &str = "tlsgate_connections_refused_total";
const PASS_HOST: &str = "db.pass.example.com";

/// Seed 000's port also passes `*.pass.example.com` through to `echo`,
/// and reads PROXY protocol from loopback when sent (OPTIONAL).
fn front_door(echo: u16, listener_extra: &'static str) -> Hardening {
    Hardening::short()
        .set("timeouts.firstBytes", "1s")
        .edit(move |yaml| {
            let port = yaml
                .split("number: ")
                .nth(1)
                .and_then(|t| t.split('\n').next())
                .expect("seed port")
                .to_string();
            let listeners = format!(
                "  listeners:\n  - port: {port}\n    proxyProtocol: {{mode: OPTIONAL, trustedSources: [127.0.0.1/32]}}\n{listener_extra}"
            );
            let yaml = yaml.replacen("spec:\n", &format!("spec:\n{listeners}"), 1);
            format!(
                "{yaml}---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: pass}}\n\
                 spec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  \
                 - port: {{number: {port}, name: pass, protocol: TLS}}\n    bind: 127.0.0.1\n    \
                 hosts: ['*.pass.example.com']\n    tls: {{mode: PASSTHROUGH}}\n---\n\
                 apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: pass}}\n\
                 spec:\n  hosts: ['*.pass.example.com']\n  gateways: [pass]\n  tls:\n  \
                 - match: [{{sniHosts: ['*.pass.example.com']}}]\n    \
                 route: [{{destination: {{host: 127.0.0.1, port: {{number: {echo}}}}}}}]\n"
            )
        })
}

/// Connects, sends `bytes`, closes at once (`None`: refused at accept).
fn send_and_go(port: u16, bytes: &[u8]) {
    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
        let _ = s.write_all(bytes);
    }
}

/// Connects, sends `bytes`, waits for the gateway to close; how long.
fn send_and_wait(port: u16, bytes: &[u8]) -> Duration {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 4096];
    loop {
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[test]
fn truncated_hellos_and_headers_from_clients_that_vanish() {
    let echo = StreamBackend::echo(false);
    let t = front_door(echo.port(), "").start();
    let good = t.good_clients();
    let hello = ClientHello::for_host(PASS_HOST);
    let proxy = b"PROXY TCP4 198.51.100.1 127.0.0.1 5000 443\r\n";
    let port = t.port();
    std::thread::scope(|sc| {
        for k in 0..2 {
            let hello = &hello;
            sc.spawn(move || {
                for i in 0..100 {
                    match (i + k) % 3 {
                        0 => send_and_go(port, hello.half()),
                        1 => send_and_go(port, &proxy[..20]),
                        _ => send_and_go(port, &[&proxy[..], hello.half()].concat()),
                    }
                }
            });
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let report = good.stop();
    t.check_recovered(Duration::from_secs(2));
    t.check_good(&report);
    t.check_counted(REFUSED, &[("reason", "client_closed")], 200.0);
    t.check(echo.accepted() == 0, || {
        "a truncated hello reached the backend".into()
    });
    t.finish();
}

#[test]
fn oversized_and_garbage_openings_are_refused() {
    let echo = StreamBackend::echo(false);
    let t = front_door(echo.port(), "").start();
    let good = t.good_clients();
    // A handshake message claiming 64 KiB, and one in 1-byte records
    // past the buffer's bound.
    let mut huge = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x01, 0x00, 0x00];
    huge.resize(5 + 16384, 0);
    let mut crumbs = Vec::new();
    for _ in 0..5000 {
        crumbs.extend_from_slice(&[0x16, 0x03, 0x01, 0x00, 0x01, 0x01]);
    }
    let mut noise = vec![0x16, 0x03, 0x01, 0x00, 0x40];
    noise.extend((0..64u32).map(|i| (i * 37 % 251) as u8));
    let bad_proxy = b"PROXY TCP4 1.2.3.4.5 127.0.0.1 1 2\r\n".to_vec();
    let long_proxy = [b"PROXY TCP4 ".to_vec(), vec![b'9'; 200]].concat();
    for _ in 0..20 {
        for bytes in [&huge, &crumbs, &noise, &bad_proxy, &long_proxy] {
            let waited = send_and_wait(t.port(), bytes);
            t.check(waited < Duration::from_millis(900), || {
                format!("refused at once, not at the deadline: {waited:?}")
            });
        }
    }
    let report = good.stop();
    t.check_recovered(Duration::from_secs(2));
    t.check_good(&report);
    t.check_counted(REFUSED, &[("reason", "client_hello_too_long")], 40.0);
    t.check_counted(REFUSED, &[("reason", "client_hello_invalid")], 20.0);
    t.check_counted(REFUSED, &[("reason", "proxy_protocol_invalid")], 40.0);
    t.check(echo.accepted() == 0, || {
        "garbage reached the backend".into()
    });
    t.finish();
}

#[test]
fn trickled_and_silent_openings_end_at_the_first_bytes_deadline() {
    let echo = StreamBackend::echo(false);
    let t = front_door(echo.port(), "").start();
    let good = t.good_clients();
    let hello = ClientHello::for_host(PASS_HOST);
    let started = Instant::now();
    std::thread::scope(|sc| {
        // 200 silent connections, held until the gateway closes them.
        for _ in 0..4 {
            sc.spawn(|| {
                let held: Vec<TcpStream> = (0..50)
                    .filter_map(|_| TcpStream::connect(("127.0.0.1", t.port())).ok())
                    .collect();
                for mut s in held {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let _ = std::io::Read::read(&mut s, &mut [0u8; 1]);
                }
            });
        }
        // A hello trickled one byte per 100 ms: it would take minutes.
        sc.spawn(|| {
            let mut s = TcpStream::connect(("127.0.0.1", t.port())).unwrap();
            let t0 = Instant::now();
            for b in &hello.bytes {
                if s.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
                if t0.elapsed() > Duration::from_secs(5) {
                    break;
                }
            }
            let cut = t0.elapsed();
            t.check(cut < Duration::from_secs(3), || {
                format!("trickle cut after {cut:?}")
            });
        });
    });
    eprintln!("attack over after {:?}", started.elapsed());
    let report = good.stop();
    t.check_recovered(Duration::from_secs(2));
    t.check_good(&report);
    t.check_counted(REFUSED, &[("reason", "first_bytes_timeout")], 200.0);
    t.check_counted("tlsgate_timeouts_total", &[("phase", "first_bytes")], 200.0);
    t.finish();
}

/// `listeners[].maxConnections` refuses a flood at accept; once the flood
/// is gone, good clients are served again.
#[test]
fn a_flood_meets_the_listeners_own_limit() {
    let echo = StreamBackend::echo(false);
    let t = front_door(echo.port(), "    maxConnections: 40\n").start();
    let held: Vec<TcpStream> = (0..60)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", t.port())).ok())
        .collect();
    t.check_counted(REFUSED, &[("reason", "listener_max_connections")], 20.0);
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let good = t.good_clients();
    std::thread::sleep(Duration::from_millis(500));
    let report = good.stop();
    t.check_good(&report);
    t.check_recovered(Duration::from_secs(2));
    // A passthrough client is served too.
    let r = Curl::https(PASS_HOST, t.port(), "/")
        .insecure()
        .max_time(5)
        .run();
    t.check(echo.accepted() == 1, || {
        format!("passthrough reached the echo backend: {r}")
    });
    t.finish();
}
