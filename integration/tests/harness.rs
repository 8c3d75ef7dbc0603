//! The harness itself, without tlsgate: the echo backend, curl, the admin
//! client and the process handling behave as the other tests assume.

use std::time::Duration;

use tlsgate_integration::*;

#[test]
fn backend_echoes_counts_and_records() {
    let b = Backend::start("echo");
    let r = Curl::http("backend.test", b.port(), "/some/path?q=1")
        .header("x-one: 1")
        .header("x-two: a")
        .header("x-two: b")
        .run();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.http_version, "1.1");
    let j = r.json();
    assert_eq!(j["backend"], "echo");
    assert_eq!(j["method"], "GET");
    assert_eq!(j["path"], "/some/path?q=1");
    assert_eq!(j["version"], "HTTP/1.1");
    assert_eq!(j["headers"]["x-one"], "1");
    assert_eq!(j["headers"]["x-two"], "a, b");
    assert_eq!(
        j["headers"]["host"],
        format!("backend.test:{}", b.port()).as_str()
    );
    assert_eq!(b.count(), 1);
    let rec = b.last_request().unwrap();
    assert_eq!(rec.header_all("x-two"), vec!["a", "b"]);

    let r = Curl::http("backend.test", b.port(), "/status/503").run();
    assert_eq!(r.status, 503, "{r}");
    assert_eq!(r.json()["backend"], "echo");

    let r = Curl::http("backend.test", b.port(), "/delay/300").run();
    assert_eq!(r.status, 200, "{r}");
    assert!(r.elapsed >= Duration::from_millis(300), "{r}");

    let r = Curl::http("backend.test", b.port(), "/delay/3000")
        .max_time(1)
        .run();
    assert_eq!(r.code, Some(28), "curl --max-time must stop it: {r}");
    assert!(r.elapsed < Duration::from_secs(3));

    let r = Curl::http("backend.test", b.port(), "/post")
        .args(["-d", "hello"])
        .run();
    assert_eq!(r.json()["method"], "POST");
    assert_eq!(r.json()["body"], "hello");

    // h2c with prior knowledge.
    let r = Curl::http("backend.test", b.port(), "/h2c")
        .arg("--http2-prior-knowledge")
        .run();
    assert_eq!((r.status, r.http_version.as_str()), (200, "2"), "{r}");
    assert_eq!(r.json()["version"], "HTTP/2.0");
    assert_eq!(b.count(), 6);
}

#[test]
fn backend_stops_when_dropped() {
    let b = Backend::start("gone");
    let port = b.port();
    assert!(port_open(port));
    drop(b);
    assert!(!port_open(port), "backend still listening after drop");
}

#[test]
fn curl_failures_are_reported_not_hidden() {
    let port = free_port();
    let r = Curl::https("nothing.test", port, "/").run();
    assert!(!r.success());
    assert_eq!(r.status, 0);
    assert_eq!(r.code, Some(7), "connection refused: {r}");
    let out = curl(&[
        "--resolve",
        &format!("x.test:{port}:127.0.0.1"),
        &format!("http://x.test:{port}/"),
    ]);
    assert_eq!(out.code, Some(7), "{out}");
}

#[test]
fn free_ports_are_distinct() {
    let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
    let mut sorted = ports.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ports.len());
    assert!(ports.iter().all(|p| port_bindable(*p)));
    // Below the kernel's ephemeral range, where no `bind(0)` or client
    // connection's source port can take them before the gateway binds.
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    if start >= 8192 {
        assert!(ports.iter().all(|p| *p < start), "{ports:?} vs {start}");
    }
}

#[test]
fn admin_client_reads_a_backend() {
    let b = Backend::start("admin-like");
    let r = http_get(b.addr(), "/healthz/ready", Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 200);
    let j: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(j["path"], "/healthz/ready");
    assert!(http_get(
        ([127, 0, 0, 1], free_port()).into(),
        "/",
        Duration::from_secs(2)
    )
    .is_err());
}

#[test]
fn commands_are_killed_at_their_timeout() {
    let out = run_command(
        std::ffi::OsStr::new("sleep"),
        &["30"],
        None,
        Duration::from_millis(300),
        None,
    );
    assert!(out.timed_out);
    assert_eq!(out.code, None);
    assert!(out.elapsed < Duration::from_secs(5));
    let out = run_command(
        std::ffi::OsStr::new("cat"),
        &[] as &[&str],
        Some(b"through stdin"),
        Duration::from_secs(5),
        None,
    );
    assert_eq!(out.stdout, "through stdin");
    assert!(out.success());
}

#[test]
fn seed_file_substitution_keeps_every_port_apart() {
    let p = Seed000Ports {
        gateway: 40001,
        frontend: 40002,
        backend_v1: 40003,
        backend_v2: 40004,
        admin: 40005,
    };
    let y = seed000_yaml(&p);
    for old in ["8443", "8080", "8081", "8082", "15021", "../certs-example"] {
        assert!(!y.contains(old), "{old} left in:\n{y}");
    }
    for new in 40001..=40005 {
        assert!(y.contains(&new.to_string()), "{new} missing:\n{y}");
    }
    assert!(y.contains(&credentials_dir().display().to_string()));
}
