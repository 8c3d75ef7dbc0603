//! Pingora's engine executing a request's [`Decision`]: the one handed
//! over by the direct path, or (for a request that came to Pingora some
//! other way) one made here by the same `decide`.

use std::net::IpAddr;

use pingora_error::Result;
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use super::{conn_info, connect, handoff, respond, Ctx};
use crate::decide::{self, Action, ConnView, Decision, RequestView, Tls};
use crate::route::{Destination, Overflow};
use crate::runtime::Runtime;
use crate::tls::ConnInfo;

/// Executes the request's decision; `Ok(true)` when a response was
/// written here (Pingora then proxies nothing).
pub async fn admit(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    let decision = match handoff::take() {
        Some(d) => d,
        None => decide_here(session, &ctx.rt),
    };
    let (status, body, redirect) = match &decision.action {
        Action::Respond { status, body, .. } => (*status, Some(body.clone()), None),
        Action::Redirect { status, location } => (*status, None, Some(location.clone())),
        Action::Overflow { dest, why } => (503, Some(overflow(dest, *why).into()), None),
        Action::Tunnel(_) => {
            ctx.decision = Some(decision);
            return connect::handle(session, ctx).await;
        }
        Action::Forward(_) => {
            let mut decision = decision;
            let pending = ctx.rt.model.runtime.timeouts.upstream_pending;
            if let Action::Forward(plan) = &mut decision.action {
                // Never longer than the route gives the whole attempt.
                let wait = plan.timeout.map_or(pending, |t| t.min(pending));
                if let Err(why) = plan.ready(wait).await {
                    // Its place in the queue (and its endpoint) is let go.
                    let dest = plan.dest().clone();
                    let body = overflow(&dest, why);
                    decision.action = Action::Overflow { dest, why };
                    ctx.decision = Some(decision);
                    respond::text(session, 503, &body).await?;
                    return Ok(true);
                }
            }
            ctx.decision = Some(decision);
            return Ok(false);
        }
    };
    ctx.decision = Some(decision);
    drain_body(session).await;
    match (body, redirect) {
        (_, Some(location)) => respond::redirect(session, status, &location).await?,
        (Some(body), None) => respond::text(session, status, &body).await?,
        (None, None) => {}
    }
    Ok(true)
}

/// Before a local answer (403, 404, a redirect...), what the client is
/// still sending of its body is read and dropped, up to [`DRAIN_BYTES`]
/// within [`DRAIN_TIME`]: closing with it unread would make the kernel
/// reset the connection, and the client could lose the answer; read, the
/// connection may even be kept alive.
async fn drain_body(session: &mut Session) {
    let _ = pingora_timeout::timeout(DRAIN_TIME, async {
        let mut drained = 0;
        while drained < DRAIN_BYTES {
            match session.read_request_body().await {
                Ok(Some(b)) => drained += b.len(),
                Ok(None) | Err(_) => break,
            }
        }
    })
    .await;
}

const DRAIN_BYTES: usize = 64 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Counts a request refused by `dest`'s `connectionPool` limits; its body.
pub(super) fn overflow(dest: &Destination, why: Overflow) -> String {
    crate::metrics::metrics()
        .upstream_overflow
        .with_label_values(&[&dest.name, why.as_str()])
        .inc();
    format!(
        "upstream overflow: {} has too many requests in flight and waiting ({})\n",
        dest.name,
        why.as_str()
    )
}

/// The decision for a request Pingora parsed itself.
fn decide_here(session: &Session, rt: &Runtime) -> Decision {
    let req = session.req_header();
    let target = target(req);
    let host_header = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let view = RequestView {
        method: req.method.as_str(),
        target: &target,
        authority: session
            .is_http2()
            .then(|| req.uri.authority().map(|a| a.as_str()))
            .flatten(),
        host_header,
        h2: session.is_http2(),
        http11: !session.is_http2() && req.version == http::Version::HTTP_11,
        headers: &req.headers,
    };
    let info = conn_info(session);
    let conn = conn_view(session, info.as_deref());
    decide::decide(rt, &conn, &view, &mut rand::thread_rng())
}

/// The target as the client sent it (Pingora keeps absolute-form and
/// authority-form targets in the raw bytes).
fn target(req: &RequestHeader) -> String {
    match std::str::from_utf8(req.raw_path()) {
        Ok(raw) if !raw.is_empty() => raw.to_string(),
        _ => req
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
    }
}

fn conn_view<'a>(session: &'a Session, info: Option<&'a ConnInfo>) -> ConnView<'a> {
    let tls = match (info, session.digest().and_then(|d| d.ssl_digest.as_ref())) {
        (Some(info), _) => Tls::Terminated(info),
        (None, Some(_)) => Tls::Unknown,
        (None, None) => Tls::Plain,
    };
    ConnView {
        tls,
        local: session
            .server_addr()
            .and_then(|a| a.as_inet())
            .copied()
            .unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
        client_ip: client_ip(session),
    }
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}
