//! The decision's header edits, applied to a request Pingora forwards (the
//! direct path writes the same edits straight into the bytes it sends,
//! `direct/forward.rs`).

use pingora_error::{Error, ErrorType, Result};
use pingora_http::RequestHeader;

use crate::decide::Edits;

/// Leaves out the client headers `edits` drops, adds its headers after
/// the client's in order, and sets its target.
pub fn apply(req: &mut RequestHeader, edits: &Edits) -> Result<()> {
    let dropped: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|n| edits.drops(n.as_str()))
        .cloned()
        .collect();
    for name in dropped {
        req.remove_header(&name);
    }
    for (name, value) in &edits.add {
        req.append_header(name.clone(), value.as_str())?;
    }
    if let Some(t) = &edits.target {
        let uri = t
            .parse::<http::Uri>()
            .map_err(|e| Error::because(ErrorType::InternalError, "upstream target", e))?;
        req.set_uri(uri);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HeaderEdits, HttpRoute, RouteAction, RouteMatch, StringMatch};
    use crate::decide::EditInputs;

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
                xfcc,
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
