//! The request head tlsgate sends upstream on the direct path. The same
//! edits as Pingora's path (`headers.rs`), in the same order of effect:
//! identity headers replaced, then the route's remove / set / add.

use std::io::Write;
use std::net::IpAddr;

use super::head::{text, Method};
use crate::config::HttpRoute;
use crate::proxy::headers::rewrite_path;

/// Headers never forwarded as the client sent them: hop-by-hop ones, and
/// the identity headers only tlsgate may set.
const DROPPED: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "http2-settings",
    "x-forwarded-client-cert",
    "x-forwarded-proto",
    "x-forwarded-for",
];

/// What is forwarded of the client's request.
pub struct Outgoing<'a, I> {
    pub method: Method,
    pub target: &'a str,
    /// Name and value of each header, in order.
    pub headers: I,
    /// A `Host` to add (HTTP/2 carries it as `:authority`).
    pub host: Option<&'a str>,
}

/// Name and value of each parsed HTTP/1.1 header.
pub fn h1_headers<'a>(
    headers: &'a [httparse::Header<'a>],
) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
    headers.iter().map(|h| (h.name, h.value))
}

/// Writes the upstream request head into `out` (cleared first).
pub fn upstream_request<'a, I: Iterator<Item = (&'a str, &'a [u8])>>(
    out: &mut Vec<u8>,
    req: Outgoing<'a, I>,
    route: Option<&HttpRoute>,
    xfcc: Option<&str>,
    client_ip: Option<IpAddr>,
    tls: bool,
) {
    out.clear();
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    match route.and_then(|r| r.rewrite_uri.as_deref().map(|new| (r, new))) {
        Some((r, new)) => {
            let (path, query) = match req.target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (req.target, None),
            };
            out.extend_from_slice(rewrite_path(r, path, new).as_bytes());
            if let Some(q) = query {
                out.push(b'?');
                out.extend_from_slice(q.as_bytes());
            }
        }
        None => out.extend_from_slice(req.target.as_bytes()),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");

    let edits = route.map(|r| &r.request_headers);
    let edited = |name: &str| {
        edits.is_some_and(|e| {
            e.remove.iter().any(|n| n.eq_ignore_ascii_case(name))
                || e.set.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
        })
    };
    if let Some(host) = req.host.filter(|_| !edited("host")) {
        line(out, b"host", host.as_bytes());
    }
    let mut prev_xff = None;
    for (name, value) in req.headers {
        if name.eq_ignore_ascii_case("x-forwarded-for") && prev_xff.is_none() {
            // As Pingora's path reads it: a value that is not text is
            // dropped rather than carried on.
            prev_xff = Some(value).filter(|v| text(v).is_some());
        }
        if DROPPED.iter().any(|d| same_name(name, d)) || edited(name) {
            continue;
        }
        line(out, name.as_bytes(), value);
    }
    if let Some(v) = xfcc.filter(|_| !edited("x-forwarded-client-cert")) {
        line(out, b"x-forwarded-client-cert", v.as_bytes());
    }
    if let Some(ip) = client_ip.filter(|_| !edited("x-forwarded-for")) {
        out.extend_from_slice(b"x-forwarded-for: ");
        if let Some(prev) = prev_xff.filter(|p| !p.is_empty()) {
            out.extend_from_slice(prev);
            out.extend_from_slice(b", ");
        }
        let _ = write!(out, "{ip}\r\n");
    }
    if !edited("x-forwarded-proto") {
        let proto: &[u8] = if tls { b"https" } else { b"http" };
        line(out, b"x-forwarded-proto", proto);
    }
    if let Some(e) = edits {
        for (name, value) in e.set.iter().chain(&e.add) {
            line(out, name.as_bytes(), value.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Header names equal but for case, with `_` read as `-`: CGI-style
/// backends (WSGI, Rack, PHP) see `X_Forwarded_Client_Cert` as the real
/// thing, so it must be dropped as the real thing is.
pub fn same_name(name: &str, protected: &str) -> bool {
    name.len() == protected.len()
        && name.bytes().zip(protected.bytes()).all(|(a, b)| {
            let a = if a == b'_' { b'-' } else { a };
            a.eq_ignore_ascii_case(&b)
        })
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::super::head::{parse, Parsed};
    const MAX_HEADERS: usize = 100;
    use super::*;
    use crate::config::{HeaderEdits, RouteAction, RouteMatch, StringMatch};

    fn build(raw: &[u8], route: Option<&HttpRoute>, xfcc: Option<&str>) -> String {
        let mut storage = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
        let Parsed::Ready(head) = parse(raw, &mut storage) else {
            panic!("not a direct request")
        };
        let mut out = Vec::new();
        upstream_request(
            &mut out,
            Outgoing {
                method: head.method,
                target: head.target,
                headers: h1_headers(head.headers),
                host: None,
            },
            route,
            xfcc,
            Some("127.0.0.1".parse().unwrap()),
            true,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn identity_headers_are_ours() {
        let raw = b"GET /a HTTP/1.1\r\nHost: x.test\r\nConnection: keep-alive\r\n\
            X-Forwarded-Client-Cert: By=evil\r\nX-Forwarded-For: 10.0.0.1\r\n\
            X-Forwarded-For: 10.0.0.2\r\nX-Forwarded-Proto: http\r\nAccept: */*\r\n\r\n";
        let up = build(raw, None, Some("Hash=ab"));
        assert_eq!(
            up,
            "GET /a HTTP/1.1\r\nHost: x.test\r\nAccept: */*\r\n\
             x-forwarded-client-cert: Hash=ab\r\nx-forwarded-for: 10.0.0.1, 127.0.0.1\r\n\
             x-forwarded-proto: https\r\n\r\n"
        );
        let up = build(
            b"GET / HTTP/1.1\r\nHost: x\r\nx-forwarded-client-cert: evil\r\n\r\n",
            None,
            None,
        );
        assert!(!up.contains("evil") && !up.contains("client-cert"), "{up}");
    }

    #[test]
    fn route_rewrite_and_edits() {
        let route = HttpRoute {
            name: "r".into(),
            matches: vec![RouteMatch {
                uri: Some(StringMatch::Prefix("/old".into())),
                ..Default::default()
            }],
            action: RouteAction::DirectResponse {
                status: 200,
                body: None,
            },
            rewrite_uri: Some("/new".into()),
            timeout: None,
            retries: None,
            request_headers: HeaderEdits {
                set: vec![("x-set".into(), "1".into())],
                add: vec![("x-add".into(), "2".into())],
                remove: vec!["x-remove".into(), "x-forwarded-for".into()],
            },
        };
        let raw =
            b"GET /old/p?q=1 HTTP/1.1\r\nHost: x\r\nX-Set: 0\r\nX-Remove: 1\r\nX-Add: 1\r\n\r\n";
        let up = build(raw, Some(&route), None);
        assert_eq!(
            up,
            "GET /new/p?q=1 HTTP/1.1\r\nHost: x\r\nX-Add: 1\r\nx-forwarded-proto: https\r\n\
             x-set: 1\r\nx-add: 2\r\n\r\n"
        );
    }
}
