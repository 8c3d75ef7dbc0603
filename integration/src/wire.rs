//! Exact bytes on the wire: one raw HTTP/1.1 exchange (the request written
//! as given, the response read back with its header names as sent), the
//! same response from `curl -i`, and a line diff to show two heads side by
//! side when they differ.

use std::io::{ErrorKind, Read, Write};

/// A response as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `HTTP/1.1 200 OK`, `HTTP/2 200`.
    pub status_line: String,
    pub status: u16,
    /// Names as sent, in order, repeated ones kept apart.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The head as lines (`Name: value`), leaving out headers named in
    /// `except` (any case).
    pub fn head_lines(&self, except: &[&str]) -> Vec<String> {
        let mut lines = vec![self.status_line.clone()];
        lines.extend(
            self.headers
                .iter()
                .filter(|(n, _)| !except.iter().any(|e| e.eq_ignore_ascii_case(n)))
                .map(|(n, v)| format!("{n}: {v}")),
        );
        lines
    }
}

/// Writes `request` and reads one response (no body for `HEAD`). The
/// stream's read timeout bounds each read.
pub fn exchange<S: Read + Write>(s: &mut S, request: &[u8]) -> Result<Response, String> {
    s.write_all(request)
        .and_then(|_| s.flush())
        .map_err(|e| format!("write: {e}"))?;
    let head_only = request.starts_with(b"HEAD ");
    let mut buf = Vec::new();
    let mut eof = false;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(r) = complete(&buf, head_only, eof)? {
            return Ok(r);
        }
        if eof {
            return Err(format!(
                "closed before a whole response: {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        match s.read(&mut chunk) {
            Ok(0) => eof = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A TLS close without close_notify reads as an error: an end.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => eof = true,
            Err(e) => {
                return Err(format!(
                    "read: {e} after {:?}",
                    String::from_utf8_lossy(&buf)
                ))
            }
        }
    }
}

/// `curl -i` output (or any response bytes) as a [`Response`]; the body is
/// whatever follows the final head. Interim (1xx) heads are skipped.
pub fn parse_curl_i(out: &[u8]) -> Result<Response, String> {
    let mut rest = out;
    loop {
        let (r, used) = head(rest)?.ok_or_else(|| {
            format!(
                "no response head in {:?}",
                String::from_utf8_lossy(out)
                    .chars()
                    .take(500)
                    .collect::<String>()
            )
        })?;
        if (100..200).contains(&r.status) {
            rest = &rest[used..];
            continue;
        }
        return Ok(Response {
            body: rest[used..].to_vec(),
            ..r
        });
    }
}

/// A whole response at the start of `buf`, or `None` for more bytes.
fn complete(buf: &[u8], head_only: bool, eof: bool) -> Result<Option<Response>, String> {
    let Some((mut r, used)) = head(buf)? else {
        return Ok(None);
    };
    if (100..200).contains(&r.status) {
        return complete(&buf[used..], head_only, eof);
    }
    let rest = &buf[used..];
    let get = |name: &str| {
        r.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let chunked =
        get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body_len = if head_only || r.status == 204 || r.status == 304 {
        Some(0)
    } else if chunked {
        chunked_len(rest)
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        (rest.len() >= n).then_some(n)
    } else {
        eof.then_some(rest.len())
    };
    Ok(body_len.map(|n| {
        r.body = rest[..n].to_vec();
        r
    }))
}

/// Parses a head at the start of `buf`: the response and the bytes it took.
fn head(buf: &[u8]) -> Result<Option<(Response, usize)>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("").trim_end().to_string();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .map(|l| match l.split_once(':') {
            Some((n, v)) => (n.to_string(), v.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect();
    let r = Response {
        status_line,
        status,
        headers,
        body: Vec::new(),
    };
    Ok(Some((r, end + 4)))
}

/// The length of a whole chunked body (its raw bytes), if it is all there.
pub fn chunked_len(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let eol = find(&b[i..], b"\r\n")? + i;
        let size_text = String::from_utf8_lossy(&b[i..eol]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        i = eol + 2;
        if size == 0 {
            // Trailers, then the blank line.
            return if b[i..].starts_with(b"\r\n") {
                Some(i + 2)
            } else {
                find(&b[i..], b"\r\n\r\n").map(|e| i + e + 4)
            };
        }
        if b.len() < i + size + 2 {
            return None;
        }
        i += size + 2;
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Bytes as text with CR, LF and anything not printable escaped, one
/// line per CRLF-ended line (for messages).
pub fn escaped_lines(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for &b in bytes {
        match b {
            b'\n' => {
                cur.push_str("\\n");
                out.push(std::mem::take(&mut cur));
            }
            b'\r' => cur.push_str("\\r"),
            b'\\' => cur.push_str("\\\\"),
            0x20..=0x7e => cur.push(char::from(b)),
            _ => cur.push_str(&format!("\\x{b:02x}")),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `a` and `b` line by line: `  ` both have it, `-` only `a`, `+` only
/// `b` (longest common subsequence, so a moved line shows as - and +).
pub fn line_diff(a: &[String], b: &[String]) -> String {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push_str(&format!("    {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("  + {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("  - {}\n", a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_keep_header_case_and_order() {
        let raw = b"HTTP/1.1 103 Early\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\nX-B: 1\r\nx-a: 2\r\nX-B: 3\r\nContent-Length: 2\r\n\r\nok";
        let r = complete(raw, false, false).unwrap().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.head_lines(&["content-length"]),
            ["HTTP/1.1 200 OK", "X-B: 1", "x-a: 2", "X-B: 3"]
        );
        assert_eq!(r.body, b"ok");
        assert!(complete(&raw[..raw.len() - 1], false, false)
            .unwrap()
            .is_none());
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let r = complete(chunked, false, false).unwrap().unwrap();
        assert_eq!(r.body, b"2\r\nok\r\n0\r\n\r\n");
        assert_eq!(chunked_len(b"5\r\nhello\r\n0\r\nX: 1\r\n\r\n"), Some(21));
        assert_eq!(chunked_len(b"5\r\nhello\r\n0\r\n"), None);
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
        assert!(complete(head, true, false).unwrap().is_some());
        let r = parse_curl_i(b"HTTP/2 200 \r\nx: 1\r\n\r\nbody").unwrap();
        assert_eq!(
            (r.status_line.as_str(), r.body.as_slice()),
            ("HTTP/2 200", &b"body"[..])
        );
    }

    #[test]
    fn diffs_mark_lines_of_one_side() {
        let a: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
        let b: Vec<String> = ["x", "z", "y"].map(String::from).to_vec();
        assert_eq!(line_diff(&a, &b), "    x\n  + z\n    y\n  - z\n");
        assert_eq!(escaped_lines(b"a\r\nb\x01"), ["a\\r\\n", "b\\x01"]);
    }
}
