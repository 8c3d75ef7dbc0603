//! `VirtualService` -> [`VirtualService`]: HTTP routes with their matches,
//! actions and edits, and the references they make to Gateways and
//! DestinationRule subsets.

use std::collections::BTreeSet;

use super::load::Document;
use super::parse::{
    anchored_regex, dest_host, duration, exported_everywhere, exported_nowhere, host_pattern, spec,
    Report, EXPORTED_NOWHERE, EXPORT_TO,
};
use super::{
    raw, Findings, HeaderEdits, HostPattern, HttpRoute, Redirect, Retries, RouteAction, RouteMatch,
    StringMatch, VirtualService, WeightedDestination,
};

/// What a VirtualService may refer to, including documents that failed to
/// convert (their errors are already reported; a reference to them is not
/// a second problem).
pub(crate) struct Refs {
    /// Gateway (name, namespace) of every Gateway document.
    pub gateways: Vec<(String, Option<String>)>,
    /// DestinationRule host -> its subsets; `None` when the rule failed to
    /// convert, so its subsets are unknown.
    pub rules: Vec<(HostPattern, Option<BTreeSet<String>>)>,
}

impl Refs {
    pub(crate) fn has_gateway(&self, reference: &str) -> bool {
        self.gateways
            .iter()
            .any(|(name, ns)| super::gateway_ref_matches(reference, name, ns.as_deref()))
    }

    /// `None`: fine (or unknowable); `Some(msg)`: the subset is missing.
    fn missing_subset(&self, host: &str, subset: &str) -> Option<String> {
        let rules: Vec<_> = self.rules.iter().filter(|(h, _)| h.matches(host)).collect();
        if rules
            .iter()
            .any(|(_, s)| s.as_ref().is_none_or(|s| s.contains(subset)))
        {
            return None;
        }
        Some(if rules.is_empty() {
            format!("no DestinationRule for host '{host}' defines subset '{subset}'")
        } else {
            format!("subset '{subset}' is not defined by the DestinationRule of host '{host}'")
        })
    }
}

pub(crate) fn convert(doc: &Document, refs: &Refs, out: &mut Findings) -> Option<VirtualService> {
    let mut report = Report::new(&doc.id, out);
    if doc.spec.is_null() {
        report.error("spec", "a VirtualService needs a spec");
        return None;
    }
    // A misspelt key (`gateway:`) must not turn a gateway's routes into
    // skipped sidecar routes: the top level is checked before skipping.
    const FIELDS: &[&str] = &["hosts", "gateways", "exportTo", "http", "tls", "tcp"];
    let unknown: Vec<String> = doc
        .spec
        .as_mapping()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter(|k| !k.as_str().is_some_and(|k| FIELDS.contains(&k)))
        .map(|k| k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned))
        .collect();
    if !unknown.is_empty() {
        for k in unknown {
            report.error(
                format!("spec.{k}"),
                format!("unknown field `{k}`, expected one of {}", FIELDS.join(", ")),
            );
        }
        return None;
    }
    if exported_nowhere(doc.spec.get("exportTo")) {
        report.warn("spec.exportTo", EXPORTED_NOWHERE);
        return None;
    }
    if names_only_mesh(doc.spec.get("gateways")) {
        // Nothing in it can reach a gateway, so nothing in it is checked.
        report.warn(
            "spec.gateways",
            "applies to sidecars (no gateways, or only `mesh`), never to a gateway",
        );
        return None;
    }
    let raw: raw::VirtualServiceSpec = spec(doc, &mut report)?;
    if !exported_everywhere(raw.export_to.as_ref()) {
        report.warn("spec.exportTo", EXPORT_TO);
    }
    if raw.hosts.is_empty() {
        report.error("spec.hosts", "a VirtualService needs at least one host");
    }
    let hosts: Vec<HostPattern> = raw
        .hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| report.check(&format!("spec.hosts[{i}]"), host_pattern(h)))
        .collect();
    let mut gateways = Vec::new();
    for (i, g) in raw.gateways.iter().enumerate() {
        // `mesh` means the sidecars: there are none here.
        if g == "mesh" {
            continue;
        }
        if !refs.has_gateway(g) {
            report.error(format!("spec.gateways[{i}]"), format!("no Gateway '{g}'"));
        }
        gateways.push(g.clone());
    }
    let http = raw
        .http
        .iter()
        .enumerate()
        .filter_map(|(i, r)| http_route(&doc.id.name, i, r, refs, &mut report))
        .collect::<Vec<_>>();
    let client_cert = super::client_cert::annotations(&doc.annotations, &mut report);
    let http = http
        .into_iter()
        .map(|r| HttpRoute { client_cert, ..r })
        .collect();
    let tls_raw: Vec<_> = raw.tls.into_iter().map(|r| (r.matches, r.route)).collect();
    let tcp_raw: Vec<_> = raw.tcp.into_iter().map(|r| (r.matches, r.route)).collect();
    let name = &doc.id.name;
    let tls = super::convert_l4::routes(name, &hosts, "tls", &tls_raw, refs, &mut report);
    let tcp = super::convert_l4::routes(name, &hosts, "tcp", &tcp_raw, refs, &mut report);
    if report.failed() {
        return None;
    }
    Some(VirtualService {
        id: doc.id.clone(),
        namespace: doc.namespace.clone(),
        hosts,
        gateways,
        http,
        tls,
        tcp,
    })
}

/// Is `gateways` (of a VirtualService or a match) absent, empty or only
/// `mesh`? Anything that is not a list of names is left to the parser.
fn names_only_mesh(gateways: Option<&serde_yaml::Value>) -> bool {
    match gateways {
        None | Some(serde_yaml::Value::Null) => true,
        Some(serde_yaml::Value::Sequence(names)) => {
            names.iter().all(|n| n.as_str() == Some("mesh"))
        }
        _ => false,
    }
}

fn http_route(
    vs: &str,
    i: usize,
    r: &raw::HttpRoute,
    refs: &Refs,
    report: &mut Report<'_>,
) -> Option<HttpRoute> {
    let p = format!("spec.http[{i}]");
    // A match limited to `gateways: [mesh]` only ever applies in sidecars:
    // it is dropped, and a route left with no match at all is dropped with
    // it (it would otherwise match everything), as the egress tutorials'
    // "mesh -> egress gateway" hop needs. Nothing in such a route is checked.
    let mesh_only =
        |m: &&raw::HttpMatch| !m.gateways.is_empty() && m.gateways.iter().all(|g| g == "mesh");
    if !r.matches.is_empty() && r.matches.iter().all(|m| mesh_only(&m)) {
        report.warn(
            &p,
            "every match names only `gateways: [mesh]`: applies to sidecars",
        );
        return None;
    }
    for (value, field, what) in [
        (&r.fault, "fault", "fault injection is not implemented"),
        (&r.mirror, "mirror", "traffic mirroring is not implemented"),
        (
            &r.mirrors,
            "mirrors",
            "traffic mirroring is not implemented",
        ),
        (
            &r.mirror_percentage,
            "mirrorPercentage",
            "traffic mirroring is not implemented",
        ),
        (
            &r.cors_policy,
            "corsPolicy",
            "CORS policies are not implemented",
        ),
        (
            &r.delegate,
            "delegate",
            "VirtualService delegation is not implemented",
        ),
    ] {
        report.unsupported(value, &format!("{p}.{field}"), what);
    }
    let matches: Vec<RouteMatch> = r
        .matches
        .iter()
        .enumerate()
        .filter(|(_, m)| !mesh_only(m))
        .filter_map(|(j, m)| route_match(&format!("{p}.match[{j}]"), m, refs, report))
        .collect();
    let action = match (&r.route, &r.redirect, &r.direct_response) {
        (Some(route), None, None) => forward(&p, route, refs, report),
        (None, Some(redirect), None) => self::redirect(&p, redirect, report),
        (None, None, Some(d)) => {
            if !(200..=599).contains(&d.status) {
                report.error(format!("{p}.directResponse.status"), "expected 200 to 599");
            }
            Some(RouteAction::DirectResponse {
                status: d.status,
                body: d.body.as_ref().map(|b| b.string.clone()),
            })
        }
        _ => {
            report.error(
                &p,
                "needs exactly one of route, redirect and directResponse",
            );
            None
        }
    };
    if r.rewrite.is_some() && r.redirect.is_some() {
        report.error(
            format!("{p}.rewrite"),
            "rewrite cannot be combined with redirect",
        );
    }
    let timeout = r
        .timeout
        .as_ref()
        .and_then(|t| report.check(&format!("{p}.timeout"), duration(t)));
    let retries = r.retries.as_ref().map(|rt| Retries {
        attempts: rt.attempts,
        per_try_timeout: rt
            .per_try_timeout
            .as_ref()
            .and_then(|t| report.check(&format!("{p}.retries.perTryTimeout"), duration(t))),
    });
    let mut request_headers = HeaderEdits::default();
    if let Some(h) = &r.headers {
        report.unsupported(
            &h.response,
            &format!("{p}.headers.response"),
            "response header edits are not implemented",
        );
        if let Some(req) = &h.request {
            let lower = |(k, v): (&String, &String)| (k.to_ascii_lowercase(), v.clone());
            request_headers.set = req.set.iter().map(lower).collect();
            request_headers.add = req.add.iter().map(lower).collect();
            request_headers.remove = req.remove.iter().map(|k| k.to_ascii_lowercase()).collect();
            let hp = format!("{p}.headers.request");
            check_header_edits(&request_headers, &hp, report);
        }
    }
    if let Some(uri) = r.rewrite.as_ref().and_then(|rw| rw.uri.as_deref()) {
        // Written into the upstream request line as is.
        if !uri.starts_with('/')
            || uri.parse::<http::uri::PathAndQuery>().is_err()
            || uri.contains('#')
        {
            report.error(
                format!("{p}.rewrite.uri"),
                format!(
                    "'{}' is not a path (it must start with '/' and hold only URI characters)",
                    uri.escape_debug()
                ),
            );
        }
    }
    Some(HttpRoute {
        name: r.name.clone().unwrap_or_else(|| format!("{vs}.{i}")),
        index: i,
        matches,
        action: action?,
        rewrite_uri: r.rewrite.as_ref().and_then(|rw| rw.uri.clone()),
        timeout,
        retries,
        request_headers,
        client_cert: None,
    })
}

fn route_match(
    p: &str,
    m: &raw::HttpMatch,
    refs: &Refs,
    report: &mut Report<'_>,
) -> Option<RouteMatch> {
    if m.ignore_uri_case {
        report.error(
            format!("{p}.ignoreUriCase"),
            "not supported by tlsgate: URIs match case-sensitively",
        );
    }
    let uri = match &m.uri {
        Some(u) => Some(string_match(&format!("{p}.uri"), u, report)?),
        None => None,
    };
    let mut headers = Vec::new();
    for (name, sm) in &m.headers {
        headers.push((
            name.to_ascii_lowercase(),
            string_match(&format!("{p}.headers.{name}"), sm, report)?,
        ));
    }
    let gateways = gateway_refs(p, &m.gateways, refs, report);
    Some(RouteMatch {
        uri,
        headers,
        port: m.port,
        gateways,
    })
}

fn string_match(p: &str, m: &raw::StringMatch, report: &mut Report<'_>) -> Option<StringMatch> {
    match (&m.exact, &m.prefix, &m.regex) {
        (Some(e), None, None) => Some(StringMatch::Exact(e.clone())),
        (None, Some(pre), None) => Some(StringMatch::Prefix(pre.clone())),
        (None, None, Some(r)) => report
            .check(&format!("{p}.regex"), anchored_regex(r))
            .map(StringMatch::Regex),
        _ => {
            report.error(p, "needs exactly one of exact, prefix and regex");
            None
        }
    }
}

/// A match's `gateways` with `mesh` (sidecars only) dropped, each one
/// checked to name a Gateway.
pub(crate) fn gateway_refs(
    p: &str,
    list: &[String],
    refs: &Refs,
    report: &mut Report<'_>,
) -> Vec<String> {
    let mut gateways = Vec::new();
    for (k, g) in list.iter().enumerate() {
        if g == "mesh" {
            continue;
        }
        if !refs.has_gateway(g) {
            report.error(format!("{p}.gateways[{k}]"), format!("no Gateway '{g}'"));
        }
        gateways.push(g.clone());
    }
    gateways
}

pub(crate) fn forward(
    p: &str,
    route: &[raw::RouteDestination],
    refs: &Refs,
    report: &mut Report<'_>,
) -> Option<RouteAction> {
    if route.is_empty() {
        report.error(format!("{p}.route"), "needs at least one destination");
        return None;
    }
    let mut ok = true;
    let mut destinations = Vec::new();
    for (j, rd) in route.iter().enumerate() {
        let q = format!("{p}.route[{j}]");
        report.unsupported(
            &rd.headers,
            &format!("{q}.headers"),
            "per-destination header edits are not implemented; use the route's headers",
        );
        let Some(host) = report.check(
            &format!("{q}.destination.host"),
            dest_host(&rd.destination.host),
        ) else {
            ok = false;
            continue;
        };
        if let Some(subset) = &rd.destination.subset {
            if let Some(msg) = refs.missing_subset(&host, subset) {
                report.error(format!("{q}.destination.subset"), msg);
                ok = false;
            }
        }
        let port = rd.destination.port.as_ref().map(|p| p.number);
        if port == Some(0) {
            report.error(
                format!("{q}.destination.port.number"),
                "port 0 is not a port",
            );
        }
        destinations.push(WeightedDestination {
            host,
            subset: rd.destination.subset.clone(),
            port,
            weight: rd.weight.unwrap_or(0),
        });
    }
    // Istio's rule: one destination may omit its weight (it gets all the
    // traffic); several must add up to exactly 100.
    if let [only] = destinations.as_mut_slice() {
        if only.weight == 0 {
            only.weight = 100;
        }
    }
    let total: u64 = destinations.iter().map(|d| u64::from(d.weight)).sum();
    if ok && total != 100 {
        report.error(
            format!("{p}.route"),
            format!("destination weights add up to {total}; they must add up to 100"),
        );
        return None;
    }
    ok.then_some(RouteAction::Forward(destinations))
}

fn redirect(p: &str, r: &raw::Redirect, report: &mut Report<'_>) -> Option<RouteAction> {
    let code = r.redirect_code.unwrap_or(301);
    if !matches!(code, 301 | 302 | 303 | 307 | 308) {
        report.error(
            format!("{p}.redirect.redirectCode"),
            format!("{code} is not a redirect: expected 301, 302, 303, 307 or 308"),
        );
    }
    let scheme = r.scheme.as_ref().map(|s| s.to_ascii_lowercase());
    if let Some(s) = &scheme {
        if s != "http" && s != "https" {
            report.error(
                format!("{p}.redirect.scheme"),
                format!("unknown scheme '{s}': expected http or https"),
            );
        }
    }
    Some(RouteAction::Redirect(Redirect {
        uri: r.uri.clone(),
        authority: r.authority.clone(),
        scheme,
        port: r.port,
        code,
    }))
}

/// Names and values are written into upstream requests: anything that is
/// not a valid header (a CR or LF in a value would start another header or
/// request) is a configuration error, as is a second `Host`.
fn check_header_edits(e: &HeaderEdits, p: &str, report: &mut Report<'_>) {
    let pairs = [("set", &e.set), ("add", &e.add)];
    for (op, list) in pairs {
        for (name, value) in list {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                report.error(format!("{p}.{op}.{name}"), "not a valid header name");
            } else if http::HeaderValue::from_str(value).is_err() {
                report.error(
                    format!("{p}.{op}.{name}"),
                    "not a valid header value (control characters such as CR and LF are not allowed)",
                );
            }
        }
    }
    for name in &e.remove {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            report.error(
                format!("{p}.remove"),
                format!("'{name}' is not a valid header name"),
            );
        }
    }
    if e.add.iter().any(|(n, _)| n == "host") {
        report.error(format!("{p}.add.host"), "a request has one Host: use set");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testutil::{errors, load, one_error, DESTINATION_RULE, VIRTUAL_SERVICE};

    const GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: frontend-gateway, namespace: user1}
spec:
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: backend}
spec:
  host: backend
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
---
"#;

    /// virtual-service-backend-v1-v2-50-50.yaml, with more of what tutorials use.
    const BACKEND_VS: &str = r#"
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: backend-virtual-service
spec:
  hosts:
  - backend.Example.com
  gateways:
  - user1/frontend-gateway
  - mesh
  http:
  - match:
    - uri:
        regex: /api/v[12]/.*
      headers:
        End-User:
          exact: jason
    timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "gateway-error,connect-failure"}
    headers:
      request:
        set: {X-Version: split}
        add: {X-Trace: "1"}
        remove: [Cookie]
    rewrite: {uri: /}
    route:
    - destination:
        host: backend
        subset: v1
        port: {number: 8080}
      weight: 50
    - destination:
        host: backend
        subset: v2
      weight: 50
  - name: old
    match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, redirectCode: 308}
  - match: [{uri: {exact: /health}, port: 80}]
    directResponse: {status: 200, body: {string: ok}}
  - route:
    - destination: {host: frontend}
"#;

    #[test]
    fn fifty_fifty_split() {
        let m = load(&format!("{GATEWAY}{BACKEND_VS}")).unwrap();
        let vs = &m.virtual_services[0];
        assert_eq!(vs.hosts, [HostPattern::Exact("backend.example.com".into())]);
        assert_eq!(vs.gateways, ["user1/frontend-gateway"]);
        let [split, old, health, default] = vs.http.as_slice() else {
            panic!("four routes")
        };
        assert_eq!(split.name, "backend-virtual-service.0");
        let RouteAction::Forward(d) = &split.action else {
            panic!()
        };
        assert_eq!(
            d,
            &[
                WeightedDestination {
                    host: "backend".into(),
                    subset: Some("v1".into()),
                    port: Some(8080),
                    weight: 50
                },
                WeightedDestination {
                    host: "backend".into(),
                    subset: Some("v2".into()),
                    port: None,
                    weight: 50
                },
            ]
        );
        let m0 = &split.matches[0];
        assert!(m0.uri.as_ref().unwrap().matches("/api/v2/users"));
        assert!(!m0.uri.as_ref().unwrap().matches("/x/api/v2/users"));
        assert_eq!(m0.headers[0].0, "end-user");
        assert!(m0.headers[0].1.matches("jason"));
        assert_eq!(split.timeout, Some(Duration::from_millis(1500)));
        let r = split.retries.unwrap();
        assert_eq!(
            (r.attempts, r.per_try_timeout),
            (3, Some(Duration::from_millis(500)))
        );
        assert_eq!(
            split.request_headers.set,
            [("x-version".into(), "split".into())]
        );
        assert_eq!(split.request_headers.add, [("x-trace".into(), "1".into())]);
        assert_eq!(split.request_headers.remove, ["cookie"]);
        assert_eq!(split.rewrite_uri.as_deref(), Some("/"));

        assert_eq!(old.name, "old");
        let RouteAction::Redirect(r) = &old.action else {
            panic!()
        };
        assert_eq!((r.uri.as_deref(), r.code), (Some("/new"), 308));
        assert!(
            matches!(&health.action, RouteAction::DirectResponse { status: 200, body: Some(b) } if b == "ok")
        );
        assert_eq!(health.matches[0].port, Some(80));
        let RouteAction::Forward(d) = &default.action else {
            panic!()
        };
        assert_eq!(d[0].weight, 100, "a lone destination gets all the traffic");
    }

    #[test]
    fn weights_must_add_up_to_100() {
        let yaml = format!(
            "{GATEWAY}{}",
            BACKEND_VS.replace("weight: 50", "weight: 40")
        );
        let e = one_error(&yaml);
        assert_eq!(
            e,
            "test.yaml: VirtualService/backend-virtual-service: spec.http[0].route: \
             destination weights add up to 80; they must add up to 100"
        );
    }

    #[test]
    fn bad_regex_is_reported_at_its_path() {
        let yaml = format!(
            "{GATEWAY}{}",
            BACKEND_VS.replace("/api/v[12]/.*", "/api/(v1")
        );
        let e = one_error(&yaml);
        assert_eq!(
            e,
            "test.yaml: VirtualService/backend-virtual-service: spec.http[0].match[0].uri.regex: \
             invalid regex '/api/(v1': unclosed group"
        );
    }

    #[test]
    fn header_edits_and_rewrites_must_be_writable_as_http() {
        let vs = |http: &str| {
            format!(
                "{GATEWAY}{VIRTUAL_SERVICE}metadata: {{name: vs}}\nspec:\n  hosts: [a.example.com]\n  \
                 gateways: [user1/frontend-gateway]\n  http:\n{http}"
            )
        };
        let route = "    route:\n    - destination: {host: backend, subset: v1}\n";
        let e = errors(
            &vs(&format!(
                "  - headers:\n      request:\n        set: {{x-a: \"1\\r\\nContent-Length: 40\"}}\n        \
                 add: {{host: other, \"bad name\": x}}\n{route}"
            )));
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(
            e[0].contains("spec.http[0].headers.request.set.x-a: not a valid header value"),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("headers.request.add.bad name: not a valid header name")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("headers.request.add.host: a request has one Host")),
            "{e:#?}"
        );
        let e = one_error(&vs(&format!(
            "  - rewrite: {{uri: \"/x HTTP/1.1\\r\\nHost: a\"}}\n{route}"
        )));
        assert!(
            e.contains("spec.http[0].rewrite.uri: '/x HTTP/1.1\\r\\nHost: a' is not a path"),
            "{e}"
        );
    }

    #[test]
    fn missing_references() {
        let yaml = format!(
            "{GATEWAY}{}",
            BACKEND_VS
                .replace("user1/frontend-gateway", "other/frontend-gateway")
                .replace("subset: v2", "subset: v3")
                .replace("host: frontend", "host: frontend, subset: v1")
        );
        let e = errors(&yaml);
        assert_eq!(
            e,
            [
                "test.yaml: VirtualService/backend-virtual-service: spec.gateways[0]: no Gateway 'other/frontend-gateway'",
                "test.yaml: VirtualService/backend-virtual-service: spec.http[0].route[1].destination.subset: \
                 subset 'v3' is not defined by the DestinationRule of host 'backend'",
                "test.yaml: VirtualService/backend-virtual-service: spec.http[3].route[0].destination.subset: \
                 no DestinationRule for host 'frontend' defines subset 'v1'",
            ]
        );
    }

    #[test]
    fn a_broken_destination_rule_does_not_cascade() {
        let yaml = format!("{GATEWAY}{BACKEND_VS}")
            .replace("simple: ROUND_ROBIN", "simple: ROUND_ROBIN, bogus: 1");
        let e = one_error(&yaml);
        assert!(e.starts_with("test.yaml: DestinationRule/backend: spec.trafficPolicy.loadBalancer.bogus: unknown field"), "{e}");
    }

    #[test]
    fn unsupported_and_malformed_routes() {
        let yaml = format!(
            r#"{GATEWAY}---
{VIRTUAL_SERVICE}metadata: {{name: vs}}
spec:
  hosts: [a.example.com]
  gateways: [frontend-gateway]
  tls:
  - match: [{{port: 443}}]
    route: [{{destination: {{host: a}}}}]
  http:
  - match: [{{uri: {{prefix: /a, exact: /a}}, ignoreUriCase: true}}]
    route: [{{destination: {{host: a}}, headers: {{request: {{set: {{x: y}}}}}}}}]
  - redirect: {{uri: /b}}
    directResponse: {{status: 404}}
  - route:
    - destination: {{host: a}}
    - destination: {{host: b}}
    timeout: 5 seconds
    headers: {{response: {{remove: [server]}}}}
    fault: {{abort: {{httpStatus: 500}}}}
"#
        );
        let e = errors(&yaml);
        let e: Vec<&str> = e
            .iter()
            .map(|e| e.strip_prefix("test.yaml: VirtualService/vs: ").unwrap())
            .collect();
        assert_eq!(
            e,
            [
                "spec.http[0].match[0].ignoreUriCase: not supported by tlsgate: URIs match case-sensitively",
                "spec.http[0].match[0].uri: needs exactly one of exact, prefix and regex",
                "spec.http[0].route[0].headers: not supported by tlsgate: per-destination header edits are not implemented; use the route's headers",
                "spec.http[1]: needs exactly one of route, redirect and directResponse",
                "spec.http[2].fault: not supported by tlsgate: fault injection is not implemented",
                "spec.http[2].route: destination weights add up to 0; they must add up to 100",
                "spec.http[2].timeout: invalid duration '5 seconds': expected a number and a unit (ms, s, m, h), e.g. \"1.5s\"",
                "spec.http[2].headers.response: not supported by tlsgate: response header edits are not implemented",
                "spec.tls[0].match[0].sniHosts: a tls route match needs sniHosts",
            ]
        );
    }

    #[test]
    fn gateway_references() {
        use crate::gateway_ref_matches as m;
        assert!(m("gw", "gw", Some("ns")));
        assert!(m("ns/gw", "gw", Some("ns")));
        assert!(m("ns/gw", "gw", None));
        assert!(!m("other/gw", "gw", Some("ns")));
        assert!(!m("gw2", "gw", None));
        let _ = DESTINATION_RULE;
    }

    /// Istio's egress tutorials route sidecars to the egress gateway and the
    /// egress gateway out, in one VirtualService, told apart by
    /// `match[].gateways`.
    #[test]
    fn mesh_only_matches_are_dropped_and_gateway_matches_kept() {
        let yaml = format!(
            r#"{GATEWAY}---
{VIRTUAL_SERVICE}metadata: {{name: vs}}
spec:
  hosts: [edition.cnn.com]
  gateways: [istio-egressgateway, mesh]
  http:
  - match:
    - gateways: [mesh]
      port: 80
    route:
    - destination: {{host: istio-egressgateway.istio-system.svc.cluster.local, port: {{number: 80}}}}
  - match:
    - gateways: [istio-egressgateway, mesh]
      port: 80
    - gateways: [mesh]
      uri: {{prefix: /only-sidecars}}
    route:
    - destination: {{host: edition.cnn.com, port: {{number: 443}}}}
  - match:
    - gateways: [no-such-gateway]
    route:
    - destination: {{host: edition.cnn.com, port: {{number: 443}}}}
"#,
            GATEWAY = EGRESS_GATEWAY
        );
        let e = one_error(&yaml);
        assert_eq!(
            e,
            "test.yaml: VirtualService/vs: spec.http[2].match[0].gateways[0]: no Gateway 'no-such-gateway'"
        );
        let yaml = yaml.replace("no-such-gateway", "istio-egressgateway");
        let m = load(&yaml).unwrap();
        let http = &m.virtual_services[0].http;
        assert_eq!(http.len(), 2, "the mesh-only route is gone");
        assert_eq!(http[0].matches.len(), 1, "and so is the mesh-only match");
        assert_eq!(http[0].matches[0].gateways, ["istio-egressgateway"]);
        assert_eq!(http[0].matches[0].port, Some(80));
    }

    const EGRESS_GATEWAY: &str = "apiVersion: networking.istio.io/v1\nkind: Gateway\n\
        metadata: {name: istio-egressgateway}\nspec:\n  selector: {istio: egressgateway}\n  \
        servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [edition.cnn.com]\n";
}
