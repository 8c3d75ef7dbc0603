//! Which kinds tlsgate reads, which it ignores with a warning, and which it
//! refuses. Users keep Kubernetes objects and mesh-only Istio kinds in the
//! same files as their gateway's; Istio's gateway never looks at those, so
//! neither does tlsgate. Kinds that would change behaviour (EnvoyFilter) or
//! protect something (AuthorizationPolicy, ...) are refused until tlsgate
//! applies them: ignoring a policy would serve what it was meant to guard.

/// The kinds tlsgate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Gateway,
    VirtualService,
    DestinationRule,
    ServiceEntry,
    GatewayRuntime,
    /// Core `v1` Service: read for its ports only.
    KubernetesService,
    /// `security.istio.io`: plaintext on TLS ports.
    PeerAuthentication,
    /// `security.istio.io`: who may call what.
    AuthorizationPolicy,
}

pub(crate) const ISTIO_VERSIONS: &[&str] = &[
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];
const TLSGATE_VERSION: &str = "tlsgate.io/v1";
const SECURITY_VERSIONS: &[&str] = &["security.istio.io/v1", "security.istio.io/v1beta1"];

const READ: &str = "Gateway, VirtualService, DestinationRule, ServiceEntry, PeerAuthentication, \
                    AuthorizationPolicy and GatewayRuntime";

impl Kind {
    fn parse(kind: &str) -> Option<Kind> {
        Some(match kind {
            "Gateway" => Kind::Gateway,
            "VirtualService" => Kind::VirtualService,
            "DestinationRule" => Kind::DestinationRule,
            "ServiceEntry" => Kind::ServiceEntry,
            "GatewayRuntime" => Kind::GatewayRuntime,
            "PeerAuthentication" => Kind::PeerAuthentication,
            "AuthorizationPolicy" => Kind::AuthorizationPolicy,
            _ => return None,
        })
    }

    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            Kind::GatewayRuntime => &[TLSGATE_VERSION],
            Kind::KubernetesService => &["v1"],
            Kind::PeerAuthentication | Kind::AuthorizationPolicy => SECURITY_VERSIONS,
            _ => ISTIO_VERSIONS,
        }
    }
}

/// What a load does with a document of some kind.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Use {
    Read(Kind),
    /// Skipped; the warning says why.
    Ignored(String),
    /// An error; the message says why.
    Refused(String),
}

/// Decides by `kind` and the API group of `api_version`.
pub(crate) fn classify(api_version: Option<&str>, kind: &str) -> Use {
    let lower = api_version.map(str::to_ascii_lowercase);
    let group = lower
        .as_deref()
        .and_then(|v| v.rsplit_once('/').map(|(g, _)| g));
    // A Gateway API `Gateway` is still read as a Gateway, so that its
    // apiVersion error says what to write instead.
    if let Some(k) = Kind::parse(kind) {
        if group != Some("gateway.networking.k8s.io") || k == Kind::Gateway {
            return Use::Read(k);
        }
    }
    if kind == "Service" && api_version == Some("v1") {
        return Use::Read(Kind::KubernetesService);
    }
    if let Some(why) = refused(group, kind) {
        return Use::Refused(why.to_string());
    }
    if let Some(why) = ignored_istio(group, kind) {
        return Use::Ignored(why.to_string());
    }
    match group {
        Some(g) if g.ends_with("istio.io") || g == "tlsgate.io" => {
            Use::Refused(format!("unknown kind '{kind}' (tlsgate reads {READ})"))
        }
        Some(g) if g.ends_with("gateway.networking.k8s.io") => Use::Refused(format!(
            "Kubernetes Gateway API {kind} is not read; write an Istio Gateway and VirtualService"
        )),
        _ if api_version.is_none() => Use::Refused(format!(
            "unknown kind '{kind}' without an apiVersion (tlsgate reads {READ})"
        )),
        _ => Use::Ignored(kubernetes(kind, api_version.unwrap_or_default())),
    }
}

/// By kind name, whatever the group says: a policy under an odd
/// `apiVersion` must not pass as "another API group's kind".
fn refused(_group: Option<&str>, kind: &str) -> Option<&'static str> {
    Some(match kind {
        "EnvoyFilter" => {
            "an EnvoyFilter patches Envoy's own configuration, which tlsgate cannot reproduce; \
             express the change with a VirtualService or DestinationRule, or leave this file out"
        }
        "WasmPlugin" => "a WasmPlugin runs code inside Envoy; tlsgate cannot run it",
        "RequestAuthentication" => {
            "security policy that tlsgate does not enforce yet: it is refused, not ignored, \
             so that nothing is served without the protection it asks for"
        }
        "Ingress" | "IngressClass" => {
            "a Kubernetes Ingress is not read; write an Istio Gateway and VirtualService"
        }
        _ => return None,
    })
}

fn ignored_istio(group: Option<&str>, kind: &str) -> Option<&'static str> {
    if !group.is_some_and(|g| g.ends_with("istio.io")) {
        return None;
    }
    Some(match kind {
        "Sidecar" => "applies to sidecars, not to a gateway",
        "WorkloadEntry" | "WorkloadGroup" => {
            "mesh-only: registers workloads for sidecars; a gateway's backends are \
             Kubernetes Services and ServiceEntry endpoints"
        }
        "Telemetry" => {
            "configures Envoy's telemetry; tlsgate's access log is GatewayRuntime.spec.accessLog \
             and its metrics are on the admin port"
        }
        "ProxyConfig" => "configures the Envoy proxy itself; tlsgate's settings are GatewayRuntime",
        _ => return None,
    })
}

fn kubernetes(kind: &str, api_version: &str) -> String {
    match kind {
        "Secret" => "a Secret is not read from configuration files; credentials come from \
                     credentialsDir (mount the Secret there)"
            .to_string(),
        _ => format!(
            "{api_version} {kind} is not a kind tlsgate reads ({READ}); Istio's gateway \
             does not read it either"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_use() {
        let read = |v, k| classify(Some(v), k);
        assert_eq!(
            read("networking.istio.io/v1", "Gateway"),
            Use::Read(Kind::Gateway)
        );
        assert_eq!(
            read("gateway.networking.k8s.io/v1", "Gateway"),
            Use::Read(Kind::Gateway),
            "read, so that its apiVersion is refused with a hint"
        );
        assert_eq!(read("v1", "Service"), Use::Read(Kind::KubernetesService));
        for (v, k) in [
            ("v1", "Secret"),
            ("v1", "ServiceAccount"),
            ("v1", "Pod"),
            ("v1", "ConfigMap"),
            ("v1", "Namespace"),
            ("apps/v1", "Deployment"),
            ("networking.istio.io/v1", "Sidecar"),
            ("networking.istio.io/v1beta1", "WorkloadEntry"),
            ("networking.istio.io/v1", "WorkloadGroup"),
            ("telemetry.istio.io/v1", "Telemetry"),
            ("networking.istio.io/v1beta1", "ProxyConfig"),
            ("cert-manager.io/v1", "Certificate"),
        ] {
            assert!(matches!(read(v, k), Use::Ignored(_)), "{v} {k}");
        }
        for (v, k) in [
            ("networking.istio.io/v1alpha3", "EnvoyFilter"),
            ("security.istio.io/v1", "RequestAuthentication"),
            ("extensions.istio.io/v1alpha1", "WasmPlugin"),
            ("networking.k8s.io/v1", "Ingress"),
            ("gateway.networking.k8s.io/v1", "HTTPRoute"),
            ("gateway.networking.k8s.io/v1", "VirtualService"),
            ("networking.istio.io/v1", "VirtualServce"),
            ("tlsgate.io/v1", "Runtime"),
        ] {
            assert!(matches!(read(v, k), Use::Refused(_)), "{v} {k}");
        }
        assert!(matches!(classify(None, "Sidecar"), Use::Refused(_)));
        for (v, k) in [
            ("v1", "RequestAuthentication"),
            ("security.istio.io.v1", "RequestAuthentication"),
            ("Security.Istio.io/v1", "RequestAuthentication"),
            ("extensions/v1beta1", "Ingress"),
            ("example.com/v1", "EnvoyFilter"),
        ] {
            assert!(matches!(read(v, k), Use::Refused(_)), "{v} {k}");
        }
    }
}
