//! The decision's header edits, applied to a request Pingora forwards (the
//! direct path writes the same edits straight into the bytes it sends,
//! `direct/forward.rs`).

use bytes::Bytes;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::decide::Edits;

/// Leaves out the client headers `edits` drops, adds its headers after
/// the client's in order, and sets its target. The header is rebuilt
/// rather than edited in place: removing from Pingora's map moves its last
/// entry into the hole, and the upstream would see another order than the
/// direct path sends. A header named more than once is written as one
/// group at its first place (the map's order), which the direct path
/// reproduces (`direct/forward.rs`).
pub fn apply(req: &mut RequestHeader, edits: &Edits) -> Result<()> {
    // The decision adds `Host` only when the client sent none (HTTP/2, an
    // absolute-form target): any there now is the one Pingora made from
    // `:authority`, the same value.
    let adds_host = edits
        .add
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("host"));
    let mut kept: Vec<(Bytes, http::HeaderValue)> = Vec::with_capacity(req.headers.len() + 8);
    if req.has_case() {
        for (name, value) in req.case_header_iter() {
            let name = Bytes::copy_from_slice(name.as_slice());
            kept.push((name, value.clone()));
        }
    } else {
        for (name, value) in req.headers.iter() {
            kept.push((
                Bytes::copy_from_slice(name.as_str().as_bytes()),
                value.clone(),
            ));
        }
    }
    let target = match &edits.target {
        Some(t) => t.as_bytes().to_vec(),
        None => req.raw_path().to_vec(),
    };
    let mut out = RequestHeader::build(
        req.method.clone(),
        &target,
        Some(kept.len() + edits.add.len()),
    )?;
    out.set_version(req.version);
    if let Some(end) = req.send_end_stream() {
        out.set_send_end_stream(end);
    }
    *out.extensions_mut() = std::mem::take(req.extensions_mut());
    for (name, value) in kept {
        let s = std::str::from_utf8(&name).unwrap_or("");
        if edits.drops(s) || (adds_host && s.eq_ignore_ascii_case("host")) {
            continue;
        }
        out.append_header(name, value)?;
    }
    for (name, value) in &edits.add {
        match name {
            std::borrow::Cow::Borrowed(n) => out.append_header(*n, value.as_ref())?,
            std::borrow::Cow::Owned(n) => out.append_header(n.clone(), value.as_ref())?,
        };
    }
    *req = out;
    Ok(())
}

/// Hop-by-hop headers of the upstream's response, about its connection to
/// us: not passed on, as the direct path does not (`Connection` and
/// `Upgrade` are Pingora's to handle).
const RESPONSE_HOP: [&str; 4] = ["keep-alive", "proxy-connection", "proxy-authenticate", "te"];

/// Drops the upstream response's hop-by-hop headers, keeping the others in
/// their order (rebuilt, for the reason `apply` says).
pub fn response_hop_by_hop(resp: &mut ResponseHeader) -> Result<()> {
    let hop = |n: &str| RESPONSE_HOP.iter().any(|h| n.eq_ignore_ascii_case(h));
    if !resp.headers.keys().any(|n| hop(n.as_str())) {
        return Ok(());
    }
    let mut kept: Vec<(Bytes, http::HeaderValue)> = Vec::with_capacity(resp.headers.len());
    if resp.has_case() {
        for (name, value) in resp.case_header_iter() {
            kept.push((Bytes::copy_from_slice(name.as_slice()), value.clone()));
        }
    } else {
        for (name, value) in resp.headers.iter() {
            kept.push((
                Bytes::copy_from_slice(name.as_str().as_bytes()),
                value.clone(),
            ));
        }
    }
    let mut out = ResponseHeader::build(resp.status, Some(kept.len()))?;
    out.set_version(resp.version);
    out.set_reason_phrase(resp.get_reason_phrase())?;
    for (name, value) in kept {
        if !hop(std::str::from_utf8(&name).unwrap_or("")) {
            out.append_header(name, value)?;
        }
    }
    *resp = out;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HeaderEdits, HttpRoute, RouteAction, RouteMatch, StringMatch};
    use crate::decide::EditInputs;

    fn route(prefix: Option<&str>, rewrite: &str) -> HttpRoute {
        HttpRoute {
            client_cert: None,
            index: 0,
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

    /// `req` forwarded with the edits `decide` would make of it.
    fn forward(
        mut req: RequestHeader,
        route: Option<&HttpRoute>,
        xfcc: Option<&str>,
    ) -> RequestHeader {
        let raw = String::from_utf8_lossy(req.raw_path()).into_owned();
        let absolute = !raw.starts_with('/');
        let path = req
            .uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        let authority = req.uri.authority().map(|a| a.to_string());
        let edits = Edits::new(
            route,
            &req.headers,
            &EditInputs {
                cert: crate::decide::client_cert::CertHeaders::sanitize_set(xfcc),
                client_ip: Some("127.0.0.1".parse().unwrap()),
                tls: true,
                path: &path,
                absolute_form: absolute,
                authority: authority.as_deref(),
                host_header: req.headers.get("host").is_some(),
                method: "GET",
                http11: true,
            },
        );
        apply(&mut req, &edits).unwrap();
        req
    }

    fn get(path: &[u8]) -> RequestHeader {
        RequestHeader::build("GET", path, None).unwrap()
    }

    #[test]
    fn client_identity_headers_are_replaced_or_dropped() {
        let mut r = get(b"/");
        r.insert_header("x-forwarded-client-cert", "evil").unwrap();
        r.insert_header("x_forwarded_client_cert", "evil").unwrap();
        r.insert_header("X_Forwarded_For", "6.6.6.6").unwrap();
        r.insert_header("x_other", "kept").unwrap();
        let out = forward(r, None, Some("Hash=ab"));
        let xfcc: Vec<_> = out
            .headers
            .get_all("x-forwarded-client-cert")
            .iter()
            .collect();
        assert_eq!(xfcc, ["Hash=ab"]);
        assert!(out.headers.get("x_forwarded_client_cert").is_none());
        assert!(out.headers.get("x_forwarded_for").is_none());
        assert_eq!(out.headers.get("x_other").unwrap(), "kept");
        assert_eq!(out.headers.get("x-forwarded-proto").unwrap(), "https");
        let out = forward(get(b"/"), None, None);
        assert!(out.headers.get("x-forwarded-client-cert").is_none());
    }

    #[test]
    fn absolute_form_becomes_origin_form() {
        let mut r = get(b"/");
        r.set_raw_path(b"http://greeting.remote.com:8080/hello?x=1")
            .unwrap();
        r.set_uri("http://greeting.remote.com:8080/hello?x=1".parse().unwrap());
        r.insert_header("proxy-connection", "keep-alive").unwrap();
        let out = forward(r, None, None);
        assert_eq!(out.raw_path(), b"/hello?x=1");
        assert_eq!(out.headers.get("host").unwrap(), "greeting.remote.com:8080");
        assert!(out.headers.get("proxy-connection").is_none());
    }

    #[test]
    fn xff_appends_client_ip() {
        let mut r = get(b"/");
        r.insert_header("x-forwarded-for", "10.0.0.1").unwrap();
        let out = forward(r, None, None);
        let xff: Vec<_> = out.headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(xff, ["10.0.0.1, 127.0.0.1"]);
    }

    #[test]
    fn prefix_rewrite_keeps_rest_and_query() {
        let mut r = get(b"/api/v1/items?x=1");
        r.insert_header("x-remove", "bye").unwrap();
        r.insert_header("x-set", "client").unwrap();
        let out = forward(r, Some(&route(Some("/api/v1"), "/v2")), None);
        assert_eq!(out.uri.to_string(), "/v2/items?x=1");
        assert!(out.headers.get("x-remove").is_none());
        let set: Vec<_> = out.headers.get_all("x-set").iter().collect();
        assert_eq!(set, ["1"]);
        assert_eq!(out.headers.get("x-add").unwrap(), "2");
        let out = forward(get(b"/old"), Some(&route(None, "/new")), None);
        assert_eq!(out.uri.to_string(), "/new");
    }
}
