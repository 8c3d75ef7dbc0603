//! Authorization: Istio's `AuthorizationPolicy` evaluated against one
//! request, pure. Istio's order: any matching DENY policy denies; if any
//! ALLOW policy exists, the request must match one; AUDIT policies only
//! mark the request for the log. `decide` calls [`evaluate`] once per
//! request, so both request engines enforce the same verdict.

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::authz::{Attr, AuthorizationPolicy, AuthzAction, AuthzRule, Check, Values};
use crate::credentials::ClientIdentity;
use crate::route::HeaderSource;

/// What a policy can look at.
pub struct AuthzInput<'a, H: HeaderSource + ?Sized> {
    /// The client certificate's identity, when one was verified.
    pub client: Option<&'a ClientIdentity>,
    /// The TCP peer (the load balancer, behind one).
    pub source_ip: Option<IpAddr>,
    /// The client (a trusted PROXY protocol header's address).
    pub remote_ip: Option<IpAddr>,
    pub sni: Option<&'a str>,
    /// Lower case, no port.
    pub host: &'a str,
    /// The port the request came in on.
    pub port: u16,
    pub method: &'a str,
    /// Without the query string.
    pub path: &'a str,
    pub headers: &'a H,
}

/// The outcome, with what decided it (for the log and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The deciding policy's label and rule index; `None` when no ALLOW
    /// policy matched (denied) or none exists (allowed).
    pub by: Option<(Arc<str>, usize)>,
    /// The action of what decided: DENY for a matching DENY policy, ALLOW
    /// otherwise.
    pub action: AuthzAction,
    /// The first matching AUDIT policy and rule.
    pub audit: Option<(Arc<str>, usize)>,
}

impl Verdict {
    /// `policy[rule]`, or `-`.
    pub fn decided_by(&self) -> String {
        self.by
            .as_ref()
            .map_or_else(|| "-".to_string(), |(p, r)| format!("{p}[{r}]"))
    }
}

/// `None` when no policy applies (nothing to log or count).
pub fn evaluate<H: HeaderSource + ?Sized>(
    policies: &[AuthorizationPolicy],
    input: &AuthzInput<'_, H>,
) -> Option<Verdict> {
    if policies.is_empty() {
        return None;
    }
    Some(verdict(policies, |rule, _| {
        rule_matches(rule, |c| check(c, input))
    }))
}

/// Istio's order over `policies`; `matches(rule, action)` says whether a
/// rule of a policy with that action matches.
fn verdict(
    policies: &[AuthorizationPolicy],
    matches: impl Fn(&AuthzRule, AuthzAction) -> bool,
) -> Verdict {
    let first_match = |action: AuthzAction| {
        policies
            .iter()
            .filter(|p| p.action == action)
            .find_map(|p| {
                p.rules
                    .iter()
                    .position(|r| matches(r, action))
                    .map(|i| (p.label.clone(), i))
            })
    };
    let audit = first_match(AuthzAction::Audit);
    if let Some(by) = first_match(AuthzAction::Deny) {
        return Verdict {
            allowed: false,
            by: Some(by),
            action: AuthzAction::Deny,
            audit,
        };
    }
    let any_allow = policies.iter().any(|p| p.action == AuthzAction::Allow);
    let by = first_match(AuthzAction::Allow);
    Verdict {
        allowed: by.is_some() || !any_allow,
        by,
        action: AuthzAction::Allow,
        audit,
    }
}

/// What a relayed connection (passthrough, TCP, a TLS stream) offers a
/// policy: no host, method, path or header.
pub struct StreamInput<'a> {
    pub client: Option<&'a ClientIdentity>,
    pub remote_ip: Option<IpAddr>,
    pub sni: Option<&'a str>,
    pub port: u16,
}

/// [`evaluate`] for a relayed connection, with Istio's rule for TCP
/// traffic: an ALLOW (or AUDIT) rule that names an HTTP attribute never
/// matches one; a DENY rule matches without its HTTP attributes, so it
/// denies more, never less.
pub fn evaluate_stream(policies: &[AuthorizationPolicy], s: &StreamInput<'_>) -> Option<Verdict> {
    if policies.is_empty() {
        return None;
    }
    let headers = http::HeaderMap::new();
    let input = AuthzInput {
        client: s.client,
        source_ip: s.remote_ip,
        remote_ip: s.remote_ip,
        sni: s.sni,
        host: "",
        port: s.port,
        method: "",
        path: "",
        headers: &headers,
    };
    let http_only = |c: &Check| {
        matches!(
            c.attr,
            Attr::Host | Attr::Method | Attr::Path | Attr::Header(_)
        )
    };
    Some(verdict(policies, |rule, action| {
        rule_matches(rule, |c| {
            if http_only(c) {
                action == AuthzAction::Deny
            } else {
                check(c, &input)
            }
        })
    }))
}

/// One `from`, one `to` and every `when` pass (an empty list passes).
fn rule_matches(rule: &AuthzRule, pass: impl Fn(&Check) -> bool) -> bool {
    let all = |checks: &[Check]| checks.iter().all(&pass);
    (rule.from.is_empty() || rule.from.iter().any(|f| all(f)))
        && (rule.to.is_empty() || rule.to.iter().any(|t| all(t)))
        && all(&rule.when)
}

/// The SPIFFE ID without `spiffe://`, as Istio's `source.principal`.
fn principal(client: Option<&ClientIdentity>) -> Option<&str> {
    client?
        .uris
        .iter()
        .find_map(|u| u.strip_prefix("spiffe://"))
}

fn namespace(principal: Option<&str>) -> Option<&str> {
    let after = principal?.split_once("/ns/")?.1;
    Some(after.split('/').next().unwrap_or(after))
}

fn check<H: HeaderSource + ?Sized>(c: &Check, input: &AuthzInput<'_, H>) -> bool {
    let hit = match (&c.attr, &c.values) {
        (Attr::SourceIp, Values::Nets(nets)) => ip_in(input.source_ip.or(input.remote_ip), nets),
        (Attr::RemoteIp, Values::Nets(nets)) => ip_in(input.remote_ip, nets),
        (Attr::Port, Values::Ports(ports)) => ports.contains(&input.port),
        (attr, Values::Strings(patterns)) => {
            let client = input.client;
            let matches = |v: &str| patterns.iter().any(|p| string_matches(p, v));
            match attr {
                Attr::Principal => principal(client).is_some_and(matches),
                Attr::Namespace => namespace(principal(client)).is_some_and(matches),
                Attr::Host => matches(input.host),
                Attr::Method => matches(input.method),
                Attr::Path => matches(input.path),
                Attr::Sni => input.sni.is_some_and(matches),
                // Every value: a client repeating a header must not slip
                // one past a DENY that a backend reads.
                Attr::Header(name) => input.headers.all(name).into_iter().any(matches),
                Attr::ClientDns => client.is_some_and(|c| c.dns.iter().any(|d| matches(d))),
                Attr::ClientSubject => client.is_some_and(|c| matches(&c.subject)),
                Attr::ClientSha256 => client.is_some_and(|c| matches(&c.hash)),
                Attr::SourceIp | Attr::RemoteIp | Attr::Port => false,
            }
        }
        // The loader pairs each attribute with its kind of values.
        _ => false,
    };
    hit != c.negate
}

fn ip_in(ip: Option<IpAddr>, nets: &[crate::config::IpNet]) -> bool {
    ip.is_some_and(|ip| nets.iter().any(|n| n.contains(ip)))
}

/// Istio's string match: `*` any non-empty value, `prefix*`, `*suffix`,
/// else exact.
pub fn string_matches(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return !value.is_empty();
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return value.ends_with(suffix);
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return value.starts_with(prefix);
    }
    pattern == value
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use http::HeaderMap;

    use super::*;
    use crate::config::{load_str, Overrides};

    fn policies(yaml: &str) -> Vec<AuthorizationPolicy> {
        load_str(
            Path::new("t.yaml"),
            yaml,
            Path::new("/"),
            &Overrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .authorization_policies
    }

    fn partner() -> ClientIdentity {
        ClientIdentity {
            subject: "CN=great-partner,O=Acme".into(),
            uris: vec!["spiffe://acme.com/ns/partners/sa/great-partner".into()],
            dns: vec!["great-partner.apps.acme.com".into()],
            ips: vec![],
            emails: vec![],
            common_name: Some("great-partner".into()),
            hash: "ab12".into(),
        }
    }

    struct Req<'a> {
        client: Option<&'a ClientIdentity>,
        ip: &'a str,
        method: &'a str,
        path: &'a str,
        headers: HeaderMap,
    }

    fn verdict(p: &[AuthorizationPolicy], r: &Req<'_>) -> String {
        let input = AuthzInput {
            client: r.client,
            source_ip: r.ip.parse().ok(),
            remote_ip: r.ip.parse().ok(),
            sni: Some("partner.example.com"),
            host: "partner.example.com",
            port: 8443,
            method: r.method,
            path: r.path,
            headers: &r.headers,
        };
        match evaluate(p, &input) {
            None => "none".into(),
            Some(v) => format!(
                "{} {} {}{}",
                if v.allowed { "allow" } else { "deny" },
                v.action.as_str(),
                v.decided_by(),
                v.audit
                    .map(|(p, r)| format!(" audit {p}[{r}]"))
                    .unwrap_or_default()
            ),
        }
    }

    const AP: &str = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n";

    #[test]
    fn istio_order_deny_then_allow_then_default() {
        let p = policies(&format!(
            "{AP}metadata: {{name: orders, namespace: istio-system}}\nspec:\n  action: ALLOW\n  rules:\n  \
             - from: [{{source: {{principals: [acme.com/ns/partners/*]}}}}]\n    \
               to: [{{operation: {{methods: [GET], paths: [/orders/*]}}}}]\n  \
             - to: [{{operation: {{paths: [/public, '*.css']}}}}]\n---\n\
             {AP}metadata: {{name: no-admin}}\nspec:\n  action: DENY\n  rules:\n  \
             - to: [{{operation: {{paths: [/admin*]}}}}]\n  \
             - from: [{{source: {{notPrincipals: ['*']}}}}]\n    to: [{{operation: {{notPaths: [/public, '*.css']}}}}]\n---\n\
             {AP}metadata: {{name: watch}}\nspec:\n  action: AUDIT\n  rules:\n  \
             - when: [{{key: 'request.headers[x-debug]', values: ['1']}}]\n"
        ));
        let c = partner();
        let req = |client, method, path, debug: bool| {
            let mut headers = HeaderMap::new();
            if debug {
                headers.insert("x-debug", "1".parse().unwrap());
            }
            Req {
                client,
                ip: "192.0.2.1",
                method,
                path,
                headers,
            }
        };
        for (r, want) in [
            (
                req(Some(&c), "GET", "/orders/7", false),
                "allow ALLOW istio-system/orders[0]",
            ),
            (req(Some(&c), "POST", "/orders/7", false), "deny ALLOW -"),
            (
                req(Some(&c), "GET", "/admin/x", false),
                "deny DENY no-admin[0]",
            ),
            (
                req(None, "GET", "/orders/7", false),
                "deny DENY no-admin[1]",
            ),
            (
                req(None, "GET", "/public", false),
                "allow ALLOW istio-system/orders[1]",
            ),
            (
                req(None, "GET", "/site.css", false),
                "allow ALLOW istio-system/orders[1]",
            ),
            (
                req(Some(&c), "GET", "/orders/1", true),
                "allow ALLOW istio-system/orders[0] audit watch[0]",
            ),
        ] {
            assert_eq!(verdict(&p, &r), want, "{} {}", r.method, r.path);
        }
    }

    #[test]
    fn empty_policies_mean_what_they_mean_in_istio() {
        let req = Req {
            client: None,
            ip: "192.0.2.1",
            method: "GET",
            path: "/",
            headers: HeaderMap::new(),
        };
        assert_eq!(verdict(&[], &req), "none");
        // `spec: {}`: an ALLOW policy without rules denies everything.
        let deny_all = policies(&format!("{AP}metadata: {{name: deny-all}}\nspec: {{}}\n"));
        assert_eq!(verdict(&deny_all, &req), "deny ALLOW -");
        // One empty rule matches everything.
        let allow_all = policies(&format!(
            "{AP}metadata: {{name: allow-all}}\nspec:\n  rules: [{{}}]\n"
        ));
        assert_eq!(verdict(&allow_all, &req), "allow ALLOW allow-all[0]");
        // A DENY without rules denies nothing.
        let deny_none = policies(&format!(
            "{AP}metadata: {{name: d}}\nspec: {{action: DENY}}\n"
        ));
        assert_eq!(verdict(&deny_none, &req), "allow ALLOW -");
    }

    #[test]
    fn sources_conditions_and_the_certificate_extensions() {
        let p = policies(&format!(
            "{AP}metadata: {{name: p}}\nspec:\n  rules:\n  \
             - from: [{{source: {{namespaces: [partners], remoteIpBlocks: [192.0.2.0/24], notIpBlocks: [192.0.2.66]}}}}]\n  \
             - when:\n    - {{key: tlsgate.client.sha256, values: [ab12]}}\n    \
               - {{key: connection.sni, values: ['*.example.com']}}\n    \
               - {{key: destination.port, values: ['8443']}}\n  \
             - when:\n    - {{key: tlsgate.client.dns, values: ['*.apps.acme.com']}}\n    \
               - {{key: tlsgate.client.subject, notValues: ['*O=Pirate']}}\n"
        ));
        let c = partner();
        let other = ClientIdentity {
            uris: vec![],
            dns: vec![],
            hash: "ff".into(),
            ..partner()
        };
        let r = |client, ip| Req {
            client,
            ip,
            method: "GET",
            path: "/",
            headers: HeaderMap::new(),
        };
        assert_eq!(verdict(&p, &r(Some(&other), "192.0.2.1")), "deny ALLOW -");
        assert_eq!(verdict(&p, &r(None, "192.0.2.1")), "deny ALLOW -");
        let dns_only = ClientIdentity {
            uris: vec![],
            hash: "ff".into(),
            ..partner()
        };
        assert_eq!(
            verdict(&p, &r(Some(&dns_only), "203.0.113.1")),
            "allow ALLOW p[2]"
        );
        let sha_only = ClientIdentity {
            uris: vec![],
            dns: vec![],
            ..partner()
        };
        assert_eq!(
            verdict(&p, &r(Some(&sha_only), "203.0.113.1")),
            "allow ALLOW p[1]"
        );
        assert_eq!(verdict(&p, &r(Some(&c), "192.0.2.1")), "allow ALLOW p[0]");
        // notIpBlocks: the namespace matches, the address is excluded;
        // the certificate rules still match.
        assert_eq!(verdict(&p, &r(Some(&c), "192.0.2.66")), "allow ALLOW p[1]");
    }

    /// The README's recipe: a certificate on some paths of an
    /// OPTIONAL_MUTUAL host only.
    #[test]
    fn a_certificate_required_on_admin_paths_only() {
        let p = policies(&format!(
            "{AP}metadata: {{name: admin}}\nspec:\n  action: DENY\n  rules:\n  \
             - to: [{{operation: {{paths: [/admin/*]}}}}]\n    \
               when: [{{key: tlsgate.client.sha256, notValues: ['*']}}]\n"
        ));
        let c = ClientIdentity {
            uris: vec![],
            ..partner()
        };
        let r = |client, path| Req {
            client,
            ip: "192.0.2.1",
            method: "GET",
            path,
            headers: HeaderMap::new(),
        };
        assert_eq!(verdict(&p, &r(None, "/admin/x")), "deny DENY admin[0]");
        assert_eq!(verdict(&p, &r(Some(&c), "/admin/x")), "allow ALLOW -");
        assert_eq!(verdict(&p, &r(None, "/public")), "allow ALLOW -");
    }

    #[test]
    fn istio_string_matches() {
        for (pattern, value, want) in [
            ("*", "x", true),
            ("*", "", false),
            ("/a/*", "/a/b", true),
            ("/a/*", "/b", false),
            ("*.css", "/s.css", true),
            ("GET", "get", false),
            ("acme.com/ns/*", "acme.com/ns/a/sa/b", true),
        ] {
            assert_eq!(string_matches(pattern, value), want, "{pattern} {value}");
        }
    }
}
