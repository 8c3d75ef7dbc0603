//! One request on the direct path: the head goes upstream, the response
//! comes back to the client as its bytes arrive. The client side is an
//! HTTP/1.1 connection ([`H1Client`]) or an HTTP/2 stream ([`H2Client`]).

use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora_http::ResponseHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::head::Method;
use super::pool::Upstream;
use super::relay::{response_head, response_header_h2, Chunks, Framing, Invalid, Response};

/// A response head larger than this is not for the direct path.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Read size for response bodies.
const READ_CHUNK: usize = 16 * 1024;

pub enum Forwarded {
    /// Nothing reached the client: the upstream failed or closed before a
    /// response head (a reused connection may just have gone stale).
    Unanswered(io::Error),
    /// No response head within the read timeout; nothing reached the client.
    TimedOut,
    /// The client closed its connection while the upstream was thinking.
    ClientGone,
    /// The upstream's response is not one the direct path relays as is.
    Invalid(Invalid),
    /// A response head reached the client.
    Answered {
        status: u16,
        keep_client: bool,
        upstream_reusable: bool,
        /// Set when the body did not arrive whole; the client's
        /// connection must close then.
        error: Option<String>,
    },
}

/// Where the response goes.
pub(super) trait Client {
    /// Bodies are passed on de-chunked.
    const DECHUNK: bool;
    /// 1xx heads are passed on.
    const INFORMATIONAL: bool;
    /// Parses the head at the start of `buf` and keeps what is to be sent.
    fn head(&mut self, buf: &[u8], method: Method) -> Result<Option<Response>, Invalid>;
    /// Where body bytes go, to be sent by the next `send`.
    fn body(&mut self) -> &mut Vec<u8>;
    /// Sends the kept head (if any) and the body bytes gathered; `end`
    /// closes the response.
    async fn send(&mut self, end: bool) -> io::Result<()>;
    /// Answers `code` (502, 504) as Pingora's path does when the upstream
    /// fails after the request went out; the client's connection closes.
    async fn error(&mut self, code: u16);
    /// Resolves when the client has closed its connection (HTTP/1.1), so a
    /// long wait upstream (long polls) is abandoned with it.
    async fn gone(&mut self);
}

/// Most bytes a client may send ahead (pipelined) while its request waits.
const MAX_AHEAD: usize = 64 * 1024;

/// An HTTP/1.1 client connection: head and the body bytes at hand go out
/// in one write.
pub struct H1Client<'a> {
    pub down: &'a mut Stream,
    pub keep: bool,
    /// `timeouts.responseSendIdle`: a client that takes nothing is cut off.
    pub send_idle: Duration,
    pub out: Vec<u8>,
    /// What the client sent while the upstream was answering: the start
    /// of its next request.
    pub ahead: BytesMut,
}

impl Client for H1Client<'_> {
    const DECHUNK: bool = false;
    const INFORMATIONAL: bool = true;

    fn head(&mut self, buf: &[u8], method: Method) -> Result<Option<Response>, Invalid> {
        let mark = self.out.len();
        let r = response_head(buf, method, self.keep, &mut self.out);
        if !matches!(r, Ok(Some(_))) {
            self.out.truncate(mark);
        }
        r
    }

    fn body(&mut self) -> &mut Vec<u8> {
        // After the head: head and the body at hand go out in one write.
        &mut self.out
    }

    async fn send(&mut self, _end: bool) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = match pingora_timeout::timeout(self.send_idle, send(self.down, &self.out)).await {
            Ok(r) => r,
            Err(_) => Err(send_timed_out()),
        };
        self.out.clear();
        r
    }

    async fn error(&mut self, code: u16) {
        // A client that stopped reading cannot hold the connection here.
        let _ =
            pingora_timeout::timeout(self.send_idle, send(self.down, &error_response(code))).await;
    }

    async fn gone(&mut self) {
        while self.ahead.len() < MAX_AHEAD {
            self.ahead.reserve(1024);
            match self.down.read_buf(&mut self.ahead).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        std::future::pending().await
    }
}

/// Writes [`error_response`] for `code` to an HTTP/1.1 client.
pub async fn write_error(down: &mut Stream, code: u16) -> io::Result<()> {
    send(down, &error_response(code)).await
}

/// Pingora's error response (`Session::respond_error`), byte for byte, so
/// the client cannot tell the engines apart: no body, not cached, and the
/// connection closes.
fn error_response(code: u16) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|c| c.canonical_reason())
        .unwrap_or("");
    let mut r = format!("HTTP/1.1 {code} {reason}\r\nServer: Pingora\r\nDate: ").into_bytes();
    super::date::with_date(|d| r.extend_from_slice(d.as_bytes()));
    r.extend_from_slice(
        b"\r\nContent-Length: 0\r\nCache-Control: private, no-store\r\nConnection: close\r\n\r\n",
    );
    r
}

/// An HTTP/2 stream, written through Pingora's session.
pub struct H2Client<'a> {
    pub session: &'a mut ServerSession,
    pub header: Option<Box<ResponseHeader>>,
    pub data: Vec<u8>,
}

impl Client for H2Client<'_> {
    const DECHUNK: bool = true;
    const INFORMATIONAL: bool = false;

    fn head(&mut self, buf: &[u8], method: Method) -> Result<Option<Response>, Invalid> {
        Ok(response_header_h2(buf, method)?.map(|(r, h)| {
            // 1xx heads are not passed on over HTTP/2.
            if r.status >= 200 {
                self.header = Some(h);
            }
            r
        }))
    }

    fn body(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    async fn send(&mut self, end: bool) -> io::Result<()> {
        if let Some(h) = self.header.take() {
            self.session
                .write_response_header(h)
                .await
                .map_err(h2_write_error)?;
        }
        if !self.data.is_empty() || end {
            // The gathered bytes become the frame's payload, uncopied.
            // (The session's write timeout is `responseSendIdle`.)
            let data = Bytes::from(std::mem::take(&mut self.data));
            self.session
                .write_response_body(data, end)
                .await
                .map_err(h2_write_error)?;
        }
        Ok(())
    }

    async fn error(&mut self, code: u16) {
        let _ = self.session.respond_error(code).await;
    }

    async fn gone(&mut self) {
        // A client that resets its stream (RST_STREAM) no longer waits: the
        // upstream request is abandoned at once (Rapid Reset).
        match self.session.watch_h2_stream_close() {
            Some(closed) => {
                let _ = closed.await;
            }
            None => std::future::pending().await,
        }
    }
}

/// Sends `request` (its head) and relays the response to `client`.
pub async fn forward<C: Client>(
    client: &mut C,
    up: &mut Upstream,
    request: &[u8],
    method: Method,
    timeout: Option<Duration>,
) -> Forwarded {
    if let Err(e) = send(&mut up.stream, request).await {
        return Forwarded::Unanswered(e);
    }
    up.buf.clear();
    let mut informational_sent = false;
    let resp = loop {
        let r = match read_head(client, up, method, timeout).await {
            Ok(r) => r,
            Err(e) if informational_sent => {
                return answered_error(100, format!("upstream after 1xx: {e:?}"));
            }
            Err(HeadError::Io(e)) => return Forwarded::Unanswered(e),
            Err(HeadError::TimedOut) => return Forwarded::TimedOut,
            Err(HeadError::ClientGone) => return Forwarded::ClientGone,
            Err(HeadError::Invalid(i)) => return Forwarded::Invalid(i),
        };
        up.buf.advance(r.head_len);
        if r.status >= 200 {
            break r;
        }
        // 100 Continue, 103 Early Hints: passed on (HTTP/1.1), the final
        // head follows.
        if C::INFORMATIONAL {
            if let Err(e) = client.send(false).await {
                return answered_error(r.status, format!("client write: {e}"));
            }
            informational_sent = true;
        }
    };
    relay_body(client, up, resp, timeout).await
}

enum HeadError {
    Io(io::Error),
    TimedOut,
    Invalid(Invalid),
    ClientGone,
}

impl std::fmt::Debug for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Io(e) => write!(f, "{e}"),
            HeadError::TimedOut => f.write_str("timed out"),
            HeadError::Invalid(i) => f.write_str(i.0),
            HeadError::ClientGone => f.write_str("client closed"),
        }
    }
}

async fn read_head<C: Client>(
    client: &mut C,
    up: &mut Upstream,
    method: Method,
    timeout: Option<Duration>,
) -> Result<Response, HeadError> {
    loop {
        if !up.buf.is_empty() {
            match client.head(&up.buf, method) {
                Ok(Some(r)) => return Ok(r),
                Ok(None) if up.buf.len() > MAX_RESPONSE_HEAD => {
                    return Err(HeadError::Invalid(Invalid("response head too large")))
                }
                Ok(None) => {}
                Err(i) => return Err(HeadError::Invalid(i)),
            }
        }
        let read = tokio::select! {
            biased;
            r = read_some(&mut up.stream, &mut up.buf, timeout) => r,
            () = client.gone() => return Err(HeadError::ClientGone),
        };
        match read {
            Ok(0) => {
                return Err(HeadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "upstream closed before a response",
                )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(HeadError::TimedOut),
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
}

/// The body to the client, starting with what is already buffered after
/// the head (sent together with the head).
async fn relay_body<C: Client>(
    client: &mut C,
    up: &mut Upstream,
    resp: Response,
    timeout: Option<Duration>,
) -> Forwarded {
    let mut body = Body {
        framing: resp.framing,
        left: match resp.framing {
            Framing::Length(n) => n,
            _ => 0,
        },
        chunks: Chunks::default(),
        reusable: resp.upstream_reusable,
    };
    let mut done = body.take::<C>(&mut up.buf, client.body());
    loop {
        let end = matches!(done, Ok(true));
        if let Err(e) = client.send(end).await {
            return answered_error(resp.status, format!("client write: {e}"));
        }
        match done {
            Ok(true) => break,
            Ok(false) => {}
            Err(i) => return answered_error(resp.status, format!("upstream body: {}", i.0)),
        }
        up.buf.clear();
        match read_some(&mut up.stream, &mut up.buf, timeout).await {
            Ok(0) if resp.framing == Framing::UntilClose => done = Ok(true),
            Ok(0) => return answered_error(resp.status, "upstream closed mid-body".into()),
            Ok(_) => done = body.take::<C>(&mut up.buf, client.body()),
            Err(e) => return answered_error(resp.status, format!("upstream body: {e}")),
        }
    }
    up.buf.clear();
    Forwarded::Answered {
        status: resp.status,
        keep_client: resp.keep_client,
        upstream_reusable: body.reusable,
        error: None,
    }
}

/// Where a response body stands.
struct Body {
    framing: Framing,
    /// Bytes still to come of a length-delimited body.
    left: u64,
    chunks: Chunks,
    reusable: bool,
}

impl Body {
    /// Moves the body bytes of `buf` that belong to this response into
    /// `out` (de-chunked for clients that want it); `Ok(true)` once the
    /// body is complete. Bytes past the end mean the upstream cannot be
    /// trusted with another request.
    fn take<C: Client>(&mut self, buf: &mut BytesMut, out: &mut Vec<u8>) -> Result<bool, Invalid> {
        let (n, done) = match self.framing {
            Framing::Empty => (0, true),
            Framing::Length(_) => {
                let n = self.left.min(buf.len() as u64) as usize;
                self.left -= n as u64;
                out.extend_from_slice(&buf[..n]);
                (n, self.left == 0)
            }
            Framing::Chunked if C::DECHUNK => {
                let end = self
                    .chunks
                    .feed_data(buf, &mut |d| out.extend_from_slice(d))?;
                end.map_or((buf.len(), false), |e| (e, true))
            }
            Framing::Chunked => {
                let (n, done) = self
                    .chunks
                    .feed(buf)?
                    .map_or((buf.len(), false), |e| (e, true));
                out.extend_from_slice(&buf[..n]);
                (n, done)
            }
            Framing::UntilClose => {
                out.extend_from_slice(buf);
                (buf.len(), false)
            }
        };
        buf.advance(n);
        if done && !buf.is_empty() {
            self.reusable = false;
        }
        Ok(done)
    }
}

fn answered_error(status: u16, error: String) -> Forwarded {
    Forwarded::Answered {
        status,
        keep_client: false,
        upstream_reusable: false,
        error: Some(error),
    }
}

/// The client took no response bytes for `responseSendIdle`: counted here,
/// where both HTTP versions' direct paths find out.
fn send_timed_out() -> io::Error {
    crate::metrics::metrics()
        .timeouts
        .with_label_values(&["response_send"])
        .inc();
    io::Error::new(
        io::ErrorKind::TimedOut,
        "client took no response bytes in time",
    )
}

fn h2_write_error(e: Box<pingora_error::Error>) -> io::Error {
    if matches!(e.etype(), pingora_error::ErrorType::WriteTimedout) {
        return send_timed_out();
    }
    io::Error::other(e)
}

async fn send(s: &mut Stream, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    s.write_all(bytes).await?;
    s.flush().await
}

/// One read into `buf`'s spare room, bounded by `timeout` when set.
pub async fn read_some(
    s: &mut Stream,
    buf: &mut BytesMut,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_CHUNK);
    }
    match timeout {
        None => s.read_buf(buf).await,
        Some(t) => match pingora_timeout::timeout(t, s.read_buf(buf)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "upstream read timed out",
            )),
        },
    }
}

/// The upstream refused the TLS session itself (an alert such as
/// `certificate required` arrives with the first read in TLS 1.3): it never
/// read the request, so the request may go again.
pub fn tls_refusal(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<openssl::ssl::Error>())
}
