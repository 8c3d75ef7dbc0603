//! Request header edits on the way to the backend.

use std::net::IpAddr;

use pingora_error::Result;
use pingora_http::RequestHeader;

use crate::config::{HttpRoute, StringMatch};

const XFCC: &str = "x-forwarded-client-cert";
/// The headers only tlsgate may set.
const IDENTITY: [&str; 3] = [XFCC, "x-forwarded-for", "x-forwarded-proto"];

/// Identity and forwarding headers. A client-sent XFCC is always dropped:
/// only the certificate this connection verified may speak for the client.
pub fn forwarded(
    req: &mut RequestHeader,
    xfcc: Option<&str>,
    client_ip: Option<IpAddr>,
    tls: bool,
) -> Result<()> {
    req.remove_header(XFCC);
    // `X_Forwarded_Client_Cert` and the like: the same header to CGI-style
    // backends (see `direct::forward::same_name`).
    let lookalikes: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|n| n.as_str().contains('_'))
        .filter(|n| {
            IDENTITY
                .iter()
                .any(|p| super::direct::same_name(n.as_str(), p))
        })
        .cloned()
        .collect();
    for name in lookalikes {
        req.remove_header(&name);
    }
    if let Some(v) = xfcc {
        req.insert_header(XFCC, v)?;
    }
    if let Some(ip) = client_ip {
        let xff = match req
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.is_empty() => format!("{prev}, {ip}"),
            _ => ip.to_string(),
        };
        req.insert_header("x-forwarded-for", xff)?;
    }
    req.insert_header("x-forwarded-proto", if tls { "https" } else { "http" })?;
    Ok(())
}

/// A forward-proxy request (`GET http://host/path`, what `curl -x` sends)
/// goes upstream in origin form (`GET /path`) with its `Host`, and without
/// the headers addressed to the proxy itself.
pub fn origin_form(req: &mut RequestHeader) -> Result<()> {
    req.remove_header("proxy-connection");
    req.remove_header("proxy-authorization");
    // Pingora parses an absolute-form target into a path-only `uri` but
    // keeps the original bytes for the upstream request line.
    let absolute_raw = !matches!(req.raw_path().first(), Some(b'/' | b'*'));
    if let Some(authority) = req.uri.authority().cloned() {
        if req.headers.get(http::header::HOST).is_none() {
            req.insert_header(http::header::HOST, authority.as_str())?;
        }
    } else if !absolute_raw {
        return Ok(());
    }
    let pq = req
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let uri = pq.parse::<http::Uri>().map_err(|e| {
        pingora_error::Error::because(
            pingora_error::ErrorType::InternalError,
            "origin-form uri",
            e,
        )
    })?;
    req.set_uri(uri);
    Ok(())
}

/// The route's `rewrite` and `headers.request` edits.
pub fn apply_route(req: &mut RequestHeader, route: &HttpRoute) -> Result<()> {
    if let Some(new) = &route.rewrite_uri {
        let path = req.uri.path();
        let rewritten = rewrite_path(route, path, new);
        let pq = match req.uri.query() {
            Some(q) => format!("{rewritten}?{q}"),
            None => rewritten,
        };
        let uri = pq.parse::<http::Uri>().map_err(|e| {
            pingora_error::Error::because(
                pingora_error::ErrorType::InternalError,
                "rewritten uri",
                e,
            )
        })?;
        req.set_uri(uri);
    }
    let edits = &route.request_headers;
    for name in &edits.remove {
        req.remove_header(name.as_str());
    }
    for (name, value) in &edits.set {
        req.insert_header(name.clone(), value.as_str())?;
    }
    for (name, value) in &edits.add {
        req.append_header(name.clone(), value.as_str())?;
    }
    Ok(())
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
    use crate::config::{HeaderEdits, RouteAction, RouteMatch};

    fn route(prefix: Option<&str>, rewrite: &str) -> HttpRoute {
        HttpRoute {
            name: "r".into(),
            matches: prefix
                .map(|p| RouteMatch {
                    uri: Some(StringMatch::Prefix(p.into())),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            action: RouteAction::DirectResponse {
                status: 200,
                body: None,
            },
            rewrite_uri: Some(rewrite.into()),
            timeout: None,
            retries: None,
            request_headers: HeaderEdits {
                set: vec![("x-set".into(), "1".into())],
                add: vec![("x-add".into(), "2".into())],
                remove: vec!["x-remove".into()],
            },
        }
    }

    #[test]
    fn client_xfcc_is_replaced_or_dropped() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header(XFCC, "evil").unwrap();
        forwarded(&mut r, None, None, true).unwrap();
        assert!(r.headers.get(XFCC).is_none());
        r.insert_header(XFCC, "evil").unwrap();
        forwarded(&mut r, Some("Hash=ab"), None, true).unwrap();
        assert_eq!(r.headers.get_all(XFCC).iter().count(), 1);
        assert_eq!(r.headers.get(XFCC).unwrap(), "Hash=ab");
        assert_eq!(r.headers.get("x-forwarded-proto").unwrap(), "https");
    }

    #[test]
    fn identity_lookalikes_are_dropped() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header("x_forwarded_client_cert", "evil").unwrap();
        r.insert_header("X_Forwarded_For", "6.6.6.6").unwrap();
        r.insert_header("x_other", "kept").unwrap();
        forwarded(&mut r, None, None, true).unwrap();
        assert!(r.headers.get("x_forwarded_client_cert").is_none());
        assert!(r.headers.get("x_forwarded_for").is_none());
        assert_eq!(r.headers.get("x_other").unwrap(), "kept");
    }

    #[test]
    fn absolute_form_becomes_origin_form() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.set_uri("http://greeting.remote.com:8080/hello?x=1".parse().unwrap());
        r.insert_header("proxy-connection", "keep-alive").unwrap();
        origin_form(&mut r).unwrap();
        assert_eq!(r.uri.to_string(), "/hello?x=1");
        assert_eq!(r.headers.get("host").unwrap(), "greeting.remote.com:8080");
        assert!(r.headers.get("proxy-connection").is_none());
        let mut r = RequestHeader::build("GET", b"/a", None).unwrap();
        r.insert_header("host", "a.test").unwrap();
        origin_form(&mut r).unwrap();
        assert_eq!(r.uri.to_string(), "/a");
        assert_eq!(r.headers.get("host").unwrap(), "a.test");
        // As Pingora's parser leaves it: path in the uri, target in the raw bytes.
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.set_raw_path(b"http://a.test:81/x?y").unwrap();
        assert_eq!(r.uri.to_string(), "/x?y");
        origin_form(&mut r).unwrap();
        assert_eq!(r.raw_path(), b"/x?y");
    }

    #[test]
    fn xff_appends_client_ip() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header("x-forwarded-for", "10.0.0.1").unwrap();
        forwarded(&mut r, None, Some("127.0.0.1".parse().unwrap()), false).unwrap();
        assert_eq!(
            r.headers.get("x-forwarded-for").unwrap(),
            "10.0.0.1, 127.0.0.1"
        );
    }

    #[test]
    fn prefix_rewrite_keeps_rest_and_query() {
        let mut r = RequestHeader::build("GET", b"/api/v1/items?x=1", None).unwrap();
        r.insert_header("x-remove", "bye").unwrap();
        apply_route(&mut r, &route(Some("/api/v1"), "/v2")).unwrap();
        assert_eq!(r.uri.to_string(), "/v2/items?x=1");
        assert!(r.headers.get("x-remove").is_none());
        assert_eq!(r.headers.get("x-set").unwrap(), "1");
        assert_eq!(r.headers.get("x-add").unwrap(), "2");
    }

    #[test]
    fn whole_path_rewrite_without_prefix_match() {
        let mut r = RequestHeader::build("GET", b"/old", None).unwrap();
        apply_route(&mut r, &route(None, "/new")).unwrap();
        assert_eq!(r.uri.to_string(), "/new");
    }
}
