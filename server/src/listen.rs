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
//! port in use is an error at start, not a panic in a worker; on an
//! upgrade they are the old process's, taken over (`crate::upgrade`).

mod handover;
mod handshake;
mod opening;
mod records;
mod relay;
mod slots;
pub(crate) mod sock;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::{ListenFds, ShutdownWatch};
use pingora::services::{ServiceReadyNotifier, ServiceWithDependents};
use std::os::fd::IntoRawFd;
use tokio::net::{TcpListener, TcpStream};

pub use crate::decide::connection::ListenerKind;
pub use handshake::{Library, TlsFront};
pub use slots::{derived_max, reread_fd_limit};

use crate::admin::Readiness;
use crate::config::ProxyProtocolIn;
use crate::decide::connection::{
    decide_opening, decide_terminated, look_for, proxy_source, ConnAction, Look, Opening,
    ProxySource,
};
use crate::l4::proxy_protocol::Header;
use crate::metrics::metrics;
use crate::runtime::{Runtime, SharedRuntime};
use crate::upgrade::{self, Inherited};
use opening::First;
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
    /// `None`: to bind once the old process lets the address go.
    listener: Option<std::net::TcpListener>,
    addr: SocketAddr,
    kind: ListenerKind,
    tls: Option<Arc<TlsFront>>,
}

/// Binds `addr` now (address reuse, a deep backlog, non-blocking), or
/// takes the socket the old process handed over for it (`inherited`, an
/// upgrade). On an upgrade an address that is taken is bound once the old
/// process lets it go: failing here would leave nobody serving what that
/// process handed over. A TLS listener needs its `tls`.
pub fn bind(
    addr: SocketAddr,
    kind: ListenerKind,
    tls: Option<TlsFront>,
    inherited: Option<&mut Inherited>,
) -> Result<Bound, BindError> {
    let upgrading = inherited.is_some();
    let taken = match inherited.map(|i| i.take(addr)) {
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            tracing::error!(error = %e, "bound anew instead");
            None
        }
        None => None,
    };
    let listener = match taken.map(Ok).unwrap_or_else(|| bind_socket(addr)) {
        Ok(l) => Some(l),
        Err(e) if upgrading => {
            tracing::warn!(error = %e, "bound once the old process has let it go");
            None
        }
        Err(e) => return Err(e),
    };
    Ok(Bound {
        listener,
        addr,
        kind,
        tls: tls.map(Arc::new),
    })
}

fn bind_socket(addr: SocketAddr) -> Result<std::net::TcpListener, BindError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let fail = |source| BindError { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(BACKLOG).map_err(fail)?;
    Ok(std::net::TcpListener::from(socket))
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
    /// The admin socket handed over by the old process (an upgrade), for
    /// Pingora's admin service to find in the descriptor table.
    admin: Option<(String, std::net::TcpListener)>,
    /// Written with this process's PID once every listener accepts, and
    /// the admin service's key (the second) in the descriptor table.
    pid_file: (Option<std::path::PathBuf>, String),
}

impl<A> Front<A> {
    /// `ready` is marked once every accept loop runs.
    pub fn new(bound: Vec<Bound>, app: A, rt: SharedRuntime, ready: Arc<Readiness>) -> Self {
        Front {
            bound,
            app: Arc::new(app),
            rt,
            ready,
            admin: None,
            pid_file: (None, String::new()),
        }
    }

    /// The admin service's socket, handed over by the old process: it
    /// goes into Pingora's descriptor table before the admin service
    /// (which must depend on this one) starts, so that service takes it
    /// instead of binding the address the old process still holds.
    pub fn inherited_admin(mut self, addr: String, listener: std::net::TcpListener) -> Self {
        self.admin = Some((addr, listener));
        self
    }

    /// Where to say that this process serves (see [`upgrade::announce`]),
    /// once the admin service listens on `admin` too.
    /// `path` `None`: upgrades are off (systemd is still told when ready).
    pub fn pid_file(mut self, path: Option<std::path::PathBuf>, admin: String) -> Self {
        self.pid_file = (path, admin);
        self
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServiceWithDependents for Front<A> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    ) {
        // In Pingora's table, every listening socket is handed over at the
        // next upgrade (SIGQUIT), ours with the admin service's.
        if let (Some(fds), Some((addr, listener))) = (&fds, self.admin.take()) {
            fds.lock().add(addr, listener.into_raw_fd());
        }
        ready_notifier.notify_ready();
        let mut loops = Vec::new();
        for b in std::mem::take(&mut self.bound) {
            let acceptor = Accept {
                app: self.app.clone(),
                rt: self.rt.clone(),
                tls: b.tls,
                addr: b.addr,
                kind: b.kind,
                open: Arc::new(AtomicUsize::new(0)),
            };
            let (table, shutdown) = (fds.clone(), shutdown.clone());
            let (addr, bound) = (b.addr, b.listener);
            match bound {
                // In the table before readiness and the pid file say so.
                Some(bound) => {
                    if let Some(l) = handover::adopt(bound, addr, table.as_ref()) {
                        loops.push(tokio::spawn(acceptor.run(l, shutdown)));
                    }
                }
                None => loops.push(tokio::spawn(async move {
                    if let Some(l) = handover::later(addr, table.as_ref(), &shutdown).await {
                        acceptor.run(l, shutdown).await;
                    }
                })),
            }
        }
        self.ready.mark_ready();
        let (path, admin) = self.pid_file.clone();
        tokio::spawn(handover::announce(fds.clone(), admin, path));
        let (ready, mut watch) = (self.ready.clone(), shutdown.clone());
        tokio::spawn(async move {
            while watch.changed().await.is_ok() {
                if *watch.borrow() {
                    tracing::info!("shutting down: listeners closed, readiness 503, in-flight requests finishing");
                    ready.mark_draining();
                    return;
                }
            }
        });
        for l in loops {
            let _ = l.await;
        }
        if let Some(path) = &self.pid_file.0 {
            upgrade::retire(path);
        }
        self.app.cleanup().await;
    }

    fn name(&self) -> &str {
        "tlsgate"
    }
}

/// What [`Accept::execute`] needs besides the decision and the socket.
struct Opened {
    /// The runtime that decided (a relay keeps it to the end).
    rt: Arc<Runtime>,
    /// What the client connected to (a PROXY header's destination, else
    /// the local address).
    destination: SocketAddr,
    local: SocketAddr,
    /// The ClientHello's, when it was read.
    sni: Option<String>,
    /// When the TLS handshake must be done by.
    handshake_by: Instant,
}

struct Accept<A> {
    app: Arc<A>,
    rt: SharedRuntime,
    tls: Option<Arc<TlsFront>>,
    addr: SocketAddr,
    kind: ListenerKind,
    /// Connections open on this listener (`listeners[].maxConnections`).
    open: Arc<AtomicUsize>,
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
            let (max, own) = {
                let rt = this.rt.load();
                let own = rt.model.listener(this.addr).and_then(|l| l.max_connections);
                (derived_max(rt.model.runtime.limits.max_connections), own)
            };
            let slot = match Slot::acquire_on(max, own.map(|m| (&this.open, m))) {
                Ok(slot) => slot,
                Err(reason) => {
                    metrics()
                        .connections_refused
                        .with_label_values(&[reason])
                        .inc();
                    if let Some(suppressed) = REFUSED_LOG.allow() {
                        tracing::warn!(listener = %this.addr, peer = %peer, max, own, suppressed, reason, "connection refused: too many connections");
                    }
                    drop(tcp);
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let conn = this.clone();
            let shutdown = shutdown.clone();
            pingora_runtime::current_handle()
                .spawn(async move { conn.serve(tcp, peer, slot, shutdown).await });
        }
    }

    /// One connection, from accept to close. Every decision is made with
    /// the listener's bound address (what routes and settings are keyed
    /// by) and the runtime loaded here, which the relay keeps.
    async fn serve(&self, tcp: TcpStream, peer: SocketAddr, slot: Slot, shutdown: ShutdownWatch) {
        let rt = self.rt.load_full();
        let look = look_for(&rt, self.addr, self.kind);
        let proxy = rt.model.listener(self.addr).map(|l| &l.proxy_protocol);
        let plain_path = look == Look::Nothing
            && self.kind != ListenerKind::Tcp
            && proxy.is_none_or(|p| *p == ProxyProtocolIn::Off);
        let local = tcp.local_addr().unwrap_or(self.addr);
        let handshake_by = Instant::now() + rt.model.runtime.timeouts.tls_handshake;
        if plain_path {
            // Nothing to read before deciding, but on a TLS port the first
            // byte is peeked (OpenSSL reads it next): plaintext there is
            // refused with a reset, as a STRICT sidecar refuses it.
            let seen =
                if self.kind == ListenerKind::Tls && !starts_with_tls(&tcp, handshake_by).await {
                    Opening::Plain
                } else {
                    Opening::Unread
                };
            let action = self.decide(&rt, seen, peer);
            if action.refusal().is_some() {
                reset(&tcp);
                return refuse_action(self.addr, peer, &action).unwrap_or(());
            }
            let sock = Sock::new(tcp, peer, local, slot);
            let conn = Opened {
                rt,
                destination: local,
                local,
                sni: None,
                handshake_by,
            };
            return self.execute(action, sock, conn, shutdown).await;
        }
        // STRICT with a PROXY header to read: the first byte too, so that
        // plaintext is refused the same way.
        let look = match look {
            Look::Nothing if self.kind == ListenerKind::Tls => Look::FirstByte,
            other => other,
        };
        // Boxed, as the handshake and relays below: a connection's task
        // is as large as the largest thing it may await, and an idle
        // HTTP connection needs none of them.
        let opened = Box::pin(self.open(rt, tcp, peer, slot, local, look)).await;
        let Some((action, sock, conn)) = opened else {
            return;
        };
        self.execute(action, sock, conn, shutdown).await;
    }

    fn decide(&self, rt: &Runtime, seen: Opening<'_>, client: SocketAddr) -> ConnAction {
        let mut rng = rand::thread_rng();
        decide_opening(rt, self.addr, self.kind, seen, client.ip(), &mut rng)
    }

    /// Reads what the decision needs (PROXY header, first bytes) and
    /// decides; `None` when the connection was refused (and counted).
    async fn open(
        &self,
        rt: Arc<Runtime>,
        mut tcp: TcpStream,
        peer: SocketAddr,
        slot: Slot,
        local: SocketAddr,
        look: Look,
    ) -> Option<(ConnAction, Sock, Opened)> {
        let settings = rt.model.listener(self.addr);
        let within = settings
            .and_then(|l| l.first_bytes_timeout)
            .unwrap_or(rt.model.runtime.timeouts.first_bytes);
        let mut opening = opening::Opening::new(Instant::now() + within);
        let mut client = peer;
        let mut destination = local;
        let off = ProxyProtocolIn::Off;
        let proxy = settings.map_or(&off, |l| &l.proxy_protocol);
        if let ProxyProtocolIn::Required { .. } = proxy {
            // Nothing an untrusted peer sends can be believed: it need not
            // hold a slot while it sends it.
            if !proxy.trusts(peer.ip()) {
                reset(&tcp);
                return refuse(self.addr, peer, "proxy_protocol_untrusted");
            }
        }
        if *proxy != ProxyProtocolIn::Off {
            let optional = matches!(proxy, ProxyProtocolIn::Optional { .. });
            let header = match opening.proxy_header(&mut tcp, optional).await {
                Ok(h) => h,
                Err(reason) => {
                    reset(&tcp);
                    return refuse(self.addr, peer, reason);
                }
            };
            match proxy_source(proxy, peer.ip(), header.as_ref()) {
                Ok(ProxySource::Client(c)) => {
                    client = c;
                    if let Some(Header::Proxied { destination: d, .. }) = header {
                        destination = d;
                    }
                    metrics()
                        .proxy_protocol
                        .with_label_values(&["client"])
                        .inc();
                }
                Ok(ProxySource::Socket) => {
                    let result = if header.is_some() { "local" } else { "absent" };
                    metrics().proxy_protocol.with_label_values(&[result]).inc();
                }
                Err(reason) => {
                    reset(&tcp);
                    return refuse(self.addr, peer, reason);
                }
            }
        }
        let first = match look {
            Look::Nothing => None,
            Look::FirstByte => Some(opening.first_byte(&mut tcp).await),
            Look::ClientHello => Some(opening.client_hello(&mut tcp).await),
        };
        let first = match first.transpose() {
            Ok(f) => f,
            Err(reason) => {
                reset(&tcp);
                return refuse(self.addr, client, reason);
            }
        };
        let sni = match &first {
            Some(First::Tls(Some(hello))) => hello.sni.clone(),
            _ => None,
        };
        let seen = match &first {
            None => Opening::Unread,
            Some(First::Plain) => Opening::Plain,
            Some(First::Tls(_)) => Opening::Tls {
                sni: sni.as_deref(),
            },
        };
        let action = self.decide(&rt, seen, client);
        if action.refusal().is_some() {
            reset(&tcp);
            return refuse_action(self.addr, client, &action);
        }
        let sock = Sock::with_prefix(tcp, client, local, slot, opening.buf);
        let handshake_by = Instant::now() + rt.model.runtime.timeouts.tls_handshake;
        let conn = Opened {
            rt,
            destination,
            local,
            sni,
            handshake_by,
        };
        Some((action, sock, conn))
    }

    async fn execute(&self, action: ConnAction, sock: Sock, conn: Opened, shutdown: ShutdownWatch) {
        let Opened {
            rt,
            destination,
            local,
            sni,
            handshake_by,
        } = conn;
        let client = sock.peer().unwrap_or(destination);
        let stream: Stream = match action {
            ConnAction::Http => {
                // Each request pins the runtime it is routed by.
                drop(rt);
                Box::new(sock)
            }
            ConnAction::Refuse(_) | ConnAction::Denied(_) => {
                refuse_action::<()>(self.addr, client, &action);
                return;
            }
            ConnAction::Stream(plan) => {
                let peer = relay::Peer {
                    client,
                    destination,
                    local,
                    sni: sni.as_deref(),
                    client_id: None,
                };
                return Box::pin(relay::relay(rt, plan, sock, peer)).await;
            }
            ConnAction::Terminate => {
                let Some(front) = &self.tls else {
                    return;
                };
                let within = handshake_by.saturating_duration_since(Instant::now());
                // The handshake runs under the runtime it loads itself.
                drop(rt);
                let Some(tls) = Box::pin(handshake::accept(front, sock, within)).await else {
                    return;
                };
                let stream: Stream = tls;
                match self.terminated_stream(&stream, client) {
                    Some((rt, ConnAction::Stream(plan), peer_sni, client_id)) => {
                        let peer = relay::Peer {
                            client,
                            destination,
                            local,
                            sni: peer_sni.as_deref(),
                            client_id,
                        };
                        return Box::pin(relay::relay(rt, plan, stream, peer)).await;
                    }
                    Some((_, action, ..)) if action.refusal().is_some() => {
                        refuse_action::<()>(self.addr, client, &action);
                        return;
                    }
                    _ => stream,
                }
            }
        };
        // A task of its own, and this one ends: an HTTP connection lives
        // long and mostly idle, and this task's future (sized for opening,
        // handshakes and relays) is 3 KB that an idle connection would
        // keep. The new one holds the stream and what `process_new` awaits.
        let app = self.app.clone();
        pingora_runtime::current_handle().spawn(async move {
            let mut next = app.process_new(stream, &shutdown).await;
            while let Some(stream) = next {
                next = app.process_new(stream, &shutdown).await;
            }
        });
    }

    /// A `TLS` server's decrypted stream goes to its `tcp[]` route, decided
    /// in the runtime of the handshake; `None`: HTTP.
    #[allow(clippy::type_complexity)]
    fn terminated_stream(
        &self,
        stream: &Stream,
        client: SocketAddr,
    ) -> Option<(Arc<Runtime>, ConnAction, Option<String>, Option<String>)> {
        let digest = stream.get_ssl_digest()?;
        let info = crate::tls::conn_info_of(&digest)?;
        let rt = info.runtime.clone();
        let sni = info.sni.as_deref().map(str::to_owned);
        let action = {
            let mut rng = rand::thread_rng();
            decide_terminated(
                &rt,
                info.listener_addr,
                sni.as_deref(),
                info.client.as_ref(),
                client.ip(),
                || info.revoked_since_handshake(tlsgate_core::credentials::now_unix()),
                &mut rng,
            )?
        };
        let id = info.client.as_ref().map(|c| c.id());
        Some((rt, action, sni, id))
    }
}

/// Does the connection start with a TLS handshake record? Peeked, not
/// read (OpenSSL reads it next); `true` when nothing came by `by` or the
/// client left: the handshake then counts that as it always has.
async fn starts_with_tls(tcp: &TcpStream, by: Instant) -> bool {
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(by.into(), tcp.peek(&mut first)).await {
        Ok(Ok(1)) => first[0] == 0x16,
        _ => true,
    }
}

/// Closes with a reset rather than a FIN when the socket is dropped.
fn reset(tcp: &TcpStream) {
    let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
}

/// Counts (and, throttled, logs) a connection closed before it was served.
/// [`refuse`] for a refused [`ConnAction`], with an AuthorizationPolicy's
/// verdict counted as a request's is.
fn refuse_action<T>(listener: SocketAddr, peer: SocketAddr, action: &ConnAction) -> Option<T> {
    if let ConnAction::Denied(v) = action {
        crate::proxy::record::count_authz(v);
    }
    refuse(listener, peer, action.refusal().unwrap_or("refused"))
}

fn refuse<T>(listener: SocketAddr, peer: SocketAddr, reason: &'static str) -> Option<T> {
    static LOG: crate::logrl::Throttle = crate::logrl::Throttle::new();
    metrics()
        .connections_refused
        .with_label_values(&[reason])
        .inc();
    if reason == "first_bytes_timeout" {
        metrics().timeouts.with_label_values(&["first_bytes"]).inc();
    }
    if let Some(suppressed) = LOG.allow() {
        tracing::info!(listener = %listener, peer = %peer, reason, suppressed, "connection refused before serving");
    }
    None
}
