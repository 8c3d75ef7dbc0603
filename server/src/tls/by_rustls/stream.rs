//! A rustls connection as Pingora's `Stream`, and its `ConnInfo`.
//!
//! Our request engines find a connection's TLS facts through its
//! `SslDigest`; Pingora only lets its own OpenSSL handshake attach them
//! (`SslDigestExtension` cannot be set from outside). A rustls stream's
//! digest is therefore registered here, by address, for as long as the
//! stream lives: the digest cannot be freed (and its address reused)
//! while the stream holds it, and once the stream is gone the lookup finds
//! nothing, which the engines treat as TLS of unknown policy (refused).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, RwLock, Weak};
use std::task::{Context, Poll};

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::server::TlsStream;

use crate::listen::sock::Sock;
use crate::tls::ConnInfo;

type Registry = RwLock<HashMap<usize, Weak<ConnInfo>>>;

static REGISTRY: LazyLock<Registry> = LazyLock::new(Default::default);

fn key(digest: &Arc<SslDigest>) -> usize {
    Arc::as_ptr(digest) as usize
}

/// The `ConnInfo` of a live rustls stream whose digest this is.
pub(crate) fn registered(digest: &Arc<SslDigest>) -> Option<Arc<ConnInfo>> {
    let map = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    map.get(&key(digest))?.upgrade()
}

/// How many rustls streams are registered (for tests: none may leak).
pub fn live_streams() -> usize {
    REGISTRY.read().unwrap_or_else(|e| e.into_inner()).len()
}

pub struct RustlsStream {
    inner: TlsStream<Sock>,
    digest: Arc<SslDigest>,
    /// The strong reference the registry's weak one follows.
    info: Arc<ConnInfo>,
    alpn: Option<ALPN>,
}

impl RustlsStream {
    pub(crate) fn new(inner: TlsStream<Sock>, info: ConnInfo) -> RustlsStream {
        let conn = inner.get_ref().1;
        let cipher = conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown");
        let alpn = match conn.alpn_protocol() {
            Some(b"h2") => Some(ALPN::H2),
            Some(b"http/1.1") => Some(ALPN::H1),
            _ => None,
        };
        let digest = Arc::new(SslDigest::new(cipher, info.version, None, None, Vec::new()));
        let info = Arc::new(info);
        REGISTRY
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key(&digest), Arc::downgrade(&info));
        RustlsStream {
            inner,
            digest,
            info,
            alpn,
        }
    }

    /// rustls refused a TLS 1.2 renegotiation the client asked for (a
    /// `no_renegotiation` warning, the connection goes on): counted as
    /// OpenSSL's are.
    fn count_renegotiations(&mut self) {
        let n = self.inner.get_mut().0.take_renegotiations();
        if n == 0 {
            return;
        }
        let info = &self.info;
        let sni = info.sni.as_deref().unwrap_or("");
        let label = info
            .policy
            .as_ref()
            .and_then(|p| crate::tls::conn::sni_label(p, sni))
            .unwrap_or_else(|| "-".into());
        for _ in 0..n {
            crate::tls::record_failure(
                &info.listener,
                &label,
                sni,
                crate::tls::FailureReason::Renegotiation,
                100,
            );
        }
    }

    fn sock(&self) -> &Sock {
        self.inner.get_ref().0
    }
}

impl Drop for RustlsStream {
    fn drop(&mut self) {
        REGISTRY
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key(&self.digest));
    }
}

impl std::fmt::Debug for RustlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustlsStream")
            .field("sock", self.sock())
            .field("version", &self.digest.version)
            .finish()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.count_renegotiations();
        read
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for RustlsStream {
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for RustlsStream {
    fn id(&self) -> UniqueIDType {
        self.sock().id()
    }
}

impl Ssl for RustlsStream {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        Some(self.digest.clone())
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.alpn.clone()
    }
}

impl GetTimingDigest for RustlsStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.sock().get_timing_digest()
    }
}

impl GetProxyDigest for RustlsStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.sock().get_proxy_digest()
    }
}

impl GetSocketDigest for RustlsStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.sock().get_socket_digest()
    }
}

impl Peek for RustlsStream {}
