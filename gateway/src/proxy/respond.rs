//! Responses tlsgate writes itself: direct responses, redirects, refusals.

use bytes::Bytes;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use crate::config::Redirect;

/// Writes a complete response with a small plain-text body.
pub async fn text(session: &mut Session, status: u16, body: &str) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(3))?;
    resp.insert_header("content-type", "text/plain; charset=utf-8")?;
    resp.insert_header("content-length", body.len().to_string())?;
    let head_only = body.is_empty() || session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::copy_from_slice(body.as_bytes())), true)
            .await?;
    }
    Ok(())
}

/// Writes a redirect to `location` with no body.
pub async fn redirect(session: &mut Session, code: u16, location: &str) -> Result<()> {
    let mut resp = ResponseHeader::build(code, Some(2))?;
    resp.insert_header("location", location)?;
    resp.insert_header("content-length", "0")?;
    session.write_response_header(Box::new(resp), true).await
}

/// The `Location` of a VirtualService `redirect`: each part the rule does
/// not set keeps the request's value.
pub fn redirect_location(r: &Redirect, tls: bool, host: &str, path_and_query: &str) -> String {
    let scheme = r
        .scheme
        .as_deref()
        .unwrap_or(if tls { "https" } else { "http" });
    let authority = r.authority.as_deref().unwrap_or(host);
    let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
    let path = r.uri.as_deref().unwrap_or(path_and_query);
    format!("{scheme}://{authority}{port}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Redirect {
        Redirect {
            uri: None,
            authority: None,
            scheme: None,
            port: None,
            code: 301,
        }
    }

    #[test]
    fn keeps_what_the_rule_does_not_set() {
        assert_eq!(
            redirect_location(&rule(), true, "a.example.com", "/x?y=1"),
            "https://a.example.com/x?y=1"
        );
    }

    #[test]
    fn replaces_what_the_rule_sets() {
        let r = Redirect {
            uri: Some("/new".into()),
            authority: Some("b.example.com".into()),
            scheme: Some("https".into()),
            port: Some(8443),
            code: 302,
        };
        assert_eq!(
            redirect_location(&r, false, "a.example.com", "/old"),
            "https://b.example.com:8443/new"
        );
    }
}
