//! PROXY protocol in: a listener behind a load balancer believes the
//! header from trusted sources only; the address it carries is what
//! `X-Forwarded-For`, the access log and the decision see. Untrusted,
//! malformed, slow and missing headers close the connection, counted.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tlsgate_integration::stream::proxy_v2;
use tlsgate_integration::*;

struct Setup {
    gateway: Gateway,
    http: u16,
    https: u16,
    backend: Backend,
    _conf: ConfigDir,
}

/// A plain-HTTP and an HTTPS port, both behind a "load balancer" on
/// loopback; `trusted` is the trustedSources list, `mode` its mode.
fn start(mode: &str, trusted: &str) -> Setup {
    require_certs_example();
    let backend = Backend::start("app");
    let conf = ConfigDir::new();
    let (http, https) = (free_port(), free_port());
    let yaml = format!(
        "{}  - port: {{number: {http}, name: http, protocol: HTTP}}\n    bind: 127.0.0.1\n    hosts: ['*']\n  \
         - port: {{number: {https}, name: https, protocol: HTTPS}}\n    bind: 127.0.0.1\n    hosts: [{FRONTEND_HOST}]\n    \
         tls: {{mode: SIMPLE, credentialName: frontend-credential}}\n---\n{}",
        gateway_preamble(&credentials_dir()),
        route_all("\"*\"", backend.port()),
    )
    .replace(
        "spec:\n  credentialsDir:",
        &format!(
            "spec:\n  timeouts: {{firstBytes: 1s}}\n  listeners:\n  - port: {http}\n    proxyProtocol: {{mode: {mode}, trustedSources: [{trusted}]}}\n  \
             - port: {https}\n    proxyProtocol: {{mode: {mode}, trustedSources: [{trusted}]}}\n  credentialsDir:"
        ),
    );
    conf.write("gw.yaml", &yaml);
    let gateway = Gateway::start(&[conf.path()], &[]);
    Setup {
        gateway,
        http,
        https,
        backend,
        _conf: conf,
    }
}

/// Sends `prefix` then a GET; the response text, or "" when closed.
fn raw_get(port: u16, prefix: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(prefix);
    let _ = s.write_all(b"GET /who HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn refused(g: &Gateway, reason: &str) -> f64 {
    g.metrics()
        .sum("tlsgate_connections_refused_total", &[("reason", reason)])
}

#[test]
fn a_trusted_header_gives_the_client_address_to_xff_and_the_access_log() {
    let s = start("REQUIRED", "127.0.0.0/8");
    // v1, as HAProxy or curl --haproxy-protocol write it, claiming a client.
    let reply = raw_get(s.http, b"PROXY TCP4 198.51.100.9 127.0.0.1 40000 80\r\n");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let xff = s.backend.last_request().unwrap().header("x-forwarded-for");
    assert_eq!(xff.as_deref(), Some("198.51.100.9"), "{reply}");
    // v2, binary, as cloud load balancers send it.
    let v2 = proxy_v2(
        "203.0.113.7:4444".parse().unwrap(),
        "10.0.0.1:80".parse().unwrap(),
    );
    let reply = raw_get(s.http, &v2);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let xff = s.backend.last_request().unwrap().header("x-forwarded-for");
    assert_eq!(xff.as_deref(), Some("203.0.113.7"));
    // Real curl's own header, before TLS, on the HTTPS port.
    let r = Curl::https(FRONTEND_HOST, s.https, "/")
        .cacert(&ca_cert("example"))
        .arg("--haproxy-protocol")
        .run();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        r.backend_header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );

    let logs = s.gateway.logs_with("client=203.0.113.7");
    assert!(logs.contains("client=198.51.100.9"), "{logs}");
    assert!(logs.contains("client=203.0.113.7"), "{logs}");
    let m = s.gateway.metrics();
    assert_eq!(
        m.sum("tlsgate_proxy_protocol_total", &[("result", "client")]),
        3.0
    );

    // REQUIRED: a connection without a header is refused, counted.
    let r = Curl::https(FRONTEND_HOST, s.https, "/")
        .cacert(&ca_cert("example"))
        .max_time(5)
        .run();
    assert!(!r.success(), "{r}");
    assert_eq!(raw_get(s.http, b""), "");
    assert_eq!(refused(&s.gateway, "proxy_protocol_missing"), 2.0);
}

#[test]
fn untrusted_malformed_and_slow_headers_are_refused() {
    // Only 10.0.0.0/8 may speak for clients: loopback is not believed.
    let s = start("OPTIONAL", "10.0.0.0/8");
    let v1 = b"PROXY TCP4 198.51.100.9 127.0.0.1 40000 80\r\n";
    assert_eq!(raw_get(s.http, v1), "", "an untrusted source's header");
    assert_eq!(refused(&s.gateway, "proxy_protocol_untrusted"), 1.0);
    // OPTIONAL: without a header the socket's address stands.
    let reply = raw_get(s.http, b"");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let xff = s.backend.last_request().unwrap().header("x-forwarded-for");
    assert_eq!(xff.as_deref(), Some("127.0.0.1"));
    drop(s);

    let s = start("REQUIRED", "127.0.0.1/32");
    for bad in [
        &b"PROXY TCP4 198.51.100.9 127.0.0.1 040000 80\r\n"[..],
        b"PROXY TCP4 not-an-address 127.0.0.1 1 80\r\n",
        b"PROXY TCP6 198.51.100.9 127.0.0.1 1 80\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
    ] {
        assert_eq!(raw_get(s.http, bad), "", "{}", String::from_utf8_lossy(bad));
    }
    assert_eq!(refused(&s.gateway, "proxy_protocol_invalid"), 4.0);
    // A header trickled past firstBytes (1 s here) is cut off.
    let mut slow = TcpStream::connect(("127.0.0.1", s.http)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"PROXY TCP4 ").unwrap();
    let mut buf = [0u8; 16];
    let started = std::time::Instant::now();
    assert!(matches!(slow.read(&mut buf), Ok(0) | Err(_)));
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(refused(&s.gateway, "first_bytes_timeout"), 1.0);
    // Good clients are still served.
    let reply = raw_get(s.http, b"PROXY TCP4 192.0.2.1 127.0.0.1 1 80\r\n");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    drop(s);

    // REQUIRED, and loopback is not trusted: refused at once, before a
    // byte is read (a silent stranger holds no slot for firstBytes).
    let s = start("REQUIRED", "10.0.0.0/8");
    let started = std::time::Instant::now();
    // The reset can come before a loaded machine returns from connect().
    match TcpStream::connect(("127.0.0.1", s.http)) {
        Ok(mut silent) => {
            silent
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            assert!(matches!(silent.read(&mut buf), Ok(0) | Err(_)));
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(refused(&s.gateway, "proxy_protocol_untrusted"), 1.0);
    assert_eq!(refused(&s.gateway, "first_bytes_timeout"), 0.0);
}
