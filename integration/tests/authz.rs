//! Istio AuthorizationPolicy on seed 000's gateway, with the example
//! client certificates (great-partner carries `spiffe://acme.com/great-partner`),
//! real curl over HTTP/2 and HTTP/1.1 (the two request engines).

use std::time::Duration;

use tlsgate_integration::*;

fn policies(extra_allow: &str, great_partner_sha256: &str) -> String {
    format!(
        r#"---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: partner-orders
  namespace: istio-system
spec:
  selector:
    matchLabels:
      app: istio-ingressgateway
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["acme.com/great-partner"]
    to:
    - operation:
        hosts: ["partner.example.com"]
        methods: ["GET"{extra_allow}]
        paths: ["/orders/*"]
  - to:
    - operation:
        hosts: ["frontend.example.com"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: no-secrets
  namespace: istio-system
spec:
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/orders/secret*"]
  - when:
    - key: tlsgate.client.sha256
      values: ["{great_partner_sha256}"]
    - key: request.headers[x-blocked]
      values: ["yes"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: audit-debug
spec:
  action: AUDIT
  rules:
  - when:
    - key: request.headers[x-debug]
      values: ["1"]
    - key: connection.sni
      values: ["*.example.com"]
"#
    )
}

fn sha256() -> String {
    cert_sha256_hex(&client_cert("great-partner").0)
}

/// `curl` as each engine is reached: HTTP/2, and HTTP/1.1.
fn both(c: impl Fn() -> Curl) -> [CurlResult; 2] {
    [c().http2().run(), c().http1().run()]
}

#[test]
fn who_may_call_what_on_both_engines() {
    let s = Seed000::start_custom(&[], |_, yaml| yaml + &policies("", &sha256()));
    let partner = |path: &str| s.partner(path).client("great-partner");
    for r in both(|| partner("/orders/7")) {
        assert_eq!(r.status, 200, "{r}");
    }
    // Not GET: no ALLOW rule matches.
    for r in both(|| partner("/orders/7").args(["-X", "POST", "-d", "x"])) {
        assert_eq!(r.status, 403, "{r}");
        assert_eq!(r.body, "RBAC: access denied", "{r}");
    }
    // DENY wins over the matching ALLOW.
    for r in both(|| partner("/orders/secret-plans")) {
        assert_eq!(r.status, 403, "{r}");
    }
    // The certificate fingerprint extension, with a header.
    for r in both(|| partner("/orders/7").header("x-blocked: yes")) {
        assert_eq!(r.status, 403, "{r}");
    }
    // Another host of the gateway: allowed for anyone by its own rule.
    for r in both(|| s.frontend("/").header("x-debug: 1")) {
        assert_eq!(r.status, 200, "{r}");
    }
    assert_eq!(
        s.backend_total(),
        4,
        "only the allowed requests reached a backend"
    );

    // 4 allowed, 2 denied by no ALLOW match, 4 denied by DENY, 2 audited:
    // the last request is counted after its response, so wait for them all.
    let (ok, m) = s.gateway.wait_metrics(Duration::from_secs(5), |m| {
        m.sum("tlsgate_authz_total", &[]) >= 12.0
    });
    assert!(ok, "{}", s.gateway.describe());
    let count = |policy: &str, action: &str, result: &str| {
        m.sum(
            "tlsgate_authz_total",
            &[("policy", policy), ("action", action), ("result", result)],
        )
    };
    assert_eq!(
        count("istio-system/partner-orders", "ALLOW", "allowed"),
        4.0
    );
    assert_eq!(count("-", "ALLOW", "denied"), 2.0);
    assert_eq!(count("istio-system/no-secrets", "DENY", "denied"), 4.0);
    assert_eq!(count("audit-debug", "AUDIT", "audited"), 2.0);
    let logs = s.gateway.logs_with("authz_audit=");
    assert!(
        logs.contains("authz=\"istio-system/no-secrets[1]\""),
        "{logs}"
    );
    assert!(
        logs.contains("authz=\"istio-system/partner-orders[1]\""),
        "{logs}"
    );
    assert!(logs.contains("authz_audit=\"audit-debug[0]\""), "{logs}");
}

/// A policy change applies to the next request, on connections already
/// open too (the decision reads the live runtime).
#[test]
fn a_policy_change_is_a_hot_reload() {
    let s = Seed000::start_custom(&[], |_, yaml| yaml + &policies("", &sha256()));
    let post = || {
        s.partner("/orders/7")
            .client("great-partner")
            .args(["-X", "POST", "-d", "x"])
            .run()
    };
    assert_eq!(post().status, 403);
    let yaml = std::fs::read_to_string(&s.config_path).unwrap();
    let yaml = yaml.replace("methods: [\"GET\"]", "methods: [\"GET\", \"POST\"]");
    std::fs::write(&s.config_path, yaml).unwrap();
    let (ok, _) = s.gateway.wait_metrics(Duration::from_secs(10), |m| {
        m.sum("tlsgate_runtime_generation", &[]) >= 2.0
    });
    assert!(ok, "{}", s.gateway.describe());
    assert_eq!(post().status, 200);
}

/// A policy change under load: allowed requests keep succeeding on open
/// keep-alive connections (HTTP/1.1 and HTTP/2) while the policy is
/// reloaded again and again, and the change applies to the next request.
#[test]
fn a_policy_change_under_load_fails_no_allowed_request() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = Seed000::start_custom(&[], |_, yaml| yaml + &policies("", &sha256()));
    let stop = AtomicBool::new(false);
    let path = s.config_path.clone();
    let base = std::fs::read_to_string(&path).unwrap();
    let (ok, failed) = std::thread::scope(|sc| {
        let load: Vec<_> = [true, false]
            .into_iter()
            .map(|h2| {
                let (s, stop) = (&s, &stop);
                sc.spawn(move || {
                    let (mut ok, mut failed) = (0, 0);
                    let (crt, key) = client_cert("great-partner");
                    let (crt, key) = (crt.display().to_string(), key.display().to_string());
                    let resolve = format!("{PARTNER_HOST}:{}:127.0.0.1", s.port);
                    let url = format!("https://{PARTNER_HOST}:{}/orders/1", s.port);
                    let version = if h2 { "--http2" } else { "--http1.1" };
                    while !stop.load(Ordering::Relaxed) {
                        // Twenty requests on one keep-alive connection.
                        let mut args = vec![
                            "-s",
                            "-k",
                            version,
                            "--max-time",
                            "10",
                            "--cert",
                            &crt,
                            "--key",
                            &key,
                            "--resolve",
                            &resolve,
                            "-w",
                            "%{http_code}\n",
                        ];
                        for _ in 0..20 {
                            args.extend(["-o", "/dev/null", url.as_str()]);
                        }
                        let out = curl(&args);
                        for code in out.stdout.lines() {
                            if code.trim() == "200" {
                                ok += 1;
                            } else {
                                failed += 1;
                            }
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        for i in 0..10 {
            // Alternately allow POST too, and not: GET stays allowed.
            let extra = if i % 2 == 0 { ", \"POST\"" } else { "" };
            let yaml = base.replace("methods: [\"GET\"]", &format!("methods: [\"GET\"{extra}]"));
            std::fs::write(&path, yaml).unwrap();
            std::thread::sleep(Duration::from_millis(400));
        }
        stop.store(true, Ordering::Relaxed);
        load.into_iter()
            .map(|h| h.join().unwrap())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    let generation = s.gateway.metrics().sum("tlsgate_runtime_generation", &[]);
    assert!(
        generation >= 5.0,
        "the policy was reloaded: generation {generation}"
    );
    assert!(ok > 100, "{ok} allowed requests");
    assert_eq!(failed, 0, "{failed} allowed requests failed during reloads");
}

/// `remoteIpBlocks` read from `X-Forwarded-For` behind one trusted proxy
/// (`gatewayTopology.numTrustedProxies: 1`), and `notPrincipals`, which a
/// connection without a certificate matches (it has no principal).
#[test]
fn remote_ip_from_the_trusted_proxy_and_not_principals() {
    let s = Seed000::start_custom(&[], |_, yaml| {
        let yaml = yaml.replacen(
            "  accessLog:\n    format: text\n",
            "  accessLog:\n    format: text\n  gatewayTopology:\n    numTrustedProxies: 1\n",
            1,
        );
        yaml + r#"---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: office-only
spec:
  action: ALLOW
  rules:
  - from:
    - source:
        remoteIpBlocks: ["203.0.113.0/24"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: partners-only
spec:
  action: DENY
  rules:
  - from:
    - source:
        notPrincipals: ["acme.com/great-partner"]
    to:
    - operation:
        paths: ["/partners-only"]
"#
    });
    let xff = |c: Curl, v: &str| c.header(&format!("X-Forwarded-For: {v}"));
    for (xff_value, want) in [
        // The proxy appended the office address.
        ("203.0.113.7", 200),
        ("6.6.6.6, 203.0.113.7", 200),
        // The client wrote the office address; the proxy appended its own.
        ("203.0.113.7, 6.6.6.6", 403),
    ] {
        for r in both(|| xff(s.frontend("/"), xff_value)) {
            assert_eq!(r.status, want, "XFF {xff_value}: {r}");
        }
    }
    // No XFF: the connection's own address (127.0.0.1) is not the office.
    for r in both(|| s.frontend("/")) {
        assert_eq!(r.status, 403, "{r}");
    }
    for r in both(|| xff(s.frontend("/partners-only"), "203.0.113.7")) {
        assert_eq!(r.status, 403, "no certificate, no principal: {r}");
    }
    for r in both(|| xff(s.partner("/partners-only"), "203.0.113.7").client("great-partner")) {
        assert_eq!(r.status, 200, "{r}");
    }
    let (_, m) = s.gateway.wait_metrics(Duration::from_secs(5), |m| {
        m.sum("tlsgate_authz_total", &[("result", "denied")]) >= 6.0
    });
    let denied = |p: &str| {
        m.sum(
            "tlsgate_authz_total",
            &[("policy", p), ("result", "denied")],
        )
    };
    assert_eq!(denied("-"), 4.0, "no ALLOW rule matched");
    assert_eq!(denied("partners-only"), 2.0);
}

/// Istio's deny-all (`spec: {}`) refuses every request of every host, with
/// or without a certificate; its allow-all form (`rules: [{}]`), reloaded
/// in its place, lets them through again.
#[test]
fn deny_all_and_allow_all() {
    let policy = "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
                  metadata:\n  name: deny-all\n  namespace: istio-system\nspec: {}\n";
    let s = Seed000::start_custom(&[], |_, yaml| yaml + policy);
    for r in both(|| s.frontend("/")) {
        assert_eq!(
            (r.status, r.body.as_str()),
            (403, "RBAC: access denied"),
            "{r}"
        );
    }
    for r in both(|| s.partner("/orders/1").client("great-partner")) {
        assert_eq!(r.status, 403, "{r}");
    }
    assert_eq!(s.backend_total(), 0);
    let yaml = std::fs::read_to_string(&s.config_path).unwrap();
    std::fs::write(
        &s.config_path,
        yaml.replace("spec: {}", "spec: {rules: [{}]}"),
    )
    .unwrap();
    let (ok, _) = s.gateway.wait_metrics(Duration::from_secs(10), |m| {
        m.sum("tlsgate_runtime_generation", &[]) >= 2.0
    });
    assert!(ok, "{}", s.gateway.describe());
    for r in both(|| s.frontend("/")) {
        assert_eq!(r.status, 200, "{r}");
    }
}

/// The README's recipe: on an `OPTIONAL_MUTUAL` host, a DENY policy makes
/// a client certificate mandatory under `/admin/` and optional elsewhere.
#[test]
fn a_certificate_on_some_paths_only() {
    let s = Seed000::start_custom(&[], |_, yaml| {
        let yaml = yaml.replacen("      mode: MUTUAL\n", "      mode: OPTIONAL_MUTUAL\n", 1);
        assert!(yaml.contains("OPTIONAL_MUTUAL"));
        yaml + r#"---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admin-needs-a-certificate}
spec:
  action: DENY
  rules:
  - to: [{operation: {hosts: ["partner.example.com"], paths: ["/admin/*"]}}]
    when:
    - key: tlsgate.client.sha256
      notValues: ["*"]
"#
    });
    for r in both(|| s.partner("/orders/1")) {
        assert_eq!(r.status, 200, "no certificate, elsewhere: {r}");
    }
    for r in both(|| s.partner("/admin/users")) {
        assert_eq!(r.status, 403, "no certificate, /admin/: {r}");
    }
    for r in both(|| s.partner("/admin/users").client("great-partner")) {
        assert_eq!(r.status, 200, "a verified certificate, /admin/: {r}");
    }
    // Pirate's certificate is still refused at the handshake.
    let r = s.partner("/orders/1").client("bad-partner").run();
    assert!(r.stderr.contains("unknown ca"), "{r}");
}
