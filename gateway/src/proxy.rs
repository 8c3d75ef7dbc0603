//! The HTTP side: authorize the request against its connection's TLS
//! policy, route it, forward it with identity headers, log and count it.

mod headers;
mod request;
mod respond;
mod upstream;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::RequestHeader;
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::config::{AccessLogFormat, RouteAction};
use crate::metrics::metrics;
use crate::route::{CompiledRoute, Destination, InFlightGuard, Lookup};
use crate::runtime::{Runtime, SharedRuntime};

pub use request::{conn_info, request_host};

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
    server: Arc<str>,
    host: String,
    route: Option<Arc<CompiledRoute>>,
    dest: Option<Arc<Destination>>,
    upstream: Option<String>,
    /// Counts this request against its endpoint for LEAST_REQUEST.
    in_flight: Option<InFlightGuard>,
    tries: u32,
}

const LABEL_NONE: &str = "-";

impl Proxy {
    /// Decides what happens to the request; `Ok(true)` when a response was
    /// written here.
    async fn admit(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let port = session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.port())
            .unwrap_or(0);
        let host = request_host(session.req_header()).map(|h| h.into_owned());
        let Some(host) = host else {
            respond::text(session, 400, "missing or invalid Host\n").await?;
            return Ok(true);
        };
        ctx.host = host;
        if let Some(conn) = conn_info(session) {
            ctx.tls = true;
            let Some(policy) = &conn.policy else {
                respond::text(session, 421, "misdirected request\n").await?;
                return Ok(true);
            };
            ctx.server = policy.server.clone();
            // The Host must be served under the TLS policy this connection
            // satisfied (same key), else it could reach a MUTUAL host over a
            // SIMPLE handshake, or a host whose CA never saw this client.
            let allowed = conn
                .runtime
                .tls
                .listener(&conn.listener_addr)
                .and_then(|l| l.sni.select(&ctx.host))
                .is_some_and(|p| p.key == policy.key);
            if !allowed {
                tracing::warn!(parent: &conn.span, host = %ctx.host, "Host not covered by the connection's TLS policy");
                respond::text(session, 421, "misdirected request\n").await?;
                return Ok(true);
            }
        } else if let Some(name) = ctx.rt.routes.server_name(port) {
            ctx.server = name;
        }
        let req = session.req_header();
        let path = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let rt = ctx.rt.clone();
        match rt.routes.lookup(port, &ctx.host, path, &req.headers) {
            Lookup::Route(route) => {
                ctx.route = Some(route.clone());
                match &route.route.action {
                    RouteAction::DirectResponse { status, body } => {
                        respond::text(session, *status, body.as_deref().unwrap_or("")).await?;
                        Ok(true)
                    }
                    RouteAction::Redirect(r) => {
                        let loc = respond::redirect_location(r, ctx.tls, &ctx.host, path);
                        respond::redirect(session, r.code, &loc).await?;
                        Ok(true)
                    }
                    RouteAction::Forward(_) => {
                        ctx.dest = route.pick().cloned();
                        if ctx.dest.is_none() {
                            respond::text(session, 503, "no destination\n").await?;
                            return Ok(true);
                        }
                        Ok(false)
                    }
                }
            }
            Lookup::HttpsRedirect => {
                let loc = format!("https://{}{}", ctx.host, path);
                respond::redirect(session, 301, &loc).await?;
                Ok(true)
            }
            Lookup::NoHost | Lookup::NoRoute => {
                respond::text(session, 404, "no route\n").await?;
                Ok(true)
            }
        }
    }
}

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
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        self.admit(session, ctx).await
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let (Some(dest), Some(route)) = (ctx.dest.clone(), ctx.route.clone()) else {
            return Error::e_explain(ErrorType::InternalError, "no destination chosen");
        };
        ctx.tries += 1;
        // A retry releases the previous attempt's endpoint first.
        ctx.in_flight = None;
        let guard = dest.acquire();
        let addr = upstream::resolve(guard.endpoint()).await?;
        ctx.in_flight = Some(guard);
        ctx.upstream = Some(addr.to_string());
        upstream::peer(addr, &dest, &route.route)
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
        if ctx.tries <= self.retry_budget(ctx) {
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
        if !idempotent || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else if ctx.tries <= self.retry_budget(ctx) {
            e.set_retry(true);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
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
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let route = ctx.route.as_ref().map_or(LABEL_NONE, |r| &r.id);
        let dest = ctx.dest.as_ref().map_or(LABEL_NONE, |d| &d.name);
        // Label with the host only when a route matched it: an unmatched
        // Host is client-chosen and would make label values unbounded.
        let host = if ctx.route.is_some() {
            ctx.host.as_str()
        } else {
            LABEL_NONE
        };
        let m = metrics();
        let code = status.to_string();
        m.requests
            .with_label_values(&[&ctx.server, host, route, dest, &code])
            .inc();
        let elapsed = ctx.start.elapsed();
        m.request_duration
            .with_label_values(&[&ctx.server, route])
            .observe(elapsed.as_secs_f64());
        if ctx.rt.model.runtime.access_log == AccessLogFormat::Off {
            return;
        }
        let conn = conn_info(session);
        let req = session.req_header();
        let span = conn.map_or_else(tracing::Span::none, |c| c.span.clone());
        let sni = conn.and_then(|c| c.sni.as_deref()).unwrap_or("");
        let client_id = conn
            .and_then(|c| c.client.as_ref())
            .map(|c| c.id())
            .unwrap_or_default();
        tracing::info!(
            target: "access",
            parent: &span,
            method = %req.method,
            path = %req.uri,
            host = %ctx.host,
            sni,
            "client.id" = %client_id,
            route,
            upstream = ctx.upstream.as_deref().unwrap_or(LABEL_NONE),
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            generation = ctx.rt.generation,
            error = e.map(|e| e.to_string()),
        );
    }
}

impl Proxy {
    fn retry_budget(&self, ctx: &Ctx) -> u32 {
        ctx.route
            .as_ref()
            .and_then(|r| r.route.retries)
            .map_or(0, |r| r.attempts)
    }
}
