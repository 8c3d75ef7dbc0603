//! The data-plane listeners: accept, admit, handshake, hand over.
//!
//! tlsgate runs its own accept loop instead of Pingora's so that it owns
//! every downstream descriptor from `accept` to `close`:
//! 1. accept; over `limits.maxConnections` the connection is closed at
//!    once and counted (a flood meets a refusal, not descriptor
//!    exhaustion);
//! 2. on a TLS port, the handshake within `timeouts.tlsHandshake`
//!    (`handshake.rs`): a client that stalls, closes or is refused is gone
//!    with its descriptor right there;
//! 3. the connection goes to the HTTP application (`proxy::Direct`), which
//!    enforces the request-level deadlines and limits.
//!
//! Listening sockets are bound before the server starts (`bind`), so a
//! port in use is an error at start, not a panic in a worker.

mod handshake;
mod slots;
mod sock;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::{ListenFds, ShutdownWatch};
use tokio::net::TcpListener;

pub use handshake::TlsFront;
pub use slots::derived_max;

use crate::admin::Readiness;
use crate::metrics::metrics;
use crate::runtime::SharedRuntime;
use slots::Slot;
use sock::Sock;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// One bound listening socket and what its connections speak.
pub struct Bound {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    tls: Option<Arc<TlsFront>>,
}

/// Binds `addr` now (address reuse, a deep backlog, non-blocking).
pub fn bind(addr: SocketAddr, tls: Option<TlsFront>) -> Result<Bound, BindError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let fail = |source| BindError { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(BACKLOG).map_err(fail)?;
    let listener = std::net::TcpListener::from(socket);
    Ok(Bound {
        listener,
        addr,
        tls: tls.map(Arc::new),
    })
}

/// As Pingora's listeners (the kernel caps it at `somaxconn`).
const BACKLOG: i32 = 65535;
/// After an accept error (out of descriptors), before trying again: the
/// listening socket stays readable, so retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The Pingora service running every data-plane listener.
pub struct Front<A> {
    bound: Vec<Bound>,
    app: Arc<A>,
    rt: SharedRuntime,
    ready: Arc<Readiness>,
}

impl<A> Front<A> {
    /// `ready` is marked once every accept loop runs.
    pub fn new(bound: Vec<Bound>, app: A, rt: SharedRuntime, ready: Arc<Readiness>) -> Self {
        Front {
            bound,
            app: Arc::new(app),
            rt,
            ready,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> pingora::services::Service for Front<A> {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let mut loops = Vec::new();
        for b in std::mem::take(&mut self.bound) {
            let listener = match TcpListener::from_std(b.listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(addr = %b.addr, error = %e, "listener lost");
                    continue;
                }
            };
            let acceptor = Accept {
                app: self.app.clone(),
                rt: self.rt.clone(),
                tls: b.tls,
                addr: b.addr,
            };
            loops.push(tokio::spawn(acceptor.run(listener, shutdown.clone())));
        }
        self.ready.mark_ready();
        for l in loops {
            let _ = l.await;
        }
        self.app.cleanup().await;
    }

    fn name(&self) -> &str {
        "tlsgate"
    }
}

struct Accept<A> {
    app: Arc<A>,
    rt: SharedRuntime,
    tls: Option<Arc<TlsFront>>,
    addr: SocketAddr,
}

impl<A: ServerApp + Send + Sync + 'static> Accept<A> {
    async fn run(self, listener: TcpListener, mut shutdown: ShutdownWatch) {
        static REFUSED_LOG: crate::logrl::Throttle = crate::logrl::Throttle::new();
        let this = Arc::new(self);
        loop {
            let accepted = tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                    continue;
                }
                a = listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    metrics()
                        .connections_refused
                        .with_label_values(&["accept_error"])
                        .inc();
                    if let Some(suppressed) = REFUSED_LOG.allow() {
                        tracing::warn!(listener = %this.addr, error = %e, suppressed, "accept failed");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let max = derived_max(this.rt.load().model.runtime.limits.max_connections);
            let Some(slot) = Slot::acquire(max) else {
                metrics()
                    .connections_refused
                    .with_label_values(&["max_connections"])
                    .inc();
                if let Some(suppressed) = REFUSED_LOG.allow() {
                    tracing::warn!(listener = %this.addr, peer = %peer, max, suppressed, "connection refused: limits.maxConnections reached");
                }
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let sock = Sock::new(tcp, peer, slot);
            let conn = this.clone();
            let shutdown = shutdown.clone();
            pingora_runtime::current_handle()
                .spawn(async move { conn.serve(sock, shutdown).await });
        }
    }

    /// One connection, from accept to close.
    async fn serve(&self, sock: Sock, shutdown: ShutdownWatch) {
        let stream: Stream = match &self.tls {
            None => Box::new(sock),
            Some(front) => {
                let within = self.rt.load().model.runtime.timeouts.tls_handshake;
                match handshake::accept(front, sock, within).await {
                    Some(s) => Box::new(s),
                    None => return,
                }
            }
        };
        let mut next = self.app.process_new(stream, &shutdown).await;
        while let Some(stream) = next {
            next = self.app.process_new(stream, &shutdown).await;
        }
    }
}
