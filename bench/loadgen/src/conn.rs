//! Opening a connection: TCP (no Nagle), then TLS when the URL is https,
//! reporting whether the handshake resumed a session.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::HandshakeKind;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// How to reach the server.
pub struct Connector {
    pub addr: SocketAddr,
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
    pub h2: bool,
    /// What the first TLS handshake negotiated: "version cipher group".
    pub negotiated: OnceLock<String>,
}

/// A connection and, for TLS, whether its handshake resumed a session.
pub struct Opened {
    pub stream: Stream,
    pub resumed: Option<bool>,
}

impl Connector {
    pub fn new(
        addr: SocketAddr,
        host: &str,
        tls: Option<rustls::ClientConfig>,
        h2: bool,
    ) -> Result<Self, String> {
        let tls = match tls {
            None => None,
            Some(config) => {
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| format!("'{host}' is not a valid server name: {e}"))?;
                Some((TlsConnector::from(Arc::new(config)), name))
            }
        };
        Ok(Connector {
            addr,
            tls,
            h2,
            negotiated: OnceLock::new(),
        })
    }

    /// Errors are returned as a short kind ("connect: ...", "tls: ...").
    pub async fn open(&self) -> Result<Opened, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| format!("connect: {e}"))?;
        let Some((connector, name)) = &self.tls else {
            return Ok(Opened {
                stream: Stream::Plain(tcp),
                resumed: None,
            });
        };
        let tls = connector
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        let conn = tls.get_ref().1;
        let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
        if self.negotiated.get().is_none() {
            let _ = self.negotiated.set(describe(conn));
        }
        if self.h2 && conn.alpn_protocol() != Some(b"h2") {
            return Err("tls: server did not select ALPN h2".into());
        }
        Ok(Opened {
            stream: Stream::Tls(Box::new(tls)),
            resumed: Some(resumed),
        })
    }
}

fn describe(conn: &rustls::ClientConnection) -> String {
    let version = conn
        .protocol_version()
        .map_or("?".into(), |v| format!("{v:?}"));
    let suite = conn
        .negotiated_cipher_suite()
        .map_or("?".into(), |s| format!("{:?}", s.suite()));
    let group = conn
        .negotiated_key_exchange_group()
        .map_or("-".into(), |g| format!("{:?}", g.name()));
    format!("{version} {suite} {group}")
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
