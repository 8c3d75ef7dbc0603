//! Matching host names, written once. Two rules exist, and mixing them up
//! is a security bug, so each has one home:
//!
//! - **Configuration hosts** (`Gateway`/`VirtualService`/`ServiceEntry`
//!   hosts, Istio's rule): `*.example.com` matches any name that ends in
//!   `.example.com`, however many labels come before it; `*` matches all.
//!   [`HostMap`] picks the most specific of several such patterns (exact,
//!   then the longest suffix, then `*`), for SNI and for routing alike.
//! - **Certificate names** (RFC 6125, what `X509_check_host` does): a
//!   `*.example.com` SAN covers exactly one more label (`a.example.com`,
//!   not `example.com` nor `a.b.example.com`).

use std::collections::HashMap;

/// Does the configuration suffix `suffix` (`.example.com`, the dot
/// included) match `host`? Lower case, no port, no trailing dot.
pub fn suffix_matches(suffix: &str, host: &str) -> bool {
    host.len() > suffix.len() && host.ends_with(suffix)
}

/// The hosts both patterns accept, as the narrower pattern (Istio gives a
/// `*` VirtualService bound to an `a.com` server the domain `a.com`).
pub fn intersect(a: &crate::HostPattern, b: &crate::HostPattern) -> Option<crate::HostPattern> {
    use crate::HostPattern::*;
    match (a, b) {
        (Any, x) | (x, Any) => Some(x.clone()),
        (Exact(x), Exact(y)) => (x == y).then(|| a.clone()),
        (Exact(e), s @ Suffix(_)) | (s @ Suffix(_), Exact(e)) => {
            s.matches(e).then(|| Exact(e.clone()))
        }
        (Suffix(x), Suffix(y)) => {
            if x.ends_with(y.as_str()) {
                Some(a.clone())
            } else if y.ends_with(x.as_str()) {
                Some(b.clone())
            } else {
                None
            }
        }
    }
}

/// A configuration host as written (`a.com`, `*.a.com`, `*`) against a
/// concrete host.
pub fn pattern_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => suffix_matches(suffix, host),
        None => pattern == host,
    }
}

/// Does a certificate name (a DNS SAN, or a CN where there is no DNS SAN)
/// cover `host`? `host` lower case; `name` in any case, a trailing dot
/// ignored.
pub fn cert_name_matches(name: &str, host: &str) -> bool {
    let name = name.trim_end_matches('.');
    match name.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix)),
        None => name.eq_ignore_ascii_case(host),
    }
}

/// Values by configuration host pattern, looked up by concrete host: the
/// exact name, else the longest matching `*.suffix`, else `*`; a host never
/// falls back from a more specific match to a less specific one.
#[derive(Debug)]
pub struct HostMap<T> {
    exact: HashMap<String, T>,
    /// `(".a.com", value)`, longest suffix first.
    suffixes: Vec<(String, T)>,
    any: Option<T>,
}

impl<T> Default for HostMap<T> {
    fn default() -> Self {
        HostMap {
            exact: HashMap::new(),
            suffixes: Vec::new(),
            any: None,
        }
    }
}

impl<T> HostMap<T> {
    /// Adds `value` under `pattern` unless the pattern is taken (the first
    /// one stays, so the choice never depends on insertion order luck).
    pub fn insert(&mut self, pattern: &crate::HostPattern, value: T) {
        use crate::HostPattern;
        match pattern {
            HostPattern::Exact(h) => {
                self.exact.entry(h.clone()).or_insert(value);
            }
            HostPattern::Suffix(s) => {
                if !self.suffixes.iter().any(|(x, _)| x == s) {
                    self.suffixes.push((s.clone(), value));
                    // Longest first; equal lengths in name order, for a
                    // stable order.
                    self.suffixes
                        .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
                }
            }
            HostPattern::Any => {
                self.any.get_or_insert(value);
            }
        }
    }

    /// `host` lower case without port or trailing dot.
    pub fn select(&self, host: &str) -> Option<&T> {
        if let Some(v) = self.exact.get(host) {
            return Some(v);
        }
        self.suffixes
            .iter()
            .find(|(s, _)| suffix_matches(s, host))
            .map(|(_, v)| v)
            .or(self.any.as_ref())
    }

    /// The `*` entry (what a client without SNI gets).
    pub fn any(&self) -> Option<&T> {
        self.any.as_ref()
    }

    /// Every value: exact names, suffixes, then `*`.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.exact
            .values()
            .chain(self.suffixes.iter().map(|(_, v)| v))
            .chain(self.any.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostPattern;

    #[test]
    fn configuration_patterns_match_any_depth() {
        for (pattern, host, want) in [
            ("*", "anything.test", true),
            ("*.a.com", "x.a.com", true),
            ("*.a.com", "x.y.a.com", true),
            ("*.a.com", "a.com", false),
            ("*.a.com", "xa.com", false),
            ("a.com", "a.com", true),
            ("a.com", "b.a.com", false),
        ] {
            assert_eq!(pattern_matches(pattern, host), want, "{pattern} vs {host}");
        }
    }

    #[test]
    fn certificate_wildcards_cover_one_label() {
        for (name, host, want) in [
            ("*.a.com", "x.a.com", true),
            ("*.A.com.", "x.a.com", true),
            ("*.a.com", "x.y.a.com", false),
            ("*.a.com", "a.com", false),
            ("*.a.com", ".a.com", false),
            ("A.com", "a.com", true),
            ("a.com", "b.com", false),
        ] {
            assert_eq!(cert_name_matches(name, host), want, "{name} vs {host}");
        }
    }

    #[test]
    fn the_most_specific_pattern_wins() {
        let mut m = HostMap::default();
        m.insert(&HostPattern::Any, "any");
        m.insert(&HostPattern::Suffix(".a.com".into()), "a");
        m.insert(&HostPattern::Suffix(".b.a.com".into()), "ba");
        m.insert(&HostPattern::Exact("x.b.a.com".into()), "exact");
        m.insert(&HostPattern::Exact("x.b.a.com".into()), "second");
        assert_eq!(m.select("x.b.a.com"), Some(&"exact"));
        assert_eq!(m.select("y.b.a.com"), Some(&"ba"));
        assert_eq!(m.select("y.a.com"), Some(&"a"));
        assert_eq!(m.select("other.org"), Some(&"any"));
        assert_eq!(m.any(), Some(&"any"));
        assert_eq!(m.values().count(), 4);
    }
}
