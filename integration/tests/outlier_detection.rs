//! DestinationRule `outlierDetection` through the real binary and curl:
//! of three endpoints on loopback, the one that answers 500 five times in a
//! row is ejected (counted, listed by `/config_dump`) and gets no traffic
//! for `baseEjectionTime`, then comes back; on both request engines.

use std::time::{Duration, Instant};

use tlsgate_integration::upstream::{Answer, RawUpstream};
use tlsgate_integration::*;

const HOST: &str = "outlier.example.com";

fn failing(_method: &str, _target: &str) -> Answer {
    Answer::keep(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n")
}

fn config(port: u16, endpoints: &[u16]) -> String {
    let policy = "    loadBalancer:\n      simple: ROUND_ROBIN\n    outlierDetection:\n      \
                  consecutive5xxErrors: 5\n      interval: 1s\n      baseEjectionTime: 6s\n      \
                  maxEjectionPercent: 100\n";
    app_service_yaml(port, HOST, endpoints, policy)
}

/// One request; every other one with a body, so Pingora's engine serves
/// it (the others take the direct path).
fn get(port: u16, i: usize) -> u16 {
    let url = format!("http://{HOST}:{port}/");
    let resolve = format!("{HOST}:{port}:127.0.0.1");
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
    curl(&args).stdout.trim().parse().unwrap_or(0)
}

#[test]
fn an_endpoint_failing_five_times_in_a_row_is_ejected_then_comes_back() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let bad = RawUpstream::start(failing);
    let port = free_port();
    let conf = ConfigDir::new();
    let path = conf.write(
        "outlier.yaml",
        &config(port, &[a.port(), bad.port(), b.port()]),
    );
    let gateway = Gateway::start(&[&path], &[]);

    let start = Instant::now();
    let codes: Vec<u16> = (0..30).map(|i| get(port, i)).collect();
    let errors = codes.iter().filter(|c| **c == 500).count();
    assert_eq!(
        bad.received().len(),
        5,
        "ejected after its 5th 500 in a row: {codes:?}"
    );
    assert_eq!(errors, 5, "{codes:?}");
    assert_eq!(a.count() + b.count(), 25);
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "all within the ejection"
    );
    let m = gateway.metrics();
    assert_eq!(
        m.sum(
            "tlsgate_outlier_ejections_total",
            &[("destination", "app.internal:80")]
        ),
        1.0
    );
    let dump = gateway.admin_get("/config_dump").unwrap();
    let dump: serde_json::Value = serde_json::from_str(&dump.body).unwrap();
    assert_eq!(
        dump["ejected"]["app.internal:80"],
        serde_json::json!([format!("127.0.0.1:{}", bad.port())])
    );

    // After baseEjectionTime (counted from its 5th failure, before the
    // last of the 30) it takes traffic again.
    std::thread::sleep(Duration::from_millis(6300));
    for i in 0..6 {
        get(port, i);
    }
    assert!(bad.received().len() > 5, "back after the ejection time");
    let dump = gateway.admin_get("/config_dump").unwrap();
    let dump: serde_json::Value = serde_json::from_str(&dump.body).unwrap();
    assert_eq!(dump["ejected"], serde_json::json!({}));
}
