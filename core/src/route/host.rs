//! Virtual hosts of one listener port, and which VirtualService hosts a
//! Gateway server accepts.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{gateway_ref_matches, Gateway, HostPattern, VirtualService};
use crate::names::HostMap;

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
        let mut hosts = HostMap::default();
        for (pattern, vhost) in self.hosts {
            hosts.insert(&pattern, vhost);
        }
        PortTable {
            server: self.server,
            hosts,
            egress: self.egress,
        }
    }
}

/// Virtual hosts of one listener port, arranged for lookup.
#[derive(Debug)]
pub(super) struct PortTable {
    pub server: Arc<str>,
    hosts: HostMap<VirtualHost>,
    /// Host patterns of the egress servers on this port (empty: not egress).
    pub egress: Vec<HostPattern>,
}

impl PortTable {
    pub fn select(&self, host: &str) -> Option<&VirtualHost> {
        self.hosts.select(host)
    }

    /// All virtual hosts, sorted by pattern (for summaries).
    pub fn entries(&self) -> Vec<&VirtualHost> {
        let mut all: Vec<&VirtualHost> = self.hosts.values().collect();
        all.sort_by(|a, b| a.pattern.cmp(&b.pattern));
        all
    }
}

pub(super) use crate::config::names::intersect;

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
