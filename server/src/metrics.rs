//! Prometheus metrics, registered once in a private registry.
//!
//! A private registry (not prometheus' global default) keeps unit tests and
//! `/metrics` free of anything a dependency might register.

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// server, host, route, destination, code
    pub requests: IntCounterVec,
    /// server, route
    pub request_duration: HistogramVec,
    /// listener, sni, reason
    pub handshake_failures: IntCounterVec,
    /// listener, version, resumed ("true"/"false")
    pub handshakes: IntCounterVec,
    /// result: applied / unchanged / error
    pub reloads: IntCounterVec,
    /// credential, result: applied / refused
    pub credential_reloads: IntCounterVec,
    /// Reloads with a change that only a restart applies.
    pub needs_restart: IntCounter,
    pub generation: IntGauge,
    /// What the configuration now serving says that is not applied.
    pub config_warnings: IntGauge,
    /// credential
    pub credential_expiry: prometheus::IntGaugeVec,
    pub credential_expiring: prometheus::IntGaugeVec,
    pub crl_next_update: prometheus::IntGaugeVec,
    /// credential, result: every fetch of a CRL URL a credential names
    pub crl_fetch: IntCounterVec,
    /// credential: client certificates refused as listed in a CRL
    pub client_cert_revoked: IntCounterVec,
    /// credential: client certificates accepted on a stale CRL (`failOpen`)
    pub crl_stale_accepted: IntCounterVec,
    /// credential, result (stapled, stale): OCSP responses asked for
    pub ocsp_staples: IntCounterVec,
    /// credential, result: fetches from a certificate's OCSP responder
    pub ocsp_fetch: IntCounterVec,
    /// key_age (0 current, 1, 2+, unknown): tickets presented, by the
    /// age of the key that encrypted them
    pub ticket_keys: IntCounterVec,
    /// credential, result (hit, miss, evicted): the verified client
    /// chains rustls listeners remember (`clientCertificateCache`)
    pub client_chain_cache: IntCounterVec,
    /// credential: the chains remembered now, by all its verifiers
    pub client_chain_cache_entries: prometheus::IntGaugeVec,
    /// TLS 1.2 sessions kept by id on rustls listeners, and their bytes
    /// (`limits.tlsSessionCacheBytes`)
    pub tls_session_cache_entries: IntGauge,
    pub tls_session_cache_bytes: IntGauge,
    /// Sessions dropped before their time to make room
    pub tls_session_cache_evictions: IntCounter,
    /// credential, certificate: nextUpdate of the OCSP response to staple
    pub ocsp_next_update: prometheus::IntGaugeVec,
    /// host (capped, see proxy/egress.rs): refused by REGISTRY_ONLY
    pub outbound_blocked: IntCounterVec,
    /// host (capped): forwarded by ALLOW_ANY to an unregistered host
    pub outbound_passthrough: IntCounterVec,
    /// destination, reason: upstream connect/TLS failures (proxy/failure.rs)
    pub upstream_tls_failures: IntCounterVec,
    /// Requests refused by a destination's `connectionPool` limits.
    pub upstream_overflow: IntCounterVec,
    /// Endpoints taken out by `outlierDetection`.
    pub outlier_ejections: IntCounterVec,
    /// What the direct HTTP/1.1 path did (proxy/direct.rs).
    pub direct: DirectCounters,
    /// phase: a deadline of `spec.timeouts` that fired (config/limits.rs)
    pub timeouts: IntCounterVec,
    /// reason: HTTP requests refused before routing (proxy/direct/gate.rs)
    pub http_refused: IntCounterVec,
    /// reason: HTTP/2 connections we ended with GOAWAY (proxy/h2conn.rs)
    pub h2_goaway: IntCounterVec,
    /// by: client / server
    pub h2_resets: IntCounterVec,
    /// reason: connections closed at accept (listen.rs)
    pub connections_refused: IntCounterVec,
    pub connections_open: IntGauge,
    /// Bytes held by unfinished HTTP/1.1 request heads.
    pub request_head_bytes: IntGauge,
    /// server, sni, destination, result: relayed connections (passthrough,
    /// TCP) when they end
    pub tcp_connections: IntCounterVec,
    /// server, destination, direction (`in` from the client, `out` to it)
    pub tcp_bytes: IntCounterVec,
    /// server, destination
    pub tcp_duration: HistogramVec,
    /// result: what PROXY protocol headers said (`client`, `local`, `absent`)
    pub proxy_protocol: IntCounterVec,
    /// policy, action, result: AuthorizationPolicy verdicts
    pub authz: IntCounterVec,
}

/// `tlsgate_direct_path_total{outcome}`, resolved once: these count on
/// every request.
pub struct DirectCounters {
    /// Served on the direct path.
    pub served: IntCounter,
    /// Handed to Pingora's proxy: not a GET/HEAD without body, h1.1,
    /// origin-form, one Host.
    pub handoff_request: IntCounter,
    /// Handed over because routing does not forward it directly (a
    /// refusal, redirect, direct response, h2 upstream, DNS failure...).
    pub handoff_route: IntCounter,
    /// Handed over because no upstream connection could be made, or the
    /// upstream refused the TLS session before reading the request.
    pub handoff_upstream: IntCounter,
    /// Answered 502: the upstream's response is not one relayed as is
    /// (unparsable, two framings, a 101 nobody asked for).
    pub bad_response: IntCounter,
    /// Sent again on a new connection after a pooled one went stale.
    pub stale_retry: IntCounter,
}

fn counter(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    reg.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let requests = counter(
            &registry,
            "tlsgate_requests_total",
            "HTTP requests answered, by gateway server, host, route, destination and status code",
            &["server", "host", "route", "destination", "code"],
        );
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "tlsgate_request_duration_seconds",
                "Time from request header to response end",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["server", "route"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(request_duration.clone()))
            .expect("metric registered once");
        let handshake_failures = counter(
            &registry,
            "tlsgate_tls_handshake_failures_total",
            "TLS handshakes refused or failed, by listener, SNI and reason class",
            &["listener", "sni", "reason"],
        );
        let handshakes = counter(
            &registry,
            "tlsgate_tls_handshakes_total",
            "TLS handshakes completed, by listener, protocol version and resumption",
            &["listener", "version", "resumed"],
        );
        let reloads = counter(
            &registry,
            "tlsgate_reloads_total",
            "Configuration and credential reloads, by result",
            &["result"],
        );
        let credential_reloads = counter(
            &registry,
            "tlsgate_credential_reloads_total",
            "Credential changes applied or refused (last good kept), by credential",
            &["credential", "result"],
        );
        let needs_restart = IntCounter::new(
            "tlsgate_reload_needs_restart_total",
            "Reloads that carried a change only a restart applies (listeners, admin address)",
        )
        .expect("valid counter");
        registry
            .register(Box::new(needs_restart.clone()))
            .expect("metric registered once");
        let generation = IntGauge::new(
            "tlsgate_runtime_generation",
            "Generation of the runtime configuration now serving",
        )
        .expect("valid gauge");
        registry
            .register(Box::new(generation.clone()))
            .expect("metric registered once");
        let config_warnings = IntGauge::new(
            "tlsgate_config_warnings",
            "Fields and documents of the configuration now serving that are ignored (see /config_dump)",
        )
        .expect("valid gauge");
        registry
            .register(Box::new(config_warnings.clone()))
            .expect("metric registered once");
        let credential_expiry = prometheus::IntGaugeVec::new(
            Opts::new(
                "tlsgate_credential_expiry_timestamp_seconds",
                "notAfter of each loaded credential's leaf certificate, as a Unix time",
            ),
            &["credential"],
        )
        .expect("valid gauge");
        registry
            .register(Box::new(credential_expiry.clone()))
            .expect("metric registered once");
        let credential_expiring = prometheus::IntGaugeVec::new(
            Opts::new(
                "tlsgate_credential_expiring_soon",
                "1 when a loaded credential's leaf certificate expires within 14 days (or has)",
            ),
            &["credential"],
        )
        .expect("valid gauge");
        registry
            .register(Box::new(credential_expiring.clone()))
            .expect("metric registered once");
        let crl_next_update = prometheus::IntGaugeVec::new(
            Opts::new(
                "tlsgate_crl_next_update_timestamp_seconds",
                "nextUpdate of each CRL of a credential's client CA bundle, as a Unix time: \
                 after it, every certificate of that issuer is refused",
            ),
            &["credential", "issuer"],
        )
        .expect("valid gauge");
        registry
            .register(Box::new(crl_next_update.clone()))
            .expect("metric registered once");
        let crl_fetch = counter(
            &registry,
            "tlsgate_crl_fetch_total",
            "Fetches of a credential's CRL URLs, by result: ok, unchanged, or why it was refused \
             (connect, http_status, timeout, too_large, parse, bad_signature, older, ...)",
            &["credential", "result"],
        );
        let client_cert_revoked = counter(
            &registry,
            "tlsgate_client_cert_revoked_total",
            "Client certificates refused because a CRL of the credential lists them",
            &["credential"],
        );
        let crl_stale_accepted = counter(
            &registry,
            "tlsgate_crl_stale_accepted_total",
            "Client certificates accepted although their issuer's CRL is past nextUpdate \
             (staleCrl: failOpen)",
            &["credential"],
        );
        let ocsp_staples = counter(
            &registry,
            "tlsgate_ocsp_staples_total",
            "Handshakes whose client asked for OCSP, by what the gateway did: stapled, or \
             stale (the response is past nextUpdate and was not sent)",
            &["credential", "result"],
        );
        let ocsp_fetch = counter(
            &registry,
            "tlsgate_ocsp_fetch_total",
            "Fetches of a served certificate's OCSP response from its responder (ocspStapling.fetch), \
             by result: ok, or why it was not used",
            &["credential", "result"],
        );
        let ticket_keys = counter(
            &registry,
            "tlsgate_tls_ticket_keys_total",
            "TLS session tickets presented, by the age of the key that encrypted them: 0 the \
             current key, 1 the one before, 2+ older, unknown (no key listed: a full handshake)",
            &["key_age"],
        );
        let client_chain_cache = counter(
            &registry,
            "tlsgate_client_chain_cache_total",
            "Client certificate chains on rustls listeners, by the client CA credential: hit \
             (verified before, signatures not checked again), miss (verified in full), \
             evicted (forgotten to make room; clientCertificateCache.entries)",
            &["credential", "result"],
        );
        let client_chain_cache_entries = prometheus::IntGaugeVec::new(
            Opts::new(
                "tlsgate_client_chain_cache_entries",
                "Verified client chains remembered now on rustls listeners, by client CA \
                 credential (clientCertificateCache.entries per server policy)",
            ),
            &["credential"],
        )
        .expect("valid gauge");
        registry
            .register(Box::new(client_chain_cache_entries.clone()))
            .expect("metric registered once");
        let tls_session_cache_evictions = IntCounter::new(
            "tlsgate_tls_session_cache_evictions_total",
            "TLS 1.2 sessions dropped before their lifetime ended to make room \
             (limits.tlsSessionCacheBytes)",
        )
        .expect("valid counter");
        registry
            .register(Box::new(tls_session_cache_evictions.clone()))
            .expect("metric registered once");
        let ocsp_next_update = prometheus::IntGaugeVec::new(
            Opts::new(
                "tlsgate_ocsp_next_update_timestamp_seconds",
                "nextUpdate of each served certificate's OCSP response, as a Unix time: \
                 after it, the response is no longer stapled",
            ),
            &["credential", "certificate"],
        )
        .expect("valid gauge");
        registry
            .register(Box::new(ocsp_next_update.clone()))
            .expect("metric registered once");
        let outbound_blocked = counter(
            &registry,
            "tlsgate_outbound_blocked_total",
            "Egress requests refused by outboundTrafficPolicy REGISTRY_ONLY, by host",
            &["host"],
        );
        let outbound_passthrough = counter(
            &registry,
            "tlsgate_outbound_passthrough_total",
            "Egress requests to unregistered hosts forwarded by ALLOW_ANY, by host",
            &["host"],
        );
        let upstream_tls_failures = counter(
            &registry,
            "tlsgate_upstream_tls_failures_total",
            "Requests failed by an upstream TLS or connect error, by destination and reason",
            &["destination", "reason"],
        );
        let upstream_overflow = counter(
            &registry,
            "tlsgate_upstream_overflow_total",
            "Requests answered 503 because their destination's connectionPool limits were full, \
             by destination and reason (pending: the queue was full; pending_timeout: waited \
             timeouts.upstreamPending)",
            &["destination", "reason"],
        );
        let outlier_ejections = counter(
            &registry,
            "tlsgate_outlier_ejections_total",
            "Endpoints taken out of balancing by outlierDetection, by destination",
            &["destination"],
        );
        let path = counter(
            &registry,
            "tlsgate_direct_path_total",
            "HTTP/1.1 requests by what the direct path did: served, or handed to Pingora's proxy and why",
            &["outcome"],
        );
        let one = |o: &str| path.with_label_values(&[o]);
        let direct = DirectCounters {
            served: one("served"),
            handoff_request: one("handoff_request"),
            handoff_route: one("handoff_route"),
            handoff_upstream: one("handoff_upstream"),
            bad_response: one("bad_response"),
            stale_retry: one("stale_retry"),
        };
        let timeouts = counter(
            &registry,
            "tlsgate_timeouts_total",
            "Connections or requests cut off by a deadline, by phase",
            &["phase"],
        );
        let http_refused = counter(
            &registry,
            "tlsgate_http_refused_total",
            "HTTP requests refused before routing (oversized, malformed, ambiguous), by reason",
            &["reason"],
        );
        let h2_goaway = counter(
            &registry,
            "tlsgate_h2_goaway_total",
            "HTTP/2 connections ended by the gateway with GOAWAY, by reason",
            &["reason"],
        );
        let h2_resets = counter(
            &registry,
            "tlsgate_h2_streams_reset_total",
            "HTTP/2 streams reset before their response was complete, by who reset them",
            &["by"],
        );
        let connections_refused = counter(
            &registry,
            "tlsgate_connections_refused_total",
            "Downstream connections closed at accept, by reason",
            &["reason"],
        );
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid gauge");
            registry
                .register(Box::new(g.clone()))
                .expect("metric registered once");
            g
        };
        let connections_open = gauge(
            "tlsgate_connections_open",
            "Downstream connections open now (handshaking, serving or closing)",
        );
        let request_head_bytes = gauge(
            "tlsgate_request_head_bytes",
            "Bytes held now by unfinished HTTP/1.1 request heads",
        );
        let tls_session_cache_entries = gauge(
            "tlsgate_tls_session_cache_entries",
            "TLS 1.2 sessions kept for resumption by session id on rustls listeners",
        );
        let tls_session_cache_bytes = gauge(
            "tlsgate_tls_session_cache_bytes",
            "Bytes of those sessions, against limits.tlsSessionCacheBytes",
        );
        let tcp_connections = counter(
            &registry,
            "tlsgate_tcp_connections_total",
            "Relayed connections (TLS passthrough, TCP routes), by server, SNI, destination and result",
            &["server", "sni", "destination", "result"],
        );
        let tcp_bytes = counter(
            &registry,
            "tlsgate_tcp_bytes_total",
            "Bytes relayed, by server, destination and direction (in: from the client)",
            &["server", "destination", "direction"],
        );
        let tcp_duration = HistogramVec::new(
            HistogramOpts::new(
                "tlsgate_tcp_connection_duration_seconds",
                "How long relayed connections lasted",
            )
            .buckets(vec![0.01, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0]),
            &["server", "destination"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(tcp_duration.clone()))
            .expect("metric registered once");
        let proxy_protocol = counter(
            &registry,
            "tlsgate_proxy_protocol_total",
            "Connections on PROXY protocol listeners, by what the header said (refusals are in tlsgate_connections_refused_total)",
            &["result"],
        );
        let authz = counter(
            &registry,
            "tlsgate_authz_total",
            "Requests decided by AuthorizationPolicies, by the deciding policy (- when no ALLOW policy matched, or none exists), its action and the result (allowed, denied; audited for AUDIT matches)",
            &["policy", "action", "result"],
        );
        Metrics {
            registry,
            authz,
            tcp_connections,
            tcp_bytes,
            tcp_duration,
            proxy_protocol,
            direct,
            timeouts,
            http_refused,
            h2_goaway,
            h2_resets,
            connections_refused,
            connections_open,
            request_head_bytes,
            requests,
            request_duration,
            handshake_failures,
            handshakes,
            reloads,
            credential_reloads,
            needs_restart,
            generation,
            config_warnings,
            credential_expiry,
            credential_expiring,
            crl_next_update,
            crl_fetch,
            client_cert_revoked,
            crl_stale_accepted,
            ocsp_staples,
            ocsp_fetch,
            ticket_keys,
            client_chain_cache,
            client_chain_cache_entries,
            tls_session_cache_entries,
            tls_session_cache_bytes,
            tls_session_cache_evictions,
            ocsp_next_update,
            outbound_blocked,
            outbound_passthrough,
            upstream_tls_failures,
            upstream_overflow,
            outlier_ejections,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8192);
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_with_labels() {
        let m = metrics();
        m.handshake_failures
            .with_label_values(&["127.0.0.1:1", "x.test", "unknown_sni"])
            .inc();
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(text.contains(
            "tlsgate_tls_handshake_failures_total{listener=\"127.0.0.1:1\",reason=\"unknown_sni\",sni=\"x.test\"} 1"
        ));
    }
}
