//! Hot reload of the connection-level half: a passthrough host, a TCP
//! route and PROXY protocol settings change on ports that are already
//! open, without a restart; connections already open keep their backend.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tlsgate_integration::*;

fn tcp_yaml(port: u16, backend: u16, proxy: &str) -> String {
    format!(
        r#"apiVersion: tlsgate.io/v1
kind: GatewayRuntime
metadata: {{name: rt}}
spec:
  credentialsDir: {creds}
  listeners:
  - port: {port}
    proxyProtocol: {proxy}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  servers:
  - port: {{number: {port}, name: tcp, protocol: TCP}}
    bind: 127.0.0.1
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: db}}
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - route: [{{destination: {{host: 127.0.0.1, port: {{number: {backend}}}}}}}]
"#,
        creds = credentials_dir().display()
    )
}

fn wait_generation(g: &Gateway, n: f64) {
    let (ok, _) = g.wait_metrics(Duration::from_secs(10), |m| {
        m.sum("tlsgate_runtime_generation", &[]) >= n
    });
    assert!(ok, "generation {n}: {}", g.describe());
}

fn echo_once(s: &mut TcpStream, text: &[u8]) -> Vec<u8> {
    s.write_all(text).unwrap();
    let mut buf = vec![0u8; text.len()];
    s.read_exact(&mut buf).unwrap();
    buf
}

#[test]
fn a_reload_moves_new_connections_and_keeps_open_ones() {
    let (a, b) = (StreamBackend::echo(false), StreamBackend::echo(false));
    let conf = ConfigDir::new();
    let port = free_port();
    let path = conf.write("db.yaml", &tcp_yaml(port, a.port(), "{mode: OFF}"));
    let gateway = Gateway::start(&[&path], &[]);

    let mut open = TcpStream::connect(("127.0.0.1", port)).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(echo_once(&mut open, b"before"), b"before");
    assert_eq!(a.accepted(), 1);

    // The route moves to b, and the listener starts requiring PROXY
    // protocol from loopback.
    std::fs::write(
        &path,
        tcp_yaml(
            port,
            b.port(),
            "{mode: REQUIRED, trustedSources: [127.0.0.1/32]}",
        ),
    )
    .unwrap();
    wait_generation(&gateway, 2.0);
    assert!(
        !gateway.logs().contains("needs restart"),
        "{}",
        gateway.describe()
    );

    // The open connection keeps its backend.
    assert_eq!(echo_once(&mut open, b"after"), b"after");
    assert_eq!((a.accepted(), b.accepted()), (1, 0));

    // A new connection without a header is refused now ...
    let mut bare = TcpStream::connect(("127.0.0.1", port)).unwrap();
    bare.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = bare.write_all(b"hello");
    let mut buf = [0u8; 8];
    assert!(matches!(bare.read(&mut buf), Ok(0) | Err(_)));
    // ... and one with a header goes to b.
    let mut new = TcpStream::connect(("127.0.0.1", port)).unwrap();
    new.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    new.write_all(b"PROXY TCP4 192.0.2.1 127.0.0.1 1000 5432\r\n")
        .unwrap();
    assert_eq!(echo_once(&mut new, b"new"), b"new");
    assert_eq!(b.accepted(), 1);
    let m = gateway.metrics();
    assert_eq!(
        m.sum(
            "tlsgate_connections_refused_total",
            &[("reason", "proxy_protocol_missing")]
        ),
        1.0
    );
    // One access line per connection, when it ends (written by a log
    // thread, so possibly after the counters): wait for both.
    let open_client = format!("client=127.0.0.1:{} ", open.local_addr().unwrap().port());
    drop((open, new));
    let lines = wait_for(Duration::from_secs(5), || {
        let logs = gateway.logs();
        let line = |needle: &str| {
            logs.lines()
                .find(|l| l.contains("kind=\"tcp\"") && l.contains(needle))
                .map(str::to_string)
        };
        Some((line(&open_client)?, line("client=192.0.2.1:1000 ")?))
    });
    let (old, new) = lines.unwrap_or_else(|| panic!("no access lines\n{}", gateway.describe()));
    assert!(
        old.ends_with("generation=1"),
        "the open one kept its runtime: {old}"
    );
    assert!(new.ends_with("generation=2"), "{new}");
}

/// A passthrough host added by reload to a port that only terminated TLS.
#[test]
fn a_passthrough_host_is_added_to_a_running_port() {
    require_certs_example();
    let conf = ConfigDir::new();
    let ca = conf.path().join("ca");
    let server = conf.path().join("server");
    assert!(tlsgate_certs_ca(&ca, "Backend CA").success());
    assert!(tlsgate_certs_server(&ca, &server, "api.example.com", &["api.example.com"]).success());
    let backend = StreamBackend::tls(
        "passed through",
        tlsgate_integration::stream::acceptor_from(&server),
        false,
    );
    let frontend = Backend::start("frontend");
    let port = free_port();
    let yaml = |with_passthrough: bool| {
        let mut y = format!(
            "{}  - port: {{number: {port}, name: https, protocol: HTTPS}}\n    bind: 127.0.0.1\n    \
             hosts: [{FRONTEND_HOST}]\n    tls: {{mode: SIMPLE, credentialName: frontend-credential}}\n",
            gateway_preamble(&credentials_dir()),
        );
        if with_passthrough {
            y += &format!(
                "  - port: {{number: {port}, name: tls, protocol: TLS}}\n    bind: 127.0.0.1\n    \
                 hosts: [api.example.com]\n    tls: {{mode: PASSTHROUGH}}\n---\n\
                 apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: api}}\n\
                 spec:\n  hosts: [api.example.com]\n  gateways: [gw]\n  tls:\n  \
                 - match: [{{sniHosts: [api.example.com]}}]\n    \
                 route: [{{destination: {{host: 127.0.0.1, port: {{number: {}}}}}}}]\n",
                backend.port()
            );
        }
        format!("{y}---\n{}", route_all(FRONTEND_HOST, frontend.port()))
    };
    let path = conf.write("gw.yaml", &yaml(false));
    let gateway = Gateway::start(&[&path], &[]);
    let api = || {
        Curl::https("api.example.com", port, "/")
            .cacert(&ca.join("ca.crt"))
            .max_time(5)
            .run()
    };
    assert_ne!(api().status, 200, "not served yet");

    std::fs::write(&path, yaml(true)).unwrap();
    wait_generation(&gateway, 2.0);
    let r = api();
    assert_eq!(r.status, 200, "{r}\n{}", gateway.describe());
    assert!(r.body.contains("passed through"));
    assert!(
        !gateway.logs().contains("needs restart"),
        "{}",
        gateway.describe()
    );
    let r = Curl::https(FRONTEND_HOST, port, "/")
        .cacert(&ca_cert("example"))
        .run();
    assert_eq!(r.status, 200, "{r}");
}
