//! TCP routes: a plain TCP port forwarded by weight, and TLS terminated
//! for a non-HTTP protocol (the decrypted stream forwarded), each with
//! half-close passed through and an idle timeout.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use openssl::ssl::{SslConnector, SslFiletype, SslMethod};
use tlsgate_integration::*;

fn yaml(creds: &std::path::Path, tcp: u16, tls: u16, a: u16, b: u16) -> String {
    format!(
        r#"apiVersion: tlsgate.io/v1
kind: GatewayRuntime
metadata: {{name: rt}}
spec:
  credentialsDir: {creds}
  listeners:
  - port: {tcp}
    tcpIdleTimeout: 1s
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: db-gateway}}
spec:
  servers:
  - port: {{number: {tcp}, name: tcp-db, protocol: TCP}}
    bind: 127.0.0.1
    hosts: ["*"]
  - port: {{number: {tls}, name: tls-db, protocol: TLS}}
    bind: 127.0.0.1
    hosts: [partner.example.com]
    tls: {{mode: MUTUAL, credentialName: partner-credential}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: db}}
spec:
  hosts: ["*"]
  gateways: [db-gateway]
  tcp:
  - match:
    - port: {tcp}
    route:
    - destination: {{host: db-a.internal, port: {{number: 5432}}}}
      weight: 50
    - destination: {{host: db-b.internal, port: {{number: 5432}}}}
      weight: 50
  - match:
    - port: {tls}
    route:
    - destination: {{host: db-a.internal, port: {{number: 5432}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: db}}
spec:
  hosts: [db-a.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 5432, name: tcp-pg, protocol: TCP}}]
  endpoints:
  - address: 127.0.0.1
    ports: {{tcp-pg: {a}}}
    labels: {{db: a}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: db-b}}
spec:
  hosts: [db-b.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 5432, name: tcp-pg, protocol: TCP}}]
  endpoints:
  - address: 127.0.0.1
    ports: {{tcp-pg: {b}}}
"#,
        creds = creds.display()
    )
}

struct Setup {
    gateway: Gateway,
    tcp: u16,
    tls: u16,
    a: StreamBackend,
    b: StreamBackend,
    _conf: ConfigDir,
}

fn start() -> Setup {
    start_with("")
}

/// [`start`] with `extra` documents in the configuration.
fn start_with(extra: &str) -> Setup {
    require_certs_example();
    let (a, b) = (StreamBackend::echo(false), StreamBackend::echo(false));
    let (tcp, tls) = (free_port(), free_port());
    let conf = ConfigDir::new();
    conf.write(
        "db.yaml",
        &(yaml(&credentials_dir(), tcp, tls, a.port(), b.port()) + extra),
    );
    let gateway = Gateway::start(&[conf.path()], &[]);
    Setup {
        gateway,
        tcp,
        tls,
        a,
        b,
        _conf: conf,
    }
}

/// A TLS connection to the `tls-db` port with `client`'s certificate.
fn tls_client(port: u16, client: &str) -> openssl::ssl::SslStream<TcpStream> {
    let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
    b.set_ca_file(ca_cert("example")).unwrap();
    let (crt, key) = client_cert(client);
    b.set_certificate_file(&crt, SslFiletype::PEM).unwrap();
    b.set_private_key_file(&key, SslFiletype::PEM).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    b.build().connect(PARTNER_HOST, tcp).unwrap()
}

/// Writes `data`, closes the writing side, reads everything back.
fn half_close_exchange<S: Read + Write>(
    s: &mut S,
    data: &[u8],
    shut: impl FnOnce(&mut S),
) -> String {
    s.write_all(data).unwrap();
    s.flush().unwrap();
    shut(s);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn tcp_is_forwarded_by_weight_with_half_close() {
    let s = start();
    let payload = vec![b'x'; 100_000];
    for _ in 0..20 {
        let mut c = TcpStream::connect(("127.0.0.1", s.tcp)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let back = half_close_exchange(&mut c, &payload, |c| c.shutdown(Shutdown::Write).unwrap());
        // Everything came back, then the backend's own last words: our
        // FIN reached it while its direction kept flowing.
        assert_eq!(back.len(), payload.len() + "ECHO-EOF 100000\n".len());
        assert!(
            back.ends_with("ECHO-EOF 100000\n"),
            "{}",
            &back[back.len() - 20..]
        );
    }
    assert_eq!(s.a.accepted() + s.b.accepted(), 20);
    assert!(
        s.a.accepted() > 0 && s.b.accepted() > 0,
        "50/50: {} {}",
        s.a.accepted(),
        s.b.accepted()
    );
    let (ok, m) = s.gateway.wait_metrics(Duration::from_secs(5), |m| {
        m.sum(
            "tlsgate_tcp_connections_total",
            &[("server", "tcp-db"), ("result", "done")],
        ) == 20.0
            // Counted just after the connection: wait for the last bytes too.
            && m.sum("tlsgate_tcp_bytes_total", &[("direction", "in")]) >= 2_000_000.0
    });
    assert!(ok, "{}", s.gateway.describe());
    assert_eq!(
        m.sum("tlsgate_tcp_bytes_total", &[("direction", "in")]),
        2_000_000.0
    );
}

#[test]
fn an_idle_tcp_connection_is_closed() {
    let s = start();
    let mut c = TcpStream::connect(("127.0.0.1", s.tcp)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    let (ok, _) = s.gateway.wait_metrics(Duration::from_secs(3), |m| {
        m.sum(
            "tlsgate_tcp_connections_total",
            &[("result", "idle_timeout")],
        ) == 1.0
    });
    assert!(ok, "{}", s.gateway.describe());
}

#[test]
fn tls_is_terminated_and_the_stream_forwarded_with_the_client_identity_logged() {
    let s = start();
    let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
    b.set_ca_file(ca_cert("example")).unwrap();
    let (crt, key) = client_cert("great-partner");
    b.set_certificate_file(&crt, SslFiletype::PEM).unwrap();
    b.set_private_key_file(&key, SslFiletype::PEM).unwrap();
    b.set_alpn_protos(b"\x02h2\x08http/1.1").unwrap();
    let connector = b.build();
    let tcp = TcpStream::connect(("127.0.0.1", s.tls)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = connector.connect(PARTNER_HOST, tcp).unwrap();
    assert_eq!(
        tls.ssl().selected_alpn_protocol(),
        None,
        "a relayed stream is not h2 or HTTP/1.1"
    );
    let back = half_close_exchange(&mut tls, b"SELECT 1;", |t| {
        t.shutdown().unwrap();
    });
    assert_eq!(back, "SELECT 1;ECHO-EOF 9\n");
    assert_eq!(s.a.accepted(), 1);
    let (ok, _) = s.gateway.wait_metrics(Duration::from_secs(3), |m| {
        m.sum("tlsgate_tcp_connections_total", &[("server", "tls-db")]) == 1.0
    });
    assert!(ok, "{}", s.gateway.describe());
    let logs = s.gateway.logs_with("server=\"tls-db\"");
    let line = logs
        .lines()
        .find(|l| l.contains("kind=\"tcp\"") && l.contains("server=\"tls-db\""))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(
        line.contains("great-partner"),
        "the client identity: {line}"
    );

    // Pirate's certificate is refused at the handshake: no stream.
    let r = Curl::https(PARTNER_HOST, s.tls, "/")
        .insecure()
        .client("bad-partner")
        .run();
    assert!(r.stderr.contains("unknown ca"), "{r}");
    assert_eq!(s.a.accepted(), 1);
}

/// AuthorizationPolicies apply to relayed connections with Istio's TCP
/// rules, and both verdicts are counted as a request's are.
#[test]
fn relayed_connections_are_authorized_by_principal_and_counted() {
    let s = start_with(
        r#"---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-partners}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: ["acme.com/great-partner"]}}]
"#,
    );
    let mut tls = tls_client(s.tls, "great-partner");
    let back = half_close_exchange(&mut tls, b"SELECT 1;", |t| {
        t.shutdown().unwrap();
    });
    assert_eq!(back, "SELECT 1;ECHO-EOF 9\n");
    // Plain TCP carries no principal: refused before a backend is dialled.
    let mut c = TcpStream::connect(("127.0.0.1", s.tcp)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let _ = c.write_all(b"SELECT 1;");
    let _ = c.read_to_end(&mut out);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    assert_eq!(s.a.accepted() + s.b.accepted(), 1);
    let (ok, m) = s.gateway.wait_metrics(Duration::from_secs(5), |m| {
        m.sum("tlsgate_authz_total", &[]) >= 2.0
            && m.sum("tlsgate_tcp_connections_total", &[]) >= 1.0
    });
    assert!(ok, "{}", s.gateway.describe());
    let count = |policy: &str, result: &str| {
        m.sum(
            "tlsgate_authz_total",
            &[("policy", policy), ("action", "ALLOW"), ("result", result)],
        )
    };
    assert_eq!(count("db-partners", "allowed"), 1.0);
    assert_eq!(count("-", "denied"), 1.0);
    assert_eq!(
        m.sum(
            "tlsgate_connections_refused_total",
            &[("reason", "authz_denied")]
        ),
        1.0
    );
    let logs = s.gateway.logs_with("server=\"tls-db\"");
    assert!(logs.contains("authz=\"db-partners[0]\""), "{logs}");
}
