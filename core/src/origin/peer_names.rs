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
}
