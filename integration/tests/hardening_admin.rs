//! Issue 10, finding 7: `POST /reload` on the admin port is not callable
//! from a non-loopback peer without `Authorization: Bearer <token>`, the
//! token read from `GatewayRuntime.spec.adminTokenFile`; with no token
//! configured, such peers get 403. Loopback peers keep working without one.
//! The admin port binds 0.0.0.0 here, for the length of the test, and the
//! non-loopback peer is this machine through one of its own addresses.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use tlsgate_integration::hostile::harden::{Hardening, Target};
use tlsgate_integration::hostile::net::non_loopback_ipv4;
use tlsgate_integration::hostile::raw;
use tlsgate_integration::*;

/// `POST /reload` to the admin port through `via`; the status (None: no answer).
fn post_reload(t: &Target, via: IpAddr, token: Option<&str>) -> Option<u16> {
    let addr = SocketAddr::new(via, t.seed.gateway.admin_addr().port());
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /reload HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n{auth}Connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    raw::read_reply(&mut s, Duration::from_secs(5), Duration::from_millis(100)).status
}

fn reloads(t: &Target) -> f64 {
    t.counted("tlsgate_reloads_total", &[])
}

fn admin_on_all_addresses(h: Hardening) -> Target {
    h.admin(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        free_port(),
    ))
    .start()
}

/// This machine's loopback and non-loopback addresses, if it has the latter.
fn peers() -> Option<(IpAddr, IpAddr, Ipv4Addr)> {
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!(
            "SKIPPED: this machine has no non-loopback IPv4 address to be a remote peer from"
        );
        return None;
    };
    Some((IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(ip), ip))
}

#[test]
fn reload_without_a_token_file_is_for_loopback_only() {
    let Some((lo, remote, ip)) = peers() else {
        return;
    };
    let t = admin_on_all_addresses(Hardening::none());
    let status = post_reload(&t, remote, None);
    t.check(status == Some(403), || {
        format!("(a) no token configured, POST /reload from {ip}: want 403, got {status:?}")
    });
    t.check(reloads(&t) == 0.0, || {
        format!("(a) the refused POST /reload from {ip} reloaded anyway")
    });
    let status = post_reload(&t, remote, Some("guess"));
    t.check(status == Some(403), || {
        format!("(a) no token configured, POST /reload from {ip} with a made-up token: want 403, got {status:?}")
    });
    let status = post_reload(&t, lo, None);
    t.check(status == Some(200), || {
        format!("(control) POST /reload from loopback: want 200, got {status:?}")
    });
    t.finish();
}

#[test]
fn reload_from_afar_needs_the_token_of_the_token_file() {
    let Some((lo, remote, ip)) = peers() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, "s3cret-token-for-tests\n").unwrap();
    let t = admin_on_all_addresses(
        Hardening::none().set("adminTokenFile", &token_file.display().to_string()),
    );
    for (token, want) in [
        (None, &[401u16, 403][..]),
        (Some("wrong-token"), &[401, 403][..]),
        (Some("s3cret-token-for-tests"), &[200][..]),
    ] {
        let status = post_reload(&t, remote, token);
        t.check(status.is_some_and(|s| want.contains(&s)), || {
            format!("(a) token file set, POST /reload from {ip} with {token:?}: want {want:?}, got {status:?}")
        });
    }
    t.check(reloads(&t) <= 1.0, || {
        format!("(a) {} reloads from 1 authorised call", reloads(&t))
    });
    let status = post_reload(&t, lo, None);
    t.check(status == Some(200), || {
        format!("(control) POST /reload from loopback, token file set: want 200, got {status:?}")
    });
    t.finish();
}
