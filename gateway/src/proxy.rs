//! The HTTP side: authorize the request against its connection's TLS
//! policy, route it (or, on an egress port, send it where the service
//! registry and the outbound policy say), forward it with identity headers
//! and upstream TLS origination, explain upstream failures, log and count.

mod admit;
mod bodywatch;
mod connect;
mod direct;
mod egress;
mod failure;
mod h2conn;
mod headers;
mod names;
mod origination;
mod record;
mod request;
mod respond;
mod upstream;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::protocols::Digest;
use pingora::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::RequestHeader;
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::route::{CompiledRoute, Destination, InFlightGuard};
use crate::runtime::{Runtime, SharedRuntime};

pub use connect::server_options;
pub use direct::Direct;
pub use origination::{Origination, OriginationError};
pub use request::{conn_info, normalize_host, request_host};

use failure::{classify, Failure, Reason};
use names::PeerCheck;
use origination::OriginationCache;

pub struct Proxy {
    rt: SharedRuntime,
    /// Shared with the direct path.
    origins: Arc<OriginationCache>,
}

impl Proxy {
    pub fn new(rt: SharedRuntime) -> Self {
        Proxy {
            rt,
            origins: Arc::default(),
        }
    }
}

/// Per-request state; the runtime is pinned for the request's whole life.
pub struct Ctx {
    rt: Arc<Runtime>,
    start: Instant,
    tls: bool,
    server: Arc<str>,
    host: String,
    route: Option<Arc<CompiledRoute>>,
    dest: Option<Arc<Destination>>,
    upstream: Option<String>,
    /// Counts this request against its endpoint for LEAST_REQUEST.
    in_flight: Option<InFlightGuard>,
    tries: u32,
    /// The destination's TLS origination, for the post-handshake name check.
    origination: Option<Arc<Origination>>,
    /// Why the upstream failed, when we found out ourselves (DNS, names).
    failure: Option<Failure>,
    /// Refused by `REGISTRY_ONLY`.
    blocked: bool,
    /// The status of a response Pingora did not write (a CONNECT tunnel).
    status_override: Option<u16>,
}

use record::LABEL_NONE;

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            rt: self.rt.load_full(),
            start: Instant::now(),
            tls: false,
            server: LABEL_NONE.into(),
            host: String::new(),
            route: None,
            dest: None,
            upstream: None,
            in_flight: None,
            tries: 0,
            origination: None,
            failure: None,
            blocked: false,
            status_override: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        admit::admit(session, ctx).await
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        bodywatch::progress(end_of_stream);
        Ok(())
    }

    /// Every request ends in our access log line (`logging`), error
    /// included: Pingora's own line per failure would only repeat it, and
    /// a client can make failures at will.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        true
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &Ctx,
        _error: &Error,
        _context: pingora_proxy::ProxyWarnLogContext,
    ) -> bool {
        true
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let Some(dest) = ctx.dest.clone() else {
            return Error::e_explain(ErrorType::InternalError, "no destination chosen");
        };
        ctx.tries += 1;
        // A retry releases the previous attempt's endpoint first.
        ctx.in_flight = None;
        let guard = dest.acquire();
        ctx.upstream = Some(guard.endpoint().to_string());
        let addr = match upstream::resolve(guard.endpoint()).await {
            Ok(a) => a,
            Err(e) => {
                ctx.failure = Some(Failure::new(Reason::Dns, e.to_string()));
                return Error::e_explain(ErrorType::ConnectNoRoute, e.to_string());
            }
        };
        ctx.in_flight = Some(guard);
        ctx.upstream = Some(addr.to_string());
        if egress::loops_back(addr, local_addr(session)) {
            tracing::warn!(host = %ctx.host, upstream = %addr, "request would loop back to this listener");
            return Error::e_explain(ErrorType::HTTPStatus(508), "loop to this listener");
        }
        ctx.origination = match self.origins.for_destination(&ctx.rt, &dest) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(destination = %dest.name, error = %e, "TLS origination settings");
                let msg = format!("destination {}: {e}", dest.name);
                return Error::e_explain(ErrorType::InternalError, msg);
            }
        };
        let route = ctx.route.as_ref().map(|r| &r.route);
        Ok(upstream::peer(
            addr,
            &dest,
            route,
            ctx.origination.as_deref(),
        ))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        digest: Option<&Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(orig) = ctx.origination.as_ref().filter(|o| o.verifies()) else {
            return Ok(());
        };
        // Set by the handshake hook; a pooled connection keeps its verdict.
        let check = digest
            .and_then(|d| d.ssl_digest.as_ref())
            .and_then(|s| s.extension.get::<PeerCheck>());
        if check.is_some_and(|c| c.ok) {
            return Ok(());
        }
        let presented = check.map(|c| c.presented.join(", ")).unwrap_or_default();
        let detail = format!(
            "expected one of [{}], the certificate has [{presented}]",
            orig.expected_names().join(", ")
        );
        ctx.failure = Some(Failure::new(Reason::SanMismatch, detail.clone()));
        let mut e = Error::explain(ErrorType::InvalidCert, detail);
        e.as_up();
        Err(e)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let xfcc = conn_info(session).and_then(|c| c.xfcc.as_deref());
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        headers::forwarded(upstream_request, xfcc, client_ip, ctx.tls)?;
        headers::origin_form(upstream_request)?;
        if let Some(route) = &ctx.route {
            headers::apply_route(upstream_request, &route.route)?;
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let retryable = classify(&e).is_none_or(Reason::retryable);
        if retryable && ctx.tries <= self.retry_budget(ctx) {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let idempotent = session.req_header().method.is_idempotent();
        // A certificate or a name does not get better on a second try.
        let hopeless = ctx.failure.is_some() || classify(&e).is_some_and(|r| !r.retryable());
        if !idempotent || hopeless || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else if ctx.tries <= self.retry_budget(ctx) {
            e.set_retry(true);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let upstream = e.esource() == &ErrorSource::Upstream;
        let known = ctx.failure.clone().or_else(|| {
            upstream
                .then(|| classify(e))
                .flatten()
                .map(|r| Failure::new(r, ""))
        });
        if let Some(f) = known {
            let dest = ctx.dest.as_ref().map_or(LABEL_NONE, |d| &d.name);
            let up = ctx.upstream.as_deref().unwrap_or(LABEL_NONE);
            f.record(dest, up, &ctx.host, e);
            let code = f.reason.status();
            if session.response_written().is_none() {
                let _ = respond::text(session, code, &f.body(dest)).await;
            }
            ctx.failure = Some(f);
            return FailToProxy {
                error_code: code,
                can_reuse_downstream: false,
            };
        }
        let downstream = e.esource() == &ErrorSource::Downstream;
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            // The client stopped sending its body (`requestBodyIdle`).
            ErrorType::ReadTimedout if downstream => {
                crate::metrics::metrics()
                    .timeouts
                    .with_label_values(&["request_body_idle"])
                    .inc();
                408
            }
            ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError => 503,
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code > 0 {
            let _ = session.respond_error(code).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        // The client took no response bytes for `responseSendIdle`.
        if e.is_some_and(|e| {
            e.esource() == &ErrorSource::Downstream && e.etype() == &ErrorType::WriteTimedout
        }) {
            crate::metrics::metrics()
                .timeouts
                .with_label_values(&["response_send"])
                .inc();
        }
        let status = ctx
            .status_override
            .or_else(|| session.response_written().map(|r| r.status.as_u16()))
            .unwrap_or(0);
        let req = session.req_header();
        record::record(&record::Outcome {
            rt: &ctx.rt,
            conn: conn_info(session),
            server: &ctx.server,
            host: &ctx.host,
            route: ctx.route.as_deref(),
            dest: ctx.dest.as_deref(),
            upstream: ctx.upstream.as_ref().map(|u| u as &dyn std::fmt::Display),
            method: req.method.as_str(),
            target: req.raw_path(),
            status,
            start: ctx.start,
            blocked: ctx.blocked,
            reason: ctx.failure.as_ref().map(|f| f.reason.as_str()),
            error: e.map(|e| e as &dyn std::fmt::Display),
        });
    }
}

/// The address this request's connection was accepted on.
fn local_addr(session: &Session) -> Option<std::net::SocketAddr> {
    session.server_addr().and_then(|a| a.as_inet()).copied()
}

impl Proxy {
    fn retry_budget(&self, ctx: &Ctx) -> u32 {
        ctx.route
            .as_ref()
            .and_then(|r| r.route.retries)
            .map_or(0, |r| r.attempts)
    }
}
