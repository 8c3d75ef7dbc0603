//! DestinationRule `loadBalancer.consistentHash` through the real binary,
//! curl and four backends on loopback: one key, one backend, on both
//! request engines; removing a backend moves only the keys it held.

use std::collections::BTreeMap;

use tlsgate_integration::*;

const HOST: &str = "sticky.example.com";

fn config(port: u16, backends: &[&Backend]) -> String {
    config_with(port, backends, "        httpHeaderName: x-user\n")
}

/// The same, hashing on `consistent_hash` (its fields, indented).
fn config_with(port: u16, backends: &[&Backend], consistent_hash: &str) -> String {
    let ports: Vec<u16> = backends.iter().map(|b| b.port()).collect();
    let policy = format!("    loadBalancer:\n      consistentHash:\n{consistent_hash}");
    app_service_yaml(port, HOST, &ports, &policy)
}

/// Which backend each `x-user` value reached, from what the backends
/// recorded; panics when one value reached two backends.
fn owners(backends: &[&Backend]) -> BTreeMap<String, String> {
    let mut owner = BTreeMap::new();
    for b in backends {
        for r in b.requests() {
            let user = r
                .headers
                .iter()
                .find(|(n, _)| n == "x-user")
                .map(|(_, v)| v.clone())
                .expect("every request carries x-user");
            if let Some(other) = owner.insert(user.clone(), b.name().to_string()) {
                assert_eq!(other, b.name(), "{user} reached two backends");
            }
        }
    }
    owner
}

/// `count` requests for `user` on one keep-alive connection: GETs, taken
/// by the direct path, or POSTs, taken by Pingora's proxy.
fn send(port: u16, user: &str, count: usize, direct: bool) {
    let url = format!("http://{HOST}:{port}/");
    let header = format!("x-user: {user}");
    let resolve = format!("{HOST}:{port}:127.0.0.1");
    let mut args = vec!["-w", "%{http_code}\n", "--resolve", &resolve];
    args.extend(["-H", &header]);
    if !direct {
        // A request with a body is handed to Pingora's proxy.
        args.extend(["--data", "x"]);
    }
    for _ in 0..count {
        args.extend(["-o", "/dev/null", &url]);
    }
    let out = curl(&args);
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout.lines().filter(|l| *l == "200").count(),
        count,
        "{out}"
    );
}

#[test]
fn one_key_one_backend_and_a_removed_backend_moves_only_its_keys() {
    let backends: Vec<Backend> = ["a", "b", "c", "d"].map(Backend::start).into();
    let all: Vec<&Backend> = backends.iter().collect();
    let port = free_port();
    let conf = ConfigDir::new();
    let path = conf.write("sticky.yaml", &config(port, &all));
    let gateway = Gateway::start(&[&path], &[]);

    // 1,000 requests: 20 users x 50, half GETs (direct path), half POSTs
    // (Pingora's path).
    for k in 0..20 {
        send(port, &format!("user-{k}"), 25, true);
        send(port, &format!("user-{k}"), 25, false);
    }
    let first = owners(&all);
    assert_eq!(first.len(), 20);
    let used: std::collections::BTreeSet<_> = first.values().collect();
    assert!(used.len() >= 3, "keys spread over the backends: {first:?}");

    // 200 users, one request each, then the same after `c` is removed.
    for b in &backends {
        b.clear();
    }
    for k in 0..200 {
        send(port, &format!("u{k}"), 1, true);
    }
    let before = owners(&all);
    let rest: Vec<&Backend> = backends.iter().filter(|b| b.name() != "c").collect();
    std::fs::write(&path, config(port, &rest)).unwrap();
    let r = curl(&[
        "-X",
        "POST",
        &format!("http://{}/reload", gateway.admin_addr()),
    ]);
    assert!(r.stdout.contains("applied"), "{}", r.combined());
    for b in &backends {
        b.clear();
    }
    for k in 0..200 {
        send(port, &format!("u{k}"), 1, true);
    }
    let after = owners(&all);
    assert_eq!(backends[2].count(), 0, "the removed backend gets nothing");
    let mut moved = 0;
    for (user, was) in &before {
        let now = &after[user];
        if now != was {
            assert_eq!(was, "c", "{user} moved off a backend that stayed");
            moved += 1;
        }
    }
    // `c` held about a quarter of the keys; all of them, and only them, moved.
    let held = before.values().filter(|b| *b == "c").count();
    assert_eq!(moved, held);
    assert!((20..=80).contains(&moved), "moved {moved} of 200");
}

/// `httpCookie` with a `ttl`: a client without the cookie is given one
/// (by Pingora's engine, on either request path), and every request that
/// carries it reaches the same backend.
#[test]
fn a_cookie_is_given_once_and_then_keeps_a_client_on_one_backend() {
    let backends: Vec<Backend> = ["a", "b", "c", "d"].map(Backend::start).into();
    let all: Vec<&Backend> = backends.iter().collect();
    let port = free_port();
    let conf = ConfigDir::new();
    let cookie =
        "        httpCookie:\n          name: user\n          path: /\n          ttl: 0s\n";
    let path = conf.write("sticky.yaml", &config_with(port, &all, cookie));
    let _gateway = Gateway::start(&[&path], &[]);
    let url = format!("http://{HOST}:{port}/");
    let resolve = format!("{HOST}:{port}:127.0.0.1");
    let jar_dir = tempfile::tempdir().unwrap();
    let mut owners = std::collections::BTreeSet::new();
    for client in 0..12 {
        for b in &backends {
            b.clear();
        }
        let jar = jar_dir.path().join(format!("jar-{client}"));
        let jar = jar.to_string_lossy();
        // The first request gets the cookie: a session cookie (ttl 0s).
        let out = curl(&[
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-c",
            &jar,
            "--resolve",
            &resolve,
            &url,
        ]);
        let set: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
            .collect();
        assert_eq!(set.len(), 1, "{out}");
        assert!(
            set[0].contains("user=\"") && set[0].contains("Path=/"),
            "{}",
            set[0]
        );
        assert!(!set[0].contains("Max-Age"), "ttl 0s: a session cookie");
        // Then 10 requests with it, GETs (direct path) and POSTs (Pingora).
        for i in 0..10 {
            let mut args = vec!["-s", "-o", "/dev/null", "-b", &*jar, "--resolve", &resolve];
            if i % 2 == 1 {
                args.extend(["--data", "x"]);
            }
            args.push(&url);
            assert!(curl(&args).success());
        }
        let reached: Vec<&str> = backends
            .iter()
            .filter(|b| b.count() > 0)
            .map(|b| b.name())
            .collect();
        assert_eq!(reached.len(), 1, "client {client}: {reached:?}");
        let carried = backends
            .iter()
            .flat_map(|b| b.requests())
            .filter(|r| {
                r.headers
                    .iter()
                    .any(|(n, v)| n == "cookie" && v.contains("user="))
            })
            .count();
        assert_eq!(carried, 10, "the cookie reaches the backend too");
        owners.insert(reached[0].to_string());
    }
    assert!(owners.len() >= 2, "cookies spread clients: {owners:?}");
}
