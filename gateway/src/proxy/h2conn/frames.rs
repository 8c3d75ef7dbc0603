//! Reads the frame headers of what an HTTP/2 client sends, on the way into
//! the `h2` codec, to count the client's `RST_STREAM` frames. The codec
//! handles resets stream by stream and never tells its user how many a
//! client sent; Rapid Reset (CVE-2023-44487) is exactly "many". Counting
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

/// Where the reader stands in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Bytes of the connection preface still to come.
    Preface(usize),
    /// Bytes of a frame header seen so far (its type is byte 3).
    Header { seen: usize, kind: u8, len: usize },
    /// Payload bytes still to skip.
    Payload(usize),
}

/// Counts frame types in a byte stream fed in arbitrary pieces.
#[derive(Debug)]
pub struct FrameReader {
    at: At,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            at: At::Preface(PREFACE_LEN),
        }
    }
}

impl FrameReader {
    /// Feeds received bytes; calls `on_frame(type)` for each frame header
    /// completed.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(u8)) {
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
                        on_frame(kind);
                        At::Payload(len)
                    } else {
                        At::Header { seen, kind, len }
                    };
                }
                At::Payload(left) => {
                    let n = left.min(bytes.len());
                    bytes = &bytes[n..];
                    self.at = At::Payload(left - n);
                }
            }
            if self.at == At::Payload(0) {
                self.at = At::Header {
                    seen: 0,
                    kind: 0,
                    len: 0,
                };
            }
        }
    }
}

/// The client's stream with its frames counted.
#[derive(Debug)]
pub struct Watched {
    inner: Stream,
    frames: FrameReader,
    budget: Arc<ResetBudget>,
}

impl Watched {
    pub fn new(inner: Stream, budget: Arc<ResetBudget>) -> Self {
        Watched {
            inner,
            frames: FrameReader::default(),
            budget,
        }
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
            this.frames.feed(&buf.filled()[before..], |kind| {
                if kind == RST_STREAM {
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
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
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
        f
    }

    #[test]
    fn frame_types_whatever_the_split() {
        let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for (kind, len) in [(4, 6), (1, 30), (3, 4), (0, 0), (3, 4), (0, 70_000)] {
            wire.extend(frame(kind, len));
        }
        for step in [1, 2, 7, 9, 100, wire.len()] {
            let mut r = FrameReader::default();
            let mut kinds = Vec::new();
            for piece in wire.chunks(step) {
                r.feed(piece, |k| kinds.push(k));
            }
            assert_eq!(kinds, [4, 1, 3, 0, 3, 0], "pieces of {step}");
        }
    }
}
