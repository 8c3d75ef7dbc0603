//! Istio's "Ingress Gateway without TLS Termination" (SNI passthrough)
//! task, its YAML as istio.io writes it, with its nginx replaced by a real
//! TLS server on loopback holding its own certificate (made by `tlsgate
//! certs`), on a port that also terminates TLS for another host.

use std::path::Path;
use std::time::Duration;

use tlsgate_integration::stream::acceptor_from;
use tlsgate_integration::*;

/// The task's Gateway and VirtualService, as written on istio.io.
const TASK: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: mygateway
spec:
  selector:
    istio: ingressgateway # use istio default ingress gateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    tls:
      mode: PASSTHROUGH
    hosts:
    - nginx.example.com
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: nginx
spec:
  hosts:
  - nginx.example.com
  gateways:
  - mygateway
  tls:
  - match:
    - port: 443
      sniHosts:
      - nginx.example.com
    route:
    - destination:
        host: my-nginx
        port:
          number: 443
"#;

/// Where `my-nginx` runs here (a cluster's Service would say it there),
/// and a terminated host on the same port.
fn local_parts(creds: &Path, backend: u16, frontend: u16, proxy_v2: bool) -> String {
    let rule = if proxy_v2 {
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: my-nginx\n\
         spec:\n  host: my-nginx\n  trafficPolicy:\n    proxyProtocol: {version: V2}\n"
    } else {
        ""
    };
    format!(
        r#"apiVersion: tlsgate.io/v1
kind: GatewayRuntime
metadata:
  name: rt
spec:
  credentialsDir: {creds}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: my-nginx
spec:
  hosts: [my-nginx]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: 443, name: https, protocol: TLS}}
  endpoints:
  - address: 127.0.0.1
    ports: {{https: {backend}}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: terminated
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {{number: 443, name: https-frontend, protocol: HTTPS}}
    hosts: [frontend.example.com]
    tls: {{mode: SIMPLE, credentialName: frontend-credential}}
---
{}{rule}"#,
        route_all_for("frontend.example.com", "terminated", frontend),
        creds = creds.display(),
    )
}

fn route_all_for(host: &str, gateway: &str, port: u16) -> String {
    route_all(host, port).replace("gateways: [gw]", &format!("gateways: [{gateway}]"))
}

struct Setup {
    gateway: Gateway,
    port: u16,
    ca: std::path::PathBuf,
    backend: StreamBackend,
    _frontend: Backend,
    _conf: ConfigDir,
}

fn start(proxy_v2: bool) -> Setup {
    require_certs_example();
    let conf = ConfigDir::new();
    let ca_dir = conf.path().join("example_certs");
    let server_dir = conf.path().join("nginx.example.com");
    assert!(tlsgate_certs_ca(&ca_dir, "example.com").success());
    assert!(tlsgate_certs_server(
        &ca_dir,
        &server_dir,
        "nginx.example.com",
        &["nginx.example.com"]
    )
    .success());
    let backend = StreamBackend::tls("Welcome to my-nginx", acceptor_from(&server_dir), proxy_v2);
    let frontend = Backend::start("frontend");
    let port = free_port();
    let bind = "    tls:\n      mode: PASSTHROUGH\n";
    let task = TASK
        .replace(
            "number: 443\n      name: https",
            &format!("number: {port}\n      name: https"),
        )
        .replace("- port: 443\n", &format!("- port: {port}\n"))
        .replace(bind, &format!("    bind: 127.0.0.1\n{bind}"));
    conf.write("task.yaml", &task);
    let local = local_parts(
        &credentials_dir(),
        backend.port(),
        frontend.port(),
        proxy_v2,
    )
    .replace(
        "number: 443, name: https-frontend",
        &format!("number: {port}, name: https-frontend"),
    )
    .replace(
        "hosts: [frontend.example.com]\n    tls",
        "bind: 127.0.0.1\n    hosts: [frontend.example.com]\n    tls",
    );
    conf.write("local.yaml", &local);
    let gateway = Gateway::start(&[conf.path()], &[]);
    Setup {
        gateway,
        port,
        ca: ca_dir.join("ca.crt"),
        backend,
        _frontend: frontend,
        _conf: conf,
    }
}

#[test]
fn the_istio_sni_passthrough_task_reaches_the_backends_own_certificate() {
    let s = start(false);
    // The task's curl: the backend's certificate, verified with the task's CA.
    let r = Curl::https("nginx.example.com", s.port, "/")
        .cacert(&s.ca)
        .verbose()
        .run();
    assert_eq!(r.status, 200, "{r}");
    assert!(r.body.contains("Welcome to my-nginx"), "{r}");
    assert!(
        r.stderr.contains("CN=nginx.example.com"),
        "the backend's certificate: {r}"
    );
    assert!(r.stderr.contains("SSL certificate verify ok"), "{r}");
    // openssl s_client -servername shows the backend's subject too.
    let out = openssl_s_client(
        &[
            "-connect",
            &format!("127.0.0.1:{}", s.port),
            "-servername",
            "nginx.example.com",
        ],
        b"",
        Duration::from_secs(10),
    );
    let subject = out
        .stdout
        .lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_default();
    assert!(subject.contains("nginx.example.com"), "{out}");

    // The same port still terminates TLS for the other host.
    let r = Curl::https(FRONTEND_HOST, s.port, "/")
        .cacert(&ca_cert("example"))
        .run();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["backend"], "frontend", "{r}");

    // An SNI no server names is refused as before.
    let r = Curl::https("other.example.com", s.port, "/")
        .insecure()
        .run();
    assert!(!r.success() && r.status == 0, "{r}");

    let (ok, m) = s.gateway.wait_metrics(Duration::from_secs(5), |m| {
        m.sum(
            "tlsgate_tcp_connections_total",
            &[("sni", "nginx.example.com"), ("result", "done")],
        ) >= 2.0
    });
    assert!(ok, "{}", s.gateway.describe());
    assert!(
        m.sum("tlsgate_tcp_bytes_total", &[("direction", "in")]) > 500.0,
        "the ClientHello and more"
    );
    assert!(
        m.sum("tlsgate_tcp_bytes_total", &[("direction", "out")]) > 500.0,
        "the backend's certificate"
    );
    assert_eq!(
        m.sum(
            "tlsgate_tcp_connections_total",
            &[("destination", "my-nginx:443")]
        ),
        2.0
    );
    assert_eq!(s.backend.accepted(), 2);
    let logs = s.gateway.logs_with("kind=\"tcp\"");
    let line = logs
        .lines()
        .find(|l| l.contains("kind=\"tcp\""))
        .unwrap_or_else(|| panic!("one access line per connection:\n{logs}"));
    for field in [
        "sni=\"nginx.example.com\"",
        "route=\"nginx/nginx.tls[0]\"",
        "destination=\"my-nginx:443\"",
        "result=\"done\"",
        "bytes_in=",
        "bytes_out=",
        "duration_ms=",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
}

/// PROXY protocol v2 out: the backend learns the client's address though
/// the bytes it gets are the client's own TLS.
#[test]
fn passthrough_tells_the_backend_the_client_address_with_proxy_v2() {
    let s = start(true);
    let r = Curl::https("nginx.example.com", s.port, "/")
        .cacert(&s.ca)
        .run();
    assert_eq!(r.status, 200, "{r}");
    let sources = s.backend.proxy_sources();
    assert_eq!(sources.len(), 1, "{sources:?}");
    let src = sources[0].expect("a well-formed v2 header");
    assert_eq!(src.ip().to_string(), "127.0.0.1", "{src}");
    assert_ne!(src.port(), s.port, "the client's port, not ours");
}
