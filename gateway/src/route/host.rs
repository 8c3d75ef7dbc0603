//! Virtual hosts of one listener port, and which VirtualService hosts a
//! Gateway server accepts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{gateway_ref_matches, Gateway, HostPattern, VirtualService};

use super::CompiledRoute;

#[derive(Debug)]
pub(super) struct VirtualHost {
    pub pattern: HostPattern,
    pub redirect: bool,
    pub routes: Vec<Arc<CompiledRoute>>,
    /// VirtualServices already merged in: a VirtualService bound through two
    /// servers of one port must not contribute its routes twice.
    merged: Vec<usize>,
}

impl VirtualHost {
    fn new(pattern: HostPattern) -> Self {
        VirtualHost {
            pattern,
            redirect: false,
            routes: Vec::new(),
            merged: Vec::new(),
        }
    }

    /// Appends the routes of VirtualService number `vs` once.
    pub fn merge(&mut self, vs: usize, routes: &[Arc<CompiledRoute>]) {
        if !self.merged.contains(&vs) {
            self.merged.push(vs);
            self.routes.extend(routes.iter().cloned());
        }
    }
}

/// Collects the virtual hosts of one port before they are frozen.
#[derive(Debug)]
pub(super) struct PortBuilder {
    server: Arc<str>,
    hosts: BTreeMap<HostPattern, VirtualHost>,
    egress: Vec<HostPattern>,
}

impl PortBuilder {
    pub fn new(server: &str) -> Self {
        PortBuilder {
            server: server.into(),
            hosts: BTreeMap::new(),
            egress: Vec::new(),
        }
    }

    /// The hosts of a plain-HTTP egress server on this port.
    pub fn egress(&mut self, hosts: &[HostPattern]) {
        self.egress.extend(hosts.iter().cloned());
    }

    pub fn vhost(&mut self, pattern: &HostPattern) -> &mut VirtualHost {
        self.hosts
            .entry(pattern.clone())
            .or_insert_with(|| VirtualHost::new(pattern.clone()))
    }

    pub fn build(self) -> PortTable {
        let mut table = PortTable {
            server: self.server,
            exact: HashMap::new(),
            suffixes: Vec::new(),
            any: None,
            egress: self.egress,
        };
        for (pattern, vhost) in self.hosts {
            match pattern {
                HostPattern::Exact(h) => {
                    table.exact.insert(h, vhost);
                }
                HostPattern::Suffix(s) => table.suffixes.push((s, vhost)),
                HostPattern::Any => table.any = Some(vhost),
            }
        }
        // Longest suffix first, so the first hit is the most specific.
        table
            .suffixes
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        table
    }
}

/// Virtual hosts of one listener port, arranged for lookup.
#[derive(Debug)]
pub(super) struct PortTable {
    pub server: Arc<str>,
    exact: HashMap<String, VirtualHost>,
    /// `(".a.com", vhost)`, longest suffix first.
    suffixes: Vec<(String, VirtualHost)>,
    any: Option<VirtualHost>,
    /// Host patterns of the egress servers on this port (empty: not egress).
    pub egress: Vec<HostPattern>,
}

impl PortTable {
    pub fn select(&self, host: &str) -> Option<&VirtualHost> {
        if let Some(v) = self.exact.get(host) {
            return Some(v);
        }
        self.suffixes
            .iter()
            .find(|(s, _)| host.len() > s.len() && host.ends_with(s.as_str()))
            .map(|(_, v)| v)
            .or(self.any.as_ref())
    }

    /// All virtual hosts, sorted by pattern (for summaries).
    pub fn entries(&self) -> Vec<&VirtualHost> {
        let mut all: Vec<&VirtualHost> = self
            .exact
            .values()
            .chain(self.suffixes.iter().map(|(_, v)| v))
            .chain(self.any.as_ref())
            .collect();
        all.sort_by(|a, b| a.pattern.cmp(&b.pattern));
        all
    }
}

/// The hosts both patterns accept, as the narrower pattern (Istio gives a
/// `*` VirtualService bound to an `a.com` server the domain `a.com`).
pub(super) fn intersect(a: &HostPattern, b: &HostPattern) -> Option<HostPattern> {
    use HostPattern::*;
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

/// Does `vs` name `gw` in its `gateways`? The loader's rule, so that a
/// reference it accepted binds.
pub(super) fn binds(vs: &VirtualService, gw: &Gateway) -> bool {
    vs.gateways
        .iter()
        .any(|r| gateway_ref_matches(r, &gw.id.name, gw.namespace.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{gateway, host, vs};
    use super::*;

    fn isect(a: &str, b: &str) -> Option<String> {
        intersect(&host(a), &host(b)).map(|p| p.to_string())
    }

    #[test]
    fn intersection_keeps_the_narrower_pattern() {
        assert_eq!(isect("*", "a.com").as_deref(), Some("a.com"));
        assert_eq!(isect("*.a.com", "*").as_deref(), Some("*.a.com"));
        assert_eq!(isect("*", "*").as_deref(), Some("*"));
        assert_eq!(isect("a.com", "a.com").as_deref(), Some("a.com"));
        assert_eq!(isect("a.com", "b.com"), None);
        assert_eq!(isect("*.a.com", "x.a.com").as_deref(), Some("x.a.com"));
        assert_eq!(isect("x.a.com", "*.a.com").as_deref(), Some("x.a.com"));
        assert_eq!(isect("*.a.com", "a.com"), None);
        assert_eq!(isect("*.a.com", "*.b.a.com").as_deref(), Some("*.b.a.com"));
        assert_eq!(isect("*.b.a.com", "*.a.com").as_deref(), Some("*.b.a.com"));
        assert_eq!(isect("*.a.com", "*.b.com"), None);
    }

    #[test]
    fn gateway_references() {
        let mut gw = gateway("gw", vec![]);
        gw.namespace = Some("istio-system".into());
        let mut v = vs("v", &["*"], &["istio-system/gw"], vec![]);
        assert!(binds(&v, &gw));
        v.gateways = vec!["other/gw".into()];
        assert!(!binds(&v, &gw));
        v.gateways = vec!["gw".into()];
        assert!(binds(&v, &gw), "short name");
        v.gateways = vec!["gw2".into()];
        assert!(!binds(&v, &gw));
        v.gateways = vec![];
        assert!(!binds(&v, &gw), "no gateways means mesh only");
    }

    #[test]
    fn select_prefers_exact_then_longest_suffix_then_any() {
        let mut b = PortBuilder::new("s");
        for p in ["*", "*.a.com", "*.b.a.com", "x.b.a.com"] {
            b.vhost(&host(p));
        }
        let t = b.build();
        let sel = |h: &str| t.select(h).map(|v| v.pattern.to_string());
        assert_eq!(sel("x.b.a.com").as_deref(), Some("x.b.a.com"));
        assert_eq!(sel("y.b.a.com").as_deref(), Some("*.b.a.com"));
        assert_eq!(sel("b.a.com").as_deref(), Some("*.a.com"));
        assert_eq!(sel("a.com").as_deref(), Some("*"));
        let mut b = PortBuilder::new("s");
        b.vhost(&host("*.a.com"));
        assert!(b.build().select("a.com").is_none());
    }
}
