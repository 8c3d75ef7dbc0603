//! How a verified client certificate reaches the backend, and how many
//! proxies in front of the gateway are believed in `X-Forwarded-For`.
//!
//! Istio says both per gateway deployment, in the proxy's
//! `gatewayTopology` (`numTrustedProxies`, `forwardClientCertDetails`):
//! `GatewayRuntime.spec.gatewayTopology` takes the same fields. Which XFCC
//! elements are set and whether RFC 9440's `Client-Cert` headers go too is
//! tlsgate's own (`spec.clientCertDetails`); a VirtualService overrides
//! any of the three for its routes with `tlsgate.io/` annotations.

use std::collections::BTreeMap;

use serde::Serialize;

use super::parse::{upper, Report};
use super::raw::{RawClientCertDetails, RawGatewayTopology};

/// Envoy's `forward_client_cert_details`, with its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ForwardClientCert {
    /// The backend gets none: the client's are dropped, none is set.
    Sanitize,
    /// On an mTLS connection the client's headers go on unchanged (a
    /// proxy in front wrote them); otherwise dropped.
    ForwardOnly,
    /// On an mTLS connection this hop's element is appended to the
    /// client's XFCC; otherwise dropped.
    AppendForward,
    /// On an mTLS connection the client's are replaced by this hop's;
    /// otherwise dropped. Istio's gateway default.
    SanitizeSet,
    /// The client's headers go on unchanged, mTLS or not.
    AlwaysForwardOnly,
}

impl ForwardClientCert {
    const NAMES: &'static str =
        "SANITIZE, FORWARD_ONLY, APPEND_FORWARD, SANITIZE_SET or ALWAYS_FORWARD_ONLY";

    fn parse(s: &str) -> Result<Option<Self>, String> {
        Ok(Some(match s.trim().to_ascii_uppercase().as_str() {
            // Istio's "not set": the gateway default.
            "UNDEFINED" => return Ok(None),
            "SANITIZE" => ForwardClientCert::Sanitize,
            "FORWARD_ONLY" => ForwardClientCert::ForwardOnly,
            "APPEND_FORWARD" => ForwardClientCert::AppendForward,
            "SANITIZE_SET" => ForwardClientCert::SanitizeSet,
            "ALWAYS_FORWARD_ONLY" => ForwardClientCert::AlwaysForwardOnly,
            other => return Err(format!("unknown mode '{other}': expected {}", Self::NAMES)),
        }))
    }

    /// The client's own certificate headers go on unchanged.
    pub fn forwards_client_headers(self, mtls: bool) -> bool {
        match self {
            ForwardClientCert::AlwaysForwardOnly => true,
            ForwardClientCert::ForwardOnly => mtls,
            _ => false,
        }
    }
}

/// Which XFCC elements this hop writes (Envoy's `By`, the gateway
/// certificate's URI SANs, always goes first when there are any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct XfccElements {
    pub hash: bool,
    pub cert: bool,
    pub chain: bool,
    pub subject: bool,
    pub uri: bool,
    pub dns: bool,
}

impl Default for XfccElements {
    /// What Istio's gateways set: the hash, subject, URI and DNS SANs.
    fn default() -> Self {
        XfccElements {
            hash: true,
            cert: false,
            chain: false,
            subject: true,
            uri: true,
            dns: true,
        }
    }
}

impl XfccElements {
    /// No element: the start of a choice, never a setting (see `parse`).
    pub const NONE: XfccElements = XfccElements {
        hash: false,
        cert: false,
        chain: false,
        subject: false,
        uri: false,
        dns: false,
    };

    fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut e = XfccElements::NONE;
        for n in names {
            let slot = match n.trim().to_ascii_lowercase().as_str() {
                "hash" => &mut e.hash,
                "cert" => &mut e.cert,
                "chain" => &mut e.chain,
                "subject" => &mut e.subject,
                "uri" => &mut e.uri,
                "dns" => &mut e.dns,
                "" => continue,
                other => {
                    return Err(format!(
                        "unknown element '{other}': expected Hash, Cert, Chain, Subject, URI or DNS"
                    ))
                }
            };
            *slot = true;
        }
        if e == XfccElements::NONE {
            return Err("name at least one element (to send none, use SANITIZE)".into());
        }
        Ok(e)
    }
}

/// What is resolved per request: the gateway's setting with the route's
/// override on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClientCertForwarding {
    pub mode: ForwardClientCert,
    pub xfcc: XfccElements,
    /// Also `Client-Cert` and `Client-Cert-Chain` (RFC 9440).
    pub rfc9440: bool,
}

impl Default for ClientCertForwarding {
    fn default() -> Self {
        ClientCertForwarding {
            mode: ForwardClientCert::SanitizeSet,
            xfcc: XfccElements::default(),
            rfc9440: false,
        }
    }
}

/// A VirtualService's annotations: each field, when set, replaces the
/// gateway's for that VirtualService's routes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClientCertOverride {
    pub mode: Option<ForwardClientCert>,
    pub xfcc: Option<XfccElements>,
    pub rfc9440: Option<bool>,
}

impl ClientCertOverride {
    pub fn over(self, base: ClientCertForwarding) -> ClientCertForwarding {
        ClientCertForwarding {
            mode: self.mode.unwrap_or(base.mode),
            xfcc: self.xfcc.unwrap_or(base.xfcc),
            rfc9440: self.rfc9440.unwrap_or(base.rfc9440),
        }
    }
}

pub(crate) const MODE_ANNOTATION: &str = "tlsgate.io/forward-client-cert-details";
pub(crate) const XFCC_ANNOTATION: &str = "tlsgate.io/client-cert-details-xfcc";
pub(crate) const RFC9440_ANNOTATION: &str = "tlsgate.io/client-cert-details-rfc9440";

/// `spec.gatewayTopology` and `spec.clientCertDetails` of the
/// GatewayRuntime: (the forwarding, `numTrustedProxies`).
pub(crate) fn runtime(
    topology: Option<&RawGatewayTopology>,
    details: Option<&RawClientCertDetails>,
    report: &mut Report<'_>,
) -> (ClientCertForwarding, u32) {
    let mut fwd = ClientCertForwarding::default();
    let mut hops = 0;
    if let Some(t) = topology {
        if let Some(m) = upper(&t.forward_client_cert_details) {
            let f = "spec.gatewayTopology.forwardClientCertDetails";
            if let Some(Some(m)) = report.check(f, ForwardClientCert::parse(&m)) {
                fwd.mode = m;
            }
        }
        if let Some(n) = t.num_trusted_proxies {
            hops = n;
        }
        if t.proxy_protocol.is_some() {
            report.error(
                "spec.gatewayTopology.proxyProtocol",
                "say it per port, with the load balancers' addresses it is believed from: \
                 spec.listeners[]{port, proxyProtocol{mode, trustedSources}}",
            );
        }
    }
    if let Some(d) = details {
        if let Some(list) = &d.xfcc {
            let elements = XfccElements::parse(list.iter().map(String::as_str));
            if let Some(e) = report.check("spec.clientCertDetails.xfcc", elements) {
                fwd.xfcc = e;
            }
        }
        if let Some(b) = d.rfc9440 {
            fwd.rfc9440 = b;
        }
    }
    (fwd, hops)
}

/// A VirtualService's `tlsgate.io/` annotations. Any other `tlsgate.io/`
/// key is an error: a misspelt override would silently not apply.
pub(crate) fn annotations(
    annotations: &BTreeMap<String, String>,
    report: &mut Report<'_>,
) -> Option<ClientCertOverride> {
    let mut o = ClientCertOverride::default();
    let mut any = false;
    for (k, v) in annotations {
        if !k.starts_with("tlsgate.io/") {
            continue;
        }
        let field = format!("metadata.annotations.{k}");
        any = true;
        match k.as_str() {
            MODE_ANNOTATION => {
                if let Some(m) = report.check(&field, ForwardClientCert::parse(v)) {
                    o.mode = m;
                }
            }
            XFCC_ANNOTATION => o.xfcc = report.check(&field, XfccElements::parse(v.split(','))),
            RFC9440_ANNOTATION => match v.trim() {
                "true" => o.rfc9440 = Some(true),
                "false" => o.rfc9440 = Some(false),
                _ => report.error(&field, "expected \"true\" or \"false\""),
            },
            _ => report.error(
                &field,
                format!(
                    "unknown tlsgate annotation: expected {MODE_ANNOTATION}, {XFCC_ANNOTATION} \
                     or {RFC9440_ANNOTATION}"
                ),
            ),
        }
    }
    any.then_some(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{errors, load, GATEWAY, VIRTUAL_SERVICE};

    const RT: &str = "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {name: rt}\n";

    fn with_runtime(spec: &str) -> String {
        format!("{RT}spec: {spec}\n")
    }

    fn with_vs(annotations: &str) -> String {
        format!(
            "{GATEWAY}metadata: {{name: gw}}\nspec:\n  servers:\n  - port: {{number: 80, \
             protocol: HTTP}}\n    hosts: [a.test]\n---\n{VIRTUAL_SERVICE}metadata:\n  name: \
             vs\n  annotations: {annotations}\nspec:\n  hosts: [a.test]\n  gateways: [gw]\n  \
             http:\n  - route: [{{destination: {{host: a.test}}}}]\n"
        )
    }

    #[test]
    fn istios_gateway_topology_and_our_element_choice() {
        let m = load(&with_runtime("{}")).unwrap();
        assert_eq!(m.runtime.client_cert, ClientCertForwarding::default());
        assert_eq!(m.runtime.num_trusted_proxies, 0);
        let m = load(&with_runtime(
            "{gatewayTopology: {numTrustedProxies: 2, forwardClientCertDetails: append_forward}, \
             clientCertDetails: {xfcc: [Hash, Chain], rfc9440: true}}",
        ))
        .unwrap();
        let c = m.runtime.client_cert;
        assert_eq!(c.mode, ForwardClientCert::AppendForward);
        assert!(c.xfcc.hash && c.xfcc.chain && !c.xfcc.subject && !c.xfcc.uri);
        assert!(c.rfc9440);
        assert_eq!(m.runtime.num_trusted_proxies, 2);
        for (spec, field, says) in [
            (
                "{gatewayTopology: {forwardClientCertDetails: FORWARD}}",
                "spec.gatewayTopology.forwardClientCertDetails",
                "unknown mode 'FORWARD'",
            ),
            (
                "{clientCertDetails: {xfcc: [Hash, Email]}}",
                "spec.clientCertDetails.xfcc",
                "unknown element 'email'",
            ),
            (
                "{clientCertDetails: {xfcc: []}}",
                "spec.clientCertDetails.xfcc",
                "use SANITIZE",
            ),
            (
                "{gatewayTopology: {proxyProtocol: {}}}",
                "spec.gatewayTopology.proxyProtocol",
                "listeners[]",
            ),
            (
                "{gatewayTopology: {numTrustedProxies: -1}}",
                "spec.gatewayTopology.numTrustedProxies",
                "",
            ),
        ] {
            let e = errors(&with_runtime(spec));
            assert!(
                e.iter().any(|e| e.contains(field) && e.contains(says)),
                "{spec}: {e:#?}"
            );
        }
    }

    #[test]
    fn a_virtualservice_overrides_its_routes_by_annotation() {
        let m = load(&with_vs(
            "{tlsgate.io/forward-client-cert-details: SANITIZE, \
             tlsgate.io/client-cert-details-xfcc: 'URI, DNS', \
             tlsgate.io/client-cert-details-rfc9440: 'true', other.io/x: y}",
        ))
        .unwrap();
        let o = m.virtual_services[0].http[0].client_cert.unwrap();
        assert_eq!(o.mode, Some(ForwardClientCert::Sanitize));
        let x = o.xfcc.unwrap();
        assert!(x.uri && x.dns && !x.hash);
        assert_eq!(o.rfc9440, Some(true));
        let m = load(&with_vs("{other.io/x: y}")).unwrap();
        assert_eq!(m.virtual_services[0].http[0].client_cert, None);
        for (ann, says) in [
            (
                "{tlsgate.io/forward-client-cert: SANITIZE}",
                "unknown tlsgate annotation",
            ),
            (
                "{tlsgate.io/client-cert-details-rfc9440: 'yes'}",
                "\"true\" or \"false\"",
            ),
            (
                "{tlsgate.io/client-cert-details-xfcc: 'Hash,Serial'}",
                "unknown element",
            ),
        ] {
            let e = errors(&with_vs(ann));
            assert!(
                e.iter()
                    .any(|e| e.contains("metadata.annotations.tlsgate.io/") && e.contains(says)),
                "{ann}: {e:#?}"
            );
        }
    }
}
