//! `route[].destination` -> [`Destination`], through the ServiceEntries and
//! DestinationRules of the model, as Istio builds an outbound cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{
    ClientTls, ClientTlsMode, ConfigError, DestinationRule, DocId, LbPolicy, Model, Resolution,
    ServiceEntry, ServicePort, Subset, TrafficPolicy, WeightedDestination,
};

use super::destination::DestinationSpec;
use super::{Destination, UpstreamAddr};

type Key = (String, u16, Option<String>);

pub(super) struct Resolver<'m> {
    model: &'m Model,
    shared: HashMap<Key, Arc<Destination>>,
}

impl<'m> Resolver<'m> {
    pub fn new(model: &'m Model) -> Self {
        Resolver {
            model,
            shared: HashMap::new(),
        }
    }

    /// Every destination resolved, each once.
    pub fn into_destinations(self) -> Vec<Arc<Destination>> {
        self.shared.into_values().collect()
    }

    /// `field` locates the destination in `vs`, e.g.
    /// `spec.http[0].route[1].destination`.
    pub fn resolve(
        &mut self,
        d: &WeightedDestination,
        vs: &DocId,
        field: &str,
    ) -> Result<Arc<Destination>, ConfigError> {
        let err = |sub: &str, msg: String| ConfigError::field(vs, format!("{field}.{sub}"), msg);
        // A short name is also its Service's cluster name, as Istio
        // expands it: a rule or entry written for either applies.
        let cluster_name = cluster_name(self.model, &d.host);
        let names: Vec<&str> = std::iter::once(d.host.as_str())
            .chain(cluster_name.as_deref())
            .collect();
        let entries = names
            .iter()
            .map(|n| service_entries(self.model, n))
            .find(|e| !e.is_empty())
            .unwrap_or_default();
        let (port, service_port) = match select_port(d, &entries) {
            Ok(found) => found,
            Err(_) if d.port.is_none() && entries.is_empty() => (
                kubernetes_port(self.model, &d.host).map_err(|m| err("port", m))?,
                None,
            ),
            Err(m) => return Err(err("port", m)),
        };
        let key = (d.host.clone(), port, d.subset.clone());
        if let Some(shared) = self.shared.get(&key) {
            return Ok(shared.clone());
        }
        let rule = destination_rule(self.model, &names);
        let subset = match &d.subset {
            Some(name) => Some(find_subset(rule, &d.host, name).map_err(|m| err("subset", m))?),
            None => None,
        };
        let endpoints = match service_port {
            Some((se, sp)) => endpoints(d, se, sp, subset).map_err(|(sub, m)| err(sub, m))?,
            None => vec![UpstreamAddr {
                host: d.host.clone(),
                port,
            }],
        };
        let subset_policy = subset.and_then(|s| s.traffic_policy.as_ref());
        let rule_policy = rule.map(|r| &r.traffic_policy);
        // Each setting from the most specific place that sets it: the
        // subset's for this port, the subset's, the rule's for this port,
        // the rule's. The balancing policy and its hash key go together.
        let balancing = most_specific(
            rule_policy,
            subset_policy,
            port,
            |p| p.load_balancer.map(|lb| (lb, p.hash_key.clone())),
            |l| l.load_balancer.map(|lb| (lb, l.hash_key.clone())),
        );
        let (lb, hash_key) = balancing.unwrap_or((LbPolicy::RoundRobin, None));
        let pool = most_specific(
            rule_policy,
            subset_policy,
            port,
            |p| p.connection_pool,
            |l| l.connection_pool,
        );
        let outlier = most_specific(
            rule_policy,
            subset_policy,
            port,
            |p| p.outlier_detection,
            |l| l.outlier_detection,
        );
        let dest = Arc::new(Destination::new(DestinationSpec {
            host: d.host.clone(),
            port,
            subset: d.subset.clone(),
            endpoints,
            lb,
            hash_key,
            pool,
            outlier,
            tls: client_tls(rule.map(|r| &r.traffic_policy), subset_policy, port),
            h2: service_port.is_some_and(|(_, sp)| speaks_h2(sp)),
            proxy_protocol: most_specific(
                rule_policy,
                subset_policy,
                port,
                |p| p.proxy_protocol,
                |_| None,
            ),
        }));
        self.shared.insert(key, dest.clone());
        Ok(dest)
    }
}

/// How specifically `pattern` (`a.com`, `*.a.com`, `*`) names `host`:
/// exact beats any wildcard, a longer suffix beats a shorter one.
fn specificity(pattern: &str, host: &str) -> Option<usize> {
    if pattern.eq_ignore_ascii_case(host) {
        return Some(usize::MAX);
    }
    let suffix = pattern.strip_prefix('*')?;
    let fits = host.len() > suffix.len()
        && host
            .get(host.len() - suffix.len()..)
            .is_some_and(|end| end.eq_ignore_ascii_case(suffix));
    fits.then_some(suffix.len())
}

/// The ServiceEntries that name `host` most specifically (several when the
/// ports of one host are split over several entries).
fn service_entries<'m>(model: &'m Model, host: &str) -> Vec<&'m ServiceEntry> {
    let rank = |se: &ServiceEntry| se.hosts.iter().filter_map(|h| specificity(h, host)).max();
    let best = model.service_entries.iter().filter_map(rank).max();
    model
        .service_entries
        .iter()
        .filter(|se| best.is_some() && rank(se) == best)
        .collect()
}

fn destination_rule<'m>(model: &'m Model, names: &[&str]) -> Option<&'m DestinationRule> {
    let rank = |dr: &DestinationRule| names.iter().filter_map(|n| specificity(&dr.host, n)).max();
    let best = model.destination_rules.iter().filter_map(rank).max()?;
    model
        .destination_rules
        .iter()
        .find(|dr| rank(dr) == Some(best))
}

/// `name.ns.svc.cluster.local` for a short (dot-less) `host`: the
/// namespace of the one Kubernetes Service of that name in the
/// configuration, else `default`.
fn cluster_name(model: &Model, host: &str) -> Option<String> {
    if host.contains('.') || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let mut services = model
        .kubernetes_services
        .iter()
        .filter(|s| s.id.name == host);
    match (services.next(), services.next()) {
        (Some(only), None) => Some(only.fqdn()),
        _ => Some(format!("{host}.default.svc.cluster.local")),
    }
}

type PortChoice<'m> = (u16, Option<(&'m ServiceEntry, &'m ServicePort)>);

/// The service port: as written, else the only port the ServiceEntries
/// declare. Port 80 is never assumed.
fn select_port<'m>(
    d: &WeightedDestination,
    entries: &[&'m ServiceEntry],
) -> Result<PortChoice<'m>, String> {
    let declared: Vec<(&ServiceEntry, &ServicePort)> = entries
        .iter()
        .flat_map(|se| se.ports.iter().map(move |p| (*se, p)))
        .collect();
    let names = || entry_names(entries);
    let numbers = || {
        let mut n: Vec<String> = declared.iter().map(|(_, p)| p.number.to_string()).collect();
        n.dedup();
        n.join(", ")
    };
    match d.port {
        Some(p) if entries.is_empty() => Ok((p, None)),
        Some(p) => match declared.iter().find(|(_, sp)| sp.number == p) {
            Some(&found) => Ok((p, Some(found))),
            None => Err(format!(
                "port {p} of destination '{}' is not declared by {} (ports: {})",
                d.host,
                names(),
                numbers()
            )),
        },
        None => match declared.as_slice() {
            [first, rest @ ..] if rest.iter().all(|(_, p)| p.number == first.1.number) => {
                Ok((first.1.number, Some(*first)))
            }
            [] if entries.is_empty() => Err(format!(
                "destination '{}' needs a port (destination.port.number): no ServiceEntry \
                 declares this host and port 80 is not assumed",
                d.host
            )),
            _ => Err(format!(
                "destination '{}' needs a port (destination.port.number): {} declares ports [{}]",
                d.host,
                names(),
                numbers()
            )),
        },
    }
}

/// The only port of the Kubernetes Services in the configuration that
/// `host` names (`name`, `name.ns`, ..., `name.ns.svc.cluster.local`).
fn kubernetes_port(model: &Model, host: &str) -> Result<u16, String> {
    let services: Vec<_> = model
        .kubernetes_services
        .iter()
        .filter(|s| s.is_named_by(host))
        .collect();
    let mut ports: Vec<u16> = services
        .iter()
        .flat_map(|s| s.ports.iter().copied())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    if let [only] = ports.as_slice() {
        return Ok(*only);
    }
    if services.is_empty() {
        return Err(format!(
            "destination '{host}' needs a port (destination.port.number): no ServiceEntry or \
             Kubernetes Service declares this host and port 80 is not assumed"
        ));
    }
    let names: Vec<String> = services
        .iter()
        .map(|s| format!("{}/{}", s.id.kind, s.id.name))
        .collect();
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    Err(format!(
        "destination '{host}' needs a port (destination.port.number): {} declares ports [{}]",
        names.join(", "),
        ports.join(", ")
    ))
}

fn find_subset<'m>(
    rule: Option<&'m DestinationRule>,
    host: &str,
    name: &str,
) -> Result<&'m Subset, String> {
    let Some(rule) = rule else {
        return Err(format!(
            "subset '{name}' of destination '{host}' is not defined: no DestinationRule \
             applies to host '{host}'"
        ));
    };
    rule.subsets.iter().find(|s| s.name == name).ok_or_else(|| {
        let known: Vec<&str> = rule.subsets.iter().map(|s| s.name.as_str()).collect();
        format!(
            "subset '{name}' of destination '{host}' is not defined by {}/{} (subsets: [{}])",
            rule.id.kind,
            rule.id.name,
            known.join(", ")
        )
    })
}

/// Endpoints of `se` for service port `sp`, narrowed to the subset's labels.
/// The error names the destination field it concerns.
fn endpoints(
    d: &WeightedDestination,
    se: &ServiceEntry,
    sp: &ServicePort,
    subset: Option<&Subset>,
) -> Result<Vec<UpstreamAddr>, (&'static str, String)> {
    let default_port = sp.target_port.unwrap_or(sp.number);
    if se.endpoints.is_empty() {
        if se.resolution == Resolution::Static {
            return Err((
                "host",
                format!(
                    "destination '{}': {}/{} has resolution STATIC but no endpoints",
                    d.host, se.id.kind, se.id.name
                ),
            ));
        }
        // DNS (or NONE): the host itself is the address, resolved on connect.
        return Ok(vec![UpstreamAddr {
            host: d.host.clone(),
            port: default_port,
        }]);
    }
    let empty = BTreeMap::new();
    let labels = subset.map_or(&empty, |s| &s.labels);
    let selected: Vec<UpstreamAddr> = se
        .endpoints
        .iter()
        .filter(|ep| labels.iter().all(|(k, v)| ep.labels.get(k) == Some(v)))
        .map(|ep| UpstreamAddr {
            host: ep.address.clone(),
            port: ep.ports.get(&sp.name).copied().unwrap_or(default_port),
        })
        .collect();
    if selected.is_empty() {
        let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        return Err((
            "subset",
            format!(
                "subset '{}' of destination '{}' selects no endpoint: no endpoint of {}/{} \
                 has labels {}",
                d.subset.as_deref().unwrap_or_default(),
                d.host,
                se.id.kind,
                se.id.name,
                wanted.join(",")
            ),
        ));
    }
    Ok(selected)
}

/// A setting by Istio's precedence: the subset's for `port`, the subset's,
/// the rule's for `port`, the rule's.
fn most_specific<T>(
    rule: Option<&TrafficPolicy>,
    subset: Option<&TrafficPolicy>,
    port: u16,
    own: impl Fn(&TrafficPolicy) -> Option<T>,
    per_port: impl Fn(&crate::config::PortLevel) -> Option<T>,
) -> Option<T> {
    let at_port = |p: &TrafficPolicy| {
        p.port_level
            .iter()
            .find(|l| l.port == port)
            .and_then(&per_port)
    };
    subset
        .and_then(at_port)
        .or_else(|| subset.and_then(&own))
        .or_else(|| rule.and_then(at_port))
        .or_else(|| rule.and_then(&own))
}

/// Istio's precedence: the subset's settings for this port, the subset's
/// TLS, the rule's settings for this port, the rule's TLS.
fn client_tls<'p>(
    rule: Option<&'p TrafficPolicy>,
    subset: Option<&'p TrafficPolicy>,
    port: u16,
) -> Option<ClientTls> {
    let for_port = |p: &'p TrafficPolicy| port_tls(p, port);
    let tls = subset
        .and_then(for_port)
        .or_else(|| subset.and_then(|p| p.tls.as_ref()))
        .or_else(|| rule.and_then(for_port))
        .or_else(|| rule.and_then(|p| p.tls.as_ref()))?;
    (tls.mode != ClientTlsMode::Disable).then(|| tls.clone())
}

/// The declared protocol decides; without one, Istio's port naming
/// convention (`http2-*`, `grpc-*`) does.
fn port_tls(p: &TrafficPolicy, port: u16) -> Option<&ClientTls> {
    p.port_tls.iter().find(|(n, _)| *n == port).map(|(_, t)| t)
}

fn speaks_h2(sp: &ServicePort) -> bool {
    if sp.protocol.is_empty() {
        let name = sp.name.to_ascii_lowercase();
        return name.starts_with("http2") || name.starts_with("grpc");
    }
    let proto = sp.protocol.to_ascii_uppercase();
    matches!(proto.as_str(), "HTTP2" | "GRPC" | "GRPC-WEB")
}

fn entry_names(entries: &[&ServiceEntry]) -> String {
    let names: Vec<String> = entries
        .iter()
        .map(|se| format!("{}/{}", se.id.kind, se.id.name))
        .collect();
    names.join(" and ")
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{dr, model, se};
    use super::*;

    #[test]
    fn exact_beats_longer_wildcard_beats_shorter() {
        assert_eq!(specificity("a.b.com", "A.b.com"), Some(usize::MAX));
        assert_eq!(specificity("*.b.com", "a.b.com"), Some(6));
        assert_eq!(specificity("*.com", "a.b.com"), Some(4));
        assert_eq!(specificity("*", "a.b.com"), Some(0));
        assert_eq!(specificity("*.b.com", "b.com"), None);
        assert_eq!(specificity("c.com", "b.com"), None);
    }

    #[test]
    fn most_specific_rule_and_entries_apply() {
        let mut m = model();
        m.destination_rules = vec![dr("*.b.com", &[]), dr("a.b.com", &[]), dr("*", &[])];
        let host_of = |h: &str| destination_rule(&m, &[h]).map(|r| r.host.clone());
        assert_eq!(host_of("a.b.com").as_deref(), Some("a.b.com"));
        assert_eq!(host_of("x.b.com").as_deref(), Some("*.b.com"));
        assert_eq!(host_of("other").as_deref(), Some("*"));
        m.service_entries = vec![
            se("*.b.com", &[(80, "http", "HTTP", None)], Resolution::Dns),
            se("a.b.com", &[(80, "http", "HTTP", None)], Resolution::Dns),
            se("a.b.com", &[(443, "https", "HTTPS", None)], Resolution::Dns),
        ];
        assert_eq!(service_entries(&m, "a.b.com").len(), 2);
        assert_eq!(service_entries(&m, "x.b.com").len(), 1);
        assert!(service_entries(&m, "c.com").is_empty());
    }

    #[test]
    fn h2_from_protocol_else_port_name() {
        let port = |name: &str, protocol: &str| ServicePort {
            number: 80,
            name: name.into(),
            protocol: protocol.into(),
            target_port: None,
        };
        assert!(speaks_h2(&port("web", "HTTP2")));
        assert!(speaks_h2(&port("web", "grpc")));
        assert!(!speaks_h2(&port("http2-web", "HTTP")));
        assert!(speaks_h2(&port("http2-web", "")));
        assert!(speaks_h2(&port("grpc-api", "")));
        assert!(!speaks_h2(&port("http", "")));
    }
}
