//! The name check of an upstream certificate, done by us after the
//! handshake (see `origin.rs` for why not by OpenSSL).

use std::net::IpAddr;

use openssl::x509::X509Ref;

use crate::credentials::SubjectAltNames;
use crate::names::cert_name_matches;

/// The name check of one upstream handshake, kept in the connection's
/// `SslDigest.extension` (so a pooled connection keeps its verdict).
#[derive(Debug, Clone)]
pub struct PeerCheck {
    pub ok: bool,
    /// What the certificate carries (`DNS:x`, `URI:y`, `IP:z`), for logs.
    pub presented: Vec<String>,
}

/// Does `cert` carry one of `expected`? Each expected name is compared with
/// the certificate's DNS SANs (a `*.x` SAN covers exactly one more label),
/// URI SANs and IP SANs; the CN counts only when there is no DNS SAN, as in
/// `X509_check_host`.
pub fn check_names(cert: &X509Ref, expected: &[String]) -> PeerCheck {
    let sans = SubjectAltNames::of(cert);
    let cn;
    // As `X509_check_host`: the CN counts only without any DNS SAN.
    let dns: &[String] = if sans.dns.is_empty() {
        cn = crate::credentials::common_name(cert.subject_name())
            .into_iter()
            .collect::<Vec<_>>();
        &cn
    } else {
        &sans.dns
    };
    let ok = expected.iter().any(|want| {
        if let Ok(ip) = want.parse::<IpAddr>() {
            return sans.ips.iter().any(|have| have.parse() == Ok(ip));
        }
        if want.contains("://") {
            // An identity (`spiffe://...`) is a URI SAN, never a CN or DNS name.
            return sans.uris.iter().any(|u| u == want);
        }
        let host = want.trim_end_matches('.').to_ascii_lowercase();
        sans.uris.iter().any(|u| u == want) || dns.iter().any(|d| cert_name_matches(d, &host))
    });
    let mut presented: Vec<String> = dns
        .iter()
        .map(|d| format!("DNS:{}", d.to_ascii_lowercase()))
        .collect();
    presented.extend(sans.uris.iter().map(|u| format!("URI:{u}")));
    presented.extend(sans.ips.iter().map(|i| format!("IP:{i}")));
    PeerCheck { ok, presented }
}

/// `spiffe://<trust domain>/`: what every identity of the domain starts with.
pub fn trust_domain_prefix(trust_domain: &str) -> String {
    format!("spiffe://{}/", trust_domain.to_ascii_lowercase())
}

/// Does `cert` carry a SPIFFE identity under `prefix`
/// ([`trust_domain_prefix`])? As Istio names workloads, only URI SANs
/// count, and the trust domain compares without case.
pub fn check_trust_domain(cert: &X509Ref, prefix: &str) -> PeerCheck {
    let sans = SubjectAltNames::of(cert);
    let ok = sans.uris.iter().any(|u| in_trust_domain(u, prefix));
    let mut presented: Vec<String> = sans.dns.iter().map(|d| format!("DNS:{d}")).collect();
    presented.extend(sans.uris.iter().map(|u| format!("URI:{u}")));
    PeerCheck { ok, presented }
}

/// Is URI SAN `uri` an identity under `prefix` (`spiffe://td/`), with a
/// path after it?
pub fn in_trust_domain(uri: &str, prefix: &str) -> bool {
    uri.len() > prefix.len()
        && uri
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certgen::{make_ca, make_leaf, CaSpec, LeafSpec, Usage};

    #[test]
    fn names_are_checked_against_dns_uri_and_ip_sans() {
        let acme = make_ca(&CaSpec::new("Acme Inc.", "acme.com")).unwrap();
        let mut spec = LeafSpec::new(Usage::Server, "greeting");
        spec.dns = vec!["*.remote.com".into(), "exact.test".into()];
        spec.uris = vec!["spiffe://acme.com/greeting".into()];
        let cert = make_leaf(&spec, &acme).unwrap().cert;
        let check = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            check_names(&cert, &names).ok
        };
        assert!(check(&["greeting.remote.com"]));
        assert!(check(&["Exact.Test."]));
        assert!(check(&["nope.test", "spiffe://acme.com/greeting"]));
        assert!(!check(&["remote.com"]), "a wildcard needs one more label");
        assert!(!check(&["a.b.remote.com"]), "and only one");
        assert!(!check(&["spiffe://acme.com/other", "10.0.0.1"]));
        let presented = check_names(&cert, &[]).presented;
        assert!(presented.contains(&"URI:spiffe://acme.com/greeting".to_string()));
    }

    #[test]
    fn trust_domain_takes_only_spiffe_identities_of_that_domain() {
        let p = trust_domain_prefix("Cluster.Local");
        assert!(in_trust_domain(
            "spiffe://cluster.local/ns/default/sa/sleep",
            &p
        ));
        assert!(in_trust_domain("SPIFFE://cluster.local/ns/x/sa/y", &p));
        for other in [
            "spiffe://cluster.local/",
            "spiffe://cluster.local",
            "spiffe://cluster.local.evil/ns/x",
            "spiffe://evil/cluster.local/ns/x",
            "https://cluster.local/ns/x",
        ] {
            assert!(!in_trust_domain(other, &p), "{other}");
        }
    }
}
