//! One request on the direct path: the head goes upstream, the response
//! comes back to the client as its bytes arrive.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pingora::protocols::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::head::Method;
use super::pool::Upstream;
use super::relay::{response_head, Chunks, Framing, Invalid, Response};

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

/// Sends `up.out` (the request head) and relays the response to `down`.
pub async fn forward(
    down: &mut Stream,
    up: &mut Upstream,
    method: Method,
    keep_client: bool,
    timeout: Option<Duration>,
) -> Forwarded {
    if let Err(e) = send(&mut up.stream, &up.out).await {
        return Forwarded::Unanswered(e);
    }
    up.buf.clear();
    let mut informational_sent = false;
    let resp = loop {
        up.out.clear();
        let r = match read_head(up, method, keep_client, timeout).await {
            Ok(r) => r,
            Err(e) if informational_sent => {
                return answered_error(100, format!("upstream after 1xx: {e:?}"));
            }
            Err(HeadError::Io(e)) => return Forwarded::Unanswered(e),
            Err(HeadError::TimedOut) => return Forwarded::TimedOut,
            Err(HeadError::Invalid(i)) => return Forwarded::Invalid(i),
        };
        up.buf.advance(r.head_len);
        if r.status >= 200 {
            break r;
        }
        // 100 Continue, 103 Early Hints: passed on, the final head follows.
        if let Err(e) = send(down, &up.out).await {
            return answered_error(r.status, format!("client write: {e}"));
        }
        informational_sent = true;
    };
    relay_body(down, up, resp, timeout).await
}

enum HeadError {
    Io(io::Error),
    TimedOut,
    Invalid(Invalid),
}

impl std::fmt::Debug for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Io(e) => write!(f, "{e}"),
            HeadError::TimedOut => f.write_str("timed out"),
            HeadError::Invalid(i) => f.write_str(i.0),
        }
    }
}

async fn read_head(
    up: &mut Upstream,
    method: Method,
    keep_client: bool,
    timeout: Option<Duration>,
) -> Result<Response, HeadError> {
    loop {
        if !up.buf.is_empty() {
            match response_head(&up.buf, method, keep_client, &mut up.out) {
                Ok(Some(r)) => return Ok(r),
                Ok(None) if up.buf.len() > MAX_RESPONSE_HEAD => {
                    return Err(HeadError::Invalid(Invalid("response head too large")))
                }
                Ok(None) => {}
                Err(i) => return Err(HeadError::Invalid(i)),
            }
        }
        match read_some(&mut up.stream, &mut up.buf, timeout).await {
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

/// Head (in `up.out`) and body to the client. What is already buffered
/// after the head goes out with it, in one write.
async fn relay_body(
    down: &mut Stream,
    up: &mut Upstream,
    resp: Response,
    timeout: Option<Duration>,
) -> Forwarded {
    let mut reusable = resp.upstream_reusable;
    let mut chunks = Chunks::default();
    // Bytes of body still to come, for the length-delimited framings.
    let mut left = match resp.framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut done = take_body(
        &mut up.buf,
        &mut up.out,
        resp.framing,
        &mut left,
        &mut chunks,
        &mut reusable,
    );
    if let Err(e) = send(down, &up.out).await {
        return answered_error(resp.status, format!("client write: {e}"));
    }
    while !matches!(done, Ok(true)) {
        if let Err(i) = done {
            return answered_error(resp.status, format!("upstream body: {}", i.0));
        }
        up.buf.clear();
        up.out.clear();
        match read_some(&mut up.stream, &mut up.buf, timeout).await {
            Ok(0) if resp.framing == Framing::UntilClose => break,
            Ok(0) => return answered_error(resp.status, "upstream closed mid-body".into()),
            Ok(_) => {}
            Err(e) => return answered_error(resp.status, format!("upstream body: {e}")),
        }
        done = take_body(
            &mut up.buf,
            &mut up.out,
            resp.framing,
            &mut left,
            &mut chunks,
            &mut reusable,
        );
        if let Err(e) = send(down, &up.out).await {
            return answered_error(resp.status, format!("client write: {e}"));
        }
    }
    up.buf.clear();
    up.out.clear();
    Forwarded::Answered {
        status: resp.status,
        keep_client: resp.keep_client,
        upstream_reusable: reusable,
        error: None,
    }
}

/// Moves the body bytes of `buf` that belong to this response into `out`;
/// `Ok(true)` once the body is complete. Bytes past the end mean the
/// upstream cannot be trusted with another request.
fn take_body(
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    framing: Framing,
    left: &mut u64,
    chunks: &mut Chunks,
    reusable: &mut bool,
) -> Result<bool, Invalid> {
    let (n, done) = match framing {
        Framing::Empty => (0, true),
        Framing::Length(_) => {
            let n = (*left).min(buf.len() as u64) as usize;
            *left -= n as u64;
            (n, *left == 0)
        }
        Framing::Chunked => match chunks.feed(buf)? {
            Some(end) => (end, true),
            None => (buf.len(), false),
        },
        Framing::UntilClose => (buf.len(), false),
    };
    out.extend_from_slice(&buf[..n]);
    buf.advance(n);
    if done && !buf.is_empty() {
        *reusable = false;
    }
    Ok(done)
}

fn answered_error(status: u16, error: String) -> Forwarded {
    Forwarded::Answered {
        status,
        keep_client: false,
        upstream_reusable: false,
        error: Some(error),
    }
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
