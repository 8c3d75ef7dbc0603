//! A small DNS cache for upstream host names.
//!
//! Resolution goes through the system resolver (`getaddrinfo` on a blocking
//! thread), which is slow and may be rate limited, so answers are kept for a
//! fixed TTL (the system resolver does not tell us the record's own TTL) and
//! re-resolved on the first use after that. Failures are cached briefly too,
//! so a burst of requests to a dead name does not become a burst of
//! lookups. The cache is bounded: when full, expired entries go first, then
//! the entry closest to expiry.
//!
//! IPv4 is preferred, as Istio's default `V4_ONLY` lookup family does: a name
//! such as `localhost` often resolves to `::1` first while the service only
//! listens on 127.0.0.1.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// How long an answer is used before it is resolved again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// How long a failure is remembered.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Most names kept at once.
pub const DEFAULT_CAPACITY: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("cannot resolve '{host}': {reason}")]
    Failed { host: String, reason: String },
    #[error("'{host}' has no address")]
    NoAddress { host: String },
}

/// Where answers come from; the system resolver outside tests.
#[async_trait]
pub trait Lookup: Send + Sync {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

/// `getaddrinfo` through tokio.
pub struct SystemLookup;

#[async_trait]
impl Lookup for SystemLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        let addrs = tokio::net::lookup_host((host, 0)).await?;
        Ok(addrs.map(|a| a.ip()).collect())
    }
}

type Answer = Result<Arc<[IpAddr]>, DnsError>;

struct Entry {
    answer: Answer,
    expires: Instant,
}

pub struct DnsCache {
    lookup: Box<dyn Lookup>,
    ttl: Duration,
    negative_ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

impl DnsCache {
    pub fn new(lookup: Box<dyn Lookup>, ttl: Duration, capacity: usize) -> Self {
        DnsCache {
            lookup,
            ttl,
            negative_ttl: NEGATIVE_TTL.min(ttl),
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `host:port` as one socket address: an IP literal as is, a name
    /// through the cache (IPv4 preferred).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, DnsError> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let ips = self.addresses(host).await?;
        let ip = ips
            .iter()
            .find(|ip| ip.is_ipv4())
            .or_else(|| ips.first())
            .copied()
            .ok_or_else(|| DnsError::NoAddress {
                host: host.to_string(),
            })?;
        Ok(SocketAddr::new(ip, port))
    }

    /// Every address of `host`, from the cache while fresh.
    pub async fn addresses(&self, host: &str) -> Answer {
        let key = host.to_ascii_lowercase();
        let now = Instant::now();
        if let Some(e) = self.lock().get(&key) {
            if e.expires > now {
                return e.answer.clone();
            }
        }
        // Not under the lock: a lookup can take seconds. Two concurrent
        // misses both resolve; the second answer simply wins.
        let answer: Answer = match self.lookup.lookup(&key).await {
            Ok(ips) if ips.is_empty() => Err(DnsError::NoAddress { host: key.clone() }),
            Ok(ips) => Ok(ips.into()),
            Err(e) => Err(DnsError::Failed {
                host: key.clone(),
                reason: e.to_string(),
            }),
        };
        let ttl = if answer.is_ok() {
            self.ttl
        } else {
            self.negative_ttl
        };
        self.insert(
            key,
            Entry {
                answer: answer.clone(),
                expires: Instant::now() + ttl,
            },
        );
        answer
    }

    fn insert(&self, key: String, entry: Entry) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let now = Instant::now();
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.capacity {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key, entry);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic elsewhere while holding the lock leaves a valid map.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The process-wide cache used for upstream connections.
pub fn cache() -> &'static DnsCache {
    static CACHE: OnceLock<DnsCache> = OnceLock::new();
    CACHE.get_or_init(|| DnsCache::new(Box::new(SystemLookup), DEFAULT_TTL, DEFAULT_CAPACITY))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Answers from a table and counts lookups.
    struct Fake {
        calls: Arc<AtomicUsize>,
        table: HashMap<&'static str, Vec<IpAddr>>,
    }

    #[async_trait]
    impl Lookup for Fake {
        async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.table
                .get(host)
                .cloned()
                .ok_or_else(|| io::Error::other("no such host"))
        }
    }

    fn cache(ttl: Duration, capacity: usize) -> (DnsCache, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let table = HashMap::from([
            (
                "a.test",
                vec!["::1".parse().unwrap(), "10.0.0.1".parse().unwrap()],
            ),
            ("b.test", vec!["10.0.0.2".parse().unwrap()]),
            ("c.test", vec!["10.0.0.3".parse().unwrap()]),
            ("v6.test", vec!["::2".parse().unwrap()]),
            ("empty.test", vec![]),
        ]);
        let fake = Fake {
            calls: calls.clone(),
            table,
        };
        (DnsCache::new(Box::new(fake), ttl, capacity), calls)
    }

    #[tokio::test]
    async fn answers_are_cached_until_the_ttl_then_refreshed() {
        let (c, calls) = cache(Duration::from_millis(100), 8);
        let a = c.resolve("a.test", 80).await.unwrap();
        assert_eq!(a, "10.0.0.1:80".parse().unwrap(), "IPv4 preferred");
        c.resolve("A.test", 443).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "second use from the cache");
        tokio::time::sleep(Duration::from_millis(150)).await;
        c.resolve("a.test", 80).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "expired entry re-resolved");
    }

    #[tokio::test]
    async fn failures_name_the_host_and_are_cached_briefly() {
        let (c, calls) = cache(Duration::from_secs(30), 8);
        let e = c.resolve("nope.test", 80).await.unwrap_err();
        assert!(e.to_string().contains("'nope.test'"), "{e}");
        c.resolve("nope.test", 80).await.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let e = c.resolve("empty.test", 80).await.unwrap_err();
        assert_eq!(
            e,
            DnsError::NoAddress {
                host: "empty.test".into()
            }
        );
    }

    #[tokio::test]
    async fn literals_bypass_the_cache_and_v6_only_names_work() {
        let (c, calls) = cache(Duration::from_secs(30), 8);
        assert_eq!(
            c.resolve("[::1]", 8080).await.unwrap(),
            "[::1]:8080".parse().unwrap()
        );
        assert_eq!(
            c.resolve("127.0.0.1", 1).await.unwrap(),
            "127.0.0.1:1".parse().unwrap()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert!(c.resolve("v6.test", 80).await.unwrap().is_ipv6());
    }

    #[tokio::test]
    async fn capacity_is_a_bound() {
        let (c, _) = cache(Duration::from_secs(30), 2);
        for h in ["a.test", "b.test", "c.test"] {
            c.resolve(h, 80).await.unwrap();
        }
        assert_eq!(c.len(), 2);
        // The newest answer is the one kept.
        c.resolve("c.test", 80).await.unwrap();
        assert_eq!(c.len(), 2);
    }
}
