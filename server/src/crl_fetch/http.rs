//! The smallest HTTP/1.1 GET that fetching a CRL needs: one request per
//! connection, a bounded head and body, redirects followed a few times,
//! a conditional request (`If-None-Match`/`If-Modified-Since`) so an
//! unchanged CRL costs no download.
//!
//! The server at the other end is not trusted: every read is bounded in
//! size, and the caller bounds the whole exchange in time.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a fetch failed; `class` is the metric's `result` label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    pub class: &'static str,
    pub message: String,
}

fn fail(class: &'static str, message: impl Into<String>) -> FetchError {
    FetchError {
        class,
        message: message.into(),
    }
}

/// What the last good response said, to ask only for a change.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

pub enum Fetched {
    Body {
        body: Vec<u8>,
        validators: Validators,
    },
    NotModified,
}

const MAX_HEAD: usize = 16 * 1024;
const MAX_REDIRECTS: usize = 3;

struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, FetchError> {
    crate::config::revocation::check_crl_url(url).map_err(|e| fail("url", e))?;
    let (tls, rest) = match url.strip_prefix("https://") {
        Some(r) => (true, r),
        None => (false, url.trim_start_matches("http://")),
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.split('#').next().unwrap_or("/").to_string(),
    };
    let default = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| fail("url", format!("'{url}': bad IPv6 host")))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| fail("url", "bad port"))?,
            None => default,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| fail("url", format!("'{url}': bad port")))?,
            ),
            None => (authority.to_string(), default),
        }
    };
    Ok(Target {
        tls,
        host,
        port,
        path,
    })
}

/// GETs `url`, following up to three redirects; the body at most
/// `max_bytes`.
pub async fn get(
    url: &str,
    validators: &Validators,
    max_bytes: u64,
) -> Result<Fetched, FetchError> {
    let mut url = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        match get_once(&url, validators, max_bytes).await? {
            Step::Done(f) => return Ok(f),
            Step::Redirect(to) => {
                if url.starts_with("https://") && !to.starts_with("https://") {
                    return Err(fail(
                        "http_status",
                        format!("{url}: redirect from https to {to} refused"),
                    ));
                }
                url = to;
            }
        }
    }
    Err(fail("http_status", "too many redirects"))
}

enum Step {
    Done(Fetched),
    Redirect(String),
}

async fn get_once(url: &str, v: &Validators, max_bytes: u64) -> Result<Step, FetchError> {
    let t = parse_url(url)?;
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| fail("connect", format!("{url}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tlsgate\r\n\
         Accept: application/pkix-crl, application/x-pem-file, */*\r\nConnection: close\r\n",
        t.path,
        host_header(&t)
    );
    if let Some(e) = &v.etag {
        req.push_str(&format!("If-None-Match: {e}\r\n"));
    }
    if let Some(m) = &v.last_modified {
        req.push_str(&format!("If-Modified-Since: {m}\r\n"));
    }
    req.push_str("\r\n");
    if t.tls {
        let stream = tls_connect(tcp, &t.host, url).await?;
        exchange(stream, req.as_bytes(), url, max_bytes).await
    } else {
        exchange(tcp, req.as_bytes(), url, max_bytes).await
    }
}

fn host_header(t: &Target) -> String {
    let host = if t.host.contains(':') {
        format!("[{}]", t.host)
    } else {
        t.host.clone()
    };
    match (t.tls, t.port) {
        (true, 443) | (false, 80) => host,
        _ => format!("{host}:{}", t.port),
    }
}

async fn tls_connect(
    tcp: TcpStream,
    host: &str,
    url: &str,
) -> Result<tokio_openssl::SslStream<TcpStream>, FetchError> {
    use openssl::ssl::{SslConnector, SslMethod};
    let err = |e: String| fail("tls", format!("{url}: {e}"));
    let connector = SslConnector::builder(SslMethod::tls_client())
        .map_err(|e| err(e.to_string()))?
        .build();
    let ssl = connector
        .configure()
        .and_then(|c| c.into_ssl(host))
        .map_err(|e| err(e.to_string()))?;
    let mut s = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| err(e.to_string()))?;
    std::pin::Pin::new(&mut s)
        .connect()
        .await
        .map_err(|e| err(e.to_string()))?;
    Ok(s)
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    req: &[u8],
    url: &str,
    max_bytes: u64,
) -> Result<Step, FetchError> {
    s.write_all(req)
        .await
        .map_err(|e| fail("io", format!("{url}: {e}")))?;
    let mut buf = Vec::with_capacity(8192);
    let (status, head_len, headers) = loop {
        if buf.len() >= MAX_HEAD {
            return Err(fail(
                "bad_response",
                format!("{url}: response head over 16 KiB"),
            ));
        }
        let mut chunk = [0u8; 4096];
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| fail("io", format!("{url}: {e}")))?;
        if n == 0 {
            return Err(fail(
                "bad_response",
                format!("{url}: closed before a response"),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut hs);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let headers: Vec<(String, String)> = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).trim().to_string(),
                        )
                    })
                    .collect();
                break (resp.code.unwrap_or(0), len, headers);
            }
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return Err(fail("bad_response", format!("{url}: {e}"))),
        }
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    match status {
        200 => {}
        304 => return Ok(Step::Done(Fetched::NotModified)),
        301 | 302 | 303 | 307 | 308 => {
            let to = header("location")
                .ok_or_else(|| fail("http_status", format!("{url}: {status} without Location")))?;
            return Ok(Step::Redirect(to));
        }
        other => return Err(fail("http_status", format!("{url}: HTTP {other}"))),
    }
    let chunked = header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
    let length = match header("content-length") {
        Some(l) if !chunked => Some(
            l.parse::<u64>()
                .map_err(|_| fail("bad_response", format!("{url}: bad Content-Length")))?,
        ),
        _ => None,
    };
    if length.is_some_and(|l| l > max_bytes) {
        return Err(fail(
            "too_large",
            format!("{url}: {} bytes", length.unwrap_or(0)),
        ));
    }
    let mut body = buf.split_off(head_len);
    // The raw body may carry chunk framing: allow it a little room.
    let cap = max_bytes.saturating_add(max_bytes / 8).saturating_add(4096);
    loop {
        if length.is_some_and(|l| body.len() as u64 >= l) {
            break;
        }
        // The last chunk ends the body, whether or not the server closes.
        if chunked && (body.starts_with(b"0\r\n\r\n") || body.ends_with(b"\r\n0\r\n\r\n")) {
            break;
        }
        if body.len() as u64 > cap {
            return Err(fail("too_large", format!("{url}: over {max_bytes} bytes")));
        }
        let mut chunk = vec![0u8; 64 * 1024];
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| fail("io", format!("{url}: {e}")))?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if let Some(l) = length {
        if (body.len() as u64) < l {
            return Err(fail(
                "truncated",
                format!(
                    "{url}: {} of {l} bytes before the connection closed",
                    body.len()
                ),
            ));
        }
        body.truncate(l as usize);
    }
    if chunked {
        body = dechunk(&body).map_err(|e| fail("bad_response", format!("{url}: {e}")))?;
    }
    if body.len() as u64 > max_bytes {
        return Err(fail("too_large", format!("{url}: over {max_bytes} bytes")));
    }
    Ok(Step::Done(Fetched::Body {
        body,
        validators: Validators {
            etag: header("etag"),
            last_modified: header("last-modified"),
        },
    }))
}

/// A chunked body, whole, to its bytes; refuses a body without its last chunk.
fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(raw.len());
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let end = size.checked_add(2).ok_or("bad chunk size")?;
        let (Some(data), Some(rest)) = (raw.get(..size), raw.get(end..)) else {
            return Err("truncated chunk");
        };
        out.extend_from_slice(data);
        raw = rest;
    }
}

/// Bounds a whole fetch in time.
pub async fn get_within(
    url: &str,
    validators: &Validators,
    max_bytes: u64,
    timeout: Duration,
) -> Result<Fetched, FetchError> {
    match tokio::time::timeout(timeout, get(url, validators, max_bytes)).await {
        Ok(r) => r,
        Err(_) => Err(fail(
            "timeout",
            format!("{url}: no whole response within {timeout:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("http://127.0.0.1:8080/ca.crl").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (false, "127.0.0.1", 8080, "/ca.crl")
        );
        let t = parse_url("https://pki.example?x=1").unwrap();
        assert_eq!((t.tls, t.port, t.path.as_str()), (true, 443, "/?x=1"));
        let t = parse_url("http://[::1]:81/a#frag").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 81, "/a")
        );
        assert_eq!(host_header(&t), "[::1]:81");
        assert!(parse_url("http://x:99999/").is_err());
        assert!(parse_url("gopher://x/").is_err());
    }

    #[test]
    fn chunks() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"3\r\nabc\r\n").is_err(), "no last chunk");
        assert!(dechunk(b"ff\r\nabc").is_err());
        assert!(dechunk(b"zz\r\n").is_err());
        assert!(dechunk(b"ffffffffffffffff\r\nabc").is_err(), "no overflow");
        assert!(dechunk(b"3\r\nabc").is_err(), "no CRLF after the data");
    }
}
