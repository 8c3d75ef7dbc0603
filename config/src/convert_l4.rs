//! A VirtualService's `tls[]` (passthrough by SNI) and `tcp[]` (byte
//! stream) routes -> [`L4Route`]s.

use super::convert_routes::{forward, gateway_refs, Refs};
use super::parse::{host_pattern, Report};
use super::{raw, HostPattern, L4Match, L4Route, RouteAction};

/// `section` is `tls` or `tcp`; both share Istio's route shape.
pub(crate) fn routes(
    vs: &str,
    hosts: &[HostPattern],
    section: &str,
    raw: &[(Vec<raw::L4Match>, Vec<raw::RouteDestination>)],
    refs: &Refs,
    report: &mut Report<'_>,
) -> Vec<L4Route> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, (matches, route))| {
            let p = format!("spec.{section}[{i}]");
            let mesh_only =
                |m: &raw::L4Match| !m.gateways.is_empty() && m.gateways.iter().all(|g| g == "mesh");
            // As for http[]: a route for sidecars only is not checked.
            if !matches.is_empty() && matches.iter().all(mesh_only) {
                report.warn(
                    &p,
                    "every match names only `gateways: [mesh]`: applies to sidecars",
                );
                return None;
            }
            if section == "tls" && matches.is_empty() {
                report.error(
                    format!("{p}.match"),
                    "a tls route needs a match with sniHosts",
                );
            }
            let matches: Vec<L4Match> = matches
                .iter()
                .enumerate()
                .filter(|(_, m)| !mesh_only(m))
                .filter_map(|(j, m)| {
                    l4_match(&format!("{p}.match[{j}]"), section, hosts, m, refs, report)
                })
                .collect();
            let destinations = match forward(&p, route, refs, report)? {
                RouteAction::Forward(d) => d,
                _ => return None,
            };
            Some(L4Route {
                name: format!("{vs}.{section}[{i}]"),
                index: i,
                matches,
                destinations,
            })
        })
        .collect()
}

fn l4_match(
    p: &str,
    section: &str,
    hosts: &[HostPattern],
    m: &raw::L4Match,
    refs: &Refs,
    report: &mut Report<'_>,
) -> Option<L4Match> {
    report.unsupported(
        &m.destination_subnets,
        &format!("{p}.destinationSubnets"),
        "matching the connection's destination address is not implemented",
    );
    report.ignored(
        &m.source_labels,
        &format!("{p}.sourceLabels"),
        "matches sidecars' workloads, never a gateway's clients",
    );
    report.ignored(
        &m.source_namespace,
        &format!("{p}.sourceNamespace"),
        "matches sidecars' workloads, never a gateway's clients",
    );
    if m.port == Some(0) {
        report.error(format!("{p}.port"), "port 0 is not a port");
    }
    let mut sni_hosts = Vec::new();
    match section {
        "tls" if m.sni_hosts.is_empty() => {
            report.error(format!("{p}.sniHosts"), "a tls route match needs sniHosts");
        }
        "tls" => {
            for (k, h) in m.sni_hosts.iter().enumerate() {
                let field = format!("{p}.sniHosts[{k}]");
                let Some(pattern) = report.check(&field, host_pattern(h)) else {
                    continue;
                };
                // Istio's rule: a route cannot claim names its
                // VirtualService does not (all of them: a `*` sniHost
                // under `hosts: [a.example.com]` would take every SNI).
                let covered = |vh: &HostPattern| {
                    crate::names::intersect(vh, &pattern).as_ref() == Some(&pattern)
                };
                if !hosts.iter().any(covered) {
                    report.error(
                        field,
                        format!("'{h}' is not among the VirtualService's hosts"),
                    );
                }
                sni_hosts.push(pattern);
            }
        }
        _ if !m.sni_hosts.is_empty() => {
            report.error(
                format!("{p}.sniHosts"),
                "sniHosts belongs to tls routes; a tcp route matches by port",
            );
        }
        _ => {}
    }
    let gateways = gateway_refs(p, &m.gateways, refs, report);
    Some(L4Match {
        sni_hosts,
        port: m.port,
        gateways,
    })
}
