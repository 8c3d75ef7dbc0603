//! `ServiceEntry` -> [`ServiceEntry`]: the registry of known destinations
//! (what `REGISTRY_ONLY` allows) and, with `STATIC`, their endpoints.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::load::Document;
use super::parse::{
    dest_host, exported_everywhere, exported_nowhere, spec, upper, Report, EXPORTED_NOWHERE,
    EXPORT_TO,
};
use super::{
    raw, Endpoint, Findings, KubernetesService, Location, Resolution, ServiceEntry, ServicePort,
};

/// A Kubernetes Service's ports; the rest of it describes pods and cluster
/// networking, which a gateway outside the cluster's data plane never uses.
pub(crate) fn kubernetes(doc: &Document, out: &mut Findings) -> Option<KubernetesService> {
    let mut report = Report::new(&doc.id, out);
    report.warn(
        "spec",
        "a Kubernetes Service is not served by tlsgate; only its ports are read, for \
         destinations that name it without a port",
    );
    let mut ports = Vec::new();
    let listed = doc.spec.get("ports").and_then(|p| p.as_sequence());
    for (i, p) in listed.into_iter().flatten().enumerate() {
        match p.get("port").and_then(|n| n.as_u64()) {
            Some(n @ 1..=65535) => ports.push(n as u16),
            _ => report.error(
                format!("spec.ports[{i}].port"),
                "missing, or not a port number from 1 to 65535",
            ),
        }
    }
    ports.sort_unstable();
    ports.dedup();
    (!report.failed()).then(|| KubernetesService {
        id: doc.id.clone(),
        namespace: doc.namespace.clone(),
        ports,
    })
}

pub(crate) fn convert(doc: &Document, out: &mut Findings) -> Option<ServiceEntry> {
    let mut report = Report::new(&doc.id, out);
    let raw: raw::ServiceEntrySpec = spec(doc, &mut report)?;
    if exported_nowhere(raw.export_to.as_ref()) {
        // Registering it would open REGISTRY_ONLY egress Istio keeps shut.
        report.warn("spec.exportTo", EXPORTED_NOWHERE);
        return None;
    }
    if !exported_everywhere(raw.export_to.as_ref()) {
        report.warn("spec.exportTo", EXPORT_TO);
    }
    report.ignored(
        &raw.addresses,
        "spec.addresses",
        "virtual IPs are for sidecars' traffic capture; tlsgate routes by host name",
    );
    report.unsupported(
        &raw.workload_selector,
        "spec.workloadSelector",
        "there are no workloads to select here; list endpoints",
    );
    report.unsupported(
        &raw.subject_alt_names,
        "spec.subjectAltNames",
        "set tls.subjectAltNames in a DestinationRule",
    );
    if raw.hosts.is_empty() {
        report.error("spec.hosts", "a ServiceEntry needs at least one host");
    }
    let hosts = raw
        .hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| report.check(&format!("spec.hosts[{i}]"), dest_host(h)))
        .collect();

    let mut names = BTreeSet::new();
    let mut ports = Vec::new();
    for (i, p) in raw.ports.iter().enumerate() {
        if p.number == 0 {
            report.error(format!("spec.ports[{i}].number"), "port 0 is not a port");
        }
        if !names.insert(p.name.as_str()) {
            report.error(
                format!("spec.ports[{i}].name"),
                format!("duplicate port name '{}'", p.name),
            );
        }
        ports.push(ServicePort {
            number: p.number,
            name: p.name.clone(),
            protocol: p.protocol.trim().to_ascii_uppercase(),
            target_port: p.target_port,
        });
    }

    let location = match upper(&raw.location).as_deref() {
        None | Some("MESH_EXTERNAL") => Some(Location::MeshExternal),
        Some("MESH_INTERNAL") => Some(Location::MeshInternal),
        Some(other) => {
            report.error(
                "spec.location",
                format!("unknown location '{other}': expected MESH_EXTERNAL or MESH_INTERNAL"),
            );
            None
        }
    };
    let resolution = match upper(&raw.resolution).as_deref() {
        None | Some("NONE") => Some(Resolution::None),
        Some("STATIC") => Some(Resolution::Static),
        // Round robin over whatever DNS returns is what DNS resolution does here.
        Some("DNS" | "DNS_ROUND_ROBIN") => Some(Resolution::Dns),
        Some(other) => {
            report.error(
                "spec.resolution",
                format!("unknown resolution '{other}': expected NONE, STATIC or DNS"),
            );
            None
        }
    };
    if resolution == Some(Resolution::Static) && raw.endpoints.is_empty() {
        report.error("spec.endpoints", "resolution STATIC needs endpoints");
    }

    let mut endpoints = Vec::new();
    for (i, e) in raw.endpoints.iter().enumerate() {
        let p = format!("spec.endpoints[{i}]");
        if e.address.starts_with("unix://") {
            // Istio's sidecars reach a local process this way; a gateway's
            // upstreams are network endpoints.
            report.error(
                format!("{p}.address"),
                format!(
                    "'{}': Unix domain socket endpoints are not supported by tlsgate; \
                     give the service a TCP address",
                    e.address
                ),
            );
        } else if resolution == Some(Resolution::Static) && e.address.parse::<IpAddr>().is_err() {
            report.error(
                format!("{p}.address"),
                format!(
                    "'{}' is not an IP address, which resolution STATIC needs (use DNS for names)",
                    e.address
                ),
            );
        } else if e.address.is_empty() {
            report.error(format!("{p}.address"), "must not be empty");
        }
        for (name, number) in &e.ports {
            if !names.contains(name.as_str()) {
                report.error(
                    format!("{p}.ports.{name}"),
                    format!("no port named '{name}' in spec.ports"),
                );
            } else if *number == 0 {
                report.error(format!("{p}.ports.{name}"), "port 0 is not a port");
            }
        }
        endpoints.push(Endpoint {
            address: e.address.to_ascii_lowercase(),
            ports: e.ports.clone(),
            labels: e.labels.clone(),
        });
    }
    if report.failed() {
        return None;
    }
    Some(ServiceEntry {
        id: doc.id.clone(),
        hosts,
        ports,
        location: location?,
        resolution: resolution?,
        endpoints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{errors, load, SERVICE_ENTRY};

    #[test]
    fn egress_and_static_entries() {
        // As `kubectl get -o yaml` prints it: nulls for absent lists.
        let yaml = format!(
            r#"kind: ServiceEntry
apiVersion: networking.istio.io/v1alpha3
metadata:
  name: external-discounts
  namespace: travel-agency
spec:
  hosts:
    - discounts.travel-no-mesh.svc.cluster.local
  addresses: ~
  ports:
    - name: http
      number: 8000
      protocol: http2
      targetPort: 8000
  location: MESH_EXTERNAL
  resolution: DNS_ROUND_ROBIN
  endpoints: ~
  workloadSelector: ~
  exportTo:
    - travel-agency
  subjectAltNames: ~
---
{SERVICE_ENTRY}metadata: {{name: backend}}
spec:
  hosts: [backend]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints:
  - address: 127.0.0.1
    ports: {{http: 8081}}
    labels: {{version: v1}}
    locality: us-east1
"#
        );
        let m = load(&yaml).unwrap();
        let [dns, stat] = m.service_entries.as_slice() else {
            panic!()
        };
        assert_eq!(dns.resolution, Resolution::Dns);
        assert_eq!(dns.location, Location::MeshExternal);
        assert_eq!(dns.ports[0].protocol, "HTTP2");
        assert_eq!(dns.ports[0].target_port, Some(8000));
        assert!(dns.endpoints.is_empty());
        assert_eq!(stat.resolution, Resolution::Static);
        assert_eq!(stat.location, Location::MeshInternal);
        assert_eq!(stat.endpoints[0].ports["http"], 8081);
        assert_eq!(stat.endpoints[0].labels["version"], "v1");
    }

    #[test]
    fn static_needs_ip_endpoints() {
        let yaml = format!(
            "{SERVICE_ENTRY}metadata: {{name: a}}\nspec:\n  hosts: [a]\n  resolution: STATIC\n  \
             ports: [{{number: 80, name: http, protocol: HTTP}}]\n---\n\
             {SERVICE_ENTRY}metadata: {{name: b}}\nspec:\n  hosts: [b]\n  resolution: static\n  \
             ports: [{{number: 80, name: http, protocol: HTTP}}]\n  \
             endpoints: [{{address: b.example.com, ports: {{https: 443}}}}]\n"
        );
        let e = errors(&yaml);
        assert_eq!(
            e,
            [
                "test.yaml: ServiceEntry/a: spec.endpoints: resolution STATIC needs endpoints",
                "test.yaml: ServiceEntry/b: spec.endpoints[0].address: 'b.example.com' is not an IP address, \
                 which resolution STATIC needs (use DNS for names)",
                "test.yaml: ServiceEntry/b: spec.endpoints[0].ports.https: no port named 'https' in spec.ports",
            ]
        );
    }
}
