//! One compiled `http[]` route: its match conditions and weighted choice of
//! destination.

use std::fmt::Write as _;
use std::sync::Arc;

use http::HeaderMap;
use rand::Rng;

use crate::config::{DocId, HttpRoute, RouteAction, RouteMatch, StringMatch};

use super::Destination;

#[derive(Debug)]
pub struct CompiledRoute {
    /// `<virtualservice>/<route name>`, for logs and metrics.
    pub id: Arc<str>,
    pub vs: DocId,
    pub route: HttpRoute,
    /// Resolved destinations of a `Forward` action, in route order; empty
    /// for redirects and direct responses.
    pub destinations: Vec<Arc<Destination>>,
    /// Weight of each destination (same order), summing to 100.
    pub weights: Vec<u32>,
    /// Running sums of `weights`, for the weighted pick.
    cumulative: Vec<u32>,
}

impl CompiledRoute {
    pub(super) fn new(
        vs: &DocId,
        route: HttpRoute,
        destinations: Vec<(Arc<Destination>, u32)>,
    ) -> Self {
        let mut sum = 0;
        let cumulative = destinations
            .iter()
            .map(|(_, w)| {
                sum += w;
                sum
            })
            .collect();
        let (destinations, weights) = destinations.into_iter().unzip();
        CompiledRoute {
            id: format!("{}/{}", vs.name, route.name).into(),
            vs: vs.clone(),
            route,
            destinations,
            weights,
            cumulative,
        }
    }

    /// The same route and destinations (sharing balancing state) with
    /// other match conditions.
    pub(super) fn with_matches(&self, matches: Vec<RouteMatch>) -> CompiledRoute {
        let mut route = self.route.clone();
        route.matches = matches;
        CompiledRoute {
            id: self.id.clone(),
            vs: self.vs.clone(),
            route,
            destinations: self.destinations.clone(),
            weights: self.weights.clone(),
            cumulative: self.cumulative.clone(),
        }
    }

    /// `uri` is the path without its query string.
    pub fn matches<H: HeaderSource + ?Sized>(&self, port: u16, uri: &str, headers: &H) -> bool {
        self.route.matches.is_empty()
            || self
                .route
                .matches
                .iter()
                .any(|m| match_one(m, port, uri, headers))
    }

    /// A destination chosen by weight; `None` when the route forwards
    /// nowhere (redirect, direct response) or every weight is 0.
    pub fn pick(&self) -> Option<&Arc<Destination>> {
        self.pick_with(&mut rand::thread_rng())
    }

    /// [`CompiledRoute::pick`] drawing from `rng` (tests draw from a seed).
    pub fn pick_with(&self, rng: &mut dyn rand::RngCore) -> Option<&Arc<Destination>> {
        if let [only] = self.destinations.as_slice() {
            return Some(only);
        }
        let total = *self.cumulative.last()?;
        if total == 0 {
            return None;
        }
        let ticket = rng.gen_range(0..total);
        let i = self.cumulative.partition_point(|&c| c <= ticket);
        self.destinations.get(i)
    }

    /// `[<matches>] -> <action>`, for `tlsgate check`.
    pub(super) fn describe(&self) -> String {
        let mut s = self.id.to_string();
        if !self.route.matches.is_empty() {
            let alts: Vec<String> = self.route.matches.iter().map(describe_match).collect();
            let _ = write!(s, " [{}]", alts.join(" | "));
        }
        s.push_str(" -> ");
        match &self.route.action {
            RouteAction::Forward(_) => {
                let dests: Vec<String> = self
                    .destinations
                    .iter()
                    .zip(&self.weights)
                    .map(|(d, w)| format!("{} {w}%", d.name))
                    .collect();
                s.push_str(&dests.join(", "));
            }
            RouteAction::Redirect(r) => {
                let _ = write!(s, "redirect {}", r.code);
                let target = [&r.scheme, &r.authority, &r.uri];
                for part in target.into_iter().flatten() {
                    let _ = write!(s, " {part}");
                }
            }
            RouteAction::DirectResponse { status, .. } => {
                let _ = write!(s, "direct response {status}");
            }
        }
        s
    }
}

fn match_one<H: HeaderSource + ?Sized>(m: &RouteMatch, port: u16, uri: &str, headers: &H) -> bool {
    m.port.is_none_or(|p| p == port)
        && m.uri.as_ref().is_none_or(|u| u.matches(uri))
        && m.headers.iter().all(|(name, want)| {
            // A header that is absent (or not valid text) fails its match.
            headers.first(name).is_some_and(|v| want.matches(v))
        })
}

/// Request headers as route matches read them.
pub trait HeaderSource {
    /// The first value of header `name` (lower case), if it is text.
    fn first(&self, name: &str) -> Option<&str>;

    /// Every text value of header `name` (HTTP/2 sends each cookie as a
    /// header of its own).
    fn all(&self, name: &str) -> Vec<&str> {
        self.first(name).into_iter().collect()
    }

    /// Every value of header `name` as sent, text or not: where a value
    /// that is not text must still count (an `X-Forwarded-For` line a
    /// proxy appended to).
    fn all_bytes(&self, name: &str) -> Vec<&[u8]> {
        self.all(name).into_iter().map(str::as_bytes).collect()
    }
}

impl HeaderSource for HeaderMap {
    fn first(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    fn all_bytes(&self, name: &str) -> Vec<&[u8]> {
        self.get_all(name).iter().map(|v| v.as_bytes()).collect()
    }
}

fn describe_match(m: &RouteMatch) -> String {
    let mut parts = Vec::new();
    if let Some(u) = &m.uri {
        parts.push(format!("uri {}", describe_string(u)));
    }
    for (name, v) in &m.headers {
        parts.push(format!("header {name} {}", describe_string(v)));
    }
    if let Some(p) = m.port {
        parts.push(format!("port {p}"));
    }
    parts.join(", ")
}

fn describe_string(m: &StringMatch) -> String {
    match m {
        StringMatch::Exact(e) => format!("exact {e}"),
        StringMatch::Prefix(p) => format!("prefix {p}"),
        StringMatch::Regex(r) => format!("regex {}", r.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::config::RouteMatch;
    use http::HeaderValue;

    fn route_with(matches: Vec<RouteMatch>) -> CompiledRoute {
        let mut r = fwd("r", "a", 80);
        r.matches = matches;
        CompiledRoute::new(&doc("VirtualService", "v"), r, vec![])
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn empty_matches_match_everything() {
        assert!(route_with(vec![]).matches(1, "/x", &HeaderMap::new()));
    }

    #[test]
    fn uri_exact_prefix_regex() {
        let none = HeaderMap::new();
        let r = route_with(vec![uri(exact("/a"))]);
        assert!(r.matches(80, "/a", &none));
        assert!(!r.matches(80, "/a/", &none));
        let r = route_with(vec![uri(prefix("/api"))]);
        assert!(r.matches(80, "/api", &none));
        assert!(r.matches(80, "/api/v1", &none));
        assert!(!r.matches(80, "/ap", &none));
        let r = route_with(vec![uri(regex("/v[0-9]+/.*"))]);
        assert!(r.matches(80, "/v12/x", &none));
        assert!(!r.matches(80, "/x/v12/x", &none), "regex is anchored");
    }

    #[test]
    fn header_exact_prefix_regex_and_missing() {
        let m = RouteMatch {
            headers: vec![
                ("end-user".into(), exact("jason")),
                ("x-version".into(), prefix("v2")),
                ("x-region".into(), regex("eu-[a-z]+")),
            ],
            ..Default::default()
        };
        let r = route_with(vec![m]);
        let ok = [
            ("end-user", "jason"),
            ("x-version", "v2.1"),
            ("x-region", "eu-west"),
        ];
        assert!(r.matches(80, "/", &headers(&ok)));
        let wrong = [
            ("end-user", "jason"),
            ("x-version", "v1"),
            ("x-region", "eu-west"),
        ];
        assert!(!r.matches(80, "/", &headers(&wrong)));
        let bad_regex = [
            ("end-user", "jason"),
            ("x-version", "v2"),
            ("x-region", "us-east"),
        ];
        assert!(!r.matches(80, "/", &headers(&bad_regex)));
        let missing = [("end-user", "jason"), ("x-version", "v2")];
        assert!(!r.matches(80, "/", &headers(&missing)));
    }

    #[test]
    fn port_match_uses_listener_port() {
        let m = RouteMatch {
            port: Some(8080),
            ..Default::default()
        };
        let r = route_with(vec![m]);
        assert!(r.matches(8080, "/", &HeaderMap::new()));
        assert!(!r.matches(80, "/", &HeaderMap::new()));
    }

    #[test]
    fn any_match_of_several_suffices_all_conditions_of_one_needed() {
        let both = RouteMatch {
            uri: Some(prefix("/a")),
            port: Some(80),
            ..Default::default()
        };
        let r = route_with(vec![both, uri(exact("/b"))]);
        let none = HeaderMap::new();
        assert!(r.matches(80, "/a1", &none));
        assert!(!r.matches(81, "/a1", &none));
        assert!(r.matches(81, "/b", &none));
    }

    #[test]
    fn weighted_split_is_roughly_even() {
        let (a, b) = (test_destination("a"), test_destination("b"));
        let r = CompiledRoute::new(
            &doc("VirtualService", "v"),
            fwd("r", "a", 80),
            vec![(a.clone(), 50), (b, 50)],
        );
        let hits = (0..2000)
            .filter(|_| Arc::ptr_eq(r.pick().unwrap(), &a))
            .count();
        assert!((800..=1200).contains(&hits), "{hits} of 2000 went to a");
    }

    #[test]
    fn weights_are_respected_at_the_edges() {
        let (a, b) = (test_destination("a"), test_destination("b"));
        let r = CompiledRoute::new(
            &doc("VirtualService", "v"),
            fwd("r", "a", 80),
            vec![(a, 0), (b.clone(), 100)],
        );
        for _ in 0..200 {
            assert!(Arc::ptr_eq(r.pick().unwrap(), &b));
        }
    }

    #[test]
    fn single_destination_is_returned_without_rand() {
        let a = test_destination("a");
        let r = CompiledRoute::new(
            &doc("VirtualService", "v"),
            fwd("r", "a", 80),
            vec![(a.clone(), 100)],
        );
        assert!(Arc::ptr_eq(r.pick().unwrap(), &a));
        let none = CompiledRoute::new(&doc("VirtualService", "v"), fwd("r", "a", 80), vec![]);
        assert!(none.pick().is_none());
    }
}
