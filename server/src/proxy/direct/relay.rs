//! The upstream's response head as the client gets it, and where the
//! response body ends.

use std::io::Write;

use pingora_http::ResponseHeader;

use super::date::with_date;
use super::head::Method;

/// Most header lines of a response (Pingora's limit too).
const MAX_HEADERS: usize = 256;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (`HEAD`, 1xx, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes; the client's connection closes after it.
    UntilClose,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Bytes of the upstream head.
    pub head_len: usize,
    pub framing: Framing,
    /// The upstream connection may serve another request afterwards.
    pub upstream_reusable: bool,
    /// The client's connection stays open afterwards.
    pub keep_client: bool,
}

/// Not a response tlsgate forwards as is; Pingora's path judges it.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

/// Headers dropped from the response: hop-by-hop ones, and `Date`, which
/// is set anew as Pingora's path does.
const DROPPED: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "upgrade",
    "date",
];

/// Parses the response head at the start of `buf` and writes the client's
/// HTTP/1.1 head into `out` (appended). `Ok(None)`: incomplete.
pub fn response_head(
    buf: &[u8],
    method: Method,
    keep_client: bool,
    out: &mut Vec<u8>,
) -> Result<Option<Response>, Invalid> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut storage);
    let Some(r) = analyze(&mut resp, buf, method, keep_client)? else {
        return Ok(None);
    };
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        r.status,
        resp.reason.unwrap_or("")
    );
    let lines: Vec<(&str, &[u8])> = resp
        .headers
        .iter()
        .filter(|h| !DROPPED.iter().any(|d| h.name.eq_ignore_ascii_case(d)))
        .map(|h| (h.name, h.value))
        .collect();
    super::forward::grouped(&lines, |name, value| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    });
    if r.status >= 200 {
        with_date(|d| {
            out.extend_from_slice(b"date: ");
            out.extend_from_slice(d.as_bytes());
        });
        out.extend_from_slice(if r.keep_client {
            b"\r\nConnection: keep-alive\r\n".as_slice()
        } else {
            b"\r\nConnection: close\r\n".as_slice()
        });
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(r))
}

/// Headers HTTP/2 does not carry (RFC 9113 8.2.2), besides those dropped
/// for HTTP/1.1; the body arrives de-chunked.
const DROPPED_H2: [&str; 1] = ["transfer-encoding"];

/// Parses the response head at the start of `buf` into the header of an
/// HTTP/2 response (Pingora's session writes it). `Ok(None)`: incomplete.
pub fn response_header_h2(
    buf: &[u8],
    method: Method,
) -> Result<Option<(Response, Box<ResponseHeader>)>, Invalid> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut storage);
    let Some(r) = analyze(&mut resp, buf, method, true)? else {
        return Ok(None);
    };
    let bad = |_| Invalid("header not valid in HTTP/2");
    // HTTP/2 names are lowercase on the wire: no case map to fill (and
    // for Pingora's session to clone again).
    let mut header =
        ResponseHeader::build_no_case(r.status, Some(resp.headers.len())).map_err(bad)?;
    for h in resp.headers.iter() {
        let name = h.name;
        if DROPPED
            .iter()
            .chain(&DROPPED_H2)
            .any(|d| name.eq_ignore_ascii_case(d))
        {
            continue;
        }
        let name =
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| Invalid("header name"))?;
        let value = http::HeaderValue::from_bytes(h.value).map_err(|_| Invalid("header value"))?;
        header.append_header(name, value).map_err(bad)?;
    }
    // No `Date` here: Pingora's HTTP/2 session sets it on every response.
    Ok(Some((r, Box::new(header))))
}

/// Status, framing and reuse of a response head (parsed into `resp`).
fn analyze<'h, 'b>(
    resp: &mut httparse::Response<'h, 'b>,
    buf: &'b [u8],
    method: Method,
    keep_client: bool,
) -> Result<Option<Response>, Invalid> {
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Invalid("unparsable response head")),
    };
    let status = resp.code.ok_or(Invalid("no status"))?;
    if status == 101 || !(100..1000).contains(&status) {
        return Err(Invalid("unexpected status"));
    }
    let mut close = resp.version != Some(1);
    let mut length: Option<u64> = None;
    let mut te: Option<bool> = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            close |= h
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(Invalid("bad content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Invalid("conflicting content-length"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            te = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    let framing = if method == Method::Head || status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (te, length) {
            // Both framings at once is how requests get smuggled.
            (Some(_), Some(_)) => return Err(Invalid("content-length with transfer-encoding")),
            (Some(true), None) => Framing::Chunked,
            (Some(false), None) | (None, None) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
        }
    };
    Ok(Some(Response {
        status,
        head_len,
        framing,
        upstream_reusable: !close && framing != Framing::UntilClose,
        keep_client: keep_client && framing != Framing::UntilClose,
    }))
}

/// Finds the end of a chunked body as its bytes pass by.
#[derive(Debug, Default)]
pub struct Chunks {
    state: State,
}

#[derive(Debug, Default, Clone, Copy)]
enum State {
    /// Reading a chunk-size line; the value so far and whether it has a digit.
    #[default]
    SizeStart,
    Size(u64),
    /// Whitespace after the size.
    SizeWs(u64),
    /// After the size: extensions up to CR.
    Ext(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    /// In a trailer line; whether its colon was seen.
    Trailer(bool),
    TrailerLf,
    FinalLf,
    Done,
}

impl Chunks {
    /// Consumes `bytes`; `Ok(Some(n))` when the body ended after the first
    /// `n` of them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, Invalid> {
        self.feed_data(bytes, &mut |_| {})
    }

    /// As [`Chunks::feed`], handing each piece of chunk data to `data`.
    pub fn feed_data(
        &mut self,
        bytes: &[u8],
        data: &mut dyn FnMut(&[u8]),
    ) -> Result<Option<usize>, Invalid> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                State::SizeStart | State::Size(_) => {
                    let v = match self.state {
                        State::Size(v) => Some(v),
                        _ => None,
                    };
                    match (hex(b), v) {
                        (Some(d), v) => {
                            let v = v.unwrap_or(0);
                            if v > (u64::MAX >> 4) {
                                return Err(Invalid("chunk size overflow"));
                            }
                            State::Size(v << 4 | d)
                        }
                        (None, Some(v)) if b == b'\r' => State::SizeLf(v),
                        (None, Some(v)) if b == b';' => State::Ext(v),
                        (None, Some(v)) if b == b' ' || b == b'\t' => State::SizeWs(v),
                        _ => return Err(Invalid("bad chunk size")),
                    }
                }
                // Whitespace after the size may only lead to an extension.
                State::SizeWs(v) => match b {
                    b' ' | b'\t' => State::SizeWs(v),
                    b';' => State::Ext(v),
                    b'\r' => State::SizeLf(v),
                    _ => return Err(Invalid("bad chunk size")),
                },
                State::Ext(v) => match b {
                    b'\r' => State::SizeLf(v),
                    b'\t' => State::Ext(v),
                    0..=31 | 127 => return Err(Invalid("control character in chunk extension")),
                    _ => State::Ext(v),
                },
                State::SizeLf(v) => match b {
                    b'\n' if v == 0 => State::TrailerStart,
                    b'\n' => State::Data(v),
                    _ => return Err(Invalid("bad chunk size line")),
                },
                State::Data(left) => {
                    let take = left.min((bytes.len() - i) as u64);
                    data(&bytes[i..i + take as usize]);
                    i += take as usize;
                    self.state = if take == left {
                        State::DataCr
                    } else {
                        State::Data(left - take)
                    };
                    continue;
                }
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataLf if b == b'\n' => State::SizeStart,
                State::DataCr | State::DataLf => return Err(Invalid("bad chunk end")),
                State::TrailerStart if b == b'\r' => State::FinalLf,
                // A trailer line is `name: value`, ended by CRLF: anything
                // else (a bare LF above all) could end the message early
                // for a client parsing more loosely.
                State::TrailerStart | State::Trailer(_) if b == b'\r' => match self.state {
                    State::Trailer(true) => State::TrailerLf,
                    _ => return Err(Invalid("trailer line without a colon")),
                },
                State::TrailerStart | State::Trailer(_) if b != b'\t' && (b < 32 || b == 127) => {
                    return Err(Invalid("control character in trailer"))
                }
                State::TrailerStart => State::Trailer(b == b':'),
                State::Trailer(colon) => State::Trailer(colon || b == b':'),
                State::TrailerLf if b == b'\n' => State::TrailerStart,
                State::FinalLf if b == b'\n' => State::Done,
                State::TrailerLf | State::FinalLf => return Err(Invalid("bad trailer")),
                State::Done => return Ok(Some(i)),
            };
            i += 1;
            if matches!(self.state, State::Done) {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, method: Method) -> Result<Option<(Response, String)>, Invalid> {
        let mut out = Vec::new();
        Ok(response_head(raw.as_bytes(), method, true, &mut out)?
            .map(|r| (r, String::from_utf8(out).unwrap())))
    }

    #[test]
    fn length_framed_response() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: old\r\nKeep-Alive: x\r\nX-A: b\r\n\r\nhello";
        let (r, out) = head(raw, Method::Get).unwrap().unwrap();
        assert_eq!(r.framing, Framing::Length(5));
        assert_eq!(r.head_len, raw.len() - 5);
        assert!(r.upstream_reusable && r.keep_client);
        assert!(out.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\ndate: "));
        assert!(
            out.ends_with(" GMT\r\nConnection: keep-alive\r\n\r\n"),
            "{out}"
        );
        assert!(!out.contains("old") && !out.contains("Keep-Alive"));
    }

    #[test]
    fn h2_headers_drop_connection_and_framing_headers() {
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\nX-A: b\r\n\r\n";
        let (r, h) = response_header_h2(raw.as_bytes(), Method::Get)
            .unwrap()
            .unwrap();
        assert_eq!(r.framing, Framing::Chunked);
        assert_eq!(h.status, 200);
        assert_eq!(h.headers.get("x-a").unwrap(), "b");
        assert!(
            h.headers.get("transfer-encoding").is_none() && h.headers.get("connection").is_none()
        );
        // The upstream's `Date` is not relayed; Pingora's session writes
        // its own (see `h2_responses_carry_a_date`).
        assert!(h.headers.get("date").is_none());
    }

    #[test]
    fn framings() {
        let f = |raw: &str, m| head(raw, m).unwrap().unwrap().0;
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Method::Get
            )
            .framing,
            Framing::Chunked
        );
        let r = f("HTTP/1.1 200 OK\r\n\r\n", Method::Get);
        assert_eq!(r.framing, Framing::UntilClose);
        assert!(!r.upstream_reusable && !r.keep_client);
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", Method::Head).framing,
            Framing::Empty
        );
        assert_eq!(
            f("HTTP/1.1 304 Not Modified\r\n\r\n", Method::Get).framing,
            Framing::Empty
        );
        let r = f(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
            Method::Get,
        );
        assert!(!r.upstream_reusable && r.keep_client);
        assert!(!f("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", Method::Get).upstream_reusable);
        assert!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n", Method::Get)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(head(raw, Method::Get).is_err(), "{raw}");
        }
    }

    #[test]
    fn chunk_ends_are_found_across_splits() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..body.len() {
            let mut c = Chunks::default();
            let first = c.feed(&body[..split]).unwrap();
            let got = match first {
                Some(n) => n,
                None => split + c.feed(&body[split..]).unwrap().unwrap(),
            };
            assert_eq!(got, end, "split at {split}");
        }
        let mut c = Chunks::default();
        assert_eq!(c.feed(b"0\r\n\r\n").unwrap(), Some(5));
        let mut data = Vec::new();
        let end = Chunks::default()
            .feed_data(body, &mut |d| data.extend_from_slice(d))
            .unwrap();
        assert_eq!(
            (end, data.as_slice()),
            (Some(body.len() - 4), &b"hello0123456789abcdef"[..])
        );
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloXX",
            b"\r\n",
            b"fffffffffffffffff\r\n",
        ] {
            assert!(
                Chunks::default().feed(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
