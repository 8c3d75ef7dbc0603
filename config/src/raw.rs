//! The `spec` of each kind exactly as users write it (Istio's camelCase).
//!
//! Every struct refuses unknown fields, so a typo is reported at its path
//! instead of being silently ignored. Enums stay strings here: the
//! converters give messages that say what tlsgate accepts and why, which a
//! serde "unknown variant" cannot. Fields tlsgate knows but refuses (e.g.
//! `connectionPool`) are kept as [`Value`] so the converters can name them as
//! unsupported rather than unknown.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

/// `kubectl get -o yaml` writes absent lists and maps as `~`: read as empty.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `metadata`: everything else Kubernetes writes there is accepted and ignored.
#[derive(Debug, Default, Deserialize)]
pub struct Metadata {
    pub namespace: Option<String>,
    // Read (so a wrong type is reported) but unused: nothing selects by them.
    #[serde(default, rename = "labels", deserialize_with = "null_default")]
    _labels: BTreeMap<String, String>,
    /// Only `tlsgate.io/` keys are read (a VirtualService's overrides).
    #[serde(default, deserialize_with = "null_default")]
    pub annotations: BTreeMap<String, String>,
}

// ---------------------------------------------------------------- Gateway

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewaySpec {
    /// Pod selector. No pods here, but `istio: egressgateway` marks the
    /// Gateway as an egress gateway (see `model::Gateway::egress`).
    #[serde(default, deserialize_with = "null_default")]
    pub selector: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    pub servers: Vec<Server>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Server {
    pub port: ServerPort,
    pub bind: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub hosts: Vec<String>,
    pub name: Option<String>,
    pub tls: Option<ServerTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerPort {
    pub number: u16,
    pub name: Option<String>,
    pub protocol: String,
    /// Only meaningful for a Kubernetes Service in front of the gateway.
    #[serde(default, rename = "targetPort")]
    _target_port: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerTls {
    #[serde(default, deserialize_with = "null_default")]
    pub https_redirect: bool,
    pub mode: Option<String>,
    pub credential_name: Option<String>,
    pub server_certificate: Option<String>,
    pub private_key: Option<String>,
    pub ca_certificates: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub subject_alt_names: Vec<String>,
    pub min_protocol_version: Option<String>,
    pub max_protocol_version: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub cipher_suites: Vec<String>,
}

// --------------------------------------------------------- VirtualService

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    #[serde(default, deserialize_with = "null_default")]
    pub hosts: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub export_to: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub http: Vec<HttpRoute>,
    #[serde(default, deserialize_with = "null_default")]
    pub tls: Vec<TlsRoute>,
    #[serde(default, deserialize_with = "null_default")]
    pub tcp: Vec<TcpRoute>,
}

/// `tls[]`: routes a passthrough connection by its SNI.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsRoute {
    #[serde(default, rename = "match", deserialize_with = "null_default")]
    pub matches: Vec<L4Match>,
    #[serde(default, deserialize_with = "null_default")]
    pub route: Vec<RouteDestination>,
}

/// `tcp[]`: routes a TCP connection (or a terminated TLS stream).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpRoute {
    #[serde(default, rename = "match", deserialize_with = "null_default")]
    pub matches: Vec<L4Match>,
    #[serde(default, deserialize_with = "null_default")]
    pub route: Vec<RouteDestination>,
}

/// Istio's `TLSMatchAttributes` and `L4MatchAttributes` in one (a `tcp`
/// match with `sniHosts` is refused by the converter).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct L4Match {
    #[serde(default, deserialize_with = "null_default")]
    pub sni_hosts: Vec<String>,
    pub port: Option<u16>,
    #[serde(default, deserialize_with = "null_default")]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub destination_subnets: Option<Value>,
    #[serde(default)]
    pub source_labels: Option<Value>,
    #[serde(default)]
    pub source_namespace: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRoute {
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatch>,
    pub route: Option<Vec<RouteDestination>>,
    pub redirect: Option<Redirect>,
    pub rewrite: Option<Rewrite>,
    pub timeout: Option<String>,
    pub retries: Option<Retries>,
    pub headers: Option<Headers>,
    pub direct_response: Option<DirectResponse>,
    #[serde(default)]
    pub fault: Option<Value>,
    #[serde(default)]
    pub mirror: Option<Value>,
    #[serde(default)]
    pub mirrors: Option<Value>,
    #[serde(default)]
    pub mirror_percentage: Option<Value>,
    #[serde(default)]
    pub cors_policy: Option<Value>,
    #[serde(default)]
    pub delegate: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpMatch {
    /// Only used by Istio to name the match in stats.
    #[serde(rename = "name")]
    _name: Option<IgnoredAny>,
    pub uri: Option<StringMatch>,
    #[serde(default, deserialize_with = "null_default")]
    pub headers: BTreeMap<String, StringMatch>,
    pub port: Option<u16>,
    #[serde(default, deserialize_with = "null_default")]
    pub ignore_uri_case: bool,
    /// Gateways the match applies to (`mesh` = sidecars, never here).
    #[serde(default, deserialize_with = "null_default")]
    pub gateways: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringMatch {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDestination {
    pub destination: Destination,
    pub weight: Option<u32>,
    #[serde(default)]
    pub headers: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<PortSelector>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSelector {
    pub number: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Redirect {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub scheme: Option<String>,
    pub port: Option<u16>,
    pub redirect_code: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    pub uri: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Retries {
    #[serde(default, deserialize_with = "null_default")]
    pub attempts: u32,
    pub per_try_timeout: Option<String>,
    /// Envoy retry conditions: tlsgate retries on connection failures only.
    #[serde(rename = "retryOn")]
    _retry_on: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headers {
    pub request: Option<HeaderOperations>,
    #[serde(default)]
    pub response: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOperations {
    #[serde(default, deserialize_with = "null_default")]
    pub set: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    pub add: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    pub remove: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponse {
    pub status: u16,
    pub body: Option<ResponseBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseBody {
    pub string: String,
}

// -------------------------------------------------------- DestinationRule

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    pub host: String,
    pub traffic_policy: Option<TrafficPolicy>,
    #[serde(default, deserialize_with = "null_default")]
    pub subsets: Vec<Subset>,
    #[serde(default)]
    pub export_to: Option<Value>,
    #[serde(default)]
    pub workload_selector: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficPolicy {
    pub tls: Option<ClientTls>,
    pub load_balancer: Option<LoadBalancer>,
    #[serde(default, deserialize_with = "null_default")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<RawOutlier>,
    pub proxy_protocol: Option<RawProxyProtocol>,
}

/// `trafficPolicy.proxyProtocol`: a PROXY protocol header to the upstream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxyProtocol {
    pub version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOutlier {
    pub consecutive_5xx_errors: Option<u32>,
    pub consecutive_gateway_errors: Option<u32>,
    /// Deprecated by Istio: 502/503/504 in a row.
    pub consecutive_errors: Option<u32>,
    pub interval: Option<String>,
    pub base_ejection_time: Option<String>,
    pub max_ejection_percent: Option<u32>,
    pub min_health_percent: Option<u32>,
    #[serde(default)]
    pub split_external_local_origin_errors: Option<Value>,
    #[serde(default)]
    pub consecutive_local_origin_failures: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionPool {
    pub tcp: Option<TcpPool>,
    pub http: Option<HttpPool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpPool {
    pub max_connections: Option<u32>,
    pub connect_timeout: Option<String>,
    pub tcp_keepalive: Option<RawKeepalive>,
    #[serde(default)]
    pub max_connection_duration: Option<Value>,
    pub idle_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawKeepalive {
    pub probes: Option<u32>,
    pub time: Option<String>,
    pub interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpPool {
    pub http1_max_pending_requests: Option<u32>,
    pub http2_max_requests: Option<u32>,
    pub max_requests_per_connection: Option<u32>,
    #[serde(default)]
    pub max_retries: Option<Value>,
    pub idle_timeout: Option<String>,
    #[serde(default)]
    pub h2_upgrade_policy: Option<Value>,
    #[serde(default)]
    pub use_client_protocol: Option<Value>,
    #[serde(default)]
    pub max_concurrent_streams: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortTrafficPolicy {
    pub port: Option<PortSelector>,
    pub tls: Option<ClientTls>,
    pub load_balancer: Option<LoadBalancer>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<RawOutlier>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadBalancer {
    pub simple: Option<String>,
    pub consistent_hash: Option<ConsistentHash>,
    #[serde(default)]
    pub locality_lb_setting: Option<Value>,
    #[serde(default)]
    pub warmup_duration_secs: Option<Value>,
    #[serde(default)]
    pub warmup: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpCookie {
    pub name: String,
    pub path: Option<String>,
    pub ttl: Option<String>,
    #[serde(default)]
    pub attributes: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsistentHash {
    pub http_header_name: Option<String>,
    pub http_cookie: Option<HttpCookie>,
    pub use_source_ip: Option<bool>,
    pub http_query_parameter_name: Option<String>,
    /// Ring sizes tune Envoy's ring; one ring size is used here.
    #[serde(default)]
    pub ring_hash: Option<Value>,
    #[serde(default)]
    pub maglev: Option<Value>,
    #[serde(default)]
    pub minimum_ring_size: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientTls {
    pub mode: Option<String>,
    pub credential_name: Option<String>,
    pub client_certificate: Option<String>,
    pub private_key: Option<String>,
    pub ca_certificates: Option<String>,
    pub sni: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub subject_alt_names: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Subset {
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    pub traffic_policy: Option<TrafficPolicy>,
}

// ----------------------------------------------------------- ServiceEntry

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceEntrySpec {
    #[serde(default, deserialize_with = "null_default")]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub addresses: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub ports: Vec<ServicePort>,
    pub location: Option<String>,
    pub resolution: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub endpoints: Vec<WorkloadEntry>,
    #[serde(default)]
    pub export_to: Option<Value>,
    #[serde(default)]
    pub workload_selector: Option<Value>,
    #[serde(default)]
    pub subject_alt_names: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePort {
    pub number: u16,
    pub name: String,
    pub protocol: String,
    pub target_port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadEntry {
    pub address: String,
    #[serde(default, deserialize_with = "null_default")]
    pub ports: BTreeMap<String, u16>,
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    /// Multi-network and locality-aware routing are mesh features.
    #[serde(default, rename = "network")]
    _network: Option<IgnoredAny>,
    #[serde(default, rename = "locality")]
    _locality: Option<IgnoredAny>,
    #[serde(default, rename = "weight")]
    _weight: Option<IgnoredAny>,
}

// --------------------------------------------------------- GatewayRuntime

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayRuntimeSpec {
    pub admin: Option<String>,
    pub credentials_dir: Option<String>,
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    pub access_log: Option<AccessLog>,
    pub threads: Option<usize>,
    pub shutdown: Option<Shutdown>,
    pub reload: Option<Reload>,
    pub limits: Option<RawLimits>,
    pub timeouts: Option<RawTimeouts>,
    pub admin_token_file: Option<String>,
    pub mesh: Option<RawMesh>,
    #[serde(default, deserialize_with = "null_default")]
    pub listeners: Vec<RawListener>,
    pub gateway_topology: Option<RawGatewayTopology>,
    pub client_cert_details: Option<RawClientCertDetails>,
    pub client_certificate_request: Option<RawCertificateRequest>,
    pub client_certificate_cache: Option<RawClientCertificateCache>,
    pub revocation: Option<super::revocation::RawRevocation>,
    pub ocsp_stapling: Option<super::revocation::RawOcspStapling>,
    pub session_tickets: Option<super::session_tickets::RawSessionTickets>,
    pub tls_library: Option<String>,
}

/// What the server's CertificateRequest carries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCertificateRequest {
    pub send_ca_names: Option<bool>,
}

/// Verified client chains kept by each rustls listener policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawClientCertificateCache {
    pub entries: Option<u64>,
}

/// Istio's `ProxyConfig.gatewayTopology`, as users keep it in their mesh
/// config or `proxy.istio.io/config` annotation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGatewayTopology {
    pub num_trusted_proxies: Option<u32>,
    pub forward_client_cert_details: Option<String>,
    pub proxy_protocol: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawClientCertDetails {
    pub xfcc: Option<Vec<String>>,
    pub rfc9440: Option<bool>,
}

/// `listeners[]`: what one data-plane port does before TLS or HTTP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawListener {
    pub port: u16,
    pub bind: Option<String>,
    pub proxy_protocol: Option<RawProxyProtocolIn>,
    pub max_connections: Option<u64>,
    pub first_bytes_timeout: Option<String>,
    pub tcp_idle_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawProxyProtocolIn {
    pub mode: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub trusted_sources: Vec<String>,
}

// ----------------------------------------------------- PeerAuthentication

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeerAuthenticationSpec {
    #[serde(default)]
    pub selector: Option<Value>,
    #[serde(default)]
    pub target_ref: Option<Value>,
    #[serde(default)]
    pub target_refs: Option<Value>,
    pub mtls: Option<PeerMtls>,
    #[serde(default, deserialize_with = "null_default")]
    pub port_level_mtls: BTreeMap<u16, PeerMtls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerMtls {
    pub mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMesh {
    pub credential_name: String,
    pub trust_domain: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLimits {
    pub max_connections: Option<u64>,
    pub request_head_bytes: Option<Size>,
    pub request_headers: Option<u64>,
    pub request_head_memory: Option<Size>,
    pub http2_max_concurrent_streams: Option<u64>,
    pub http2_max_reset_streams: Option<u64>,
    pub client_certificate_intermediates: Option<u64>,
    pub tls_session_cache_bytes: Option<Size>,
}

/// A byte count: a number, or a string with a Kubernetes suffix (`64Ki`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Number(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTimeouts {
    pub tls_handshake: Option<String>,
    pub first_request: Option<String>,
    pub request_head: Option<String>,
    pub request_body_idle: Option<String>,
    pub keep_alive_idle: Option<String>,
    pub http2_idle: Option<String>,
    pub response_send_idle: Option<String>,
    pub upstream_pending: Option<String>,
    pub first_bytes: Option<String>,
    pub tcp_idle: Option<String>,
    pub tcp_half_closed: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Reload {
    pub watch: Option<bool>,
    pub debounce: Option<String>,
    pub rescan_interval: Option<String>,
    pub allow_expired_credentials: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    pub mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Shutdown {
    pub grace_period: Option<String>,
    pub timeout: Option<String>,
}

// ---------------------------------------------------- AuthorizationPolicy

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    #[serde(default)]
    pub selector: Option<Value>,
    #[serde(default)]
    pub target_ref: Option<Value>,
    #[serde(default)]
    pub target_refs: Option<Value>,
    pub action: Option<String>,
    #[serde(default)]
    pub provider: Option<Value>,
    /// `None` (absent) and `Some([])` both match nothing.
    #[serde(default)]
    pub rules: Option<Vec<AuthzRule>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzRule {
    #[serde(default, deserialize_with = "null_default")]
    pub from: Vec<AuthzFrom>,
    #[serde(default, deserialize_with = "null_default")]
    pub to: Vec<AuthzTo>,
    #[serde(default, deserialize_with = "null_default")]
    pub when: Vec<AuthzCondition>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzFrom {
    #[serde(default)]
    pub source: AuthzSource,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzTo {
    #[serde(default)]
    pub operation: AuthzOperation,
}

/// Istio's `Source`: each field a list; `not*` the exclusions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthzSource {
    pub principals: Option<Vec<String>>,
    pub not_principals: Option<Vec<String>>,
    pub request_principals: Option<Value>,
    pub not_request_principals: Option<Value>,
    pub namespaces: Option<Vec<String>>,
    pub not_namespaces: Option<Vec<String>>,
    pub ip_blocks: Option<Vec<String>>,
    pub not_ip_blocks: Option<Vec<String>>,
    pub remote_ip_blocks: Option<Vec<String>>,
    pub not_remote_ip_blocks: Option<Vec<String>>,
    pub service_accounts: Option<Value>,
    pub not_service_accounts: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthzOperation {
    pub hosts: Option<Vec<String>>,
    pub not_hosts: Option<Vec<String>>,
    pub ports: Option<Vec<Value>>,
    pub not_ports: Option<Vec<Value>>,
    pub methods: Option<Vec<String>>,
    pub not_methods: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub not_paths: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthzCondition {
    pub key: String,
    pub values: Option<Vec<String>>,
    pub not_values: Option<Vec<String>>,
}
