//! What `decide` reads of a request, whichever engine parsed it: the
//! method, the target as sent, the authority it names, and its headers.

use std::borrow::Cow;

use crate::route::HeaderSource;

/// One request as the decision sees it.
pub struct RequestView<'a, H: ?Sized> {
    pub method: &'a str,
    /// As sent: origin-form (`/p?q`), absolute-form (`http://h:81/p`), or
    /// authority-form (`h:443`, CONNECT). HTTP/2: `:path`.
    pub target: &'a str,
    /// HTTP/2's `:authority`.
    pub authority: Option<&'a str>,
    /// The `Host` header, when there is exactly one (two are refused before).
    pub host_header: Option<&'a str>,
    /// Came as an HTTP/2 stream.
    pub h2: bool,
    /// Came as HTTP/1.1 (not 1.0, not h2).
    pub http11: bool,
    pub headers: &'a H,
}

impl<H: HeaderSource + ?Sized> RequestView<'_, H> {
    /// The authority of an absolute-form target (`http://h:81/p` → `h:81`).
    fn target_authority(&self) -> Option<&str> {
        let rest = self
            .target
            .strip_prefix("http://")
            .or_else(|| self.target.strip_prefix("https://"))?;
        Some(rest.split(['/', '?']).next().unwrap_or(rest))
    }

    /// The authority the request routes by: the absolute-form target's or
    /// `:authority`, which must then agree with `Host`; else `Host`.
    pub fn raw_authority(&self) -> Option<&str> {
        let uri = self.authority.or_else(|| self.target_authority());
        match (uri, self.host_header) {
            // Authorized by one name, routed by the other: refuse both.
            (Some(a), Some(h)) if !a.eq_ignore_ascii_case(h) => None,
            (Some(a), _) => Some(a),
            (None, h) => h,
        }
    }

    /// The host, lower case, without port or trailing dot.
    pub fn host(&self) -> Option<Cow<'_, str>> {
        normalize_host(self.raw_authority()?)
    }

    /// Path and query (`/` for an absolute-form target without a path).
    pub fn path(&self) -> Cow<'_, str> {
        if let Some(a) = self.target_authority() {
            let scheme_len = if self.target.starts_with("https://") {
                8
            } else {
                7
            };
            let rest = &self.target[scheme_len + a.len()..];
            return match rest.as_bytes().first() {
                None => Cow::Borrowed("/"),
                Some(b'/') => Cow::Borrowed(rest),
                Some(_) => Cow::Owned(format!("/{rest}")),
            };
        }
        Cow::Borrowed(self.target)
    }

    /// Sent in absolute form (`curl -x`): forwarded in origin form.
    pub fn absolute_form(&self) -> bool {
        self.target_authority().is_some()
    }

    /// The port the request names (`Host: h:8080`, `http://h:8080/`), else
    /// the scheme's: 443 for an `https://` target, else 80.
    pub fn port(&self) -> u16 {
        let named = self
            .authority
            .or_else(|| self.target_authority())
            .and_then(authority_port)
            .or_else(|| self.host_header.and_then(authority_port));
        named.unwrap_or(if self.target.starts_with("https://") {
            443
        } else {
            80
        })
    }

    /// `host` and port of a CONNECT target (`host:port`, a port required).
    pub fn connect_target(&self) -> Option<(String, u16)> {
        let a = self
            .target
            .parse::<http::uri::Authority>()
            .ok()
            .filter(|a| !a.as_str().contains('@'))?;
        let host = a.host().trim_start_matches('[').trim_end_matches(']');
        Some((host.to_ascii_lowercase(), a.port_u16()?))
    }
}

fn authority_port(a: &str) -> Option<u16> {
    a.parse::<http::uri::Authority>().ok()?.port_u16()
}

/// An authority as tlsgate routes by it: lower case, without port or
/// trailing dot. `None` when it is not a host name (letters, digits, `-`,
/// `_`, dots) or a bracketed IPv6 address: anything else could route as one
/// name here and be read as another by the backend.
pub fn normalize_host(raw: &str) -> Option<Cow<'_, str>> {
    let host = strip_port(raw)?;
    if host.is_empty() {
        return None;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let valid = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
    };
    if !valid {
        return None;
    }
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

    struct NoHeaders;
    impl HeaderSource for NoHeaders {
        fn first(&self, _: &str) -> Option<&str> {
            None
        }
    }

    fn view<'a>(
        target: &'a str,
        authority: Option<&'a str>,
        host: Option<&'a str>,
    ) -> RequestView<'a, NoHeaders> {
        RequestView {
            method: "GET",
            target,
            authority,
            host_header: host,
            h2: authority.is_some(),
            http11: authority.is_none(),
            headers: &NoHeaders,
        }
    }

    #[test]
    fn host_from_header_lower_case_without_port() {
        let v = view("/", None, Some("Frontend.Example.com:8443"));
        assert_eq!(v.host().as_deref(), Some("frontend.example.com"));
        assert_eq!(v.port(), 8443);
        assert_eq!(v.path(), "/");
    }

    #[test]
    fn authority_and_host_must_agree() {
        let v = view("https://a.example.com/x", None, None);
        assert_eq!(v.host().as_deref(), Some("a.example.com"));
        assert_eq!((&*v.path(), v.port()), ("/x", 443));
        let v = view(
            "https://a.example.com:8443/x",
            None,
            Some("A.example.com:8443"),
        );
        assert_eq!(v.host().as_deref(), Some("a.example.com"));
        assert!(view("https://a.example.com/x", None, Some("b.example.com"))
            .host()
            .is_none());
        assert!(view("/", Some("a.test"), Some("b.test")).host().is_none());
        assert_eq!(view("/", Some("a.test:81"), None).port(), 81);
        let v = view("http://h.test:81", None, Some("h.test:81"));
        assert_eq!((&*v.path(), v.port(), v.absolute_form()), ("/", 81, true));
        assert_eq!(view("http://h.test?q", None, None).path(), "/?q");
    }

    #[test]
    fn ipv6_and_bad_hosts() {
        assert_eq!(
            view("/", None, Some("[::1]:8443")).host().as_deref(),
            Some("[::1]")
        );
        assert!(view("/", None, Some("user@evil.com")).host().is_none());
        assert!(view("/", None, None).host().is_none());
        assert!(view("/", None, Some(":8443")).host().is_none());
        for bad in [
            "a.test:x",
            "a.test x",
            "a.test/x",
            "a\"b",
            "[::zz]",
            "a%2e.test",
            "a.test:8443:1",
        ] {
            assert!(view("/", None, Some(bad)).host().is_none(), "{bad}");
        }
        assert_eq!(
            view("/", None, Some("A_b-1.Test.")).host().as_deref(),
            Some("a_b-1.test")
        );
    }

    #[test]
    fn connect_targets_are_host_and_port() {
        let t = |raw: &str| view(raw, None, None).connect_target();
        assert_eq!(
            t("Greeting.Remote.com:443"),
            Some(("greeting.remote.com".into(), 443))
        );
        assert_eq!(t("[::1]:8443"), Some(("::1".into(), 8443)));
        assert_eq!(t("greeting.remote.com"), None, "a port is required");
        assert_eq!(t("user@evil.test:443"), None);
    }
}
