//! PERMISSIVE, STRICT and DISABLE on one TLS port (seed 003's flow, with
//! tlsgate in front of the workload), said with Istio's own
//! `PeerAuthentication` and switched by hot reload.

use std::time::Duration;

use tlsgate_integration::*;

/// Seed 003's `mtls.yaml`, with the mode as a parameter.
fn peer_authentication(mode: &str) -> String {
    format!(
        "---\napiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  \
         name: default\n  namespace: default\nspec:\n  mtls:\n    mode: {mode}\n"
    )
}

fn reload_to(s: &Seed000, mode: &str, generation: f64) {
    let yaml = std::fs::read_to_string(&s.config_path).unwrap();
    let base = yaml
        .split("---\napiVersion: security.istio.io")
        .next()
        .unwrap();
    std::fs::write(
        &s.config_path,
        format!("{base}{}", peer_authentication(mode)),
    )
    .unwrap();
    let (ok, _) = s.gateway.wait_metrics(Duration::from_secs(10), |m| {
        m.sum("tlsgate_runtime_generation", &[]) >= generation
    });
    assert!(ok, "reload to {mode}: {}", s.gateway.describe());
}

fn plaintext(s: &Seed000, host: &str) -> CurlResult {
    Curl::http(host, s.port, "/")
        .header("x-forwarded-client-cert: By=spoofed;Hash=00;Subject=\"CN=admin\"")
        .max_time(5)
        .run()
}

/// One plaintext request on an open keep-alive connection.
fn keep_alive_get(c: &mut std::net::TcpStream) -> String {
    use std::io::{Read, Write};
    c.write_all(b"GET / HTTP/1.1\r\nHost: frontend.example.com\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = c.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn permissive_then_strict_by_reload() {
    let s = Seed000::start_custom(&[], |_, yaml| yaml + &peer_authentication("PERMISSIVE"));

    // PERMISSIVE: plaintext HTTP is served on the TLS port ...
    let r = plaintext(&s, FRONTEND_HOST);
    assert_eq!(r.status, 200, "{r}");
    // ... without any client identity: a forged XFCC never passes ...
    assert_eq!(r.backend_header("x-forwarded-client-cert"), None, "{r}");
    // ... and never to a host that requires a client certificate.
    let r = plaintext(&s, PARTNER_HOST);
    assert_eq!(r.status, 421, "{r}");
    assert!(r.body.contains("requires a client certificate"), "{r}");
    // Mutual TLS works as before; Pirate is still refused.
    let r = s.partner("/").client("great-partner").run();
    assert_eq!(r.status, 200, "{r}");
    assert!(r.backend_header("x-forwarded-client-cert").is_some(), "{r}");
    let r = s.partner("/").client("bad-partner").run();
    assert!(
        r.stderr.contains("unknown ca"),
        "Pirate is still refused: {r}"
    );

    let mut open = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(keep_alive_get(&mut open).starts_with("HTTP/1.1 200"));

    // STRICT, applied by hot reload: plaintext is refused as in the seed ...
    reload_to(&s, "STRICT", 2.0);
    let r = plaintext(&s, FRONTEND_HOST);
    assert_eq!(r.code, Some(56), "curl: (56) Recv failure: {r}");
    let refused = s.gateway.metrics().sum(
        "tlsgate_connections_refused_total",
        &[("reason", "plaintext_on_tls_port")],
    );
    assert_eq!(refused, 1.0, "the refusal is counted");
    // ... also on a plaintext connection opened before the reload.
    let reply = keep_alive_get(&mut open);
    assert!(reply.starts_with("HTTP/1.1 421"), "{reply}");
    let r = s.partner("/").client("great-partner").run();
    assert_eq!(r.status, 200, "{r}");
    let r = s.frontend("/").run();
    assert_eq!(r.status, 200, "{r}");
}

#[test]
fn disable_takes_plaintext_only() {
    let s = Seed000::start_custom(&[], |_, yaml| yaml + &peer_authentication("DISABLE"));
    let r = plaintext(&s, FRONTEND_HOST);
    assert_eq!(r.status, 200, "{r}");
    let r = s.frontend("/").max_time(5).run();
    assert!(!r.success() && r.status == 0, "TLS is refused: {r}");
    let m = s.gateway.metrics();
    assert_eq!(
        m.sum(
            "tlsgate_connections_refused_total",
            &[("reason", "tls_on_plaintext_port")]
        ),
        1.0
    );
}

/// `portLevelMtls` sets one port apart; the rest follow `mtls.mode`.
#[test]
fn port_level_mode_wins_for_its_port() {
    let s = Seed000::start_custom(&[], |_, yaml| {
        let port = yaml
            .split("number: ")
            .nth(1)
            .and_then(|t| t.split('\n').next())
            .unwrap()
            .to_string();
        format!(
            "{yaml}---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  \
             name: default\nspec:\n  mtls: {{mode: STRICT}}\n  portLevelMtls:\n    {port}: {{mode: PERMISSIVE}}\n"
        )
    });
    let r = plaintext(&s, FRONTEND_HOST);
    assert_eq!(r.status, 200, "{r}");
}
