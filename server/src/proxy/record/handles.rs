//! Metric handles counted on every request (`tlsgate_requests_total`,
//! `tlsgate_request_duration_seconds`, `tlsgate_authz_total`), found once
//! per worker thread and label set: a labelled lookup hashes every label
//! under a lock (and the host label is one more), which every request would
//! otherwise pay, and a connection's requests repeat their labels.

use std::cell::RefCell;

use prometheus::{Histogram, IntCounter};

use crate::metrics::metrics;

/// Enough for the label sets one thread's connections are serving at
/// once; a miss costs only the lookups this saves.
const ENTRIES: usize = 32;

/// The last `ENTRIES` label sets a thread counted, with their handles,
/// found by a scan: fewer comparisons than one hash of the labels.
struct Recent<E>(Vec<E>);

impl<E> Recent<E> {
    const fn new() -> Self {
        Recent(Vec::new())
    }

    fn get(&mut self, is: impl Fn(&E) -> bool, make: impl FnOnce() -> E) -> &E {
        let at = match self.0.iter().position(is) {
            Some(i) => i,
            None => {
                if self.0.len() >= ENTRIES {
                    self.0.remove(0);
                }
                self.0.push(make());
                self.0.len() - 1
            }
        };
        &self.0[at]
    }
}

/// One request's labels, borrowed. `host` is the Host the client sent when
/// a route matched it (else the label is `-`): the label it becomes is
/// decided once, when the entry is made, and never changes afterwards
/// (`egress::host_label` only ever adds hosts).
pub struct Labels<'a> {
    pub server: &'a str,
    pub host: Option<&'a str>,
    pub route: &'a str,
    pub dest: &'a str,
    pub status: u16,
}

struct Entry {
    server: Box<str>,
    host: Option<Box<str>>,
    route: Box<str>,
    dest: Box<str>,
    status: u16,
    requests: IntCounter,
    duration: Histogram,
}

impl Entry {
    fn is(&self, l: &Labels<'_>) -> bool {
        self.status == l.status
            && *self.route == *l.route
            && self.host.as_deref() == l.host
            && *self.dest == *l.dest
            && *self.server == *l.server
    }
}

struct AuthzEntry {
    policy: Box<str>,
    action: &'static str,
    result: &'static str,
    counter: IntCounter,
}

thread_local! {
    static CACHE: RefCell<Recent<Entry>> = const { RefCell::new(Recent::new()) };
    static AUTHZ: RefCell<Recent<AuthzEntry>> = const { RefCell::new(Recent::new()) };
}

/// Counts one request and observes its duration under `labels`.
pub fn count(labels: &Labels<'_>, seconds: f64) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let e = c.get(|e| e.is(labels), || entry(labels));
        e.requests.inc();
        e.duration.observe(seconds);
    });
}

/// Counts one verdict in `tlsgate_authz_total{policy,action,result}`.
pub fn count_authz(policy: &str, action: &'static str, result: &'static str) {
    AUTHZ.with(|c| {
        let mut c = c.borrow_mut();
        let e = c.get(
            |e| e.action == action && e.result == result && *e.policy == *policy,
            || AuthzEntry {
                policy: policy.into(),
                action,
                result,
                counter: metrics().authz.with_label_values(&[policy, action, result]),
            },
        );
        e.counter.inc();
    });
}

fn entry(l: &Labels<'_>) -> Entry {
    let m = metrics();
    let host = l
        .host
        .map_or(std::borrow::Cow::Borrowed(super::LABEL_NONE), |h| {
            crate::proxy::egress::host_label(h)
        });
    let mut code = [b'0'; 3];
    let status = super::status_str(l.status, &mut code);
    Entry {
        server: l.server.into(),
        host: l.host.map(Into::into),
        route: l.route.into(),
        dest: l.dest.into(),
        status: l.status,
        requests: m
            .requests
            .with_label_values(&[l.server, &host, l.route, l.dest, status]),
        duration: m.request_duration.with_label_values(&[l.server, l.route]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(server: &str, host: &str, route: &str, dest: &str, status: &str) -> u64 {
        metrics()
            .requests
            .with_label_values(&[server, host, route, dest, status])
            .get()
    }

    fn labels<'a>(
        server: &'a str,
        host: Option<&'a str>,
        route: &'a str,
        status: u16,
    ) -> Labels<'a> {
        Labels {
            server,
            host,
            route,
            dest: "d",
            status,
        }
    }

    #[test]
    fn each_label_set_counts_apart_and_hits_count_too() {
        let s = "handles-test-apart";
        for _ in 0..3 {
            count(&labels(s, Some("a.example"), "r1", 200), 0.001);
        }
        count(&labels(s, Some("a.example"), "r1", 503), 0.001);
        count(&labels(s, Some("b.example"), "r1", 200), 0.001);
        count(&labels(s, Some("a.example"), "r2", 200), 0.001);
        count(&labels(s, None, "r2", 0), 0.001);
        // A client's Host that happens to read "-" is a host like any other.
        count(&labels(s, Some("-"), "r2", 0), 0.001);
        assert_eq!(value(s, "a.example", "r1", "d", "200"), 3);
        assert_eq!(value(s, "a.example", "r1", "d", "503"), 1);
        assert_eq!(value(s, "b.example", "r1", "d", "200"), 1);
        assert_eq!(value(s, "a.example", "r2", "d", "200"), 1);
        assert_eq!(value(s, LABEL, "r2", "d", "0"), 2);
        let h = metrics().request_duration.with_label_values(&[s, "r1"]);
        assert_eq!(h.get_sample_count(), 5);
    }

    #[test]
    fn more_label_sets_than_entries_still_count_every_request() {
        let s = "handles-test-evict";
        let routes: Vec<String> = (0..ENTRIES * 2).map(|i| format!("r{i}")).collect();
        for _ in 0..3 {
            for r in &routes {
                count(&labels(s, Some("h.example"), r, 200), 0.001);
            }
        }
        for r in &routes {
            assert_eq!(value(s, "h.example", r, "d", "200"), 3, "{r}");
        }
        CACHE.with(|c| assert!(c.borrow().0.len() <= ENTRIES));
    }

    #[test]
    fn authz_verdicts_count_under_their_policy_action_and_result() {
        let policies: Vec<String> = (0..ENTRIES + 3)
            .map(|i| format!("handles-test-authz-{i}"))
            .collect();
        for _ in 0..2 {
            for p in &policies {
                count_authz(p, "ALLOW", "allowed");
            }
        }
        count_authz(&policies[0], "DENY", "denied");
        let get = |p: &str, a: &str, r: &str| metrics().authz.with_label_values(&[p, a, r]).get();
        for p in &policies {
            assert_eq!(get(p, "ALLOW", "allowed"), 2, "{p}");
        }
        assert_eq!(get(&policies[0], "DENY", "denied"), 1);
        assert_eq!(get(&policies[1], "DENY", "denied"), 0);
    }

    const LABEL: &str = super::super::LABEL_NONE;
}
