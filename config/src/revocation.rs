//! `GatewayRuntime.spec.revocation`: where client CA bundles' CRLs are
//! fetched from, how often, and what a CRL that could not be refreshed in
//! time means.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::parse::{duration, Report};
use super::raw::{null_default, Size};

/// What a client certificate meets when its issuer's CRL is past its
/// nextUpdate and no newer one could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StaleCrl {
    /// Refuse the issuer's certificates (alert `certificate_unknown`,
    /// reason `crl_stale`). The default: whoever can block the CA's
    /// distribution point would otherwise get a revoked certificate
    /// accepted.
    FailClosed,
    /// Accept them, with a warning and `tlsgate_crl_stale_accepted_total`.
    FailOpen,
}

impl StaleCrl {
    fn parse(s: &str) -> Result<StaleCrl, String> {
        match s {
            "failClosed" => Ok(StaleCrl::FailClosed),
            "failOpen" => Ok(StaleCrl::FailOpen),
            _ => Err(format!("'{s}': expected failClosed or failOpen")),
        }
    }
}

/// `GatewayRuntime.spec.ocspStapling`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OcspStapling {
    /// Fetch each served certificate's OCSP response from the responder
    /// its AIA names, and keep it fresh (default false: `tls.ocsp` only).
    pub fetch: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOcspStapling {
    pub fetch: Option<bool>,
}

pub(crate) fn convert_stapling(raw: &RawOcspStapling) -> OcspStapling {
    OcspStapling {
        fetch: raw.fetch.unwrap_or(false),
    }
}

/// The gateway-wide settings, and each credential's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevocationSettings {
    pub stale_crl: StaleCrl,
    pub leaf_only: bool,
    /// Also fetch the CRLs that certificates point to (their CRL
    /// distribution points): the bundle's CA certificates at load, a
    /// client's certificate when it first connects (default false).
    pub distribution_points: bool,
    /// Longest time between two fetches of a CRL (default 1 h); a CRL is
    /// fetched sooner when its nextUpdate is nearer.
    pub refresh_interval: Duration,
    /// Wait after a failed fetch (default 30 s, at most the refresh interval).
    pub retry_interval: Duration,
    /// A whole fetch: connect, TLS, request and body (default 10 s).
    pub fetch_timeout: Duration,
    /// Largest CRL body accepted (default 64 MiB; 100,000 entries are ~4 MB).
    pub max_crl_bytes: u64,
    /// By credential folder name.
    pub credentials: BTreeMap<String, CredentialRevocation>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CredentialRevocation {
    /// `http://` or `https://` URLs serving a DER or PEM CRL.
    pub crl_urls: Vec<String>,
    pub stale_crl: Option<StaleCrl>,
    pub leaf_only: Option<bool>,
    pub distribution_points: Option<bool>,
}

/// What one credential's revocation checking is, all settings applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CredentialPolicy {
    pub stale_crl: StaleCrl,
    pub leaf_only: bool,
    pub distribution_points: bool,
}

impl Default for RevocationSettings {
    fn default() -> Self {
        RevocationSettings {
            stale_crl: StaleCrl::FailClosed,
            leaf_only: false,
            distribution_points: false,
            refresh_interval: Duration::from_secs(3600),
            retry_interval: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(10),
            max_crl_bytes: 64 << 20,
            credentials: BTreeMap::new(),
        }
    }
}

impl RevocationSettings {
    /// The policy of credential `name`.
    pub fn for_credential(&self, name: &str) -> CredentialPolicy {
        let own = self.credentials.get(name);
        CredentialPolicy {
            stale_crl: own.and_then(|c| c.stale_crl).unwrap_or(self.stale_crl),
            leaf_only: own.and_then(|c| c.leaf_only).unwrap_or(self.leaf_only),
            distribution_points: own
                .and_then(|c| c.distribution_points)
                .unwrap_or(self.distribution_points),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRevocation {
    pub stale_crl: Option<String>,
    pub leaf_only: Option<bool>,
    pub distribution_points: Option<bool>,
    pub refresh_interval: Option<String>,
    pub retry_interval: Option<String>,
    pub fetch_timeout: Option<String>,
    pub max_crl_bytes: Option<Size>,
    #[serde(default, deserialize_with = "null_default")]
    pub credentials: BTreeMap<String, RawCredentialRevocation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCredentialRevocation {
    #[serde(default, deserialize_with = "null_default")]
    pub crl_urls: Vec<String>,
    pub stale_crl: Option<String>,
    pub leaf_only: Option<bool>,
    pub distribution_points: Option<bool>,
}

/// A CRL URL as fetched: `http://host[:port]/path` or `https://…`.
pub fn check_crl_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("'{url}': expected an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("'{url}': expected a host (and no user info)"));
    }
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("'{url}': too long, or contains spaces"));
    }
    Ok(())
}

pub(crate) fn convert(raw: &RawRevocation, report: &mut Report<'_>) -> RevocationSettings {
    let mut s = RevocationSettings::default();
    if let Some(p) = &raw.stale_crl {
        if let Some(p) = report.check("spec.revocation.staleCrl", StaleCrl::parse(p)) {
            s.stale_crl = p;
        }
    }
    if let Some(l) = raw.leaf_only {
        s.leaf_only = l;
    }
    if let Some(d) = raw.distribution_points {
        s.distribution_points = d;
    }
    let mut positive = |field: &str, raw: &Option<String>, into: &mut Duration| {
        let Some(raw) = raw else { return };
        match report.check(field, duration(raw)) {
            Some(d) if d.is_zero() => report.error(field, "must be more than 0s"),
            Some(d) => *into = d,
            None => {}
        }
    };
    positive(
        "spec.revocation.refreshInterval",
        &raw.refresh_interval,
        &mut s.refresh_interval,
    );
    positive(
        "spec.revocation.retryInterval",
        &raw.retry_interval,
        &mut s.retry_interval,
    );
    positive(
        "spec.revocation.fetchTimeout",
        &raw.fetch_timeout,
        &mut s.fetch_timeout,
    );
    s.retry_interval = s.retry_interval.min(s.refresh_interval);
    if let Some(m) = &raw.max_crl_bytes {
        match report.check("spec.revocation.maxCrlBytes", super::limits::bytes(m)) {
            Some(n) if !(1024..=512 << 20).contains(&n) => {
                report.error("spec.revocation.maxCrlBytes", "from 1Ki to 512Mi")
            }
            Some(n) => s.max_crl_bytes = n,
            None => {}
        }
    }
    for (name, c) in &raw.credentials {
        let field = format!("spec.revocation.credentials.{name}");
        let mut own = CredentialRevocation {
            leaf_only: c.leaf_only,
            distribution_points: c.distribution_points,
            ..Default::default()
        };
        if let Some(p) = &c.stale_crl {
            own.stale_crl = report.check(&format!("{field}.staleCrl"), StaleCrl::parse(p));
        }
        for (i, u) in c.crl_urls.iter().enumerate() {
            if let Some(()) = report.check(&format!("{field}.crlUrls[{i}]"), check_crl_url(u)) {
                own.crl_urls.push(u.clone());
            }
        }
        s.credentials.insert(name.clone(), own);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_crl_url("http://127.0.0.1:8080/ca.crl").is_ok());
        assert!(check_crl_url("https://pki.example.com/ca.crl?x=1").is_ok());
        for bad in [
            "ftp://x/ca.crl",
            "ldap://x/cn=ca",
            "http:///ca.crl",
            "http://user@x/ca.crl",
            "http://x/a b",
            "file:///etc/ca.crl",
        ] {
            assert!(check_crl_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_credential_overrides_the_gateway_policy() {
        let mut s = RevocationSettings::default();
        let p = |s: &RevocationSettings, n| {
            let c = s.for_credential(n);
            (c.stale_crl, c.leaf_only)
        };
        assert_eq!(p(&s, "x"), (StaleCrl::FailClosed, false));
        s.credentials.insert(
            "x".into(),
            CredentialRevocation {
                stale_crl: Some(StaleCrl::FailOpen),
                ..Default::default()
            },
        );
        s.leaf_only = true;
        assert_eq!(p(&s, "x"), (StaleCrl::FailOpen, true));
        assert_eq!(p(&s, "y"), (StaleCrl::FailClosed, true));
    }
}
