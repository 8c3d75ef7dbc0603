//! The end of every request, whichever path served it (Pingora's proxy or
//! the direct HTTP/1.1 path): one count, one duration, one access-log line.

use std::fmt::Display;
use std::time::Instant;

use crate::config::AccessLogFormat;
use crate::metrics::metrics;
use crate::route::{CompiledRoute, Destination};
use crate::runtime::Runtime;
use crate::tls::ConnInfo;

mod handles;

pub const LABEL_NONE: &str = "-";

/// What became of one request.
pub struct Outcome<'a> {
    pub rt: &'a Runtime,
    pub conn: Option<&'a ConnInfo>,
    pub server: &'a str,
    /// The client's address (a PROXY protocol header's, if one was believed).
    pub client: Option<std::net::IpAddr>,
    pub host: &'a str,
    pub route: Option<&'a CompiledRoute>,
    pub dest: Option<&'a Destination>,
    pub upstream: Option<&'a dyn Display>,
    pub method: &'a str,
    /// The target as sent: absolute-form and CONNECT targets are only in
    /// the raw bytes.
    pub target: &'a [u8],
    /// 0 when no response was written.
    pub status: u16,
    pub start: Instant,
    /// Refused by `REGISTRY_ONLY`.
    pub blocked: bool,
    /// An unregistered host `ALLOW_ANY` let through.
    pub passthrough: bool,
    pub reason: Option<&'a str>,
    pub error: Option<&'a dyn Display>,
    /// What the AuthorizationPolicies said, when there are any.
    pub authz: Option<&'a crate::authz::Verdict>,
}

/// What an attempt on endpoint `idx` of `dest` came to, for outlier
/// detection; an ejection is counted and logged.
pub fn attempt(dest: &Destination, idx: usize, attempt: crate::route::Attempt) {
    if dest.report(idx, attempt) {
        metrics()
            .outlier_ejections
            .with_label_values(&[&dest.name])
            .inc();
        tracing::warn!(
            destination = %dest.name,
            endpoint = %dest.endpoint(idx),
            "endpoint ejected by outlier detection"
        );
    }
}

pub fn record(o: &Outcome<'_>) {
    let route = o.route.map_or(LABEL_NONE, |r| &r.id);
    let dest = o.dest.map_or(LABEL_NONE, |d| &d.name);
    // Label with the host only when a route matched it: an unmatched Host
    // is client-chosen and would make label values unbounded.
    // A `*` or `*.suffix` route matches hosts the client chooses: the
    // first thousand are labels, the rest `other` (see `egress::host_label`,
    // applied where the handles are made).
    let host = o.route.is_some().then_some(o.host);
    let m = metrics();
    if o.blocked || o.passthrough {
        let label = super::egress::host_label(o.host);
        let counter = if o.blocked {
            &m.outbound_blocked
        } else {
            &m.outbound_passthrough
        };
        counter.with_label_values(&[&label]).inc();
        if o.blocked {
            static LOG: crate::logrl::Throttle = crate::logrl::Throttle::new();
            if let Some(suppressed) = LOG.allow() {
                tracing::warn!(
                    host = o.host,
                    policy = "REGISTRY_ONLY",
                    suppressed,
                    "outbound request blocked"
                );
            }
        }
    }
    if let Some(v) = o.authz {
        count_authz(v);
    }
    let elapsed = o.start.elapsed();
    handles::count(
        &handles::Labels {
            server: o.server,
            host,
            route,
            dest,
            status: o.status,
        },
        elapsed.as_secs_f64(),
    );
    if o.rt.model.runtime.access_log == AccessLogFormat::Off {
        return;
    }
    let span = o
        .conn
        .map_or_else(tracing::Span::none, |c| c.span().clone());
    let sni = o.conn.and_then(|c| c.sni.as_deref()).unwrap_or("");
    let client_id = o
        .conn
        .and_then(|c| c.client.as_ref())
        .map(|c| c.id())
        .unwrap_or_default();
    tracing::info!(
        target: "access",
        parent: &span,
        client = %o.client.map_or_else(|| LABEL_NONE.to_string(), |c| c.to_string()),
        method = o.method,
        path = %String::from_utf8_lossy(o.target),
        host = o.host,
        sni,
        "client.id" = %client_id,
        route,
        destination = dest,
        upstream = %o.upstream.unwrap_or(&LABEL_NONE),
        status = o.status,
        blocked = o.blocked,
        reason = o.reason,
        duration_ms = %format_args!("{:.3}", elapsed.as_secs_f64() * 1000.0),
        generation = o.rt.generation,
        authz = o.authz.map(|v| v.decided_by()),
        authz_audit = o.authz.and_then(|v| v.audit.as_ref()).map(|(p, r)| format!("{p}[{r}]")),
        error = o.error.map(|e| e.to_string()),
    );
}

/// Counts what the AuthorizationPolicies said of one request or relayed
/// connection in `tlsgate_authz_total`.
pub(crate) fn count_authz(v: &crate::authz::Verdict) {
    let result = if v.allowed { "allowed" } else { "denied" };
    let policy = v.by.as_ref().map_or(LABEL_NONE, |(p, _)| &**p);
    handles::count_authz(policy, v.action.as_str(), result);
    if let Some((audit, _)) = &v.audit {
        handles::count_authz(audit, "AUDIT", "audited");
    }
}

/// A status code as label text without allocating: every status a
/// response can carry has three digits; 0 (no response) is "0".
fn status_str(status: u16, buf: &mut [u8; 3]) -> &str {
    if !(100..=999).contains(&status) {
        return "0";
    }
    buf[0] = b'0' + (status / 100) as u8;
    buf[1] = b'0' + (status / 10 % 10) as u8;
    buf[2] = b'0' + (status % 10) as u8;
    std::str::from_utf8(buf).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels() {
        let mut b = [b'0'; 3];
        assert_eq!(status_str(200, &mut b), "200");
        assert_eq!(status_str(504, &mut b), "504");
        assert_eq!(status_str(0, &mut b), "0");
        assert_eq!(status_str(1000, &mut b), "0");
    }
}
