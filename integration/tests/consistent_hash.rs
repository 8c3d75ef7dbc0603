//! DestinationRule `loadBalancer.consistentHash` through the real binary,
//! curl and four backends on loopback: one key, one backend, on both
//! request engines; removing a backend moves only the keys it held.

use std::collections::BTreeMap;

use tlsgate_integration::*;

const HOST: &str = "sticky.example.com";

fn config(port: u16, backends: &[&Backend]) -> String {
    let endpoints: String = backends
        .iter()
        .map(|b| {
            format!(
                "  - address: 127.0.0.1\n    ports: {{http: {}}}\n",
                b.port()
            )
        })
        .collect();
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    bind: 127.0.0.1
    hosts: [{HOST}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: sticky
spec:
  hosts: [{HOST}]
  gateways: [gw]
  http:
  - route:
    - destination:
        host: users.internal
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: users
spec:
  hosts: [users.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  endpoints:
{endpoints}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: users
spec:
  host: users.internal
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
"#
    )
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
