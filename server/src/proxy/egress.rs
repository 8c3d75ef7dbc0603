//! Egress helpers for the engines: loop detection at connect time, and
//! bounded host labels for what `outboundTrafficPolicy` decided (the
//! decision itself is `decide.rs`'s).

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{OnceLock, RwLock};

/// Would a connection to `addr` come back to the gateway itself: the
/// listener at `local`, or the admin port at `admin`? `ALLOW_ANY` lets a
/// client name any host: its own port would loop, each hop opening another
/// connection to itself, and the admin port would see the request coming
/// from loopback (which `POST /reload` trusts).
pub fn loops_back(addr: SocketAddr, local: Option<SocketAddr>, admin: SocketAddr) -> bool {
    let same = |own: SocketAddr| {
        let (a, l) = (addr.ip(), own.ip());
        addr.port() == own.port()
            && (a == l || l.is_unspecified() || (a.is_loopback() && l.is_loopback()))
    };
    local.is_some_and(same) || same(admin)
}

/// Most distinct host label values; later hosts count as `other`.
const HOST_LABELS: usize = 1000;

/// `host` as a metric label. Hosts here are chosen by clients, so each new
/// one would be a new time series: the first [`HOST_LABELS`] are kept, the
/// rest share the label `other`. Known hosts (nearly every request) take a
/// shared read lock and allocate nothing.
pub fn host_label(host: &str) -> Cow<'_, str> {
    static SEEN: OnceLock<RwLock<HashSet<Box<str>>>> = OnceLock::new();
    let seen = SEEN.get_or_init(|| RwLock::new(HashSet::new()));
    if seen
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .contains(host)
    {
        return Cow::Borrowed(host);
    }
    let mut seen = seen.write().unwrap_or_else(|p| p.into_inner());
    capped(&mut seen, host, HOST_LABELS)
}

fn capped<'h>(seen: &mut HashSet<Box<str>>, host: &'h str, cap: usize) -> Cow<'h, str> {
    if seen.contains(host) {
        return Cow::Borrowed(host);
    }
    if seen.len() < cap {
        seen.insert(host.into());
        return Cow::Borrowed(host);
    }
    Cow::Borrowed("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_labels_are_capped() {
        let mut seen = HashSet::new();
        assert_eq!(capped(&mut seen, "a.test", 2), "a.test");
        assert_eq!(capped(&mut seen, "b.test", 2), "b.test");
        assert_eq!(capped(&mut seen, "c.test", 2), "other");
        assert_eq!(capped(&mut seen, "a.test", 2), "a.test", "known hosts stay");
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn loops_are_recognised() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let admin = a("127.0.0.1:15021");
        assert!(loops_back(
            a("127.0.0.1:8080"),
            Some(a("127.0.0.1:8080")),
            admin
        ));
        assert!(loops_back(
            a("127.0.0.2:8080"),
            Some(a("127.0.0.1:8080")),
            admin
        ));
        assert!(loops_back(
            a("10.0.0.1:8080"),
            Some(a("0.0.0.0:8080")),
            admin
        ));
        assert!(!loops_back(
            a("127.0.0.1:8081"),
            Some(a("127.0.0.1:8080")),
            admin
        ));
        assert!(!loops_back(
            a("10.0.0.1:8080"),
            Some(a("127.0.0.1:8080")),
            admin
        ));
        assert!(!loops_back(a("127.0.0.1:8080"), None, admin));
        assert!(
            loops_back(a("127.0.0.1:15021"), None, admin),
            "the admin port"
        );
        assert!(loops_back(a("10.1.1.1:15021"), None, a("0.0.0.0:15021")));
    }
}
