//! Routing: matches, rewrites, header edits, redirects, direct responses,
//! timeouts, HTTP/2 downstream.

use std::time::Duration;

use tlsgate_integration::*;

struct Env {
    gateway: Gateway,
    v1: Backend,
    v2: Backend,
    port: u16,
    _conf: ConfigDir,
}

impl Env {
    fn get(&self, path: &str) -> Curl {
        Curl::https(FRONTEND_HOST, self.port, path).cacert(&ca_cert("example"))
    }
}

/// frontend.example.com (SIMPLE) on a free port; `backend` v1/v2 subsets;
/// one VirtualService whose `http:` list is `http` (indented by 2 spaces).
fn start(http: &str) -> Env {
    require_certs_example();
    let v1 = Backend::start("v1");
    let v2 = Backend::start("v2");
    let port = free_port();
    let conf = ConfigDir::new();
    let yaml = format!(
        r#"{preamble}  - port:
      number: {port}
      name: https
      protocol: HTTPS
    bind: 127.0.0.1
    hosts:
    - frontend.example.com
    tls:
      mode: SIMPLE
      credentialName: frontend-credential
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: backend
spec:
  hosts: [backend]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  endpoints:
  - address: 127.0.0.1
    ports: {{http: {v1}}}
    labels: {{version: v1}}
  - address: 127.0.0.1
    ports: {{http: {v2}}}
    labels: {{version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: backend
spec:
  host: backend
  subsets:
  - name: v1
    labels: {{version: v1}}
  - name: v2
    labels: {{version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: frontend
spec:
  hosts: [frontend.example.com]
  gateways: [gw]
  http:
{http}"#,
        preamble = gateway_preamble(&credentials_dir()),
        v1 = v1.port(),
        v2 = v2.port(),
    );
    let path = conf.write("routing.yaml", &yaml);
    let gateway = Gateway::start(&[&path], &[]);
    Env {
        gateway,
        v1,
        v2,
        port,
        _conf: conf,
    }
}

const TO_V1: &str = "    route:\n    - destination: {host: backend, subset: v1}\n";
const TO_V2: &str = "    route:\n    - destination: {host: backend, subset: v2}\n";

#[test]
fn uri_and_header_matches_pick_the_route() {
    let http = format!(
        "  - name: exact\n    match:\n    - uri: {{exact: /exact}}\n{TO_V2}\
         \x20 - name: regex\n    match:\n    - uri: {{regex: '/re/[0-9]+'}}\n{TO_V2}\
         \x20 - name: header\n    match:\n    - headers:\n        x-version: {{exact: v2}}\n{TO_V2}\
         \x20 - name: prefix\n    match:\n    - uri: {{prefix: /v2/}}\n{TO_V2}\
         \x20 - name: default\n{TO_V1}"
    );
    let e = start(&http);
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("/exact", None, "v2"),
        ("/exact/more", None, "v1"),
        ("/re/123", None, "v2"),
        ("/re/abc", None, "v1"),
        // RE2 matches are anchored at both ends, as Envoy's safe_regex is.
        ("/re/123/x", None, "v1"),
        ("/", Some("x-version: v2"), "v2"),
        ("/", Some("x-version: v3"), "v1"),
        ("/v2/anything", None, "v2"),
        ("/v2", None, "v1"),
        ("/", None, "v1"),
    ];
    for (path, header, want) in cases {
        let mut c = e.get(path);
        if let Some(h) = header {
            c = c.header(h);
        }
        let r = c.run();
        assert_eq!(
            r.status,
            200,
            "{path} {header:?}: {r}\n{}",
            e.gateway.describe()
        );
        assert_eq!(r.json()["backend"], *want, "{path} {header:?}: {r}");
        assert_eq!(r.json()["path"], *path, "{path}: path changed: {r}");
    }
}

#[test]
fn rewrite_and_request_header_edits() {
    let http = format!(
        "  - name: api\n    match:\n    - uri: {{prefix: /api/}}\n    rewrite: {{uri: /internal/}}\n\
         \x20   headers:\n      request:\n        set: {{x-set: from-gateway}}\n\
         \x20       add: {{x-added: added}}\n        remove: [x-remove-me]\n{TO_V1}"
    );
    let e = start(&http);
    let r = e
        .get("/api/items?q=1")
        .header("x-set: from-client")
        .header("x-remove-me: secret")
        .header("x-kept: yes")
        .run();
    assert_eq!(r.status, 200, "{r}\n{}", e.gateway.describe());
    let j = r.json();
    assert_eq!(j["path"], "/internal/items?q=1", "{r}");
    assert_eq!(j["headers"]["x-set"], "from-gateway", "{r}");
    assert_eq!(j["headers"]["x-added"], "added", "{r}");
    assert!(j["headers"].get("x-remove-me").is_none(), "{r}");
    assert_eq!(j["headers"]["x-kept"], "yes", "{r}");
}

#[test]
fn redirect_and_direct_response_routes_never_reach_a_backend() {
    let http = format!(
        "  - name: moved\n    match:\n    - uri: {{exact: /old}}\n    redirect: {{uri: /new}}\n\
         \x20 - name: teapot\n    match:\n    - uri: {{exact: /teapot}}\n\
         \x20   directResponse:\n      status: 418\n      body: {{string: \"short and stout\\n\"}}\n\
         \x20 - name: default\n{TO_V1}"
    );
    let e = start(&http);
    let r = e.get("/old").verbose().run();
    assert_eq!(r.status, 301, "{r}\n{}", e.gateway.describe());
    let location = r
        .stderr
        .lines()
        .find_map(|l| {
            let l = l.strip_prefix("< ")?;
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no Location header: {r}"));
    assert!(location.ends_with("/new"), "Location: {location}");

    let r = e.get("/teapot").run();
    assert_eq!(r.status, 418, "{r}");
    assert_eq!(r.body, "short and stout\n", "{r}");

    assert_eq!(e.v1.count() + e.v2.count(), 0);
    let r = e.get("/other").run();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(e.v1.count(), 1);
}

#[test]
fn route_timeout_answers_504() {
    let http = format!(
        "  - name: slow\n    match:\n    - uri: {{prefix: /delay/}}\n    timeout: 1s\n{TO_V1}"
    );
    let e = start(&http);
    let r = e.get("/delay/100").run();
    assert_eq!(r.status, 200, "fast request: {r}\n{}", e.gateway.describe());
    let r = e.get("/delay/4000").max_time(10).run();
    assert_eq!(r.status, 504, "{r}\n{}", e.gateway.describe());
    assert!(
        r.elapsed < Duration::from_millis(3000),
        "timeout of 1s answered after {:?}",
        r.elapsed
    );
}

#[test]
fn unmatched_request_gets_404() {
    let http = format!("  - name: only\n    match:\n    - uri: {{prefix: /only}}\n{TO_V1}");
    let e = start(&http);
    let r = e.get("/only/this").run();
    assert_eq!(r.status, 200, "{r}\n{}", e.gateway.describe());
    let r = e.get("/elsewhere").run();
    assert_eq!(r.status, 404, "{r}");
    assert_eq!(e.v1.count(), 1);
}

#[test]
fn upstream_error_status_is_passed_through() {
    let e = start(TO_V1.replacen("    route", "  - route", 1).as_str());
    let r = e.get("/status/503").run();
    assert_eq!(r.status, 503, "{r}\n{}", e.gateway.describe());
    assert_eq!(r.json()["backend"], "v1", "{r}");
}

#[test]
fn http2_downstream_via_alpn_http1_upstream() {
    let s = Seed000::start();
    let r = s.frontend("/h2").http2().verbose().run();
    assert_eq!(r.status, 200, "{r}\n{}", s.gateway.describe());
    assert_eq!(r.http_version, "2", "not HTTP/2: {r}");
    assert!(
        r.stderr.contains("ALPN: server accepted h2")
            || r.stderr.contains("server accepted to use h2"),
        "{r}"
    );
    let seen = s.frontend.last_request().expect("backend got the request");
    assert_eq!(
        seen.version, "HTTP/1.1",
        "backends speak HTTP/1.1: {seen:?}"
    );
    assert_eq!(seen.path, "/h2");

    // MUTUAL host over h2 as well.
    let r = s.partner("/").client("great-partner").http2().run();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.http_version, "2", "{r}");

    // And plain HTTP/1.1 when the client offers only that.
    let r = s.frontend("/").http1().run();
    assert_eq!((r.status, r.http_version.as_str()), (200, "1.1"), "{r}");
}

#[test]
fn many_requests_on_one_h2_connection() {
    let s = Seed000::start();
    let url = format!("https://{FRONTEND_HOST}:{}/many/[1-50]", s.port);
    let resolve = format!("{FRONTEND_HOST}:{}:127.0.0.1", s.port);
    let ca = ca_cert("example");
    let out = curl(&[
        "--max-time",
        "30",
        "--http2",
        "--resolve",
        &resolve,
        "--cacert",
        &ca.to_string_lossy(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{http_version} %{num_connects}\n",
        &url,
    ]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 50, "{out}");
    assert!(lines.iter().all(|l| l.starts_with("200 2 ")), "{out}");
    let connects: u32 = lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u32>().unwrap())
        .sum();
    assert_eq!(connects, 1, "curl reconnected: {out}");
    assert_eq!(s.frontend.count(), 50);
}
