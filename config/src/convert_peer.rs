//! `PeerAuthentication` -> [`PeerAuthentication`]: whether the gateway's
//! TLS ports also take plaintext. Istio applies it to a workload's
//! sidecar; here tlsgate stands in front of the workload, so the policy
//! applies to tlsgate's own TLS-terminating ports: `portLevelMtls` by the
//! Gateway server's port number, `mtls.mode` to every other TLS port.

use std::collections::BTreeMap;

use super::load::Document;
use super::parse::{spec, upper, Report};
use super::raw::{PeerAuthenticationSpec, PeerMtls};
use super::{Findings, PeerAuthentication, PeerMode};

pub(crate) fn convert(docs: &[&Document], out: &mut Findings) -> Option<PeerAuthentication> {
    let (first, rest) = docs.split_first()?;
    // Istio ranks policies by the workloads and namespaces they select;
    // tlsgate serves one workload, so two policies would leave the
    // outcome to file order.
    for doc in rest {
        Report::new(&doc.id, out).error(
            "kind",
            format!(
                "only one PeerAuthentication applies to tlsgate; {} is already one (merge \
                 them: portLevelMtls sets ports apart)",
                first.id
            ),
        );
    }
    let mut report = Report::new(&first.id, out);
    let raw: PeerAuthenticationSpec = spec(first, &mut report)?;
    for (value, field) in [
        (&raw.selector, "spec.selector"),
        (&raw.target_ref, "spec.targetRef"),
        (&raw.target_refs, "spec.targetRefs"),
    ] {
        report.ignored(
            value,
            field,
            "selects Istio workloads; here the policy applies to this gateway's TLS ports",
        );
    }
    let mode = match &raw.mtls {
        Some(m) => peer_mode(&mut report, "spec.mtls.mode", m)?,
        None => PeerMode::Strict,
    };
    let mut ports = BTreeMap::new();
    for (port, m) in &raw.port_level_mtls {
        let field = format!("spec.portLevelMtls.{port}.mode");
        if *port == 0 {
            report.error(&field, "port 0 is not a port");
            continue;
        }
        if let Some(m) = peer_mode(&mut report, &field, m) {
            ports.insert(*port, m);
        }
    }
    (!report.failed()).then(|| PeerAuthentication {
        id: first.id.clone(),
        mode,
        ports,
    })
}

/// `UNSET` inherits; with no parent policy here, that is STRICT.
fn peer_mode(report: &mut Report<'_>, field: &str, m: &PeerMtls) -> Option<PeerMode> {
    match upper(&m.mode).as_deref() {
        None | Some("UNSET" | "STRICT") => Some(PeerMode::Strict),
        Some("PERMISSIVE") => Some(PeerMode::Permissive),
        Some("DISABLE") => Some(PeerMode::Disable),
        Some(other) => {
            report.error(
                field,
                format!("unknown mode '{other}': expected STRICT, PERMISSIVE, DISABLE or UNSET"),
            );
            None
        }
    }
}

/// DISABLE takes plaintext only: on a port with passthrough or `TLS`
/// (stream) servers it makes them unreachable, which is worth saying.
pub(crate) fn check(pa: &PeerAuthentication, gateways: &[crate::Gateway], out: &mut Findings) {
    let mut said = std::collections::BTreeSet::new();
    for s in gateways.iter().flat_map(|g| &g.servers) {
        let tls_only = s.passthrough || s.protocol == crate::Protocol::Tls;
        let field = match pa.ports.get(&s.port) {
            Some(PeerMode::Disable) => format!("spec.portLevelMtls.{}.mode", s.port),
            None if pa.mode == PeerMode::Disable => "spec.mtls.mode".to_string(),
            _ => continue,
        };
        if tls_only && said.insert(s.port) {
            Report::new(&pa.id, out).caution(
                field,
                format!(
                    "DISABLE takes plaintext only: the TLS passthrough and stream servers on \
                     port {} ({}) are unreachable",
                    s.port, s.name
                ),
            );
        }
    }
}
