//! Documents -> [`Model`]: the conversion order that lets each kind check
//! its references (DestinationRules and Gateways before the
//! VirtualServices that name them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use serde_yaml::Value;

use super::convert_routes::Refs;
use super::kinds::Kind;
use super::load::Document;
use super::parse::{dest_host, host_pattern};
use super::{convert_gateway, convert_routes, convert_rules, convert_runtime, convert_services};
use super::{ConfigError, Findings, HostPattern, Loaded, Model, Overrides};

pub(crate) fn build(
    docs: Vec<Document>,
    sources: Vec<PathBuf>,
    overrides: &Overrides,
    mut out: Findings,
) -> Loaded {
    let docs = drop_duplicates(docs, &mut out);
    let of_kind = |k: Kind| docs.iter().filter(move |d| d.kind == k);

    let runtime_docs: Vec<&Document> = of_kind(Kind::GatewayRuntime).collect();
    let runtime = convert_runtime::convert(&runtime_docs, overrides, &mut out);

    let mut rules = Vec::new();
    let mut rule_refs = Vec::new();
    let gateway_selectors: Vec<BTreeMap<String, String>> = of_kind(Kind::Gateway)
        .filter_map(|d| serde_yaml::from_value(d.spec.get("selector")?.clone()).ok())
        .collect();
    for doc in of_kind(Kind::DestinationRule) {
        match convert_rules::convert(doc, &gateway_selectors, runtime.mesh.as_ref(), &mut out) {
            Some(dr) => {
                let subsets: BTreeSet<String> = dr.subsets.iter().map(|s| s.name.clone()).collect();
                rule_refs.push((rule_host(&dr.host), Some(subsets)));
                rules.push(dr);
            }
            None => rule_refs.push((failed_rule_host(&doc.spec), None)),
        }
    }

    let gateways: Vec<_> = of_kind(Kind::Gateway)
        .filter_map(|doc| convert_gateway::convert(doc, runtime.mesh.as_ref(), &mut out))
        .collect();
    convert_gateway::check_listeners(&gateways, &mut out);
    if let Some(doc) = runtime_docs.first() {
        super::listeners::check(&doc.id, &runtime.listeners, &gateways, &mut out);
    }

    let refs = Refs {
        gateways: of_kind(Kind::Gateway)
            .map(|d| (d.id.name.clone(), d.namespace.clone()))
            .collect(),
        rules: rule_refs,
    };
    let virtual_services = of_kind(Kind::VirtualService)
        .filter_map(|doc| convert_routes::convert(doc, &refs, &mut out))
        .collect();
    let service_entries = of_kind(Kind::ServiceEntry)
        .filter_map(|doc| convert_services::convert(doc, &mut out))
        .collect();

    let gateway_namespaces: Vec<Option<String>> = of_kind(Kind::Gateway)
        .map(|d| d.namespace.clone())
        .collect();
    let authorization_policies = of_kind(Kind::AuthorizationPolicy)
        .filter_map(|doc| {
            super::authz::convert(doc, &gateway_selectors, &gateway_namespaces, &mut out)
        })
        .collect();
    let peers: Vec<&Document> = of_kind(Kind::PeerAuthentication).collect();
    let peer_authentication = super::convert_peer::convert(&peers, &mut out);
    if let Some(pa) = &peer_authentication {
        super::convert_peer::check(pa, &gateways, &mut out);
    }

    let kubernetes_services = of_kind(Kind::KubernetesService)
        .filter_map(|doc| convert_services::kubernetes(doc, &mut out))
        .collect();

    let model = Model {
        runtime,
        gateways,
        virtual_services,
        destination_rules: rules,
        service_entries,
        kubernetes_services,
        sources,
        warnings: out.warnings,
        peer_authentication,
        authorization_policies,
    };
    Loaded {
        model,
        errors: out.errors,
    }
}

/// Two documents of one kind with one name (and namespace) would make every
/// reference to that name ambiguous; the first one is kept.
fn drop_duplicates(docs: Vec<Document>, out: &mut Findings) -> Vec<Document> {
    let mut seen: HashMap<(Kind, Option<String>, String), PathBuf> = HashMap::new();
    let mut kept = Vec::with_capacity(docs.len());
    for doc in docs {
        let key = (doc.kind, doc.namespace.clone(), doc.id.name.clone());
        if let Some(first) = seen.get(&key) {
            out.push(ConfigError::field(
                &doc.id,
                "metadata.name",
                format!(
                    "duplicate {} '{}' (first defined in {})",
                    doc.id.kind,
                    doc.id.name,
                    first.display()
                ),
            ));
            continue;
        }
        seen.insert(key, doc.id.file.clone());
        kept.push(doc);
    }
    kept
}

fn rule_host(host: &str) -> HostPattern {
    host_pattern(host).unwrap_or_else(|_| HostPattern::Exact(host.to_string()))
}

/// The host of a DestinationRule that failed to convert, so that subsets
/// of other hosts are still checked; unreadable means "could be any host".
fn failed_rule_host(spec: &Value) -> HostPattern {
    spec.get("host")
        .and_then(Value::as_str)
        .and_then(|h| dest_host(h).ok())
        .map_or(HostPattern::Any, |h| rule_host(&h))
}
