//! `AuthorizationPolicy` (`security.istio.io`) -> [`AuthorizationPolicy`]:
//! who may call what, as Istio's RBAC filter reads it. Every rule becomes
//! a list of [`Check`]s, each one attribute against a list of values
//! (or not), so the request-time evaluation (`core/src/authz.rs`) is one
//! loop over flat data.
//!
//! Which policies apply: one without `selector` (namespace- or mesh-wide),
//! or whose `selector.matchLabels` all belong to some Gateway's selector
//! (the gateway's pods, `app: istio-ingressgateway` included). One
//! selecting other workloads is an error, as are `targetRef(s)`: skipping
//! a DENY would fail open, applying another workload's ALLOW would widen.

use serde::Serialize;

use super::convert_rules::selects_a_gateway;
use super::load::Document;
use super::parse::{spec, upper, Report};
use super::raw;
use super::{DocId, Findings, IpNet};

#[derive(Debug, Clone, Serialize)]
pub struct AuthorizationPolicy {
    pub id: DocId,
    /// `namespace/name` (or `name`), the metrics and access-log label
    /// (shared: a verdict names it without allocating).
    #[serde(serialize_with = "as_str")]
    pub label: std::sync::Arc<str>,
    pub action: AuthzAction,
    /// Empty: the policy matches nothing (an ALLOW policy without rules
    /// therefore denies everything, as in Istio).
    pub rules: Vec<AuthzRule>,
}

/// Istio's root namespace: its policies apply to every workload.
const ROOT_NAMESPACE: &str = "istio-system";

fn as_str<S: serde::Serializer>(v: &std::sync::Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthzAction {
    Allow,
    Deny,
    Audit,
}

impl AuthzAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthzAction::Allow => "ALLOW",
            AuthzAction::Deny => "DENY",
            AuthzAction::Audit => "AUDIT",
        }
    }
}

/// A rule matches when one of its `from` entries, one of its `to` entries
/// and every `when` condition match (an empty list matches anything).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuthzRule {
    /// Each entry: every check must pass.
    pub from: Vec<Vec<Check>>,
    pub to: Vec<Vec<Check>>,
    pub when: Vec<Check>,
}

/// One attribute of the request against values: passes when the value is
/// among them (`negate`: when it is not).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub attr: Attr,
    pub values: Values,
    pub negate: bool,
}

/// What a check looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Attr {
    /// The client certificate's SPIFFE ID without `spiffe://`.
    Principal,
    /// The `/ns/<namespace>/` of that SPIFFE ID.
    Namespace,
    /// The address of the TCP peer (the load balancer, behind one).
    SourceIp,
    /// The client's address: from a trusted PROXY protocol header, else
    /// the TCP peer's.
    RemoteIp,
    Host,
    /// The port the request came in on.
    Port,
    Method,
    /// The path without its query string.
    Path,
    Sni,
    /// `request.headers[name]`, name lower case.
    Header(String),
    /// `tlsgate.client.dns`: any DNS SAN of the client certificate.
    ClientDns,
    /// `tlsgate.client.subject`: its subject, RFC 2253 (`CN=a,O=b`).
    ClientSubject,
    /// `tlsgate.client.sha256`: lower-case hex SHA-256 of its DER.
    ClientSha256,
}

#[derive(Debug, Clone, Serialize)]
pub enum Values {
    /// Istio's string match: exact, `prefix*`, `*suffix`, or `*` (any
    /// non-empty value).
    Strings(Vec<String>),
    Nets(Vec<IpNet>),
    Ports(Vec<u16>),
}

/// `gateway_namespaces`: each Gateway's `metadata.namespace` (`None`
/// when it has none, which says nothing of where it runs).
pub(crate) fn convert(
    doc: &Document,
    gateway_selectors: &[std::collections::BTreeMap<String, String>],
    gateway_namespaces: &[Option<String>],
    out: &mut Findings,
) -> Option<AuthorizationPolicy> {
    let mut report = Report::new(&doc.id, out);
    let raw: raw::AuthorizationPolicySpec = spec(doc, &mut report)?;
    // Istio applies a policy to the workloads of its own namespace, or to
    // all from the root namespace: another application's `allow-all`
    // must not widen what the gateway allows.
    if let Some(ns) = &doc.namespace {
        let known =
            !gateway_namespaces.is_empty() && gateway_namespaces.iter().all(Option::is_some);
        let ours =
            ns == ROOT_NAMESPACE || gateway_namespaces.iter().any(|g| g.as_deref() == Some(ns));
        if known && !ours {
            report.warn(
                "metadata.namespace",
                format!(
                    "applies to the workloads of namespace '{ns}'; the Gateways are in other \
                     namespaces (a policy for the gateway goes in its namespace or in \
                     {ROOT_NAMESPACE})"
                ),
            );
            return None;
        }
    }
    if let Some(selector) = &raw.selector {
        if !selects_a_gateway(selector, &with_pod_labels(gateway_selectors)) {
            // Skipping a policy could let through what it denies, and
            // applying another workload's could deny what it should not:
            // neither is silent.
            report.error(
                "spec.selector",
                "selects workloads no Gateway's selector names: tlsgate cannot tell whether \
                 it is meant for this gateway; select the Gateway's labels, or remove the \
                 selector to apply it to every request",
            );
            return None;
        }
    }
    for (value, field) in [
        (&raw.target_ref, "targetRef"),
        (&raw.target_refs, "targetRefs"),
    ] {
        report.unsupported(
            value,
            &format!("spec.{field}"),
            "targetRef names Gateway API objects, which tlsgate does not read; use selector \
             (or none, for every request of this gateway)",
        );
    }
    let action = match upper(&raw.action).as_deref() {
        None | Some("ALLOW") => Some(AuthzAction::Allow),
        Some("DENY") => Some(AuthzAction::Deny),
        Some("AUDIT") => Some(AuthzAction::Audit),
        Some("CUSTOM") => {
            report.error(
                "spec.action",
                "CUSTOM (external authorization) is not supported yet: nothing would decide \
                 these requests",
            );
            None
        }
        Some(other) => {
            report.error(
                "spec.action",
                format!("unknown action '{other}': expected ALLOW, DENY or AUDIT"),
            );
            None
        }
    };
    if upper(&raw.action).as_deref() != Some("CUSTOM") {
        report.unsupported(
            &raw.provider,
            "spec.provider",
            "only CUSTOM takes a provider",
        );
    }
    let rules = raw
        .rules
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| rule(&format!("spec.rules[{i}]"), r, &mut report))
        .collect();
    if report.failed() {
        return None;
    }
    Some(AuthorizationPolicy {
        id: doc.id.clone(),
        label: match &doc.namespace {
            Some(ns) => format!("{ns}/{}", doc.id.name).into(),
            None => doc.id.name.as_str().into(),
        },
        action: action?,
        rules,
    })
}

/// Istio's gateway pods carry both `istio: ingressgateway` and `app:
/// istio-ingressgateway` (egress alike); Gateways select by the first,
/// policies often by the second.
fn with_pod_labels(
    selectors: &[std::collections::BTreeMap<String, String>],
) -> Vec<std::collections::BTreeMap<String, String>> {
    selectors
        .iter()
        .map(|sel| {
            let mut labels = sel.clone();
            for (istio, app) in [
                ("ingressgateway", "istio-ingressgateway"),
                ("egressgateway", "istio-egressgateway"),
            ] {
                if sel.get("istio").map(String::as_str) == Some(istio) {
                    labels.entry("app".into()).or_insert_with(|| app.into());
                }
                if sel.get("app").map(String::as_str) == Some(app) {
                    labels.entry("istio".into()).or_insert_with(|| istio.into());
                }
            }
            labels
        })
        .collect()
}

fn rule(p: &str, r: &raw::AuthzRule, report: &mut Report<'_>) -> AuthzRule {
    // An empty source or operation would match everything: Istio refuses
    // it, and an ALLOW with one would silently allow all.
    let nonempty = |p: String, checks: Vec<Check>, report: &mut Report<'_>| {
        // (A source of refused fields only is already an error.)
        if checks.is_empty() && !report.failed() {
            report.error(&p, "empty: it would match everything; name what it matches");
        }
        checks
    };
    let mut from = Vec::new();
    for (j, f) in r.from.iter().enumerate() {
        let q = format!("{p}.from[{j}].source");
        let checks = source(&q, &f.source, report);
        from.push(nonempty(q, checks, report));
    }
    let mut to = Vec::new();
    for (j, t) in r.to.iter().enumerate() {
        let q = format!("{p}.to[{j}].operation");
        let checks = operation(&q, &t.operation, report);
        to.push(nonempty(q, checks, report));
    }
    let when = r
        .when
        .iter()
        .enumerate()
        .flat_map(|(j, c)| condition(&format!("{p}.when[{j}]"), c, report))
        .collect();
    AuthzRule { from, to, when }
}

fn source(p: &str, s: &raw::AuthzSource, report: &mut Report<'_>) -> Vec<Check> {
    let jwt = "request principals come from JWTs (RequestAuthentication), which tlsgate does \
               not validate";
    report.unsupported(
        &s.request_principals,
        &format!("{p}.requestPrincipals"),
        jwt,
    );
    report.unsupported(
        &s.not_request_principals,
        &format!("{p}.notRequestPrincipals"),
        jwt,
    );
    let sa = "match the principal instead (`<trust domain>/ns/<namespace>/sa/<name>`)";
    report.unsupported(&s.service_accounts, &format!("{p}.serviceAccounts"), sa);
    report.unsupported(
        &s.not_service_accounts,
        &format!("{p}.notServiceAccounts"),
        sa,
    );
    let mut checks = Vec::new();
    for (v, attr, negate) in [
        (&s.principals, Attr::Principal, false),
        (&s.not_principals, Attr::Principal, true),
        (&s.namespaces, Attr::Namespace, false),
        (&s.not_namespaces, Attr::Namespace, true),
    ] {
        if let Some(list) = v {
            checks.push(Check {
                attr,
                values: Values::Strings(list.clone()),
                negate,
            });
        }
    }
    for (field, v, attr, negate) in [
        ("ipBlocks", &s.ip_blocks, Attr::SourceIp, false),
        ("notIpBlocks", &s.not_ip_blocks, Attr::SourceIp, true),
        ("remoteIpBlocks", &s.remote_ip_blocks, Attr::RemoteIp, false),
        (
            "notRemoteIpBlocks",
            &s.not_remote_ip_blocks,
            Attr::RemoteIp,
            true,
        ),
    ] {
        let Some(list) = v else { continue };
        let nets = nets(&format!("{p}.{field}"), list, report);
        checks.push(Check {
            attr,
            values: Values::Nets(nets),
            negate,
        });
    }
    checks
}

fn nets(p: &str, list: &[String], report: &mut Report<'_>) -> Vec<IpNet> {
    list.iter()
        .enumerate()
        .filter_map(|(k, n)| report.check(&format!("{p}[{k}]"), IpNet::parse(n)))
        .collect()
}

fn operation(p: &str, o: &raw::AuthzOperation, report: &mut Report<'_>) -> Vec<Check> {
    let mut checks = Vec::new();
    for (field, v, attr, negate) in [
        ("hosts", &o.hosts, Attr::Host, false),
        ("notHosts", &o.not_hosts, Attr::Host, true),
        ("methods", &o.methods, Attr::Method, false),
        ("notMethods", &o.not_methods, Attr::Method, true),
        ("paths", &o.paths, Attr::Path, false),
        ("notPaths", &o.not_paths, Attr::Path, true),
    ] {
        let Some(list) = v else { continue };
        if attr == Attr::Path {
            for (k, path) in list.iter().enumerate() {
                if path.contains('{') {
                    report.error(
                        format!("{p}.{field}[{k}]"),
                        "path templates ({*}, {**}) are not supported; use a prefix (`/a/*`) \
                         or suffix (`*.json`) match",
                    );
                }
            }
        }
        // Hosts match case-insensitively in Istio: the request's Host is
        // lower case here, so the values are too.
        let list = if attr == Attr::Host {
            list.iter().map(|h| h.to_ascii_lowercase()).collect()
        } else {
            list.clone()
        };
        checks.push(Check {
            attr,
            values: Values::Strings(list),
            negate,
        });
    }
    for (field, v, negate) in [("ports", &o.ports, false), ("notPorts", &o.not_ports, true)] {
        let Some(list) = v else { continue };
        let ports = ports(&format!("{p}.{field}"), list, report);
        checks.push(Check {
            attr: Attr::Port,
            values: Values::Ports(ports),
            negate,
        });
    }
    checks
}

fn ports(p: &str, list: &[serde_yaml::Value], report: &mut Report<'_>) -> Vec<u16> {
    list.iter()
        .enumerate()
        .filter_map(|(k, v)| {
            let text = match v {
                serde_yaml::Value::String(s) => s.clone(),
                serde_yaml::Value::Number(n) => n.to_string(),
                other => format!("{other:?}"),
            };
            let port = text.trim().parse::<u16>().ok().filter(|p| *p > 0);
            report.check(
                &format!("{p}[{k}]"),
                port.ok_or_else(|| format!("'{text}' is not a port number")),
            )
        })
        .collect()
}

/// The keys tlsgate evaluates, Istio's and its own.
const KEYS: &str = "source.principal, source.namespace, source.ip, remote.ip, \
                    request.headers[<name>], destination.port, connection.sni, \
                    tlsgate.client.dns, tlsgate.client.subject, tlsgate.client.sha256";

fn condition(p: &str, c: &raw::AuthzCondition, report: &mut Report<'_>) -> Vec<Check> {
    let key = c.key.trim();
    let attr = match key {
        "source.principal" => Some(Attr::Principal),
        "source.namespace" => Some(Attr::Namespace),
        "source.ip" => Some(Attr::SourceIp),
        "remote.ip" => Some(Attr::RemoteIp),
        "destination.port" => Some(Attr::Port),
        "connection.sni" => Some(Attr::Sni),
        "tlsgate.client.dns" => Some(Attr::ClientDns),
        "tlsgate.client.subject" => Some(Attr::ClientSubject),
        "tlsgate.client.sha256" => Some(Attr::ClientSha256),
        k => k
            .strip_prefix("request.headers[")
            .and_then(|h| h.strip_suffix(']'))
            .filter(|h| !h.is_empty())
            .map(|h| Attr::Header(h.to_ascii_lowercase())),
    };
    let Some(attr) = attr else {
        let why = if key.starts_with("request.auth.") {
            "request.auth.* comes from JWTs (RequestAuthentication), which tlsgate does not \
             validate"
                .to_string()
        } else {
            format!("unknown key '{key}': tlsgate evaluates {KEYS}")
        };
        report.error(format!("{p}.key"), why);
        return Vec::new();
    };
    if c.values.is_none() && c.not_values.is_none() {
        report.error(p, "needs values or notValues");
    }
    let mut checks = Vec::new();
    for (list, negate, field) in [
        (&c.values, false, "values"),
        (&c.not_values, true, "notValues"),
    ] {
        let Some(list) = list else { continue };
        let values = match attr {
            Attr::SourceIp | Attr::RemoteIp => {
                Values::Nets(nets(&format!("{p}.{field}"), list, report))
            }
            Attr::Port => {
                let yaml: Vec<serde_yaml::Value> = list
                    .iter()
                    .map(|s| serde_yaml::Value::String(s.clone()))
                    .collect();
                Values::Ports(ports(&format!("{p}.{field}"), &yaml, report))
            }
            _ => Values::Strings(list.clone()),
        };
        checks.push(Check {
            attr: attr.clone(),
            values,
            negate,
        });
    }
    checks
}
