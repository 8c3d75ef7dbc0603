//! Reads the frame headers of an HTTP/2 connection on the wire, both ways,
//! to count `RST_STREAM` frames: those the client sends (Rapid Reset,
//! CVE-2023-44487) and those it makes us send by breaking the protocol on
//! a stream (MadeYouReset, CVE-2025-8671). The `h2` codec handles resets
//! stream by stream and never tells its user how many there were; counting
//! on the wire holds for every stream, whichever engine serves it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::tls::ssl::SslRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::budget::ResetBudget;

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const RST_STREAM: u8 = 0x3;

/// Where the reader stands in a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Bytes of the connection preface still to come.
    Preface(usize),
    /// Bytes of a frame header seen so far (its type is byte 3).
    Header { seen: usize, kind: u8, len: usize },
    /// Payload bytes still to pass; an `RST_STREAM`'s error code is read.
    Payload { left: usize, kind: u8, code: u32 },
}

/// A frame as [`FrameReader`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    /// The error code of an `RST_STREAM`.
    pub code: u32,
}

/// Finds the frames in a byte stream fed in arbitrary pieces.
#[derive(Debug)]
pub struct FrameReader {
    at: At,
}

impl FrameReader {
    /// The client's side: the connection preface comes first.
    pub fn client() -> Self {
        FrameReader {
            at: At::Preface(PREFACE_LEN),
        }
    }

    /// The server's side: frames from the first byte.
    pub fn server() -> Self {
        FrameReader {
            at: At::Header {
                seen: 0,
                kind: 0,
                len: 0,
            },
        }
    }

    /// Feeds bytes; calls `on_frame` once each frame is known (for an
    /// `RST_STREAM`, once its error code is read).
    pub fn feed(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(Frame)) {
        while !bytes.is_empty() {
            match self.at {
                At::Preface(left) => {
                    let n = left.min(bytes.len());
                    bytes = &bytes[n..];
                    self.at = if n == left {
                        At::Header {
                            seen: 0,
                            kind: 0,
                            len: 0,
                        }
                    } else {
                        At::Preface(left - n)
                    };
                }
                At::Header {
                    mut seen,
                    mut kind,
                    mut len,
                } => {
                    while seen < FRAME_HEADER_LEN {
                        let Some((&b, rest)) = bytes.split_first() else {
                            break;
                        };
                        bytes = rest;
                        match seen {
                            0..=2 => len = len << 8 | usize::from(b),
                            3 => kind = b,
                            _ => {}
                        }
                        seen += 1;
                    }
                    self.at = if seen == FRAME_HEADER_LEN {
                        if kind != RST_STREAM {
                            on_frame(Frame { kind, code: 0 });
                        }
                        At::Payload {
                            left: len,
                            kind,
                            code: 0,
                        }
                    } else {
                        At::Header { seen, kind, len }
                    };
                }
                At::Payload {
                    mut left,
                    kind,
                    mut code,
                } => {
                    if kind == RST_STREAM {
                        // The payload is the 4-byte error code.
                        while left > 0 {
                            let Some((&b, rest)) = bytes.split_first() else {
                                break;
                            };
                            bytes = rest;
                            code = code << 8 | u32::from(b);
                            left -= 1;
                        }
                        if left == 0 {
                            on_frame(Frame { kind, code });
                        }
                    } else {
                        let n = left.min(bytes.len());
                        bytes = &bytes[n..];
                        left -= n;
                    }
                    self.at = At::Payload { left, kind, code };
                }
            }
            if let At::Payload { left: 0, .. } = self.at {
                self.at = At::Header {
                    seen: 0,
                    kind: 0,
                    len: 0,
                };
            }
        }
    }
}

/// Error codes of `RST_STREAM`s we send because the client broke the
/// protocol on that stream: the resets a client can provoke at will.
/// `NO_ERROR` (an answer that did not need the rest of the body) and
/// `CANCEL` / `INTERNAL_ERROR` (our side gave up) are not the client's
/// doing; nor is `REFUSED_STREAM` (a client that opens a stream the moment
/// its previous one ended may meet a permit not yet given back; refusing
/// costs us nothing, so it is counted but not held against the client).
fn provoked(code: u32) -> bool {
    matches!(
        code,
        0x1 /* PROTOCOL_ERROR */
            | 0x3 /* FLOW_CONTROL_ERROR */
            | 0x5 /* STREAM_CLOSED */
            | 0x6 /* FRAME_SIZE_ERROR */
            | 0x9 /* COMPRESSION_ERROR */
            | 0xb /* ENHANCE_YOUR_CALM */
    )
}

/// The client's connection with its resets counted.
#[derive(Debug)]
pub struct Watched {
    inner: Stream,
    received: FrameReader,
    sent: FrameReader,
    budget: Arc<ResetBudget>,
}

impl Watched {
    pub fn new(inner: Stream, budget: Arc<ResetBudget>) -> Self {
        Watched {
            inner,
            received: FrameReader::client(),
            sent: FrameReader::server(),
            budget,
        }
    }

    fn note_sent(&mut self, bytes: &[u8]) {
        let budget = &self.budget;
        self.sent.feed(bytes, |f| {
            if f.kind == RST_STREAM {
                budget.server_reset(provoked(f.code));
            }
        });
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let budget = &this.budget;
            this.received.feed(&buf.filled()[before..], |f| {
                if f.kind == RST_STREAM {
                    budget.client_reset();
                }
            });
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.note_sent(&buf[..n]);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Vectored writes are left to the default (one slice at a time), so
    // every byte sent passes `poll_write` and its frames are seen.
}

#[async_trait]
impl Shutdown for Watched {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Watched {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Watched {
    fn get_ssl(&self) -> Option<&SslRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Watched {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl GetProxyDigest for Watched {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Watched {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

impl Peek for Watched {}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: usize) -> Vec<u8> {
        let mut f = vec![
            (payload >> 16) as u8,
            (payload >> 8) as u8,
            payload as u8,
            kind,
            0,
            0,
            0,
            0,
            1,
        ];
        f.resize(FRAME_HEADER_LEN + payload, 0xAA);
        if kind == RST_STREAM {
            f[FRAME_HEADER_LEN..].copy_from_slice(&[1, 2, 3, 4]);
        }
        f
    }

    #[test]
    fn frame_types_whatever_the_split() {
        let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for (kind, len) in [(4, 6), (1, 30), (3, 4), (0, 0), (3, 4), (0, 70_000)] {
            wire.extend(frame(kind, len));
        }
        for step in [1, 2, 7, 9, 100, wire.len()] {
            let mut r = FrameReader::client();
            let mut kinds = Vec::new();
            for piece in wire.chunks(step) {
                r.feed(piece, |f| kinds.push((f.kind, f.code)));
            }
            assert_eq!(
                kinds,
                [
                    (4, 0),
                    (1, 0),
                    (3, 0x0102_0304),
                    (0, 0),
                    (3, 0x0102_0304),
                    (0, 0)
                ],
                "pieces of {step}"
            );
        }
        let mut r = FrameReader::server();
        let mut kinds = Vec::new();
        r.feed(&frame(3, 4), |f| kinds.push(f.kind));
        assert_eq!(kinds, [3]);
    }
}
