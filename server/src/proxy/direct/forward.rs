//! The request head the direct path sends upstream: the decision's
//! [`Edits`] written straight into bytes, exactly as Pingora's engine
//! applies them to its request header (`proxy/headers.rs`).

use super::head::Method;
use crate::decide::Edits;

/// What is forwarded of the client's request.
pub struct Outgoing<'a, I> {
    pub method: Method,
    pub target: &'a str,
    /// Name and value of each header, in order.
    pub headers: I,
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
    edits: &Edits,
) {
    out.clear();
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(edits.target.as_deref().unwrap_or(req.target).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let adds_host = edits
        .add
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("host"));
    let mut lines: Vec<(&str, &[u8])> = req
        .headers
        .filter(|(name, _)| !(edits.drops(name) || adds_host && name.eq_ignore_ascii_case("host")))
        .collect();
    lines.extend(edits.add.iter().map(|(n, v)| (n.as_ref(), v.as_bytes())));
    grouped(&lines, |name, value| line(out, name.as_bytes(), value));
    out.extend_from_slice(b"\r\n");
}

/// Calls `emit` for each header in the order a header map keeps them (as
/// Pingora's engine sends them): a name's lines together, at its first
/// place. Quadratic, for the few headers a request has.
pub fn grouped<'a>(lines: &[(&'a str, &'a [u8])], mut emit: impl FnMut(&'a str, &'a [u8])) {
    for (i, (name, _)) in lines.iter().enumerate() {
        if lines[..i].iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        for (n, v) in &lines[i..] {
            if n.eq_ignore_ascii_case(name) {
                emit(n, v);
            }
        }
    }
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
    use super::super::Headers;
    use super::*;
    use crate::config::{HeaderEdits, HttpRoute, RouteAction, RouteMatch, StringMatch};
    use crate::decide::EditInputs;

    const MAX_HEADERS: usize = 100;

    fn build(raw: &[u8], route: Option<&HttpRoute>, xfcc: Option<&str>) -> String {
        let mut storage = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
        let Parsed::Ready(head) = parse(raw, &mut storage) else {
            panic!("not a request")
        };
        let edits = Edits::new(
            route,
            &Headers(head.headers),
            &EditInputs {
                cert: crate::decide::client_cert::CertHeaders::sanitize_set(xfcc),
                client_ip: Some("127.0.0.1".parse().unwrap()),
                tls: true,
                path: head.target,
                absolute_form: false,
                authority: head.host,
                host_header: head.host.is_some(),
                method: head.method,
                http11: true,
            },
        );
        let mut out = Vec::new();
        let method = head.direct.unwrap_or(Method::Get);
        upstream_request(
            &mut out,
            Outgoing {
                method,
                target: head.target,
                headers: h1_headers(head.headers),
            },
            &edits,
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
             x-forwarded-client-cert: Hash=ab\r\nx-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\n\
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
            client_cert: None,
            index: 0,
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
            // The route's `x-add` joins the client's, as a header map keeps them.
            "GET /new/p?q=1 HTTP/1.1\r\nHost: x\r\nX-Add: 1\r\nx-add: 2\r\n\
             x-forwarded-proto: https\r\nx-set: 1\r\n\r\n"
        );
    }

    #[test]
    fn repeated_names_go_together_as_in_a_header_map() {
        let raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Multi: a\r\nx-other: 1\r\nX-MULTI: b\r\n\r\n";
        let up = build(raw, None, None);
        assert!(
            up.contains("X-Multi: a\r\nX-MULTI: b\r\nx-other: 1\r\n"),
            "{up}"
        );
    }

    #[test]
    fn connection_named_headers_are_hop_by_hop() {
        let raw = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: x-secret, host\r\nX-Secret: 1\r\n\r\n";
        let up = build(raw, None, None);
        assert!(!up.contains("X-Secret") && up.contains("Host: x"), "{up}");
    }
}
