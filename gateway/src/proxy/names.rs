//! The name check of an upstream certificate, done by us after the
//! handshake (see `origination.rs` for why not by OpenSSL).

use std::net::IpAddr;

use openssl::x509::X509Ref;

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
    let mut dns = Vec::new();
    let mut uris = Vec::new();
    let mut ips = Vec::new();
    for name in cert.subject_alt_names().iter().flatten() {
        if let Some(d) = name.dnsname() {
            dns.push(d.to_ascii_lowercase());
        } else if let Some(u) = name.uri() {
            uris.push(u.to_string());
        } else if let Some(ip) = name.ipaddress().and_then(ip_from_bytes) {
            ips.push(ip);
        }
    }
    if dns.is_empty() {
        let cn = cert
            .subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME);
        dns.extend(cn.filter_map(|e| e.data().to_string().ok().map(|s| s.to_ascii_lowercase())));
    }
    let ok = expected.iter().any(|want| {
        if let Ok(ip) = want.parse::<IpAddr>() {
            return ips.contains(&ip);
        }
        let host = want.trim_end_matches('.').to_ascii_lowercase();
        uris.iter().any(|u| u == want) || dns.iter().any(|d| dns_matches(d, &host))
    });
    let presented = dns
        .iter()
        .map(|d| format!("DNS:{d}"))
        .chain(uris.iter().map(|u| format!("URI:{u}")))
        .chain(ips.iter().map(|i| format!("IP:{i}")))
        .collect();
    PeerCheck { ok, presented }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

fn dns_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    if pattern == host {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => false,
    }
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
