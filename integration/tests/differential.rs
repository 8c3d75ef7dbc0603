//! Issue 11: one decision, two executors, the same bytes. The same
//! requests go through a gateway with the direct path and through one
//! started with `--no-direct` (Pingora's proxy only), both in front of a
//! hand-written upstream that records each request head byte for byte.
//! Per request, the two upstream heads (and bodies) must be identical, and
//! the client must see the same status, headers (but `date`) and body.
//!
//! The requests cover a plain route, a route with `rewrite.uri` and
//! `headers.request.set/add/remove`, a route matched by a header, a MUTUAL
//! host (XFCC from great-partner's certificate), an egress port with a
//! ServiceEntry (Host form and absolute form), and refusals; over HTTP/1.1
//! as raw bytes (so header order, case and repetition are ours) and over
//! HTTP/2 with curl.

use std::time::Duration;

use tlsgate_integration::hostile::tls::{self, TlsOpts};
use tlsgate_integration::wire::{self, escaped_lines, line_diff, Response};
use tlsgate_integration::*;

const DIRECT: &str = "tlsgate_direct_path_total";

/// How a request is sent.
#[derive(Clone, Copy)]
enum Via {
    /// Raw HTTP/1.1 over TLS with this SNI (and client certificate).
    H1(&'static str, Option<&'static str>),
    /// Raw HTTP/1.1 in plain text to the egress port.
    Egress,
    /// `curl --http2 -i` to this SNI (and client certificate) with these
    /// arguments; the case's request is the path.
    H2(&'static str, Option<&'static str>, &'static [&'static str]),
}

struct Case {
    name: &'static str,
    via: Via,
    request: &'static str,
    /// The status the client must get (so a case cannot pass by failing
    /// the same way on both engines).
    status: u16,
}

const F: &str = "frontend.example.com";
const P: &str = "partner.example.com";
const GREAT: Option<&str> = Some("great-partner");

fn cases() -> Vec<Case> {
    use Via::*;
    let c = |name, via, request, status| Case {
        name,
        via,
        request,
        status,
    };
    vec![
        c("plain route, query", H1(F, None), "GET /plain?a=1&b=two HTTP/1.1\r\nHost: frontend.example.com\r\nUser-Agent: differential/1\r\nAccept: */*\r\n\r\n", 200),
        c("forged identity headers and look-alikes", H1(F, None), "GET /identity HTTP/1.1\r\nHost: frontend.example.com\r\nX-Forwarded-Client-Cert: By=spiffe://evil/x;Hash=00\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 10.1.1.1\r\nx-forwarded-for: 10.2.2.2\r\nX-Forwarded-Proto: http\r\nx_forwarded_client_cert: evil\r\nX-Forwarded-Host: evil.test\r\nAccept: */*\r\n\r\n", 200),
        c("Connection naming a header, TE, proxy headers", H1(F, None), "GET /hop HTTP/1.1\r\nHost: frontend.example.com\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nTE: trailers\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n", 200),
        c("hop-by-hop headers a direct GET may carry", H1(F, None), "GET /hop2 HTTP/1.1\r\nHost: frontend.example.com\r\nConnection: keep-alive\r\nTE: trailers\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nX-After: 1\r\nAccept: */*\r\n\r\n", 200),
        c("repeated and mixed-case headers", H1(F, None), "GET /repeat HTTP/1.1\r\nHost: frontend.example.com\r\nX-Multi: a\r\nx-other: 1\r\nX-MULTI: b\r\nCookie: a=1\r\nCookie: b=2\r\nX-Mixed-Case: Value  With  Spaces\r\nACCEPT: */*\r\n\r\n", 200),
        c("HEAD with a query", H1(F, None), "HEAD /head?x=1 HTTP/1.1\r\nHost: frontend.example.com\r\nAccept: */*\r\n\r\n", 200),
        c("rewrite.uri and headers set/add/remove", H1(F, None), "GET /old/thing?q=1 HTTP/1.1\r\nHost: frontend.example.com\r\nUser-Agent: removed-by-route\r\nX-Remove: gone\r\nX-Set: client\r\nX-Add: client\r\nX-Forwarded-Proto: client\r\nAccept: */*\r\n\r\n", 200),
        c("route matched by a header", H1(F, None), "GET /plain HTTP/1.1\r\nHost: frontend.example.com\r\nX-Variant: b\r\nX-Route: client\r\n\r\n", 200),
        c("Connection: close", H1(F, None), "GET /close HTTP/1.1\r\nHost: frontend.example.com\r\nConnection: close\r\n\r\n", 200),
        c("Host in capitals", H1(F, None), "GET /case HTTP/1.1\r\nhost: FRONTEND.example.com\r\n\r\n", 200),
        c("HTTP/1.0", H1(F, None), "GET /ten HTTP/1.0\r\nHost: frontend.example.com\r\n\r\n", 200),
        c("POST with a body", H1(F, None), "POST /post HTTP/1.1\r\nHost: frontend.example.com\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Forwarded-For: 10.0.0.1\r\n\r\nhello", 200),
        c("misdirected Host", H1(F, None), "GET / HTTP/1.1\r\nHost: partner.example.com\r\n\r\n", 421),
        c("MUTUAL host, forged XFCC", H1(P, GREAT), "GET /who HTTP/1.1\r\nHost: partner.example.com\r\nX-Forwarded-Client-Cert: By=forged\r\nAccept: */*\r\n\r\n", 200),
        c("egress, Host form", Egress, "GET /e?x=1 HTTP/1.1\r\nHost: ext.remote.test:8000\r\nX-Forwarded-For: 1.2.3.4\r\nAccept: */*\r\n\r\n", 200),
        c("egress, absolute form", Egress, "GET http://ext.remote.test:8000/p?q=1 HTTP/1.1\r\nHost: ext.remote.test:8000\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nAccept: */*\r\n\r\n", 200),
        c("egress, absolute form without Host", Egress, "GET http://ext.remote.test:8000/nohost HTTP/1.1\r\nAccept: */*\r\n\r\n", 200),
        c("egress, unregistered host", Egress, "GET / HTTP/1.1\r\nHost: unknown.remote.test\r\n\r\n", 502),
        c("h2 plain route, forged identity", H2(F, None, &["-H", "X-Forwarded-For: 10.9.9.9", "-H", "X-Forwarded-Client-Cert: forged", "-H", "X_Forwarded_For: 6.6.6.6"]), "/h2/plain?a=1", 200),
        c("h2 TE, proxy header, repeated header", H2(F, None, &["-H", "te: trailers", "-H", "X-Multi: a", "-H", "X-Other: 1", "-H", "X-Multi: b", "-H", "Proxy-Authorization: Basic Zm9vOmJhcg=="]), "/h2/repeat", 200),
        c("h2 HEAD", H2(F, None, &["-I"]), "/h2/head?x=1", 200),
        c("h2 rewrite and header edits", H2(F, None, &["-H", "X-Remove: gone", "-H", "X-Set: client", "-H", "X-Add: client"]), "/old/h2?q=2", 200),
        c("h2 route matched by a header", H2(F, None, &["-H", "X-Variant: b"]), "/h2/variant", 200),
        c("h2 MUTUAL host, forged XFCC", H2(P, GREAT, &["-H", "X-Forwarded-Client-Cert: By=forged"]), "/h2/who", 200),
        c("h2 POST", H2(F, None, &["-d", "hello"]), "/h2/post", 200),
        c("h2 POST through rewrite.uri", H2(F, None, &["-d", "hello"]), "/old/h2post", 200),
    ]
}

/// Every request gets the same answer, with headers a proxy could change
/// (case, repetition, hop-by-hop); a HEAD gets it without the body.
fn answer(method: &str, _target: &str) -> Answer {
    const HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Upstream-Case: Kept\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nKeep-Alive: timeout=30\r\nCache-Control: no-store\r\n\r\n";
    if method == "HEAD" {
        Answer::keep(HEAD.as_bytes())
    } else {
        Answer::keep(format!("{HEAD}hello").as_bytes())
    }
}

/// The configuration both gateways run, but for their ports.
fn config(tls: u16, egress: u16, upstream: u16) -> String {
    let dest = format!("destination: {{host: 127.0.0.1, port: {{number: {upstream}}}}}");
    format!(
        r#"apiVersion: tlsgate.io/v1
kind: GatewayRuntime
metadata: {{name: rt}}
spec:
  credentialsDir: {creds}
  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  servers:
  - port: {{number: {tls}, name: https-frontend, protocol: HTTPS}}
    bind: 127.0.0.1
    hosts: [frontend.example.com]
    tls: {{mode: SIMPLE, credentialName: frontend-credential}}
  - port: {{number: {tls}, name: https-partner, protocol: HTTPS}}
    bind: 127.0.0.1
    hosts: [partner.example.com]
    tls: {{mode: MUTUAL, credentialName: partner-credential}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: egress}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: {egress}, name: http, protocol: HTTP}}
    bind: 127.0.0.1
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: ingress}}
spec:
  hosts: [frontend.example.com, partner.example.com]
  gateways: [gw]
  http:
  - name: by-header
    match:
    - headers: {{x-variant: {{exact: b}}}}
    route:
    - {dest}
    headers:
      request:
        set: {{x-route: by-header}}
  - name: rewritten
    match:
    - uri: {{prefix: /old}}
    rewrite: {{uri: /new}}
    route:
    - {dest}
    headers:
      request:
        set: {{x-set: route, X-Forwarded-Proto: from-route}}
        add: {{x-add: route}}
        remove: [x-remove, user-agent]
  - name: plain
    route:
    - {dest}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ext}}
spec:
  hosts: [ext.remote.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {{number: 8000, name: http, protocol: HTTP, targetPort: {upstream}}}
  endpoints:
  - address: 127.0.0.1
"#,
        creds = credentials_dir().display(),
    )
}

/// One gateway, its own recording upstream and ports.
struct Side {
    name: &'static str,
    gateway: Gateway,
    up: RawUpstream,
    tls: u16,
    egress: u16,
    _conf: ConfigDir,
}

impl Side {
    fn start(name: &'static str, extra: &[&str]) -> Side {
        let up = RawUpstream::start(answer);
        let (tls, egress) = (free_port(), free_port());
        let conf = ConfigDir::new();
        let path = conf.write("gateway.yaml", &config(tls, egress, up.port()));
        let gateway = Gateway::start(&[&path], extra);
        Side {
            name,
            gateway,
            up,
            tls,
            egress,
            _conf: conf,
        }
    }

    /// Sends `case`; the response, and what reached the upstream.
    fn send(&self, case: &Case) -> (Result<Response, String>, Vec<Received>) {
        self.up.take();
        let timeout = Duration::from_secs(5);
        let response = match case.via {
            Via::H1(sni, client) => {
                let opts = TlsOpts {
                    client,
                    alpn: &["http/1.1"],
                    ..TlsOpts::default()
                };
                tls::connect(self.tls, sni, &opts, timeout)
                    .and_then(|mut s| wire::exchange(&mut s, case.request.as_bytes()))
            }
            Via::Egress => tls::tcp(self.egress, timeout)
                .and_then(|mut s| wire::exchange(&mut s, case.request.as_bytes())),
            Via::H2(sni, client, args) => self.h2(sni, client, args, case.request),
        };
        (response, self.up.take())
    }

    fn h2(
        &self,
        sni: &str,
        client: Option<&str>,
        args: &[&str],
        path: &str,
    ) -> Result<Response, String> {
        let resolve = format!("{sni}:{}:127.0.0.1", self.tls);
        let ca = ca_cert("example").display().to_string();
        let host = format!("Host: {sni}");
        let url = format!("https://{sni}:{}{path}", self.tls);
        let mut all = vec!["--http2", "-i", "--resolve", &resolve, "--cacert", &ca];
        let (crt, key) = client.map(client_cert).unzip();
        let (crt, key) = (
            crt.map(|p| p.display().to_string()),
            key.map(|p| p.display().to_string()),
        );
        if let (Some(c), Some(k)) = (&crt, &key) {
            all.extend(["--cert", c.as_str(), "--key", k.as_str()]);
        }
        // Without a port, as the raw requests send it: the two gateways
        // listen on different ports.
        all.extend(["-H", &host]);
        all.extend(args);
        all.push(&url);
        let out = curl(&all);
        if !out.success() {
            return Err(format!("curl {}: {out}", all.join(" ")));
        }
        wire::parse_curl_i(out.stdout.as_bytes())
    }
}

/// The response as compared: `date` left out.
fn response_lines(r: &Result<Response, String>) -> Vec<String> {
    match r {
        Ok(r) => {
            let mut lines = r.head_lines(&["date"]);
            lines.push(String::new());
            lines.extend(escaped_lines(&r.body));
            lines
        }
        Err(e) => vec![format!("(no response: {e})")],
    }
}

fn upstream_lines(received: &[Received]) -> Vec<String> {
    if received.is_empty() {
        return vec!["(nothing reached the upstream)".into()];
    }
    let mut lines = Vec::new();
    for r in received {
        lines.extend(escaped_lines(&r.head));
        lines.extend(escaped_lines(&r.body));
    }
    lines
}

fn via_text(via: Via) -> String {
    match via {
        Via::H1(sni, client) => format!("HTTP/1.1 over TLS, SNI {sni}, client cert {client:?}"),
        Via::Egress => "HTTP/1.1 plain text to the egress port".into(),
        Via::H2(sni, client, args) => {
            format!("curl --http2, SNI {sni}, client cert {client:?}, {args:?}")
        }
    }
}

#[test]
fn both_engines_send_the_same_bytes_upstream_and_the_same_response_to_the_client() {
    require_certs_example();
    let direct = Side::start("direct", &[]);
    let pingora = Side::start("pingora (--no-direct)", &["--no-direct"]);
    let mut report = String::new();
    let mut differing = Vec::new();
    for case in cases() {
        let (resp_a, up_a) = direct.send(&case);
        let (resp_b, up_b) = pingora.send(&case);
        let mut problems = String::new();
        let (ua, ub) = (upstream_lines(&up_a), upstream_lines(&up_b));
        if ua != ub {
            problems.push_str(&format!(
                "  upstream request bytes differ (- {}, + {}):\n{}",
                direct.name,
                pingora.name,
                line_diff(&ua, &ub)
            ));
        }
        let (ra, rb) = (response_lines(&resp_a), response_lines(&resp_b));
        if ra != rb {
            problems.push_str(&format!(
                "  client-visible responses differ (- {}, + {}):\n{}",
                direct.name,
                pingora.name,
                line_diff(&ra, &rb)
            ));
        }
        for (side, resp) in [(&direct, &resp_a), (&pingora, &resp_b)] {
            let got = resp.as_ref().map_or(0, |r| r.status);
            if got != case.status {
                problems.push_str(&format!(
                    "  {}: status {got}, expected {}\n",
                    side.name, case.status
                ));
            }
        }
        let verdict = if problems.is_empty() {
            "same"
        } else {
            "DIFFERENT"
        };
        eprintln!("[{verdict}] {} ({})", case.name, via_text(case.via));
        if !problems.is_empty() {
            report.push_str(&format!(
                "case {:?} ({}):\n  request {:?}\n{problems}\n",
                case.name,
                via_text(case.via),
                case.request
            ));
            differing.push(case.name);
        }
    }
    let served = |s: &Side| s.gateway.metrics().sum(DIRECT, &[("outcome", "served")]);
    assert!(
        served(&direct) > 0.0,
        "the direct path served nothing\n{}",
        direct.gateway.describe()
    );
    assert_eq!(served(&pingora), 0.0, "--no-direct used the direct path");
    eprintln!(
        "direct path served {} of {} requests on the direct gateway",
        served(&direct),
        cases().len()
    );
    assert!(
        differing.is_empty(),
        "{} of {} cases differ between the engines: {differing:?}\n\n{report}",
        differing.len(),
        cases().len()
    );
}
