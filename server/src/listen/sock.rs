//! A downstream TCP connection as Pingora's TLS and HTTP code read it, and
//! as we own it: the descriptor is closed the moment this value is dropped
//! (no duplicate anywhere keeps it open), except after a refused handshake,
//! where the close lingers for a bounded time so the client reads our alert.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::slots::Slot;

/// Writes below this size are gathered until a flush, so a handshake
/// flight (several records, one flush) leaves in one segment; as Pingora's
/// own stream does, one MSS.
const WRITE_GATHER: usize = 1460;

/// What one refused client may cost us after its alert.
const LINGER_FOR: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

pub struct Sock {
    /// `None` only while being dropped.
    tcp: Option<TcpStream>,
    wbuf: Vec<u8>,
    digest: Arc<SocketDigest>,
    established: SystemTime,
    /// Counts this connection against `limits.maxConnections` until the
    /// descriptor is closed, lingering included.
    slot: Option<Slot>,
    /// Bytes read before deciding (`opening.rs`), served before the socket's.
    prefix: Vec<u8>,
    prefix_at: usize,
}

impl std::fmt::Debug for Sock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sock")
            .field("peer", &self.digest.peer_addr.get())
            .finish_non_exhaustive()
    }
}

impl Sock {
    pub fn new(tcp: TcpStream, peer: SocketAddr, slot: Slot) -> Sock {
        Sock::with_prefix(tcp, peer, slot, Vec::new())
    }

    /// `peer` is the client's address (a PROXY protocol header's, if one
    /// was believed); `prefix` the bytes already read from `tcp`.
    pub fn with_prefix(tcp: TcpStream, peer: SocketAddr, slot: Slot, prefix: Vec<u8>) -> Sock {
        let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
        let _ = digest.peer_addr.set(Some(peer.into()));
        let _ = digest.local_addr.set(tcp.local_addr().ok().map(Into::into));
        Sock {
            tcp: Some(tcp),
            wbuf: Vec::new(),
            digest: Arc::new(digest),
            established: SystemTime::now(),
            slot: Some(slot),
            prefix,
            prefix_at: 0,
        }
    }

    /// The client's address as this connection reports it.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.digest
            .peer_addr
            .get()
            .and_then(|a| a.as_ref())
            .and_then(|a| a.as_inet())
            .copied()
    }

    fn tcp(&mut self) -> &mut TcpStream {
        self.tcp.as_mut().expect("socket present until drop")
    }

    fn poll_drain_wbuf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.wbuf.is_empty() {
            let tcp = self.tcp.as_mut().expect("socket present until drop");
            let n = ready!(Pin::new(tcp).poll_write(cx, &self.wbuf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wbuf.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        let Some(tcp) = self.tcp.take() else { return };
        if !super::handshake::refused_in_scope() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pending = std::mem::take(&mut self.wbuf);
        let slot = self.slot.take();
        rt.spawn(linger(tcp, pending, slot));
    }
}

/// In TLS 1.3 a client sends its certificate and, before our verdict, its
/// first request. Closing with that request unread makes the kernel send a
/// RST, and the client then loses the alert it has not read yet (curl
/// reports "connection reset" instead of "unknown ca"). So: send what is
/// pending (the alert), FIN, and read what the client still sends, within
/// bounds, before the last close.
async fn linger(mut tcp: TcpStream, pending: Vec<u8>, _slot: Option<Slot>) {
    let _ = tokio::time::timeout(LINGER_FOR, async {
        if tcp.write_all(&pending).await.is_err() || tcp.shutdown().await.is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

impl AsyncRead for Sock {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.prefix_at < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.prefix_at);
            buf.put_slice(&this.prefix[this.prefix_at..this.prefix_at + n]);
            this.prefix_at += n;
            if this.prefix_at == this.prefix.len() {
                this.prefix = Vec::new();
                this.prefix_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(this.tcp()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Sock {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.wbuf.len() + buf.len() > WRITE_GATHER {
            ready!(this.poll_drain_wbuf(cx))?;
        }
        if buf.len() >= WRITE_GATHER {
            return Pin::new(this.tcp()).poll_write(cx, buf);
        }
        this.wbuf.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain_wbuf(cx))?;
        // An idle connection holds no write buffer.
        this.wbuf = Vec::new();
        Pin::new(this.tcp()).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain_wbuf(cx))?;
        Pin::new(this.tcp()).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Sock {
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for Sock {
    fn id(&self) -> UniqueIDType {
        self.tcp.as_ref().map_or(-1, |t| t.as_raw_fd())
    }
}

impl Ssl for Sock {}

impl GetTimingDigest for Sock {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        vec![Some(TimingDigest {
            established_ts: self.established,
            ..TimingDigest::default()
        })]
    }
}

impl GetProxyDigest for Sock {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for Sock {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        Some(self.digest.clone())
    }
}

impl Peek for Sock {}
