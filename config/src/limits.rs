//! What one client may cost the gateway: `GatewayRuntime.spec.limits` and
//! `spec.timeouts`. Every limit and deadline has a default chosen so that
//! a well-behaved client never meets it and a hostile one is cut off before
//! it can hurt anyone else; each is enforced by the listener or a request
//! engine and counted when it fires (README, "Limits and timeouts").

use std::time::Duration;

use serde::Serialize;

use super::parse::{duration, Report};
use super::raw::{RawLimits, RawTimeouts, Size};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Open downstream connections; `0` derives it from the open-file limit
    /// at start (each connection may need an upstream descriptor too).
    pub max_connections: usize,
    /// A whole HTTP/1.1 request head; the HTTP/2 header list too.
    pub request_head_bytes: usize,
    /// Header lines of one request.
    pub request_headers: usize,
    /// Bytes held by all unfinished request heads together.
    pub request_head_memory: usize,
    pub http2_max_concurrent_streams: u32,
    /// Streams a client may reset (or make us reset) per connection within
    /// [`RESET_WINDOW`] before it gets GOAWAY `ENHANCE_YOUR_CALM`.
    pub http2_max_reset_streams: u32,
    /// Certificates a client may send after its own: rustls listeners
    /// refuse more before decoding any (each decode comes before the
    /// client has proved anything); OpenSSL listeners, whose libssl has
    /// decoded them all by then, before building a path.
    pub client_certificate_intermediates: usize,
    /// TLS 1.2 sessions kept for resumption by session id, in bytes (each
    /// holds the client's certificates); `0` keeps none.
    pub tls_session_cache_bytes: usize,
}

/// The window `http2MaxResetStreams` counts over.
pub const RESET_WINDOW: Duration = Duration::from_secs(30);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 0,
            // Envoy's 60 KiB and 100 headers, nginx's 4 x 8 KiB: a real
            // request head is a few KiB, cookies included.
            request_head_bytes: 64 * 1024,
            request_headers: 100,
            request_head_memory: 32 * 1024 * 1024,
            http2_max_concurrent_streams: 100,
            http2_max_reset_streams: 100,
            // A leaf and a few intermediates is what any CA issues; OpenSSL
            // 3 takes about a tenth of a millisecond to decode each one.
            client_certificate_intermediates: 8,
            // Some 10,000 mutual-TLS sessions with a 1 KB certificate
            // (nginx's `shared:SSL:10m` keeps about 40,000 without one).
            tls_session_cache_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    /// From accept to the end of the TLS handshake.
    pub tls_handshake: Duration,
    /// From a connection being ready to the first byte of its first
    /// request (HTTP/2: the client's preface and settings).
    pub first_request: Duration,
    /// From a request head's first byte to its end: a trickle cannot
    /// extend it.
    pub request_head: Duration,
    /// Longest wait for the next bytes of a request body.
    pub request_body_idle: Duration,
    /// An HTTP/1.1 connection between requests.
    pub keep_alive_idle: Duration,
    /// An HTTP/2 connection with no open stream.
    pub http2_idle: Duration,
    /// Longest wait for the client to take more of a response (a client
    /// that reads nothing would hold its upstream connection forever).
    pub response_send_idle: Duration,
    /// Longest a request waits for a place under its destination's
    /// `connectionPool` limits (`http1MaxPendingRequests`), then 503.
    pub upstream_pending: Duration,
    /// From accept to the end of what a listener reads before deciding (a
    /// PROXY protocol header, the ClientHello's SNI, plaintext or TLS).
    pub first_bytes: Duration,
    /// A TCP or passthrough connection with no byte either way.
    pub tcp_idle: Duration,
    /// A relayed connection one side of which has closed (FIN): no byte
    /// from the other side for this long closes it (a backend that ignores
    /// half-close would otherwise hold it for `tcp_idle`).
    pub tcp_half_closed: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tls_handshake: Duration::from_secs(10),
            first_request: Duration::from_secs(10),
            request_head: Duration::from_secs(10),
            request_body_idle: Duration::from_secs(60),
            keep_alive_idle: Duration::from_secs(60),
            http2_idle: Duration::from_secs(60),
            response_send_idle: Duration::from_secs(60),
            upstream_pending: Duration::from_secs(10),
            first_bytes: Duration::from_secs(10),
            // Envoy's TCP proxy default: a database connection may idle long.
            tcp_idle: Duration::from_secs(3600),
            // A backend may take long to answer a request whose client has
            // already closed its side; one that ignores the half-close must
            // not hold the connection for tcpIdle.
            tcp_half_closed: Duration::from_secs(300),
        }
    }
}

/// `spec.limits`, each field checked against the range it can work in.
pub(crate) fn limits(raw: &RawLimits, report: &mut Report<'_>) -> Limits {
    let mut l = Limits::default();
    let mut count = |field: &str, v: Option<u64>, min: u64, max: u64| -> Option<u64> {
        let v = v?;
        let path = format!("spec.limits.{field}");
        report.check(&path, in_range(v, min, max))
    };
    if let Some(v) = count("maxConnections", raw.max_connections, 0, 10_000_000) {
        l.max_connections = v as usize;
    }
    if let Some(v) = count("requestHeaders", raw.request_headers, 8, 1000) {
        l.request_headers = v as usize;
    }
    if let Some(v) = count(
        "http2MaxConcurrentStreams",
        raw.http2_max_concurrent_streams,
        1,
        10_000,
    ) {
        l.http2_max_concurrent_streams = v as u32;
    }
    if let Some(v) = count(
        "http2MaxResetStreams",
        raw.http2_max_reset_streams,
        1,
        1_000_000,
    ) {
        l.http2_max_reset_streams = v as u32;
    }
    if let Some(v) = count(
        "clientCertificateIntermediates",
        raw.client_certificate_intermediates,
        0,
        64,
    ) {
        l.client_certificate_intermediates = v as usize;
    }
    let mut size = |field: &str, v: &Option<Size>, min: u64, max: u64| -> Option<usize> {
        let path = format!("spec.limits.{field}");
        let n = report.check(&path, bytes(v.as_ref()?))?;
        report
            .check(&path, in_range(n, min, max))
            .map(|n| n as usize)
    };
    if let Some(n) = size("requestHeadBytes", &raw.request_head_bytes, 1024, 1 << 20) {
        l.request_head_bytes = n;
    }
    if let Some(n) = size(
        "requestHeadMemory",
        &raw.request_head_memory,
        64 * 1024,
        1 << 40,
    ) {
        l.request_head_memory = n;
    }
    if let Some(n) = size(
        "tlsSessionCacheBytes",
        &raw.tls_session_cache_bytes,
        0,
        1 << 32,
    ) {
        l.tls_session_cache_bytes = n;
    }
    l
}

/// `spec.timeouts`: every phase has a deadline, so none may be zero.
pub(crate) fn timeouts(raw: &RawTimeouts, report: &mut Report<'_>) -> Timeouts {
    let mut t = Timeouts::default();
    let fields: [(&str, &Option<String>, &mut Duration); 11] = [
        ("tlsHandshake", &raw.tls_handshake, &mut t.tls_handshake),
        ("firstRequest", &raw.first_request, &mut t.first_request),
        ("requestHead", &raw.request_head, &mut t.request_head),
        (
            "requestBodyIdle",
            &raw.request_body_idle,
            &mut t.request_body_idle,
        ),
        (
            "keepAliveIdle",
            &raw.keep_alive_idle,
            &mut t.keep_alive_idle,
        ),
        ("http2Idle", &raw.http2_idle, &mut t.http2_idle),
        (
            "responseSendIdle",
            &raw.response_send_idle,
            &mut t.response_send_idle,
        ),
        (
            "upstreamPending",
            &raw.upstream_pending,
            &mut t.upstream_pending,
        ),
        ("firstBytes", &raw.first_bytes, &mut t.first_bytes),
        ("tcpIdle", &raw.tcp_idle, &mut t.tcp_idle),
        (
            "tcpHalfClosed",
            &raw.tcp_half_closed,
            &mut t.tcp_half_closed,
        ),
    ];
    for (field, raw, slot) in fields {
        let Some(raw) = raw else { continue };
        let path = format!("spec.timeouts.{field}");
        match report.check(&path, duration(raw)) {
            Some(d) if d.is_zero() => report.error(&path, "must be more than 0s"),
            // A relay's clock ticks in milliseconds and wakes at least
            // every tcpHalfClosed: shorter makes every relay spin.
            Some(d) if field.starts_with("tcp") && d < MIN_TCP_TIMEOUT => {
                report.error(&path, "must be at least 1s")
            }
            Some(d) => *slot = d,
            None => {}
        }
    }
    t
}

/// The shortest `tcpIdle`/`tcpHalfClosed` (and listener `tcpIdleTimeout`).
pub(crate) const MIN_TCP_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) fn in_range(v: u64, min: u64, max: u64) -> Result<u64, String> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is out of range: expected {min} to {max}"))
    }
}

/// `65536`, `64Ki`, `32Mi`, `1Gi`, `64k`, `1M`.
pub(crate) fn bytes(v: &Size) -> Result<u64, String> {
    let text = match v {
        Size::Number(n) => return Ok(*n),
        Size::Text(t) => t.trim(),
    };
    let bad = || format!("invalid size '{text}': expected bytes, e.g. 65536 or \"64Ki\"");
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..digits].parse().map_err(|_| bad())?;
    let unit: u64 = match &text[digits..] {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" | "K" => 1000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(unit).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block the README shows under "Limits and timeouts" parses, and
    /// says what the defaults are.
    #[test]
    fn the_readme_shows_the_defaults() {
        use crate::load::documents;
        let readme = include_str!("../../README.md");
        let section = readme
            .split("## Limits and timeouts")
            .nth(1)
            .expect("README has a Limits and timeouts section");
        let yaml = section
            .split("```yaml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a yaml block in that section");
        let mut out = crate::Findings::default();
        let docs = documents(
            std::path::Path::new("README.md"),
            yaml,
            std::path::Path::new("/"),
            &mut out,
        );
        let refs: Vec<_> = docs.iter().collect();
        let s = super::super::convert_runtime::convert(&refs, &Default::default(), &mut out);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        assert_eq!(s.limits, Limits::default());
        assert_eq!(s.timeouts, Timeouts::default());
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(&Size::Number(5)), Ok(5));
        assert_eq!(bytes(&Size::Text("64Ki".into())), Ok(65536));
        assert_eq!(bytes(&Size::Text(" 32Mi ".into())), Ok(32 << 20));
        assert_eq!(bytes(&Size::Text("2k".into())), Ok(2000));
        assert!(bytes(&Size::Text("64KB".into())).is_err());
        assert!(bytes(&Size::Text("Ki".into())).is_err());
        assert!(bytes(&Size::Text("99999999999999999999Gi".into())).is_err());
    }
}
