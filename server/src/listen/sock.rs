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
    /// During the TLS handshake a flush leaves the bytes gathered until
    /// the next read would wait (see [`Sock::hold_flushes`]).
    hold_flushes: bool,
    /// Gathered bytes leave before a read waits; off only for a TLS 1.3
    /// session ticket, until the next write takes it along.
    drain_before_wait: bool,
    /// Bytes came in since the ticket was held: a request whose answer
    /// the ticket may wait for.
    read_since_held: bool,
    /// After a TLS 1.2 handshake on rustls: the client's records, watched
    /// for renegotiation requests (`records.rs`).
    records: Option<Box<super::records::RecordScan>>,
}

impl std::fmt::Debug for Sock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sock")
            .field("peer", &self.digest.peer_addr.get())
            .finish_non_exhaustive()
    }
}

impl Sock {
    pub fn new(tcp: TcpStream, peer: SocketAddr, local: SocketAddr, slot: Slot) -> Sock {
        Sock::with_prefix(tcp, peer, local, slot, Vec::new())
    }

    /// `peer` is the client's address (a PROXY protocol header's, if one
    /// was believed); `local` the socket's own, as the listener read it
    /// (a `getsockname` per connection is enough); `prefix` the bytes
    /// already read from `tcp`.
    pub fn with_prefix(
        tcp: TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        slot: Slot,
        prefix: Vec<u8>,
    ) -> Sock {
        let mut sock = Sock::unslotted(tcp, peer, local, prefix);
        sock.slot = Some(slot);
        sock
    }

    /// Counted against no limit: for tests, which must not move the
    /// process-wide count the slot tests read.
    fn unslotted(tcp: TcpStream, peer: SocketAddr, local: SocketAddr, prefix: Vec<u8>) -> Sock {
        let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
        let _ = digest.peer_addr.set(Some(peer.into()));
        let _ = digest.local_addr.set(Some(local.into()));
        Sock {
            tcp: Some(tcp),
            wbuf: Vec::new(),
            digest: Arc::new(digest),
            established: SystemTime::now(),
            slot: None,
            prefix,
            prefix_at: 0,
            hold_flushes: false,
            drain_before_wait: true,
            read_since_held: false,
            records: None,
        }
    }

    /// While on, a flush sends nothing: what was written leaves when a
    /// read is about to wait, with the next write past the gathering
    /// size, or at the next flush once off. For the TLS handshake: its
    /// last flush is the session ticket's, which then leaves in the same
    /// segment as the first response instead of a send of its own (one
    /// system call and one loopback delivery less per handshake). Every
    /// flight the client needs before it can go on still leaves before we
    /// wait for its answer.
    pub fn hold_flushes(&mut self, on: bool) {
        self.hold_flushes = on;
    }

    /// After a TLS 1.3 handshake: what is held (the session ticket, which
    /// the client does not wait for) may wait for the answer to the first
    /// request (it leaves with the next write) even while a read waits
    /// meanwhile; but not with no request read yet (an idle or pre-opened
    /// connection gets its ticket at once). Not for TLS 1.2, whose client
    /// waits for our last flight.
    pub fn keep_held_until_written(&mut self) {
        self.drain_before_wait = self.wbuf.is_empty();
        self.read_since_held = false;
    }

    /// The first request came with the handshake's last flight and the TLS
    /// library holds it already (rustls reads whatever the socket has, so
    /// no byte arrives after the handshake to say so): the held ticket
    /// waits for its answer as for a request read later.
    pub fn request_already_read(&mut self) {
        self.read_since_held = true;
    }

    /// If the last bytes held are a plaintext fatal alert `from` (one
    /// written before encryption began), makes it `to`.
    pub fn replace_held_alert(&mut self, from: u8, to: u8) -> bool {
        let alert = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, from];
        if !self.wbuf.ends_with(&alert) {
            return false;
        }
        let last = self.wbuf.len() - 1;
        self.wbuf[last] = to;
        true
    }

    /// From now on (a TLS 1.2 handshake just ended), watch the client's
    /// records for renegotiation requests.
    pub fn watch_records(&mut self) {
        self.records = Some(Box::default());
    }

    /// Renegotiation requests seen since the last call.
    pub fn take_renegotiations(&mut self) -> u32 {
        self.records.as_mut().map_or(0, |r| r.take_handshakes())
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
        self.drain_before_wait = true;
        Poll::Ready(Ok(()))
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        let Some(tcp) = self.tcp.take() else { return };
        if !super::handshake::refused_in_scope() {
            // A handshake's held bytes (an alert) get one try; the socket
            // is closing. Anything else unflushed is dropped, as before.
            if self.hold_flushes && !self.wbuf.is_empty() {
                let _ = tcp.try_write(&self.wbuf);
            }
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
        let before = buf.filled().len();
        let read = Pin::new(this.tcp()).poll_read(cx, buf);
        match read {
            // Nothing written may stay behind while we wait for the peer,
            // who may be waiting for it; a held ticket only while a
            // request is being answered.
            Poll::Pending
                if !this.wbuf.is_empty() && (this.drain_before_wait || !this.read_since_held) =>
            {
                ready!(this.poll_drain_wbuf(cx))?;
            }
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.read_since_held = true;
                if let Some(r) = &mut this.records {
                    r.feed(&buf.filled()[before..]);
                }
            }
            _ => {}
        }
        read
    }
}

impl AsyncWrite for Sock {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // A write ends a held ticket's exception: it leaves with this
        // write's flush at the latest.
        this.drain_before_wait = true;
        // What is gathered and this write, together past the gathering
        // size: one system call for both.
        while !this.wbuf.is_empty() && this.wbuf.len() + buf.len() > WRITE_GATHER {
            let both = [io::IoSlice::new(&this.wbuf), io::IoSlice::new(buf)];
            let tcp = this.tcp.as_mut().expect("socket present until drop");
            let n = ready!(Pin::new(tcp).poll_write_vectored(cx, &both))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n < this.wbuf.len() {
                this.wbuf.drain(..n);
                continue;
            }
            let taken = n - this.wbuf.len();
            this.wbuf.clear();
            this.drain_before_wait = true;
            if taken > 0 {
                return Poll::Ready(Ok(taken));
            }
        }
        if buf.len() >= WRITE_GATHER {
            return Pin::new(this.tcp()).poll_write(cx, buf);
        }
        this.wbuf.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.hold_flushes {
            return Poll::Ready(Ok(()));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (Sock, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (tcp, addr) = l.accept().await.unwrap();
        let local = tcp.local_addr().unwrap();
        (Sock::unslotted(tcp, addr, local, Vec::new()), peer)
    }

    /// What the peer receives until nothing more comes for `quiet`.
    async fn received(peer: &mut TcpStream, quiet: Duration) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(Ok(n)) = tokio::time::timeout(quiet, peer.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    /// A socket as a TLS 1.3 handshake leaves it: the ticket written last
    /// and held.
    async fn after_tls13_handshake() -> (Sock, TcpStream) {
        let (mut sock, peer) = pair().await;
        sock.hold_flushes(true);
        sock.write_all(b"ticket").await.unwrap();
        sock.flush().await.unwrap();
        sock.hold_flushes(false);
        sock.keep_held_until_written();
        (sock, peer)
    }

    /// A read of the socket that finds nothing (it waits, then gives up).
    async fn read_that_waits(sock: &mut Sock) {
        let mut buf = [0u8; 16];
        let r = tokio::time::timeout(Duration::from_millis(100), sock.read(&mut buf)).await;
        assert!(r.is_err(), "nothing was sent to read: {r:?}");
    }

    const QUIET: Duration = Duration::from_millis(150);

    #[tokio::test]
    async fn a_held_flight_leaves_before_a_read_waits() {
        let (mut sock, mut peer) = pair().await;
        sock.hold_flushes(true);
        sock.write_all(b"flight").await.unwrap();
        sock.flush().await.unwrap();
        assert!(received(&mut peer, QUIET).await.is_empty(), "held");
        read_that_waits(&mut sock).await;
        assert_eq!(received(&mut peer, QUIET).await, b"flight");
    }

    #[tokio::test]
    async fn a_tls13_ticket_leaves_with_the_first_response_in_one_write() {
        let (mut sock, mut peer) = after_tls13_handshake().await;
        // The request comes; while it is answered, reads wait (a client
        // that leaves is watched for) and the ticket stays.
        peer.write_all(b"request").await.unwrap();
        let mut got = [0u8; 7];
        sock.read_exact(&mut got).await.unwrap();
        read_that_waits(&mut sock).await;
        assert!(
            received(&mut peer, QUIET).await.is_empty(),
            "the ticket waits"
        );
        // Past the gathering size together: one vectored write.
        let response = vec![b'r'; 2 * WRITE_GATHER];
        sock.write_all(&response).await.unwrap();
        sock.flush().await.unwrap();
        let got = received(&mut peer, QUIET).await;
        assert_eq!(got.len(), 6 + response.len());
        assert_eq!(&got[..6], b"ticket", "in order");
        // Once written, what is gathered leaves before a read waits again.
        sock.write_all(b"more").await.unwrap();
        read_that_waits(&mut sock).await;
        assert_eq!(received(&mut peer, QUIET).await, b"more");
    }

    #[tokio::test]
    async fn a_ticket_waits_for_the_answer_to_a_request_read_with_the_handshake() {
        let (mut sock, mut peer) = after_tls13_handshake().await;
        sock.request_already_read();
        read_that_waits(&mut sock).await;
        assert!(
            received(&mut peer, QUIET).await.is_empty(),
            "the ticket waits"
        );
        sock.write_all(b"response").await.unwrap();
        sock.flush().await.unwrap();
        assert_eq!(received(&mut peer, QUIET).await, b"ticketresponse");
    }

    #[tokio::test]
    async fn a_tls13_ticket_does_not_wait_for_a_request_that_is_not_there() {
        let (mut sock, mut peer) = after_tls13_handshake().await;
        read_that_waits(&mut sock).await;
        assert_eq!(received(&mut peer, QUIET).await, b"ticket");
    }

    #[tokio::test]
    async fn without_a_hold_a_flush_sends_at_once() {
        let (mut sock, mut peer) = pair().await;
        sock.write_all(b"answer").await.unwrap();
        sock.flush().await.unwrap();
        assert_eq!(received(&mut peer, QUIET).await, b"answer");
    }
}
