//! A minimal HTTP/1.1 client for one connection: write a prepared request,
//! read the status and headers (httparse), skip the body (Content-Length,
//! chunked, or until close). No pipelining: one request at a time.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::args::Target;

const BUF: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// The bytes of a GET request, built once per run.
pub fn request_bytes(target: &Target, headers: &[(String, String)]) -> Vec<u8> {
    let mut r = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: loadgen\r\nAccept: */*\r\n",
        target.path, target.authority
    );
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The server will close the connection (or already has).
    pub close: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

pub struct Conn<S> {
    io: S,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S) -> Self {
        Conn {
            io,
            buf: vec![0; BUF].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    pub async fn request(&mut self, req: &[u8]) -> io::Result<Response> {
        if self.start != self.end {
            return Err(invalid("unexpected bytes before the response"));
        }
        self.io.write_all(req).await?;
        self.io.flush().await?;
        loop {
            let (status, framing, close) = loop {
                if let Some((status, framing, close, n)) =
                    parse_head(&self.buf[self.start..self.end])?
                {
                    self.start += n;
                    break (status, framing, close);
                }
                self.fill().await?;
            };
            // 1xx responses (e.g. 100 Continue) precede the real one.
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let framing = if status == 204 || status == 304 {
                Framing::Length(0)
            } else {
                framing
            };
            match framing {
                Framing::Length(n) => self.skip(n).await?,
                Framing::Chunked => self.skip_chunked().await?,
                Framing::UntilClose => {
                    self.skip_to_eof().await?;
                    return Ok(Response {
                        status,
                        close: true,
                    });
                }
            }
            return Ok(Response { status, close });
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start == 0 {
                return Err(invalid("response head larger than 16 KiB"));
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.io.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the end of the response",
            ));
        }
        self.end += n;
        Ok(())
    }

    async fn skip(&mut self, mut n: u64) -> io::Result<()> {
        loop {
            let avail = (self.end - self.start) as u64;
            if avail >= n {
                self.start += n as usize;
                return Ok(());
            }
            n -= avail;
            self.start = self.end;
            self.fill().await?;
        }
    }

    /// A line ending in CRLF, without it, consumed from the buffer.
    async fn line(&mut self) -> io::Result<(usize, usize)> {
        loop {
            if let Some(i) = self.buf[self.start..self.end]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                let s = self.start;
                self.start += i + 2;
                return Ok((s, s + i));
            }
            if self.end - self.start > 4096 {
                return Err(invalid("chunk line too long"));
            }
            self.fill().await?;
        }
    }

    async fn skip_chunked(&mut self) -> io::Result<()> {
        loop {
            let (a, b) = self.line().await?;
            let size = parse_chunk_size(&self.buf[a..b])?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let (a, b) = self.line().await?;
                    if a == b {
                        return Ok(());
                    }
                }
            }
            self.skip(size).await?;
            let (a, b) = self.line().await?;
            if a != b {
                return Err(invalid("missing CRLF after a chunk"));
            }
        }
    }

    async fn skip_to_eof(&mut self) -> io::Result<()> {
        self.start = 0;
        self.end = 0;
        loop {
            match self.io.read(&mut self.buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Parses a response head at the start of `data`: `None` when incomplete.
fn parse_head(data: &[u8]) -> io::Result<Option<(u16, Framing, bool, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(data) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(format!("bad response head: {e}"))),
    };
    let status = resp.code.unwrap_or(0);
    let mut close = resp.version == Some(0);
    let mut framing = Framing::UntilClose;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            if framing != Framing::Chunked {
                let v = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| invalid("bad Content-Length"))?;
                framing = Framing::Length(v);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if has_token(h.value, b"chunked") {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            if has_token(h.value, b"close") {
                close = true;
            } else if has_token(h.value, b"keep-alive") {
                close = false;
            }
        }
    }
    Ok(Some((status, framing, close, n)))
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let hex = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or(b"")
        .trim_ascii();
    let s = std::str::from_utf8(hex).map_err(|_| invalid("bad chunk size"))?;
    u64::from_str_radix(s, 16).map_err(|_| invalid(format!("bad chunk size '{s}'")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    /// A server that answers each request (read up to its empty line) with
    /// the next canned response, written in small pieces, then closes.
    async fn roundtrip(responses: &[&[u8]], count: usize) -> Vec<io::Result<Response>> {
        let (client, mut server) = duplex(1 << 20);
        let responses: Vec<Vec<u8>> = responses.iter().map(|r| r.to_vec()).collect();
        let srv = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut byte = [0u8; 1];
            for resp in responses {
                while !seen.ends_with(b"\r\n\r\n") {
                    if server.read(&mut byte).await.unwrap() == 0 {
                        return;
                    }
                    seen.push(byte[0]);
                }
                seen.clear();
                for piece in resp.chunks(7) {
                    server.write_all(piece).await.unwrap();
                }
            }
            server.shutdown().await.unwrap();
            let mut sink = Vec::new();
            let _ = server.read_to_end(&mut sink).await;
        });
        let mut c = Conn::new(client);
        let mut out = Vec::new();
        for _ in 0..count {
            out.push(c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await);
        }
        drop(c);
        srv.await.unwrap();
        out
    }

    #[tokio::test]
    async fn length_chunked_and_close() {
        let r = roundtrip(
            &[
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
                b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno",
            ],
            4,
        )
        .await;
        let r: Vec<Response> = r.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            r,
            vec![
                Response {
                    status: 200,
                    close: false
                },
                Response {
                    status: 404,
                    close: false
                },
                Response {
                    status: 204,
                    close: false
                },
                Response {
                    status: 503,
                    close: true
                },
            ]
        );
    }

    #[tokio::test]
    async fn body_until_close_and_eof_errors() {
        let r = roundtrip(&[b"HTTP/1.0 200 OK\r\n\r\nthe rest"], 1).await;
        assert_eq!(
            *r[0].as_ref().unwrap(),
            Response {
                status: 200,
                close: true
            }
        );
        let r = roundtrip(&[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"], 1).await;
        assert_eq!(
            r[0].as_ref().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let r = roundtrip(&[b"garbage\r\n\r\n"], 1).await;
        assert_eq!(
            r[0].as_ref().unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn request_has_host_and_headers() {
        let t = crate::args::parse_url("https://h.example:8443/x?y").unwrap();
        let r = request_bytes(&t, &[("x-a".into(), "1".into())]);
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "GET /x?y HTTP/1.1\r\nHost: h.example:8443\r\nUser-Agent: loadgen\r\nAccept: */*\r\nx-a: 1\r\n\r\n"
        );
    }
}
