//! A resolved upstream: where requests go (endpoints), how they are spread
//! over them, and how the connection is made (TLS origination, h2).

use std::fmt;
use std::sync::Arc;

use std::time::{Duration, Instant};

use crate::config::{ClientTls, ConnectionPool, HashKey, LbPolicy, OutlierDetection, ProxyVersion};

use super::circuit::{Admission, Circuit, Overflow};
use super::outlier::{Attempt, Outlier};
use super::ring::Ring;
use super::{Balancer, InFlightGuard};

/// One `route[].destination` after ServiceEntry and DestinationRule
/// resolution. Shared (via `Arc`) by every route naming the same host, port
/// and subset, so balancing state is per destination.
#[derive(Debug)]
pub struct Destination {
    /// `host:port` or `host:port/subset`, for logs and metrics.
    pub name: Arc<str>,
    pub host: String,
    /// The service port (what DestinationRule port settings refer to).
    pub port: u16,
    pub subset: Option<String>,
    /// Never empty.
    pub endpoints: Vec<UpstreamAddr>,
    pub lb: LbPolicy,
    /// What `consistentHash` hashes; `Some` exactly when `lb` is
    /// `ConsistentHash`.
    pub hash_key: Option<HashKey>,
    ring: Option<Ring>,
    /// Upstream TLS origination; `None` means plain text (including an
    /// explicit `DISABLE`).
    pub tls: Option<ClientTls>,
    /// The port speaks HTTP/2 (ServiceEntry protocol `HTTP2`/`GRPC`).
    pub h2: bool,
    /// `proxyProtocol`: TCP and passthrough connections to it start with a
    /// PROXY protocol header carrying the client's address.
    pub proxy_protocol: Option<ProxyVersion>,
    pub balancer: Balancer,
    /// `connectionPool` limits; `None` when the rule sets none.
    pub circuit: Option<Arc<Circuit>>,
    /// `connectionPool`'s settings for upstream connections
    /// (`maxRequestsPerConnection`, `idleTimeout`, `tcpKeepalive`).
    pub pool: Option<ConnectionPool>,
    /// `outlierDetection`; `None` when the rule sets none.
    pub outlier: Option<Outlier>,
}

/// [`Destination::passthrough`]'s name.
pub const PASSTHROUGH: &str = "PassthroughCluster";

/// An address to connect to: an IP, or a DNS name resolved at connect time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamAddr {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Everything but the balancing state, as resolution produces it.
#[derive(Debug)]
pub(super) struct DestinationSpec {
    pub host: String,
    pub port: u16,
    pub subset: Option<String>,
    pub endpoints: Vec<UpstreamAddr>,
    pub lb: LbPolicy,
    pub hash_key: Option<HashKey>,
    pub pool: Option<ConnectionPool>,
    pub outlier: Option<OutlierDetection>,
    pub tls: Option<ClientTls>,
    pub h2: bool,
    pub proxy_protocol: Option<ProxyVersion>,
}

impl Destination {
    pub(super) fn new(spec: DestinationSpec) -> Self {
        let name = match &spec.subset {
            Some(s) => format!("{}:{}/{s}", spec.host, spec.port),
            None => format!("{}:{}", spec.host, spec.port),
        };
        Destination {
            name: name.into(),
            balancer: Balancer::new(spec.lb, spec.endpoints.len()),
            ring: spec.hash_key.is_some().then(|| Ring::new(&spec.endpoints)),
            hash_key: spec.hash_key,
            circuit: spec.pool.and_then(|p| {
                let n = |v: Option<u32>| v.map_or(usize::MAX, |v| v as usize);
                // Over HTTP/2 requests share connections: maxConnections
                // does not bound them (Pingora keeps the connections).
                let connections = if spec.h2 { None } else { p.max_connections };
                (connections.is_some() || p.max_requests.is_some()).then(|| {
                    Arc::new(Circuit::new(
                        n(connections),
                        n(p.max_pending),
                        n(p.max_requests),
                    ))
                })
            }),
            pool: spec.pool,
            outlier: spec.outlier.map(|o| Outlier::new(o, spec.endpoints.len())),
            host: spec.host,
            port: spec.port,
            subset: spec.subset,
            endpoints: spec.endpoints,
            lb: spec.lb,
            tls: spec.tls,
            h2: spec.h2,
            proxy_protocol: spec.proxy_protocol,
        }
    }

    /// Istio's `PassthroughCluster`: an unregistered host forwarded as DNS
    /// resolves it (`ALLOW_ANY`), in plain text. Named so in logs and
    /// metrics whatever the host, which keeps label values bounded.
    pub fn passthrough(host: &str, port: u16) -> Destination {
        let endpoints = vec![UpstreamAddr {
            host: host.to_string(),
            port,
        }];
        Destination {
            name: PASSTHROUGH.into(),
            balancer: Balancer::new(LbPolicy::RoundRobin, 1),
            host: host.to_string(),
            port,
            subset: None,
            endpoints,
            lb: LbPolicy::RoundRobin,
            hash_key: None,
            ring: None,
            tls: None,
            h2: false,
            proxy_protocol: None,
            circuit: None,
            pool: None,
            outlier: None,
        }
    }

    /// The endpoint the next request should use, per the load-balancing
    /// policy. With `LEAST_REQUEST`, prefer [`Destination::acquire`] so the
    /// request is counted while in flight.
    pub fn next_endpoint(&self) -> &UpstreamAddr {
        self.endpoint(self.balancer.next_index())
    }

    /// Endpoint number `idx` (wrapping, so any index is valid).
    pub fn endpoint(&self, idx: usize) -> &UpstreamAddr {
        &self.endpoints[idx % self.endpoints.len()]
    }

    /// Counts a request in flight against endpoint `idx` until the guard
    /// is dropped.
    pub fn begin(self: &Arc<Self>, idx: usize) -> InFlightGuard {
        InFlightGuard::new(self.clone(), idx % self.endpoints.len())
    }

    /// `connectionPool.tcp.connectTimeout`, when set.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.pool.and_then(|p| p.connect_timeout)
    }

    /// Chooses an endpoint and counts the request against it.
    pub fn acquire(self: &Arc<Self>) -> InFlightGuard {
        self.acquire_for(None)
    }

    /// Counts what an attempt on endpoint `idx` came to, for outlier
    /// detection; `true` when that ejected the endpoint.
    pub fn report(&self, idx: usize, attempt: Attempt) -> bool {
        self.outlier
            .as_ref()
            .is_some_and(|o| o.report(idx, attempt, Instant::now()))
    }

    /// Endpoints outlier detection has taken out now.
    pub fn ejected(&self) -> Vec<&UpstreamAddr> {
        let now = Instant::now();
        self.outlier.as_ref().map_or_else(Vec::new, |o| {
            o.ejected_now(now)
                .into_iter()
                .map(|i| self.endpoint(i))
                .collect()
        })
    }

    /// The endpoint for the next request: by `key` on the ring, else by the
    /// balancer, skipping endpoints outlier detection has taken out.
    fn pick(&self, key: Option<&[u8]>) -> usize {
        let hashed = self.ring.as_ref().zip(key);
        let first = match hashed {
            Some((ring, key)) => ring.pick(key),
            None => self.balancer.next_index(),
        };
        let Some(o) = &self.outlier else {
            return first;
        };
        let now = Instant::now();
        if !o.is_ejected(first, now) || !o.applies(now) {
            return first;
        }
        let usable = |i: usize| !o.is_ejected(i, now);
        if let Some((ring, key)) = hashed {
            return ring.pick_where(key, usable);
        }
        let n = self.endpoints.len();
        (0..n)
            .map(|_| self.balancer.next_index())
            .find(|i| usable(*i))
            .or_else(|| (0..n).find(|i| usable(*i)))
            .unwrap_or(first)
    }

    /// A place under the destination's `connectionPool` limits (`None`:
    /// it has none), or why there is none.
    pub fn admit(&self) -> Result<Option<Admission>, Overflow> {
        self.circuit.as_ref().map(|c| c.admit()).transpose()
    }

    /// [`Destination::acquire`], by `key` on the consistent-hash ring when
    /// the policy is `consistentHash` and the request carries its key.
    pub fn acquire_for(self: &Arc<Self>, key: Option<&[u8]>) -> InFlightGuard {
        self.begin(self.pick(key))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::destination_with;
    use super::*;

    #[test]
    fn names_and_addresses() {
        let d = destination_with(LbPolicy::RoundRobin, 2);
        assert_eq!(&*d.name, "svc:80");
        let ip6 = UpstreamAddr {
            host: "::1".into(),
            port: 8080,
        };
        assert_eq!(ip6.to_string(), "[::1]:8080");
        assert_eq!(d.endpoint(3).port, 2, "indices wrap");
    }

    #[test]
    fn guard_counts_until_dropped() {
        let d = destination_with(LbPolicy::LeastRequest, 3);
        let g1 = d.begin(2);
        let g2 = d.begin(2);
        assert_eq!(d.balancer.in_flight(2), 2);
        drop(g1);
        assert_eq!(d.balancer.in_flight(2), 1);
        assert_eq!(g2.endpoint().port, 3);
    }

    /// Balancing skips an ejected endpoint, by round robin and on the
    /// consistent-hash ring alike (its keys go to the next endpoint on the
    /// ring, and come back when it does).
    #[test]
    fn ejected_endpoints_get_no_requests() {
        let outlier = OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway: 0,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 100,
            min_health_percent: 0,
        };
        for hash_key in [None, Some(HashKey::SourceIp)] {
            let d = Arc::new(Destination::new(DestinationSpec {
                host: "svc".into(),
                port: 80,
                subset: None,
                endpoints: (1..=3)
                    .map(|p| UpstreamAddr {
                        host: "svc".into(),
                        port: p,
                    })
                    .collect(),
                lb: LbPolicy::RoundRobin,
                hash_key: hash_key.clone(),
                pool: None,
                outlier: Some(outlier),
                tls: None,
                h2: false,
                proxy_protocol: None,
            }));
            let keys: Vec<String> = (0..60).map(|k| format!("10.0.0.{k}")).collect();
            let pick = |k: &str| d.acquire_for(Some(k.as_bytes())).index();
            let before: Vec<usize> = keys.iter().map(|k| pick(k)).collect();
            for _ in 0..5 {
                d.report(1, Attempt::Failed);
            }
            assert_eq!(d.ejected().len(), 1);
            let during: Vec<usize> = keys.iter().map(|k| pick(k)).collect();
            assert!(!during.contains(&1), "{hash_key:?}: {during:?}");
            if hash_key.is_some() {
                for (b, a) in before.iter().zip(&during) {
                    assert!(b == a || *b == 1, "only the ejected endpoint's keys move");
                }
            }
        }
    }
}
