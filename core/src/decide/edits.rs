//! The one ordered list of edits a forwarded request gets, computed by the
//! decision and applied as is by either engine, so both send the upstream
//! the same head:
//! 1. the client's headers in their order, less those [`Edits::drops`]
//!    (identity headers only tlsgate may set and their `_` look-alikes,
//!    hop-by-hop and proxy headers and those `Connection` names, and the
//!    names the route removes or sets);
//! 2. then [`Edits::add`] in order: `Host` for a request that had none
//!    (HTTP/2, or absolute-form), `Connection: Upgrade` and `Upgrade:
//!    websocket` for a WebSocket upgrade, `x-forwarded-client-cert` and
//!    RFC 9440's `client-cert`/`client-cert-chain` (as the
//!    forwarding mode says: [`CertHeaders`]), `x-forwarded-for`,
//!    `x-forwarded-proto`, the route's `set`, the route's `add`;
//! 3. the target: [`Edits::target`] when the route rewrites it or the
//!    request came in absolute form, else as sent.

use std::borrow::Cow;
use std::net::IpAddr;

use super::client_cert::CertHeaders;
use crate::config::client_cert::ForwardClientCert;
use crate::config::{HttpRoute, StringMatch};
use crate::route::HeaderSource;

/// Headers no client may pass on: only tlsgate speaks for the client's
/// address.
const IDENTITY: [&str; 2] = ["x-forwarded-for", "x-forwarded-proto"];
/// The client-certificate headers: only tlsgate speaks for the client's
/// certificate, unless the forwarding mode trusts a proxy in front to
/// have written them (then they go on under their exact names only).
const CERT: [&str; 3] = [
    "x-forwarded-client-cert",
    "client-cert",
    "client-cert-chain",
];
/// Hop-by-hop and proxy headers: about this connection, not the
/// upstream's (framing is the engine's: a body goes chunked when it has no
/// length).
const HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];
/// Names a `Connection` header may not take away.
const PROTECTED: [&str; 4] = [
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edits {
    /// Path and query to send instead of the client's.
    pub target: Option<String>,
    /// Names the route removes or sets, and those the client's
    /// `Connection` header names (lower case).
    route_names: Vec<String>,
    /// The client's [`CERT`] headers go on (under their exact names).
    forward_cert: bool,
    /// Added after the client's headers, in this order (the names and
    /// values tlsgate itself writes are not copied per request).
    pub add: Vec<(Cow<'static, str>, Cow<'static, str>)>,
}

/// What the edits depend on besides the route.
pub struct EditInputs<'a> {
    /// The client-certificate headers and what becomes of the client's.
    pub cert: CertHeaders<'a>,
    pub client_ip: Option<IpAddr>,
    pub tls: bool,
    /// Path and query as the request routes by them.
    pub path: &'a str,
    /// The request came in absolute form (`GET http://h/p`).
    pub absolute_form: bool,
    /// The authority to put in `Host` when the client sent none.
    pub authority: Option<&'a str>,
    pub host_header: bool,
    /// The method and whether the request came as HTTP/1.1 (a WebSocket
    /// upgrade is a GET over HTTP/1.1).
    pub method: &'a str,
    pub http11: bool,
}

impl Edits {
    pub fn new<H: HeaderSource + ?Sized>(
        route: Option<&HttpRoute>,
        headers: &H,
        i: &EditInputs<'_>,
    ) -> Edits {
        let mut route_names: Vec<String> = connection_names(headers);
        let mut add = Vec::new();
        if !i.host_header {
            if let Some(a) = i.authority {
                // As Pingora names the `Host` it makes from `:authority`.
                add.push(("Host".into(), a.to_string().into()));
            }
        }
        if is_websocket_upgrade(headers, i) {
            add.push(("connection".into(), "Upgrade".into()));
            add.push(("upgrade".into(), "websocket".into()));
        }
        let forward_cert = i.cert.forwards_client_headers();
        if let Some(x) = &i.cert.xfcc {
            let value = match i.cert.mode {
                ForwardClientCert::AppendForward => {
                    let prev: Vec<&str> = headers
                        .all(CERT[0])
                        .into_iter()
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .collect();
                    if prev.is_empty() {
                        x.to_string()
                    } else {
                        format!("{},{x}", prev.join(","))
                    }
                }
                _ => x.to_string(),
            };
            add.push((CERT[0].into(), value.into()));
        }
        if let Some(c) = &i.cert.client_cert {
            add.push((CERT[1].into(), c.clone().into()));
        }
        if let Some(c) = &i.cert.client_cert_chain {
            add.push((CERT[2].into(), c.clone().into()));
        }
        if let Some(ip) = i.client_ip {
            let prev = forwarded_for(headers);
            let xff = if prev.is_empty() {
                ip.to_string()
            } else {
                format!("{prev}, {ip}")
            };
            add.push((IDENTITY[0].into(), xff.into()));
        }
        let proto = if i.tls { "https" } else { "http" };
        add.push((IDENTITY[1].into(), proto.into()));
        let mut target = i.absolute_form.then(|| i.path.to_string());
        if let Some(r) = route {
            let e = &r.request_headers;
            let named: Vec<String> = e
                .remove
                .iter()
                .chain(e.set.iter().map(|(n, _)| n))
                .map(|n| n.to_ascii_lowercase())
                .collect();
            // A route's own header wins over the identity header of the
            // same name (as `set` replaces it).
            add.retain(|(n, _)| !named.iter().any(|r| r == n));
            route_names.extend(named);
            add.extend(
                e.set
                    .iter()
                    .chain(&e.add)
                    .map(|(n, v)| (n.clone().into(), v.clone().into())),
            );
            if let Some(new) = &r.rewrite_uri {
                let (path, query) = match i.path.split_once('?') {
                    Some((p, q)) => (p, Some(q)),
                    None => (i.path, None),
                };
                let mut t = rewrite_path(r, path, new);
                if let Some(q) = query {
                    t.push('?');
                    t.push_str(q);
                }
                target = Some(t);
            }
        }
        Edits {
            target,
            route_names,
            forward_cert,
            add,
        }
    }

    /// Is the client's header `name` left out?
    pub fn drops(&self, name: &str) -> bool {
        let cert = CERT.iter().any(|p| same_name(name, p));
        // Forwarded as the client sent it, but never a `_` look-alike: the
        // proxy in front checked the real name only.
        if cert && !(self.forward_cert && CERT.iter().any(|p| name.eq_ignore_ascii_case(p))) {
            return true;
        }
        IDENTITY.iter().chain(&HOP).any(|p| same_name(name, p))
            || self
                .route_names
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
    }
}

/// The client's `X-Forwarded-For` lines as one list, every entry kept
/// (as `remote.ip` counts them): a byte that is not visible ASCII is
/// written `%XX`, so a line a proxy appended to is never lost.
fn forwarded_for<H: HeaderSource + ?Sized>(headers: &H) -> String {
    let mut out = String::new();
    for line in headers.all_bytes("x-forwarded-for") {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        for &b in line {
            if b == b' ' || (b.is_ascii_graphic() && b != b'%') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// The header names the client's `Connection` header makes hop-by-hop
/// (never the ones tlsgate sets or routes by).
fn connection_names<H: HeaderSource + ?Sized>(headers: &H) -> Vec<String> {
    let Some(v) = headers.first("connection") else {
        return Vec::new();
    };
    v.split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && !PROTECTED.contains(&t.as_str()))
        .collect()
}

/// An HTTP/1.1 GET asking to become a WebSocket: its `Connection` and
/// `Upgrade` go on, normalized (any other upgrade is refused by dropping
/// them).
fn is_websocket_upgrade<H: HeaderSource + ?Sized>(headers: &H, i: &EditInputs<'_>) -> bool {
    i.http11
        && i.method == "GET"
        && headers
            .first("upgrade")
            .is_some_and(|u| u.trim().eq_ignore_ascii_case("websocket"))
        && headers.first("connection").is_some_and(|c| {
            c.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
}

/// Header names equal but for case, with `_` read as `-`: CGI-style
/// backends (WSGI, Rack, PHP) see `X_Forwarded_Client_Cert` as the real
/// thing, so it must be dropped as the real thing is.
pub fn same_name(name: &str, protected: &str) -> bool {
    name.len() == protected.len()
        && name.bytes().zip(protected.bytes()).all(|(a, b)| {
            let a = if a == b'_' { b'-' } else { a };
            a.eq_ignore_ascii_case(&b)
        })
}

/// Istio's rule: a route matched by a uri prefix has that prefix replaced;
/// otherwise the whole path is replaced.
pub fn rewrite_path(route: &HttpRoute, path: &str, new: &str) -> String {
    let prefix = route.matches.iter().find_map(|m| match &m.uri {
        Some(StringMatch::Prefix(p)) if path.starts_with(p.as_str()) => Some(p.as_str()),
        _ => None,
    });
    match prefix {
        Some(p) => format!("{new}{}", &path[p.len()..]),
        None => new.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_keeps_every_line_and_entry() {
        let mut h = http::HeaderMap::new();
        let name = http::HeaderName::from_static("x-forwarded-for");
        for v in [&b"6.6.6.6\x80, 10.0.0.1"[..], b"", b" 10.0.0.2 ", b"a%b"] {
            h.append(name.clone(), http::HeaderValue::from_bytes(v).unwrap());
        }
        assert_eq!(forwarded_for(&h), "6.6.6.6%80, 10.0.0.1, 10.0.0.2, a%25b");
        assert_eq!(forwarded_for(&http::HeaderMap::new()), "");
    }
}
