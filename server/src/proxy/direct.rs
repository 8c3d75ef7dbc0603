//! The direct path. Pingora's proxy spends most of a keep-alive request's
//! CPU in its own machinery (a task and channels per request, an idle-watch
//! task per pooled upstream connection, header maps built and cloned). The
//! common request (`GET`/`HEAD` without a body, routed to an HTTP/1.1
//! upstream) is served here instead, from an HTTP/1.1 connection (parsed
//! in place) or an HTTP/2 stream (as Pingora's h2 server hands it over):
//! routed with the same tables and the same TLS policy check, its head
//! written upstream with the same header edits, the response relayed as it
//! comes. Everything else (bodies, other methods, CONNECT, redirects,
//! direct responses, refusals, upstream errors) goes to Pingora's proxy,
//! with the bytes read so far, and is answered exactly as before.

mod date;
mod exchange;
mod forward;
mod gate;
mod head;
mod pool;
mod relay;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use pingora::apps::{HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::protocols::http::ServerSession;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{Digest, Stream, ALPN};
use pingora::server::configuration::ServerConf;
use pingora::server::ShutdownWatch;
use pingora_proxy::HttpProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::bodywatch;
use super::egress::loops_back;
use super::h2conn::{self, OnStream};
use super::record::{record, Outcome};
use super::{handoff, upstream, Proxy};
use crate::config::{Limits, Timeouts};
use crate::decide::{self, Action, ConnView, Decision, Plan, RequestView, Tls};
use crate::metrics::metrics;
use crate::origin::PeerCheck;
use crate::runtime::{Runtime, SharedRuntime};
use crate::tls::ConnInfo;

use exchange::{forward, Client, Forwarded, H1Client, H2Client};
use forward::{h1_headers, Outgoing};
use gate::{HeadMemory, HeadScan, Refusal, Scan};
pub(super) use head::Headers;
use head::{Method, Parsed};
use pool::{Key, Upstream};

/// Read buffer of a client connection; grows for larger heads.
const HEAD_BUF: usize = 1024;

/// What [`Core::request`] needs of its connection.
struct RequestCtx<'a> {
    conn: &'a Conn,
    head_len: usize,
    limits: &'a Limits,
    timeouts: &'a Timeouts,
    shutdown: &'a mut ShutdownWatch,
}

/// After one request: the connection goes on, or `serve` ends with this.
/// Returned once per request, never held across an await: its size costs
/// nothing an idle connection keeps.
#[allow(clippy::large_enum_variant)]
enum Next {
    Again(Stream, BytesMut),
    Done(Option<(Stream, BytesMut, Option<Decision>)>),
}

/// The data-plane application: the direct path in front of Pingora's proxy.
pub struct Direct {
    core: Arc<Core>,
}

/// What both HTTP versions' direct paths share.
struct Core {
    pingora: Arc<HttpProxy<Proxy>>,
    rt: SharedRuntime,
    connector: TransportConnector,
    enabled: bool,
}

impl Direct {
    /// `enabled: false` sends every connection to Pingora's proxy.
    pub fn new(conf: &Arc<ServerConf>, proxy: Proxy, enabled: bool) -> Self {
        let rt = proxy.rt.clone();
        let mut pingora = pingora_proxy::http_proxy(conf, proxy);
        // Pingora refuses CONNECT before any filter runs unless the service
        // allows it; the egress proxy tunnels it (registered hosts only
        // under REGISTRY_ONLY).
        pingora.server_options = Some(super::server_options());
        let core = Arc::new(Core {
            pingora: Arc::new(pingora),
            rt,
            connector: TransportConnector::new(Some(ConnectorOptions::from_server_conf(conf))),
            enabled,
        });
        Direct { core }
    }
}

#[async_trait]
impl ServerApp for Direct {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let core = &self.core;
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            let (limits, timeouts) = {
                let rt = core.rt.load();
                (rt.model.runtime.limits, rt.model.runtime.timeouts)
            };
            let (core, down) = (core.clone(), shutdown.clone());
            let on_stream: OnStream = Arc::new(move |session, guard| {
                let (core, shutdown) = (core.clone(), down.clone());
                // The stream's work boxed: a task's future is copied
                // whole when spawned and again when it ends, and this one
                // is several KB (2% of an h2 profile in those copies).
                pingora_runtime::current_handle().spawn(async move {
                    let _guard = guard;
                    Box::pin(core.serve_h2(session, &shutdown)).await;
                });
            });
            // Boxed here and below: an idle HTTP/1.1 connection's future
            // is as large as the largest thing it may await.
            Box::pin(h2conn::serve(stream, shutdown, limits, timeouts, on_stream)).await;
            return None;
        }
        // Every HTTP/1.1 head passes `serve`'s gate, also with the direct
        // path off (`--no-direct`): the limits hold on both engines.
        let mut fresh = true;
        loop {
            let (s, buf, decision) = core.serve(stream, shutdown, fresh).await?;
            fresh = false;
            stream = Box::pin(core.one_by_pingora(s, buf, decision, shutdown)).await?;
        }
    }

    async fn cleanup(&self) {
        self.core.pingora.http_cleanup().await;
    }
}

/// What the direct path knows of a client connection.
struct Conn {
    ssl: Option<Arc<SslDigest>>,
    /// Looked up once per connection (or HTTP/2 stream).
    info: Option<Arc<ConnInfo>>,
    local: Option<SocketAddr>,
    client_ip: Option<IpAddr>,
}

impl Conn {
    fn of(stream: &Stream) -> Conn {
        let sock = stream.get_socket_digest();
        let inet = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| {
            a.and_then(|a| a.as_inet()).copied()
        };
        let ssl = stream.get_ssl_digest();
        Conn {
            info: ssl.as_ref().and_then(crate::tls::conn_info_of),
            ssl,
            local: sock.as_ref().and_then(|s| inet(s.local_addr())),
            client_ip: sock
                .as_ref()
                .and_then(|s| inet(s.peer_addr()))
                .map(|a| a.ip()),
        }
    }

    fn of_digest(d: Option<&Digest>) -> Conn {
        let sock = d.and_then(|d| d.socket_digest.as_ref());
        let inet = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| {
            a.and_then(|a| a.as_inet()).copied()
        };
        let ssl = d.and_then(|d| d.ssl_digest.clone());
        Conn {
            info: ssl.as_ref().and_then(crate::tls::conn_info_of),
            ssl,
            local: sock.and_then(|s| inet(s.local_addr())),
            client_ip: sock.and_then(|s| inet(s.peer_addr())).map(|a| a.ip()),
        }
    }

    fn info(&self) -> Option<&ConnInfo> {
        self.info.as_deref()
    }

    fn view(&self) -> ConnView<'_> {
        let tls = match (self.info(), &self.ssl) {
            (Some(info), _) => Tls::Terminated(info),
            (None, Some(_)) => Tls::Unknown,
            (None, None) => Tls::Plain,
        };
        ConnView {
            tls,
            local: self.local.unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
            client_ip: self.client_ip,
        }
    }
}

/// A decision the direct path executes: a forward to an HTTP/1.1
/// upstream it can reach.
struct Forwarding {
    rt: Arc<Runtime>,
    decision: Decision,
    addr: SocketAddr,
}

impl Forwarding {
    fn plan(&self) -> &Plan {
        match &self.decision.action {
            Action::Forward(p) => p,
            // `Core::direct` only makes forwardings of forwards.
            _ => unreachable!("a forwarding always carries a plan"),
        }
    }

    /// Counts and logs a request the direct path answered.
    fn served(
        &self,
        conn: &Conn,
        method: Method,
        target: &str,
        status: u16,
        start: Instant,
        error: Option<String>,
    ) {
        metrics().direct.served.inc();
        let plan = self.plan();
        if status > 0 {
            super::record::attempt(
                plan.dest(),
                plan.to.endpoint.index(),
                crate::route::Attempt::Status(status),
            );
        }
        record(&Outcome {
            rt: &self.rt,
            conn: conn.info(),
            server: &self.decision.server,
            client: conn.client_ip,
            host: &self.decision.host,
            route: self.decision.route.as_deref(),
            dest: Some(plan.dest()),
            upstream: Some(&self.addr),
            method: method.as_str(),
            target: target.as_bytes(),
            status,
            start,
            blocked: false,
            passthrough: plan.to.passthrough,
            reason: None,
            error: error.as_ref().map(|e| e as &dyn std::fmt::Display),
            authz: self.decision.authz.as_ref(),
        });
    }
}

impl Core {
    /// Serves requests until the connection ends (`None`) or one needs
    /// Pingora: then the stream and the bytes read so far. `fresh`: no
    /// request came on this connection yet.
    async fn serve(
        &self,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
        mut fresh: bool,
    ) -> Option<(Stream, BytesMut, Option<Decision>)> {
        let conn = Conn::of(&stream);
        let (limits, timeouts, drain_wait) = {
            let rt = self.rt.load();
            let r = &rt.model.runtime;
            (
                r.limits,
                r.timeouts,
                (r.grace_period + r.shutdown_timeout) / 2,
            )
        };
        let mut buf = BytesMut::with_capacity(HEAD_BUF);
        let mut shutdown = shutdown.clone();
        let mut draining = shutdown.borrow().then(|| Instant::now() + drain_wait);
        let mut memory = HeadMemory::default();
        loop {
            let mut scan = HeadScan::default();
            // The whole head within `requestHead` of its first byte, however
            // slowly it trickles.
            let mut deadline = None;
            let head_len = loop {
                match scan.feed(&buf, limits.request_headers) {
                    Scan::Complete(n) if n > limits.request_head_bytes => {
                        return refuse(stream, Refusal::HEAD_TOO_LARGE, &conn).await
                    }
                    Scan::Complete(n) => break n,
                    Scan::Refused(r) => return refuse(stream, r, &conn).await,
                    Scan::More => {}
                }
                if buf.len() > limits.request_head_bytes {
                    return refuse(stream, Refusal::HEAD_TOO_LARGE, &conn).await;
                }
                // What an unfinished head holds beyond the buffer every
                // connection has anyway.
                let held = buf.capacity().saturating_sub(HEAD_BUF);
                if !buf.is_empty() && !memory.hold(held, limits.request_head_memory) {
                    return refuse(stream, Refusal::HEAD_MEMORY, &conn).await;
                }
                let read = if buf.is_empty() {
                    let (idle, phase) = if fresh {
                        (timeouts.first_request, "first_request")
                    } else {
                        (timeouts.keep_alive_idle, "keepalive_idle")
                    };
                    // Between requests when the gateway shuts down (or
                    // hands over to a new process): closing now would
                    // race a request the client may be sending, which it
                    // would see fail. The connection waits for it instead,
                    // answers it with `Connection: close`, and is closed
                    // at the end of the grace period if none comes.
                    // The wait is half of what Pingora grants before it
                    // drops the connections: a request that comes gets the
                    // other half to be answered; later, the close is a FIN
                    // the client's retry expects, not a cut mid-request.
                    let read = if let Some(until) = draining {
                        let left = until.saturating_duration_since(Instant::now());
                        match read_head_bytes(&mut stream, &mut buf, idle.min(left)).await {
                            r if is_timeout(&r) && left <= idle => return None,
                            r => r,
                        }
                    } else {
                        tokio::select! {
                            biased;
                            _ = shutdown.changed() => {
                                draining = Some(Instant::now() + drain_wait);
                                continue;
                            }
                            r = read_head_bytes(&mut stream, &mut buf, idle) => r,
                        }
                    };
                    if is_timeout(&read) {
                        metrics().timeouts.with_label_values(&[phase]).inc();
                    }
                    read
                } else {
                    let until =
                        *deadline.get_or_insert_with(|| Instant::now() + timeouts.request_head);
                    let left = until.saturating_duration_since(Instant::now());
                    let read = read_head_bytes(&mut stream, &mut buf, left).await;
                    if is_timeout(&read) {
                        metrics()
                            .timeouts
                            .with_label_values(&["request_head"])
                            .inc();
                        log_refusal("request head timed out", 408, &conn);
                        return close_with(stream, 408).await;
                    }
                    read
                };
                match read {
                    // Gone, with or without a partial head: nothing to answer.
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
                deadline.get_or_insert_with(|| Instant::now() + timeouts.request_head);
            };
            // A complete head is the request's now, not a head in waiting.
            memory.hold(0, 0);
            fresh = false;
            // Boxed: what a request holds while it is proxied (its parsed
            // head, upstream exchange and buffers) is no idle
            // connection's.
            let ctx = RequestCtx {
                conn: &conn,
                head_len,
                limits: &limits,
                timeouts: &timeouts,
                shutdown: &mut shutdown,
            };
            match Box::pin(self.request(stream, buf, ctx)).await {
                Next::Again(s, b) => (stream, buf) = (s, b),
                Next::Done(out) => return out,
            }
        }
    }

    /// One complete request head at the front of `buf`: parsed, decided,
    /// and served here or handed to Pingora.
    async fn request(&self, mut stream: Stream, mut buf: BytesMut, ctx: RequestCtx<'_>) -> Next {
        let RequestCtx {
            conn,
            head_len,
            limits,
            timeouts,
            shutdown,
        } = ctx;
        let start = Instant::now();
        // On the heap: in the connection's future it would cost every
        // idle connection 3 KB.
        let mut storage = Box::new_uninit_slice(limits.request_headers);
        let head = match head::parse(&buf[..head_len], &mut storage) {
            Parsed::Ready(head) => head,
            Parsed::Refused(r) => return Next::Done(refuse(stream, r, conn).await),
            // The gate saw a complete head the parser does not.
            Parsed::Partial => return Next::Done(refuse(stream, Refusal::MALFORMED, conn).await),
        };
        let rt = self.rt.load_full();
        let view = RequestView {
            method: head.method,
            target: head.target,
            authority: None,
            host_header: head.host,
            h2: false,
            http11: head.http11,
            headers: &Headers(head.headers),
        };
        let decision = decide::decide(&rt, &conn.view(), &view, &mut rand::thread_rng());
        let method = match head.direct {
            Some(m) if self.enabled => m,
            _ => {
                if self.enabled {
                    metrics().direct.handoff_request.inc();
                }
                return Next::Done(Some((stream, buf, Some(decision))));
            }
        };
        let fwd = match self.direct(rt, conn, decision).await {
            Ok(f) => f,
            Err(d) => return Next::Done(Some((stream, buf, Some(d)))),
        };
        let mut request = Vec::with_capacity(head_len + 512);
        let outgoing = Outgoing {
            method,
            target: head.target,
            headers: h1_headers(head.headers),
        };
        forward::upstream_request(&mut request, outgoing, &fwd.plan().edits);
        let mut client = H1Client {
            down: &mut stream,
            keep: !head.close && !*shutdown.borrow_and_update(),
            send_idle: timeouts.response_send_idle,
            out: Vec::with_capacity(2048),
            ahead: BytesMut::new(),
        };
        let result = self
            .exchange(&mut client, &request, fwd.plan(), fwd.addr, method)
            .await;
        let ahead = std::mem::take(&mut client.ahead);
        let Some((status, keep, error)) = result else {
            buf.extend_from_slice(&ahead);
            return Next::Done(Some((stream, buf, Some(fwd.decision))));
        };
        fwd.served(conn, method, head.target, status, start, error);
        if !keep {
            // A client that stopped reading cannot hold the close.
            let _ = pingora_timeout::timeout(CLOSE_LINGER, stream.shutdown()).await;
            return Next::Done(None);
        }
        buf.advance(head_len);
        buf.extend_from_slice(&ahead);
        Next::Again(stream, buf)
    }

    /// `decision` as the direct path executes it: a forward to an
    /// HTTP/1.1 upstream without a retry policy, whose endpoint resolves
    /// to an address other than this listener; else the decision back, for
    /// Pingora's engine (which explains DNS and loop failures, and runs
    /// responses, redirects, tunnels, retries and h2 upstreams).
    async fn direct(
        &self,
        rt: Arc<Runtime>,
        conn: &Conn,
        decision: Decision,
    ) -> Result<Forwarding, Decision> {
        let plan = match &decision.action {
            // A request waiting for a place under its destination's
            // limits waits in Pingora's engine, which also sets cookies.
            Action::Forward(p)
                if !p.dest().h2 && p.retries.is_none() && !p.queued() && p.set_cookie.is_none() =>
            {
                p
            }
            _ => {
                metrics().direct.handoff_route.inc();
                return Err(decision);
            }
        };
        if plan.dest().tls.is_some() && plan.origination.is_none() {
            metrics().direct.handoff_route.inc();
            return Err(decision);
        }
        let Ok(addr) = upstream::resolve(plan.to.endpoint.endpoint()).await else {
            metrics().direct.handoff_route.inc();
            return Err(decision);
        };
        if loops_back(addr, conn.local, rt.model.runtime.admin) {
            metrics().direct.handoff_route.inc();
            return Err(decision);
        }
        Ok(Forwarding { rt, decision, addr })
    }

    /// Forwards one request (its upstream head in `request`). `None`:
    /// nothing reached the client and the request is Pingora's to answer.
    /// Else status, whether the client's connection stays, and what went
    /// wrong.
    async fn exchange<C: Client>(
        &self,
        client: &mut C,
        request: &[u8],
        plan: &Plan,
        addr: SocketAddr,
        method: Method,
    ) -> Option<(u16, bool, Option<String>)> {
        let key = Key {
            addr,
            tls: plan.origination.as_ref().map(|o| o.group_key),
        };
        let mut fresh_only = false;
        loop {
            let taken = if fresh_only { None } else { pool::take(&key) };
            let mut up = match taken {
                Some(u) => u,
                None => match self.connect(plan, addr).await {
                    Some(u) => u,
                    None => {
                        metrics().direct.handoff_upstream.inc();
                        return None;
                    }
                },
            };
            match forward(client, &mut up, request, method, plan.timeout).await {
                Forwarded::Answered {
                    status,
                    keep_client,
                    upstream_reusable,
                    error,
                } => {
                    if upstream_reusable && error.is_none() {
                        let reuse = plan.dest().pool.map(|p| pool::Reuse {
                            max_requests: p.max_requests_per_connection,
                            idle: p.idle_timeout,
                        });
                        pool::put(key, up, reuse.unwrap_or_default());
                    }
                    return Some((status, keep_client, error));
                }
                // A pooled connection the upstream closed while it idled:
                // the request goes again on a new one (GET and HEAD only
                // come here).
                Forwarded::Unanswered(_) if up.reused => {
                    pool::clear(&key);
                    metrics().direct.stale_retry.inc();
                    fresh_only = true;
                }
                Forwarded::ClientGone => {
                    return Some((0, false, Some("client closed before the response".into())));
                }
                Forwarded::TimedOut => {
                    client.error(504).await;
                    let t = plan.timeout.unwrap_or_default();
                    return Some((
                        504,
                        false,
                        Some(format!("upstream read timed out after {t:?}")),
                    ));
                }
                // Refused at the TLS level before it read the request:
                // Pingora's path sends it again and explains the refusal.
                Forwarded::Unanswered(e) if exchange::tls_refusal(&e) => {
                    metrics().direct.handoff_upstream.inc();
                    tracing::debug!(upstream = %addr, error = %e, "upstream refused the TLS session; Pingora's path takes the request");
                    return None;
                }
                // The request went out on a new connection: not sent twice.
                Forwarded::Unanswered(e) => {
                    client.error(502).await;
                    return Some((502, false, Some(format!("upstream: {e}"))));
                }
                Forwarded::Invalid(i) => {
                    metrics().direct.bad_response.inc();
                    client.error(502).await;
                    return Some((502, false, Some(format!("upstream response: {}", i.0))));
                }
            }
        }
    }

    /// One HTTP/2 stream: direct when it is a `GET`/`HEAD` without body
    /// that routes to an HTTP/1.1 upstream, else Pingora's.
    async fn serve_h2(
        &self,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let start = Instant::now();
        let conn = Conn::of_digest(session.digest());
        let body_empty = session.is_body_empty();
        let rt = self.rt.load_full();
        let req = session.req_header();
        let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let view = RequestView {
            method: req.method.as_str(),
            target,
            authority: req.uri.authority().map(|a| a.as_str()),
            host_header: req
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok()),
            h2: true,
            http11: false,
            headers: &req.headers,
        };
        let decision = decide::decide(&rt, &conn.view(), &view, &mut rand::thread_rng());
        let method = match req.method {
            http::Method::GET => Some(Method::Get),
            http::Method::HEAD => Some(Method::Head),
            _ => None,
        }
        .filter(|_| {
            self.enabled
                && body_empty
                && target.starts_with('/')
                && !req.headers.contains_key(http::header::EXPECT)
        });
        let Some(method) = method else {
            if self.enabled {
                metrics().direct.handoff_request.inc();
            }
            return self.h2_by_pingora(session, Some(decision), shutdown).await;
        };
        let fwd = match self.direct(rt, &conn, decision).await {
            Ok(f) => f,
            Err(d) => return self.h2_by_pingora(session, Some(d), shutdown).await,
        };
        let req = session.req_header();
        let headers = req.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
        let outgoing = Outgoing {
            method,
            target,
            headers,
        };
        let mut request = Vec::with_capacity(512);
        forward::upstream_request(&mut request, outgoing, &fwd.plan().edits);
        let target = target.to_string();
        session.set_write_timeout(Some(
            self.rt.load().model.runtime.timeouts.response_send_idle,
        ));
        let mut client = H2Client {
            session: &mut session,
            header: None,
            data: Vec::new(),
        };
        let result = self
            .exchange(&mut client, &request, fwd.plan(), fwd.addr, method)
            .await;
        let Some((status, _, error)) = result else {
            return self
                .h2_by_pingora(session, Some(fwd.decision), shutdown)
                .await;
        };
        fwd.served(&conn, method, &target, status, start, error);
        None
    }

    /// A new upstream connection; `None` when it cannot be made or its
    /// certificate does not name the destination (Pingora's path then
    /// tries again and explains the failure).
    async fn connect(&self, plan: &Plan, addr: SocketAddr) -> Option<Upstream> {
        let peer = upstream::peer(addr, plan);
        let mut stream = self.connector.new_stream(&*peer).await.ok()?;
        // OpenSSL reads whole socket buffers (see `tls::listener_acceptor`).
        tlsgate_ossl::set_read_ahead(&mut stream);
        if plan.origination.as_ref().is_some_and(|o| o.verifies()) {
            let named = stream
                .get_ssl_digest()
                .and_then(|d| d.extension.get::<PeerCheck>().map(|c| c.ok))
                .unwrap_or(false);
            if !named {
                return None;
            }
        }
        Some(Upstream {
            stream,
            buf: BytesMut::with_capacity(pool::BUF),
            reused: false,
            served: 0,
        })
    }

    /// One HTTP/2 stream through Pingora's proxy, its request body bounded
    /// by `requestBodyIdle` (Pingora's HTTP/2 body reads have no timeout).
    async fn h2_by_pingora(
        &self,
        mut session: ServerSession,
        decision: Option<Decision>,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let timeouts = self.rt.load().model.runtime.timeouts;
        let idle = timeouts.request_body_idle;
        session.set_write_timeout(Some(timeouts.response_send_idle));
        let done = session.is_body_done();
        let proxied =
            handoff::with_decision(decision, self.pingora.process_new_http(session, shutdown));
        match bodywatch::watched(idle, done, proxied).await {
            Some(reused) => reused,
            None => {
                metrics()
                    .timeouts
                    .with_label_values(&["request_body_idle"])
                    .inc();
                log_refusal("request body stalled", 408, &Conn::of_digest(None));
                None
            }
        }
    }

    /// One request through Pingora's proxy, starting with `buf`; the
    /// stream comes back when the connection may be reused.
    async fn one_by_pingora(
        &self,
        stream: Stream,
        buf: BytesMut,
        decision: Option<Decision>,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let timeouts = self.rt.load().model.runtime.timeouts;
        let mut session = ServerSession::new_http1(stream);
        // The next request's head is read by `serve` again (its limits and
        // deadlines); Pingora only waits for this request's body, at most
        // `requestBodyIdle` between reads.
        session.set_keepalive(if *shutdown.borrow() {
            None
        } else {
            Some(timeouts.keep_alive_idle.as_secs().max(1))
        });
        session.set_read_timeout(Some(timeouts.request_body_idle));
        session.set_write_timeout(Some(timeouts.response_send_idle));
        if !buf.is_empty() {
            session.set_pipelined_prefix(buf);
        }
        // Pipelining stays off in Pingora's session, so a stream it hands
        // back holds no bytes read ahead.
        let proxied = self.pingora.process_new_http(session, shutdown);
        let reused = handoff::with_decision(decision, proxied).await?;
        Some(reused.consume().0)
    }
}

/// Reads more of a request head into `buf`, within the keep-alive time.
/// The buffer's consumed front is reused rather than the buffer grown, and
/// a buffer a large head grew is given back once empty, so an idle
/// connection holds [`HEAD_BUF`] bytes.
async fn read_head_bytes(
    stream: &mut Stream,
    buf: &mut BytesMut,
    within: Duration,
) -> std::io::Result<usize> {
    if buf.is_empty() && buf.capacity() > 4 * HEAD_BUF {
        *buf = BytesMut::with_capacity(HEAD_BUF);
    }
    if buf.capacity() - buf.len() < HEAD_BUF / 2 {
        buf.reserve(HEAD_BUF);
    }
    match pingora_timeout::timeout(within, stream.read_buf(buf)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

fn is_timeout(r: &std::io::Result<usize>) -> bool {
    matches!(r, Err(e) if e.kind() == std::io::ErrorKind::TimedOut)
}

/// Answers a refused head and closes: counted, logged (a few lines a
/// second at most), and the close lingers so the answer is read.
async fn refuse<T>(stream: Stream, r: Refusal, conn: &Conn) -> Option<T> {
    metrics().http_refused.with_label_values(&[r.reason]).inc();
    log_refusal(r.reason, r.status, conn);
    close_with(stream, r.status).await
}

fn log_refusal(reason: &str, status: u16, conn: &Conn) {
    static LOG: crate::logrl::Throttle = crate::logrl::Throttle::new();
    if let Some(suppressed) = LOG.allow() {
        let sni = conn.info().and_then(|i| i.sni.as_deref()).unwrap_or("");
        let peer = conn.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        tracing::warn!(reason, status, sni, peer = %peer, suppressed, "HTTP request refused");
    }
}

/// Bounds on the close after a refusal: the client may still be sending
/// the rest of what we refused, and closing with it unread would reset
/// the connection before our answer is read.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
const CLOSE_DRAIN: usize = 64 * 1024;

async fn close_with<T>(mut stream: Stream, status: u16) -> Option<T> {
    let _ = pingora_timeout::timeout(CLOSE_LINGER, async {
        let _ = exchange::write_error(&mut stream, status).await;
        let _ = stream.shutdown().await;
        // On the heap: in the future it would be every idle
        // connection's, since `serve` can end here.
        let mut scratch = vec![0u8; 4096];
        let mut drained = 0;
        while drained < CLOSE_DRAIN {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
    None
}
