//! Operations: metrics, admin endpoints, access logs, graceful shutdown,
//! the embedded default (hot reload: see reload.rs).

use std::time::{Duration, Instant};

use tlsgate_integration::*;

#[test]
fn requests_are_counted_by_host_and_code() {
    let s = Seed000::start();
    const N: usize = 5;
    for i in 0..N {
        let r = s.frontend(&format!("/count/{i}")).run();
        assert_eq!(r.status, 200, "{r}\n{}", s.gateway.describe());
    }
    let r = s
        .frontend("/")
        .header(&format!("Host: {PARTNER_HOST}"))
        .run();
    assert_eq!(r.status, 421, "{r}");

    let (ok, m) = s.gateway.wait_metrics(Duration::from_secs(3), |m| {
        m.sum("tlsgate_requests_total", &[("code", "200")]) >= N as f64
            && m.sum("tlsgate_requests_total", &[("code", "421")]) >= 1.0
    });
    assert!(ok, "requests not counted:\n{}", m.text);
    assert_eq!(
        m.sum("tlsgate_requests_total", &[("code", "200")]),
        N as f64,
        "{}",
        m.text
    );
    assert_eq!(
        m.sum(
            "tlsgate_requests_total",
            &[("code", "200"), ("host", FRONTEND_HOST)]
        ),
        N as f64,
        "host label:\n{}",
        m.text
    );
    assert_eq!(
        m.sum("tlsgate_requests_total", &[("code", "421")]),
        1.0,
        "{}",
        m.text
    );
    for label in ["server", "host", "route", "destination", "code"] {
        assert!(
            m.select("tlsgate_requests_total", &[])
                .all(|s| s.labels.contains_key(label)),
            "label {label} missing:\n{}",
            m.text
        );
    }
    let observed = m.sum("tlsgate_request_duration_seconds_count", &[]);
    assert!(
        observed >= N as f64,
        "request durations not observed:\n{}",
        m.text
    );
}

#[test]
fn handshake_failures_are_counted_by_reason() {
    let s = Seed000::start();
    let r = s.partner("/").client("bad-partner").run();
    assert!(
        r.stderr.contains("unknown ca"),
        "{r}\n{}",
        s.gateway.describe()
    );
    for _ in 0..2 {
        let r = s.partner("/").tls12().run();
        assert!(!r.success(), "{r}");
    }
    let name = "tlsgate_tls_handshake_failures_total";
    let (ok, m) = s.gateway.wait_metrics(Duration::from_secs(3), |m| {
        m.sum(name, &[("reason", "unknown_ca")]) >= 1.0
            && m.sum(name, &[("reason", "no_client_cert")]) >= 2.0
    });
    assert!(ok, "handshake failures not counted:\n{}", m.text);
    assert_eq!(
        m.sum(name, &[("reason", "unknown_ca"), ("sni", PARTNER_HOST)]),
        1.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.sum(name, &[("reason", "no_client_cert"), ("sni", PARTNER_HOST)]),
        2.0,
        "{}",
        m.text
    );
    assert!(
        m.select(name, &[])
            .all(|s| s.labels.contains_key("listener")),
        "{}",
        m.text
    );
    // Successful handshakes are not failures.
    let before = m.sum(name, &[]);
    let r = s.partner("/").client("great-partner").run();
    assert_eq!(r.status, 200, "{r}");
    let r = s.frontend("/").run();
    assert_eq!(r.status, 200, "{r}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.gateway.metrics().sum(name, &[]), before);
}

#[test]
fn admin_endpoints_describe_the_running_gateway() {
    let s = Seed000::start();
    let r = s.gateway.admin_get("/healthz/ready").unwrap();
    assert_eq!(r.status, 200, "{r:?}");

    let r = s.gateway.admin_get("/config_dump").unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let dump: serde_json::Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("/config_dump is not JSON ({e}): {}", r.body));
    let text = dump.to_string();
    for needle in ["frontend-gateway", FRONTEND_HOST, PARTNER_HOST] {
        assert!(text.contains(needle), "/config_dump lacks {needle}: {text}");
    }

    let r = s.gateway.admin_get("/certs").unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let certs: serde_json::Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("/certs is not JSON ({e}): {}", r.body));
    let list = certs
        .as_array()
        .unwrap_or_else(|| panic!("/certs is not a list: {certs}"));
    let find = |name: &str| {
        list.iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("/certs has no {name}: {certs}"))
            .clone()
    };
    let frontend = find("frontend-credential");
    for key in ["subject", "sans", "serial", "not_after", "ca_subjects"] {
        assert!(frontend.get(key).is_some(), "{key} missing: {frontend}");
    }
    assert!(
        frontend["sans"].to_string().contains(FRONTEND_HOST),
        "{frontend}"
    );
    let partner = find("partner-credential");
    let cas = partner["ca_subjects"].to_string().to_ascii_lowercase();
    assert!(cas.contains("acme"), "partner trusts Acme: {partner}");
    assert!(!cas.contains("pirate"), "{partner}");

    let r = s.gateway.admin_get("/no-such-admin-page").unwrap();
    assert_eq!(r.status, 404, "{r:?}");
}

#[test]
fn sigterm_exits_zero_promptly_and_closes_the_ports() {
    let mut s = Seed000::start();
    let r = s.frontend("/").run();
    assert_eq!(r.status, 200, "{r}");
    let admin = s.gateway.admin_addr();
    let start = Instant::now();
    let st = s.gateway.terminate(Duration::from_secs(10));
    let took = start.elapsed();
    let st =
        st.unwrap_or_else(|| panic!("still running 10 s after SIGTERM\n{}", s.gateway.describe()));
    assert!(st.success(), "exit status {st}\n{}", s.gateway.describe());
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    assert!(!port_open(s.port), "TLS port still open after exit");
    assert!(!port_open(admin.port()), "admin port still open after exit");
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let mut s = Seed000::start();
    let slow = s.frontend("/delay/800");
    let t = std::thread::spawn(move || slow.run());
    // Wait until the backend has the request, then ask the gateway to stop.
    let arrived = wait_for(Duration::from_secs(5), || {
        (s.frontend.count() == 1).then_some(())
    });
    assert!(arrived.is_some(), "request never reached the backend");
    let st = s.gateway.terminate(Duration::from_secs(10));
    let r = t.join().unwrap();
    assert_eq!(
        r.status,
        200,
        "in-flight request cut: {r}\n{}",
        s.gateway.describe()
    );
    assert!(st.map(|s| s.success()).unwrap_or(false), "exit {st:?}");
    // New connections are refused now.
    let r = s.frontend("/").run();
    assert_ne!(r.status, 200, "served after shutdown: {r}");
}

#[test]
fn json_access_log_records_each_request() {
    let s = Seed000::start_custom(&[], |_, yaml| {
        assert!(yaml.contains("format: text"));
        yaml.replace("format: text", "format: json")
    });
    for i in 0..3 {
        let r = s.frontend(&format!("/json-log-probe/{i}")).run();
        assert_eq!(r.status, 200, "{r}");
    }
    let r = s.frontend("/status/503").run();
    assert_eq!(r.status, 503, "{r}");

    /// The value of the first key named `status` anywhere in `v`.
    fn status_of(v: &serde_json::Value) -> Option<u64> {
        match v {
            serde_json::Value::Object(o) => o
                .get("status")
                .and_then(|s| s.as_u64().or_else(|| s.as_str()?.parse().ok()))
                .or_else(|| o.values().find_map(status_of)),
            serde_json::Value::Array(a) => a.iter().find_map(status_of),
            _ => None,
        }
    }
    let statuses = |logs: &str| -> Vec<u64> {
        logs.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| status_of(&v))
            .collect()
    };
    let found = wait_for(Duration::from_secs(3), || {
        let st = statuses(&s.gateway.logs());
        (st.iter().filter(|c| **c == 200).count() >= 3 && st.contains(&503)).then_some(st)
    });
    assert!(
        found.is_some(),
        "expected JSON access lines with status 200 (x3) and 503:\n{}",
        s.gateway.describe()
    );
    // Each line names its connection's span (made only when a line is
    // written): the listener, SNI and TLS version of the handshake.
    let logs = s.gateway.logs();
    let spans: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "access")
        .map(|v| v["span"].clone())
        .collect();
    assert!(spans.len() >= 4, "access lines: {logs}");
    for span in &spans {
        assert_eq!(span["name"], "conn", "{span}");
        assert_eq!(span["sni"], FRONTEND_HOST, "{span}");
        assert!(
            span["tls"]
                .as_str()
                .is_some_and(|t| t.starts_with("TLSv1.")),
            "{span}"
        );
        assert!(
            span["listener"].as_str().is_some_and(|l| !l.is_empty()),
            "{span}"
        );
    }
    // Keys and certificates never appear in logs.
    assert!(!logs.contains("PRIVATE KEY"), "a key was logged");
    assert!(!logs.contains("BEGIN CERTIFICATE"), "a PEM was logged");
}

#[test]
fn embedded_default_serves_direct_response_on_8443() {
    if !port_bindable(8443) {
        eprintln!("SKIPPED: 127.0.0.1:8443 is in use, the embedded default cannot bind it");
        return;
    }
    let g = Gateway::start_args(&[]).unwrap_or_else(|e| panic!("{e}"));
    let r = Curl::https(FRONTEND_HOST, 8443, "/anything")
        .insecure()
        .run();
    assert_eq!(r.status, 200, "{r}\n{}", g.describe());
    assert_eq!(r.body, "Hello from tlsgate\n", "{r}");
    let r = Curl::https(PARTNER_HOST, 8443, "/").insecure().run();
    assert!(
        !r.success() && r.status == 0,
        "MUTUAL without certificate: {r}"
    );
    let r = Curl::https(PARTNER_HOST, 8443, "/")
        .insecure()
        .client("great-partner")
        .run();
    assert_eq!(r.status, 200, "{r}");
    let r = Curl::https(PARTNER_HOST, 8443, "/")
        .insecure()
        .client("bad-partner")
        .run();
    assert!(r.stderr.contains("unknown ca"), "{r}");
}

/// `tlsgate drain` (a Kubernetes preStop): readiness answers 503 while
/// the gateway keeps serving, then SIGTERM ends it with nothing lost.
#[test]
fn drain_turns_readiness_off_and_keeps_serving() {
    let mut s = Seed000::start();
    assert_eq!(s.gateway.admin_get("/healthz/ready").unwrap().status, 200);
    let admin = s.gateway.admin_addr().to_string();
    let out = run_tlsgate(
        &["drain", "--admin", &admin, "--wait", "0s"],
        Duration::from_secs(10),
    );
    assert!(out.success(), "{out}");
    let r = s.gateway.admin_get("/healthz/ready").unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body, "draining\n");
    let r = s.frontend("/").run();
    assert_eq!(r.status, 200, "still serving while draining: {r}");
    let st = s.gateway.terminate(Duration::from_secs(10));
    assert!(st.map(|s| s.success()).unwrap_or(false), "exit {st:?}");
}
