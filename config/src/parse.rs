//! Value parsers shared by the converters (hosts, durations, regexes, paths)
//! and [`Report`], which ties each error to its document.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::load::Document;
use super::{ConfigError, DocId, Findings, HostPattern};

/// Collects the errors of one document, so converters can keep going after
/// a bad field and report every problem in one pass.
pub(crate) struct Report<'a> {
    pub doc: &'a DocId,
    out: &'a mut Findings,
    count: usize,
}

impl<'a> Report<'a> {
    pub fn new(doc: &'a DocId, out: &'a mut Findings) -> Self {
        Report { doc, out, count: 0 }
    }

    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.count += 1;
        self.out.push(ConfigError::field(self.doc, field, message));
    }

    /// `field` is not applied, for `reason`; the document still loads.
    pub fn warn(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.out.warn(self.doc, field, reason);
    }

    /// `field` is applied, but weakens something: said once per load.
    pub fn caution(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.out.caution(self.doc, field, reason);
    }

    /// Warns about `field` when the document sets it.
    pub fn ignored<T>(&mut self, value: &Option<T>, field: &str, reason: &str) {
        if value.is_some() {
            self.warn(field, reason);
        }
    }

    /// Did this document have any error so far?
    pub fn failed(&self) -> bool {
        self.count > 0
    }

    /// Reports `field` as a known Istio feature that tlsgate does not have.
    pub fn unsupported(&mut self, value: &Option<Value>, field: &str, why: &str) {
        if value.is_some() {
            self.error(field, format!("not supported by tlsgate: {why}"));
        }
    }

    /// Reports a failed parse of `value` at `field` and passes the value on.
    pub fn check<T>(&mut self, field: &str, value: Result<T, String>) -> Option<T> {
        value.map_err(|e| self.error(field, e)).ok()
    }
}

/// `ISTIO_MUTUAL` (server or origination) without `GatewayRuntime.spec.mesh`.
pub(crate) const NEEDS_MESH: &str = "ISTIO_MUTUAL needs the gateway's mesh identity: add \
     GatewayRuntime spec.mesh {credentialName: <folder with the workload certificate, key and \
     mesh CA>, trustDomain}";

/// Why `exportTo` naming namespaces is not applied: tlsgate cannot tell
/// which namespace its own deployment runs in, so it does as if the
/// document were exported to it.
pub(crate) const EXPORT_TO: &str = "namespace visibility is not applied: tlsgate does not know \
     the namespace it runs in, so the document is used as if exported to it (`~` skips it)";

/// `exportTo: ["~"]`: Istio exports the document to no namespace at all.
pub(crate) const EXPORTED_NOWHERE: &str =
    "exported to no namespace (`~`): Istio never uses it, so neither does tlsgate";

/// Is `exportTo` exactly `["~"]`?
pub(crate) fn exported_nowhere(export_to: Option<&Value>) -> bool {
    export_to
        .and_then(Value::as_sequence)
        .is_some_and(|v| !v.is_empty() && v.iter().all(|n| n.as_str() == Some("~")))
}

/// `exportTo` that Istio applies everywhere: absent, or `*`.
pub(crate) fn exported_everywhere(export_to: Option<&Value>) -> bool {
    match export_to {
        None | Some(Value::Null) => true,
        Some(v) => v
            .as_sequence()
            .is_some_and(|v| v.iter().any(|n| n.as_str() == Some("*"))),
    }
}

/// Deserializes a document's `spec`; an error names its path under `spec.`.
pub(crate) fn spec<T: DeserializeOwned>(doc: &Document, report: &mut Report<'_>) -> Option<T> {
    let value = match &doc.spec {
        // A document may omit `spec` only where every field has a default.
        Value::Null => Value::Mapping(Default::default()),
        v => v.clone(),
    };
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(spec) => Some(spec),
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." {
                "spec".to_string()
            } else {
                format!("spec.{path}")
            };
            report.error(field, e.into_inner().to_string());
            None
        }
    }
}

/// A Gateway or VirtualService host. Gateway hosts may carry a
/// `namespace/` prefix (`./x`, `*/x`, `ns/x`): one namespace here, so it is dropped.
pub(crate) fn host_pattern(raw: &str) -> Result<HostPattern, String> {
    let host = raw
        .rsplit_once('/')
        .map_or(raw, |(_, h)| h)
        .to_ascii_lowercase();
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    let (pattern, name) = match host.strip_prefix("*.") {
        Some(rest) => (HostPattern::Suffix(format!(".{rest}")), rest),
        None => (HostPattern::Exact(host.clone()), host.as_str()),
    };
    dns_name(name).map_err(|why| format!("invalid host '{raw}': {why}"))?;
    Ok(pattern)
}

/// A destination or ServiceEntry host: a DNS name (short names allowed,
/// DNS decides) or an IP address, lower case.
pub(crate) fn dest_host(raw: &str) -> Result<String, String> {
    let host = raw.to_ascii_lowercase();
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(host);
    }
    dns_name(host.strip_prefix("*.").unwrap_or(&host))
        .map_err(|why| format!("invalid host '{raw}': {why}"))?;
    Ok(host)
}

fn dns_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 253 {
        return Err("empty or longer than 253 characters");
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("empty label or label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("only letters, digits, '-', '_' and '.' are allowed ('*' only as '*.' at the start)");
        }
    }
    Ok(())
}

/// Go / protobuf style durations: `100ms`, `1.5s`, `1m30s`, `1h`, `0`.
pub(crate) fn duration(raw: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration '{raw}': expected a number and a unit (ms, s, m, h), e.g. \"1.5s\""
        )
    };
    let s = raw.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        nanos += number * unit;
    }
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

/// Anchored at both ends, as Envoy's `safe_regex` matches the whole value.
pub(crate) fn anchored_regex(raw: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{raw})$")).map_err(|e| {
        // The regex crate's message is a multi-line drawing; its last line
        // says what is wrong and fits in one error line.
        let text = e.to_string();
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let why = last.trim().trim_start_matches("error: ");
        format!("invalid regex '{raw}': {why}")
    })
}

/// A path written in a document, absolute against the document's folder.
pub(crate) fn resolve(base_dir: &Path, raw: &str) -> PathBuf {
    base_dir.join(raw)
}

/// Case-insensitive enum value, upper case; `None` when the field is absent.
pub(crate) fn upper(value: &Option<String>) -> Option<String> {
    value.as_ref().map(|v| v.trim().to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_and_namespaced_hosts() {
        let h = |s| host_pattern(s).unwrap();
        assert_eq!(h("*"), HostPattern::Any);
        assert_eq!(h("*/*"), HostPattern::Any);
        assert_eq!(
            h("*.Example.com"),
            HostPattern::Suffix(".example.com".into())
        );
        assert_eq!(
            h("./frontend.example.com"),
            HostPattern::Exact("frontend.example.com".into())
        );
        assert_eq!(
            h("istio-system/api.example.com"),
            HostPattern::Exact("api.example.com".into())
        );
        assert!(h("*.example.com").matches("a.example.com"));
        assert!(!h("*.example.com").matches("example.com"));
        for bad in [
            "",
            "a*.example.com",
            "foo.*.com",
            "a..b",
            "exa mple.com",
            "*.",
        ] {
            assert!(host_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        let d = |s| duration(s).unwrap();
        assert_eq!(d("5s"), Duration::from_secs(5));
        assert_eq!(d("100ms"), Duration::from_millis(100));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("1m"), Duration::from_secs(60));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("0s"), Duration::ZERO);
        assert_eq!(d("0"), Duration::ZERO);
        for bad in ["", "5", "s", "5 s", "-1s", "1d", "1.2.3s"] {
            let e = duration(bad).unwrap_err();
            assert!(e.starts_with("invalid duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn regexes_are_anchored() {
        let r = anchored_regex("/api/v[0-9]+").unwrap();
        assert!(r.is_match("/api/v2"));
        assert!(!r.is_match("/api/v2/x"));
        assert!(!r.is_match("x/api/v2"));
        let r = anchored_regex("a|b").unwrap();
        assert!(!r.is_match("ab"));
        let e = anchored_regex("(unclosed").unwrap_err();
        assert_eq!(e, "invalid regex '(unclosed': unclosed group");
    }

    #[test]
    fn destination_hosts() {
        assert_eq!(dest_host("Backend").unwrap(), "backend");
        assert_eq!(dest_host("10.0.0.1").unwrap(), "10.0.0.1");
        assert!(dest_host("bad host").is_err());
    }
}
