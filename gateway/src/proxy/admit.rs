//! What happens to a request before any upstream is contacted: the TLS
//! policy check, route lookup, the egress decision, CONNECT, and the
//! responses tlsgate writes itself.

use http::Method;
use pingora_error::Result;
use pingora_proxy::Session;

use super::egress::{self, Outbound};
use super::{conn_info, connect, request_host, respond, Ctx};
use crate::config::RouteAction;
use crate::route::Lookup;
use crate::tls::{ConnInfo, ServerPolicy};

/// Decides what happens to the request; `Ok(true)` when a response was
/// written here.
pub async fn admit(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let port = session
        .server_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.port())
        .unwrap_or(0);
    ctx.tls = conn_info(session).is_some();
    if session.req_header().method == Method::CONNECT {
        return connect::handle(session, ctx, port).await;
    }
    let host = request_host(session.req_header()).map(|h| h.into_owned());
    let Some(host) = host else {
        respond::text(session, 400, "missing or invalid Host\n").await?;
        return Ok(true);
    };
    ctx.host = host;
    if let Some(conn) = conn_info(session) {
        let Some(policy) = &conn.policy else {
            respond::text(session, 421, "misdirected request\n").await?;
            return Ok(true);
        };
        ctx.server = policy.server.clone();
        if !tls_covers(conn, policy, &ctx.host) {
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
        // Only an egress server forwards hosts no route names; anywhere
        // else that would make an ingress port an open proxy.
        Lookup::NoHost if !ctx.tls && rt.routes.is_egress(port, &ctx.host) => {
            let target_port = egress::request_port(req);
            match egress::decide(&rt, &ctx.host, target_port) {
                Outbound::Forward(dest) => {
                    ctx.dest = Some(dest);
                    Ok(false)
                }
                Outbound::Blocked(body) => {
                    ctx.blocked = true;
                    respond::text(session, 502, &body).await?;
                    Ok(true)
                }
            }
        }
        Lookup::NoHost | Lookup::NoRoute => {
            respond::text(session, 404, "no route\n").await?;
            Ok(true)
        }
    }
}

/// The Host must be served under the TLS policy this connection satisfied
/// (same key), else it could reach a MUTUAL host over a SIMPLE handshake,
/// or a host whose CA never saw this client.
pub fn tls_covers(conn: &ConnInfo, policy: &ServerPolicy, host: &str) -> bool {
    conn.runtime
        .tls
        .listener(&conn.listener_addr)
        .and_then(|l| l.sni.select(host))
        .is_some_and(|p| p.key == policy.key)
}
