//! Reading what a request asks for: its host, and the TLS facts of its
//! connection.

use std::borrow::Cow;

use pingora_http::RequestHeader;
use pingora_proxy::Session;

use crate::tls::ConnInfo;

/// The TLS facts of the session's connection, if it is TLS.
pub fn conn_info(session: &Session) -> Option<&ConnInfo> {
    session
        .digest()?
        .ssl_digest
        .as_ref()?
        .extension
        .get::<ConnInfo>()
}

/// The request's authority (`:authority` for h2, else `Host`), lower case
/// and without a port. `None` when absent or not a valid host.
pub fn request_host(req: &RequestHeader) -> Option<Cow<'_, str>> {
    let header = match req.headers.get(http::header::HOST) {
        Some(h) => Some(h.to_str().ok()?),
        None => None,
    };
    let raw = match (req.uri.authority(), header) {
        // Authorized by one name, routed by the other: refuse both.
        (Some(a), Some(h)) if !a.as_str().eq_ignore_ascii_case(h) => return None,
        (Some(a), _) => a.as_str(),
        (None, Some(h)) => h,
        (None, None) => return None,
    };
    normalize_host(raw)
}

/// An authority as tlsgate routes by it: lower case, without port or
/// trailing dot. `None` when it is not a valid host.
pub fn normalize_host(raw: &str) -> Option<Cow<'_, str>> {
    let host = strip_port(raw)?;
    if host.is_empty() {
        return None;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

fn strip_port(authority: &str) -> Option<&str> {
    // Userinfo in an authority is never legitimate for a gateway.
    if authority.contains('@') {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        return Some(&authority[..end + 2]);
    }
    Some(match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, host: Option<&str>) -> RequestHeader {
        let mut r = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
        if let Some(h) = host {
            r.insert_header("host", h).unwrap();
        }
        r
    }

    #[test]
    fn host_from_header_lower_case_without_port() {
        let r = req("/", Some("Frontend.Example.com:8443"));
        assert_eq!(request_host(&r).as_deref(), Some("frontend.example.com"));
    }

    fn absolute(uri: &str, host: Option<&str>) -> RequestHeader {
        let mut r = req("/", host);
        r.set_uri(uri.parse().unwrap());
        r
    }

    #[test]
    fn authority_and_host_must_agree() {
        let r = absolute("https://a.example.com/x", None);
        assert_eq!(request_host(&r).as_deref(), Some("a.example.com"));
        let r = absolute("https://a.example.com:8443/x", Some("A.example.com:8443"));
        assert_eq!(request_host(&r).as_deref(), Some("a.example.com"));
        let r = absolute("https://a.example.com/x", Some("b.example.com"));
        assert_eq!(request_host(&r), None);
    }

    #[test]
    fn ipv6_and_bad_hosts() {
        assert_eq!(
            request_host(&req("/", Some("[::1]:8443"))).as_deref(),
            Some("[::1]")
        );
        assert_eq!(request_host(&req("/", Some("user@evil.com"))), None);
        assert_eq!(request_host(&req("/", None)), None);
        assert_eq!(request_host(&req("/", Some(":8443"))), None);
    }
}
