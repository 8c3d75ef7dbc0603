//! The HTTP side: the two engines that execute a request's
//! [`Decision`](crate::decide::Decision) (the direct path, and Pingora's
//! proxy through the `ProxyHttp` hooks below), with upstream TLS
//! origination, explained upstream failures, one log line and one count
//! per request.

mod admit;
mod bodywatch;
pub(crate) mod connect;
mod direct;
pub(crate) mod egress;
pub(crate) mod failure;
mod h2conn;
mod handoff;
mod headers;
pub(crate) mod record;
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

use crate::decide::{Action, Decision, Plan};
use crate::origin::PeerCheck;
use crate::route::{Attempt, CompiledRoute, Destination, InFlightGuard};
use crate::runtime::{Runtime, SharedRuntime};

pub use connect::server_options;
pub use direct::Direct;
pub use request::conn_info;

use failure::{classify, Failure, Reason};

pub struct Proxy {
    rt: SharedRuntime,
}

impl Proxy {
    pub fn new(rt: SharedRuntime) -> Self {
        Proxy { rt }
    }
}

/// Per-request state; the runtime is pinned for the request's whole life.
pub struct Ctx {
    rt: Arc<Runtime>,
    start: Instant,
    tls: bool,
    /// What `decide` made of the request (set by `request_filter`).
    decision: Option<Decision>,
    upstream: Option<String>,
    /// A retry's endpoint, counted for LEAST_REQUEST (the first attempt
    /// uses the one the decision drew).
    in_flight: Option<InFlightGuard>,
    /// The endpoint (index in its destination) of the attempt under way.
    attempt: Option<usize>,
    tries: u32,
    /// Why the upstream failed, when we found out ourselves (DNS, names).
    failure: Option<Failure>,
    /// The status of a response Pingora did not write (a CONNECT tunnel).
    status_override: Option<u16>,
}

impl Ctx {
    fn plan(&self) -> Option<&Plan> {
        match &self.decision.as_ref()?.action {
            Action::Forward(p) => Some(p),
            _ => None,
        }
    }

    /// Outlier detection hears what the attempt under way came to.
    fn report(&mut self, attempt: Attempt) {
        if let (Some(idx), Some(plan)) = (self.attempt.take(), self.plan()) {
            record::attempt(plan.dest(), idx, attempt);
        }
    }

    fn server(&self) -> &str {
        self.decision.as_ref().map_or(LABEL_NONE, |d| &d.server)
    }

    fn host(&self) -> &str {
        self.decision.as_ref().map_or("", |d| &d.host)
    }

    fn route(&self) -> Option<&CompiledRoute> {
        self.decision.as_ref()?.route.as_deref()
    }

    fn dest(&self) -> Option<&Arc<Destination>> {
        match &self.decision.as_ref()?.action {
            Action::Forward(p) => Some(&p.to.dest),
            Action::Tunnel(t) => Some(&t.dest),
            Action::Overflow { dest, .. } => Some(dest),
            _ => None,
        }
    }
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
            decision: None,
            upstream: None,
            in_flight: None,
            attempt: None,
            tries: 0,
            failure: None,
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
        ctx.tries += 1;
        // A retry releases the previous attempt's endpoint first.
        ctx.in_flight = None;
        let Some(plan) = ctx.plan() else {
            return Error::e_explain(ErrorType::InternalError, "no destination chosen");
        };
        let (endpoint, idx) = if ctx.tries == 1 {
            // The first attempt goes where the decision drew.
            (
                plan.to.endpoint.endpoint().clone(),
                plan.to.endpoint.index(),
            )
        } else {
            let guard = plan.dest().acquire();
            let ep = (guard.endpoint().clone(), guard.index());
            ctx.in_flight = Some(guard);
            ep
        };
        ctx.attempt = Some(idx);
        ctx.upstream = Some(endpoint.to_string());
        let addr = match upstream::resolve(&endpoint).await {
            Ok(a) => a,
            Err(e) => {
                ctx.failure = Some(Failure::new(Reason::Dns, e.to_string()));
                return Error::e_explain(ErrorType::ConnectNoRoute, e.to_string());
            }
        };
        ctx.upstream = Some(addr.to_string());
        if egress::loops_back(addr, local_addr(session), ctx.rt.model.runtime.admin) {
            tracing::warn!(host = %ctx.host(), upstream = %addr, "request would loop back to this listener");
            return Error::e_explain(ErrorType::HTTPStatus(508), "loop to this listener");
        }
        let Some(plan) = ctx.plan() else {
            return Error::e_explain(ErrorType::InternalError, "no destination chosen");
        };
        if plan.dest().tls.is_some() && plan.origination.is_none() {
            let msg = format!(
                "destination {}: upstream TLS is not available",
                plan.dest().name
            );
            return Error::e_explain(ErrorType::InternalError, msg);
        }
        Ok(upstream::peer(addr, plan))
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
        let Some(orig) = ctx
            .plan()
            .and_then(|p| p.origination.as_ref())
            .filter(|o| o.verifies())
        else {
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
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(plan) = ctx.plan() {
            headers::apply(upstream_request, &plan.edits)?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut pingora_http::ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // A 1xx is not the answer: the final response is counted, and
        // gets the cookie.
        if !upstream_response.status.is_informational() {
            ctx.report(Attempt::Status(upstream_response.status.as_u16()));
            if let Some(cookie) = ctx.plan().and_then(|p| p.set_cookie.as_deref()) {
                upstream_response.append_header(http::header::SET_COOKIE, cookie)?;
            }
        }
        headers::response_hop_by_hop(upstream_response)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.report(Attempt::Failed);
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
        // A pooled connection the upstream closed while it idled says
        // nothing of the endpoint's health.
        if e.esource() == &ErrorSource::Upstream && !client_reused {
            ctx.report(Attempt::Failed);
        }
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
            let dest = ctx.dest().map_or(LABEL_NONE, |d| &d.name);
            let up = ctx.upstream.as_deref().unwrap_or(LABEL_NONE);
            f.record(dest, up, ctx.host(), e);
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
        let (blocked, passthrough) = match ctx.decision.as_ref().map(|d| &d.action) {
            Some(Action::Respond { blocked, .. }) => (*blocked, false),
            Some(Action::Forward(p)) => (false, p.to.passthrough),
            Some(Action::Tunnel(t)) => (false, t.passthrough),
            _ => (false, false),
        };
        record::record(&record::Outcome {
            rt: &ctx.rt,
            conn: conn_info(session).as_deref(),
            server: ctx.server(),
            client: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            host: ctx.host(),
            route: ctx.route(),
            dest: ctx.dest().map(|d| &**d),
            upstream: ctx.upstream.as_ref().map(|u| u as &dyn std::fmt::Display),
            method: req.method.as_str(),
            target: req.raw_path(),
            status,
            start: ctx.start,
            blocked,
            passthrough,
            reason: match ctx.decision.as_ref().map(|d| &d.action) {
                Some(Action::Overflow { .. }) => Some("upstream_overflow"),
                _ => ctx.failure.as_ref().map(|f| f.reason.as_str()),
            },
            error: e.map(|e| e as &dyn std::fmt::Display),
            authz: ctx.decision.as_ref().and_then(|d| d.authz.as_ref()),
        });
    }
}

/// The address this request's connection was accepted on.
fn local_addr(session: &Session) -> Option<std::net::SocketAddr> {
    session.server_addr().and_then(|a| a.as_inet()).copied()
}

impl Proxy {
    fn retry_budget(&self, ctx: &Ctx) -> u32 {
        ctx.plan().and_then(|p| p.retries).map_or(0, |r| r.attempts)
    }
}
