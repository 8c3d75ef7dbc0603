//! Parsing a complete request head (the gate saw its bytes), refusing
//! what no engine may serve (ambiguous framing, duplicate Host), and
//! deciding whether the direct path may serve it: anything unusual goes to
//! Pingora, which answers it exactly as before.

use std::mem::MaybeUninit;

use super::gate::Refusal;
use crate::route::HeaderSource;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }
}

/// A complete, valid request head.
pub struct Head<'b, 'h> {
    pub method: &'b str,
    /// `GET` or `HEAD` that the direct path can forward: HTTP/1.1,
    /// origin-form target, a Host, no body, no upgrade, no `Expect`, no
    /// `Connection` names but `close` / `keep-alive`.
    pub direct: Option<Method>,
    pub target: &'b str,
    /// The `Host` header, when it is text (there is at most one).
    pub host: Option<&'b str>,
    pub http11: bool,
    /// The client asked to close after this response.
    pub close: bool,
    pub headers: &'h [httparse::Header<'b>],
}

pub enum Parsed<'b, 'h> {
    Ready(Head<'b, 'h>),
    /// More bytes are needed.
    Partial,
    /// Not to be served by any engine.
    Refused(Refusal),
}

/// Header slots for [`parse`], left uninitialised: the parser writes the
/// ones it uses (no 3 KB cleared per request).
pub type Slots<'b> = [MaybeUninit<httparse::Header<'b>>];

pub fn parse<'b, 'h>(buf: &'b [u8], storage: &'h mut Slots<'b>) -> Parsed<'b, 'h> {
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, storage) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Refused(Refusal::TOO_MANY_HEADERS),
        Err(_) => return Parsed::Refused(Refusal::MALFORMED),
    }
    if let Err(r) = framing(req.headers) {
        return Parsed::Refused(r);
    }
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let headers: &'h [httparse::Header<'b>] = req.headers;
    let mut host = None;
    let mut close = false;
    let mut plain = true;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            host = text(h.value);
        } else if name.eq_ignore_ascii_case("content-length") {
            plain &= h.value == b"0";
        } else if name.eq_ignore_ascii_case("connection") {
            match connection_close(h.value) {
                Some(c) => close |= c,
                None => plain = false,
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            plain = false;
        }
    }
    let http11 = req.version == Some(1);
    // Only targets Pingora's parser reads the same way: it cuts a fragment
    // (`#`) before routing and refuses characters a URI cannot hold.
    let origin_form = target.starts_with('/')
        && !target.contains('#')
        && http::uri::PathAndQuery::try_from(target).is_ok();
    let direct = match method {
        "GET" => Some(Method::Get),
        "HEAD" => Some(Method::Head),
        _ => None,
    }
    .filter(|_| plain && http11 && origin_form && host.is_some());
    Parsed::Ready(Head {
        method,
        direct,
        target,
        host,
        http11,
        close,
        headers,
    })
}

/// What makes a head ambiguous between us and the upstream (request
/// smuggling), refused for every engine: two `Content-Length`s, both
/// framings, a transfer coding that does not end in `chunked`, a
/// `Content-Length` that is not a number, two `Host`s.
fn framing(headers: &[httparse::Header<'_>]) -> Result<(), Refusal> {
    let (mut lengths, mut te, mut hosts) = (0, false, 0);
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            let v = h.value.trim_ascii();
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
                return Err(Refusal::MALFORMED);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Several TE lines are one list; its last coding is what counts.
            te = true;
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(Refusal::BAD_TRANSFER_ENCODING);
            }
        } else if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    match (lengths, te, hosts) {
        (2.., _, _) => Err(Refusal::DUPLICATE_CONTENT_LENGTH),
        (1, true, _) => Err(Refusal::CONTENT_LENGTH_WITH_TRANSFER_ENCODING),
        (_, _, 2..) => Err(Refusal::DUPLICATE_HOST),
        _ => Ok(()),
    }
}

/// `Connection: close` → `Some(true)`, `keep-alive` → `Some(false)`;
/// any other token (headers named hop-by-hop, upgrades) → `None`.
fn connection_close(value: &[u8]) -> Option<bool> {
    let mut close = false;
    for token in value.split(|&b| b == b',') {
        let t = token.trim_ascii();
        if t.eq_ignore_ascii_case(b"close") {
            close = true;
        } else if !t.eq_ignore_ascii_case(b"keep-alive") && !t.is_empty() {
            return None;
        }
    }
    Some(close)
}

/// A header value as text, by the rule `http::HeaderValue::to_str` uses
/// (visible ASCII and tabs), so both paths read the same values.
pub fn text(value: &[u8]) -> Option<&str> {
    if value.iter().all(|&b| b == b'\t' || (32..127).contains(&b)) {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// The parsed headers, for route matches.
pub struct Headers<'a, 'b>(pub &'a [httparse::Header<'b>]);

impl HeaderSource for Headers<'_, '_> {
    fn first(&self, name: &str) -> Option<&str> {
        let h = self.0.iter().find(|h| h.name.eq_ignore_ascii_case(name))?;
        text(h.value)
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| text(h.value))
            .collect()
    }

    fn all_bytes(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_HEADERS: usize = 100;

    fn check(raw: &[u8]) -> Option<(Method, String, String, bool)> {
        let mut storage = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        match parse(raw, &mut storage) {
            Parsed::Ready(h) => Some((
                h.direct?,
                h.target.to_string(),
                h.host?.to_string(),
                h.close,
            )),
            _ => None,
        }
    }

    #[test]
    fn plain_gets_and_heads_are_direct() {
        let r: &[u8] = b"GET /a?b HTTP/1.1\r\nHost: x.test\r\nConnection: keep-alive\r\n\r\nGET";
        assert_eq!(
            check(r),
            Some((Method::Get, "/a?b".into(), "x.test".into(), false))
        );
        let r = b"HEAD / HTTP/1.1\r\nhost: x.test:8443\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(check(r).map(|c| (c.0, c.3)), Some((Method::Head, true)));
    }

    #[test]
    fn everything_else_goes_to_pingora() {
        for raw in [
            &b"POST / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
            b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, x-secret\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n",
            b"GET /admin#x HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a<b> HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert!(check(raw).is_none(), "{}", String::from_utf8_lossy(raw));
        }
        let mut storage = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n", &mut storage),
            Parsed::Partial
        ));
    }

    #[test]
    fn ambiguous_heads_are_refused_for_every_engine() {
        let cases: &[(&[u8], Refusal)] = &[
            (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", Refusal::MALFORMED),
            (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", Refusal::MALFORMED),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                Refusal::DUPLICATE_CONTENT_LENGTH,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                Refusal::DUPLICATE_CONTENT_LENGTH,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                Refusal::CONTENT_LENGTH_WITH_TRANSFER_ENCODING,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                Refusal::BAD_TRANSFER_ENCODING,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
                Refusal::MALFORMED,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
                Refusal::DUPLICATE_HOST,
            ),
        ];
        for (raw, want) in cases {
            let mut storage = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            match parse(raw, &mut storage) {
                Parsed::Refused(r) => assert_eq!(r, *want, "{}", String::from_utf8_lossy(raw)),
                _ => panic!("not refused: {}", String::from_utf8_lossy(raw)),
            }
        }
        let mut few = [const { MaybeUninit::uninit() }; 2];
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &mut few),
            Parsed::Refused(Refusal::TOO_MANY_HEADERS)
        ));
        // Valid chunked uploads still pass (to Pingora's path).
        let mut storage = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        assert!(matches!(
            parse(
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                &mut storage
            ),
            Parsed::Ready(Head { direct: None, .. })
        ));
    }

    #[test]
    fn route_matches_read_the_first_text_value() {
        let mut storage = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Env: a\r\nx-env: b\r\nX-Bin: \xff\r\n\r\n";
        let Parsed::Ready(h) = parse(raw, &mut storage) else {
            panic!("not parsed")
        };
        let hs = Headers(h.headers);
        assert_eq!(hs.first("x-env"), Some("a"));
        assert_eq!(hs.first("x-bin"), None);
        assert_eq!(hs.first("x-none"), None);
    }
}
