//! DestinationRule `connectionPool` (Envoy's circuit breaking) through the
//! real binary and curl, against a slow backend on loopback: requests over
//! `maxConnections` wait in a queue of `http1MaxPendingRequests`, the rest
//! get 503 at once, counted; a queued request that waits too long gets 503
//! too; when the load is gone, every request is served again.

use std::time::{Duration, Instant};

use tlsgate_integration::*;

const HOST: &str = "pool.example.com";

/// As istio.io's "Circuit Breaking" task writes its DestinationRule (the
/// outlier detection left out), in front of `backend`.
fn config(port: u16, backend: &Backend, pending_timeout: &str) -> String {
    let runtime = format!(
        "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata:\n  name: rt\nspec:\n  \
         timeouts:\n    upstreamPending: {pending_timeout}\n---\n"
    );
    let policy =
        "    connectionPool:\n      tcp:\n        maxConnections: 1\n      http:\n        \
                  http1MaxPendingRequests: 1\n        maxRequestsPerConnection: 1\n";
    runtime + &app_service_yaml(port, HOST, &[backend.port()], policy)
}

/// Status codes of `n` concurrent clients, each sending one request for
/// `path`, half of them with a body (Pingora's engine), half without (the
/// direct path).
fn concurrent(port: u16, path: &str, n: usize) -> Vec<u16> {
    let url = format!("http://{HOST}:{port}{path}");
    let resolve = format!("{HOST}:{port}:127.0.0.1");
    let clients: Vec<_> = (0..n)
        .map(|i| {
            let (url, resolve) = (url.clone(), resolve.clone());
            std::thread::spawn(move || {
                let mut args = vec![
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--resolve",
                    &resolve,
                ];
                if i % 2 == 1 {
                    args.extend(["--data", "x"]);
                }
                args.push(&url);
                let out = curl(&args);
                out.stdout.trim().parse::<u16>().unwrap_or(0)
            })
        })
        .collect();
    clients.into_iter().map(|c| c.join().unwrap()).collect()
}

#[test]
fn over_the_limits_requests_queue_then_overflow_with_503_and_are_counted() {
    let backend = Backend::start("httpbin");
    let port = free_port();
    let conf = ConfigDir::new();
    let path = conf.write("pool.yaml", &config(port, &backend, "10s"));
    let gateway = Gateway::start(&[&path], &[]);

    // 8 clients at once, each request held 600 ms by the backend: one in
    // flight, one queued (it runs after the first), six refused at once.
    let start = Instant::now();
    let codes = concurrent(port, "/delay/600", 8);
    let ok = codes.iter().filter(|c| **c == 200).count();
    let refused = codes.iter().filter(|c| **c == 503).count();
    assert_eq!((ok, refused), (2, 6), "{codes:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(1100),
        "the queued one waited"
    );
    assert_eq!(
        backend.max_in_flight(),
        1,
        "never more than maxConnections at the backend"
    );
    let m = gateway.metrics();
    assert_eq!(
        m.sum(
            "tlsgate_upstream_overflow_total",
            &[("destination", "app.internal:80"), ("reason", "pending")]
        ),
        6.0
    );
    let logs = gateway.logs_with("upstream_overflow");
    assert!(logs.contains("upstream_overflow"), "{logs}");

    // The load is gone: each request is served again.
    for _ in 0..5 {
        assert_eq!(concurrent(port, "/", 1), [200]);
    }
    assert_eq!(backend.in_flight(), 0);
}

#[test]
fn a_queued_request_that_waits_too_long_gets_503() {
    let backend = Backend::start("httpbin");
    let port = free_port();
    let conf = ConfigDir::new();
    let path = conf.write("pool.yaml", &config(port, &backend, "300ms"));
    let gateway = Gateway::start(&[&path], &[]);

    // One request holds the only place for 2 s; the queued one gives up
    // after 300 ms, the third is refused at once.
    let codes = concurrent(port, "/delay/2000", 3);
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [200, 503, 503], "{codes:?}");
    let m = gateway.metrics();
    let count = |reason| {
        m.sum(
            "tlsgate_upstream_overflow_total",
            &[("destination", "app.internal:80"), ("reason", reason)],
        )
    };
    assert_eq!((count("pending"), count("pending_timeout")), (1.0, 1.0));
    assert_eq!(concurrent(port, "/", 1), [200]);
}

fn ok_answer(_method: &str, _target: &str) -> tlsgate_integration::upstream::Answer {
    tlsgate_integration::upstream::Answer::keep(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
}

/// `maxRequestsPerConnection: 1` opens a connection per request, on both
/// engines; `idleTimeout` closes one that idles longer, and without it one
/// connection serves them all.
#[test]
fn upstream_connections_follow_max_requests_per_connection_and_idle_timeout() {
    let run = |http: &str, gap: Duration| {
        let upstream = tlsgate_integration::upstream::RawUpstream::start(ok_answer);
        let port = free_port();
        let conf = ConfigDir::new();
        let policy = format!("    connectionPool:\n      http: {{{http}}}\n");
        let yaml = app_service_yaml(port, HOST, &[upstream.port()], &policy);
        let path = conf.write("pool.yaml", &yaml);
        let _gateway = Gateway::start(&[&path], &[]);
        let url = format!("http://{HOST}:{port}/");
        let resolve = format!("{HOST}:{port}:127.0.0.1");
        for i in 0..6 {
            let mut args = vec!["-s", "-o", "/dev/null", "--resolve", &resolve];
            if i % 2 == 1 {
                args.extend(["--data", "x"]);
            }
            args.push(&url);
            assert!(curl(&args).success());
            std::thread::sleep(gap);
        }
        assert_eq!(upstream.received().len(), 6);
        upstream.accepted()
    };
    // Both engines keep their own pool: at most one connection each.
    let reused = run("http1MaxPendingRequests: 100", Duration::ZERO);
    assert!(reused <= 2, "reused: {reused} connections");
    assert_eq!(run("maxRequestsPerConnection: 1", Duration::ZERO), 6);
    assert_eq!(run("idleTimeout: 200ms", Duration::from_millis(400)), 6);
}
