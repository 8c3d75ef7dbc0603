//! Validated configuration: what the rest of tlsgate consumes.
//!
//! Every value here has been checked: addresses parsed, durations converted,
//! regexes compiled, references between documents resolved. Nothing in this
//! module touches the file system or the network; credential files are only
//! named here (see `credentials.rs` for loading them).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use super::limits::{Limits, Timeouts, RESET_WINDOW};

/// The whole configuration as one immutable value.
#[derive(Debug, Clone, Serialize)]
pub struct Model {
    pub runtime: RuntimeSettings,
    pub gateways: Vec<Gateway>,
    pub virtual_services: Vec<VirtualService>,
    pub destination_rules: Vec<DestinationRule>,
    pub service_entries: Vec<ServiceEntry>,
    /// Kubernetes Services found beside the Istio kinds: only their ports.
    pub kubernetes_services: Vec<KubernetesService>,
    /// Files the model was read from, in load order (for `check` and reload).
    pub sources: Vec<PathBuf>,
    /// What the files say that is not applied, and why.
    pub warnings: Vec<super::ConfigWarning>,
    /// `PeerAuthentication`: whether TLS ports also take plaintext.
    pub peer_authentication: Option<PeerAuthentication>,
    /// Every `AuthorizationPolicy` that applies to this gateway.
    pub authorization_policies: Vec<super::authz::AuthorizationPolicy>,
}

impl Model {
    /// What a TLS-terminating listener on `port` accepts: the policy's
    /// `portLevelMtls` for the port, else its `mtls.mode`, else STRICT
    /// (TLS only, as without any PeerAuthentication).
    pub fn peer_mode(&self, port: u16) -> PeerMode {
        self.peer_authentication
            .as_ref()
            .map_or(PeerMode::Strict, |p| {
                p.ports.get(&port).copied().unwrap_or(p.mode)
            })
    }

    /// The `listeners[]` entry of the listener bound to `addr`: one naming
    /// its bind address, else one naming only its port.
    pub fn listener(&self, addr: SocketAddr) -> Option<&ListenerSettings> {
        let l = &self.runtime.listeners;
        l.iter()
            .find(|l| l.port == addr.port() && l.bind == Some(addr.ip()))
            .or_else(|| l.iter().find(|l| l.port == addr.port() && l.bind.is_none()))
    }
}

/// Istio's `PeerAuthentication`, as it applies to the gateway's own TLS
/// ports (tlsgate in front of a workload).
#[derive(Debug, Clone, Serialize)]
pub struct PeerAuthentication {
    pub id: DocId,
    /// `mtls.mode` (UNSET: STRICT).
    pub mode: PeerMode,
    /// `portLevelMtls`: by the gateway server's port number.
    pub ports: BTreeMap<u16, PeerMode>,
}

/// What a TLS port accepts besides TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PeerMode {
    /// TLS only: plaintext is refused.
    Strict,
    /// TLS or plaintext, told apart by the first bytes.
    Permissive,
    /// Plaintext only.
    Disable,
}

/// `GatewayRuntime.spec.listeners[]`: one data-plane port's settings
/// before TLS or HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerSettings {
    /// Position in `spec.listeners`, for errors found later.
    pub index: usize,
    pub port: u16,
    /// `None`: every listener on the port.
    pub bind: Option<IpAddr>,
    pub proxy_protocol: ProxyProtocolIn,
    /// Open connections on this listener (beside `limits.maxConnections`).
    pub max_connections: Option<usize>,
    /// Replaces `timeouts.firstBytes` here.
    pub first_bytes_timeout: Option<Duration>,
    /// Replaces `timeouts.tcpIdle` here.
    pub tcp_idle_timeout: Option<Duration>,
}

/// Whether a listener reads a PROXY protocol header, and from whom.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum ProxyProtocolIn {
    /// Never read: a header is just bytes (and fails as TLS or HTTP).
    #[default]
    Off,
    /// Every connection must start with one, from a trusted source.
    Required { trusted: Vec<IpNet> },
    /// A trusted source may send one; others must not.
    Optional { trusted: Vec<IpNet> },
}

impl ProxyProtocolIn {
    /// Is a header from `peer` believed?
    pub fn trusts(&self, peer: IpAddr) -> bool {
        match self {
            ProxyProtocolIn::Off => false,
            ProxyProtocolIn::Required { trusted } | ProxyProtocolIn::Optional { trusted } => {
                trusted.iter().any(|n| n.contains(peer))
            }
        }
    }
}

/// An address block, `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// `a.b.c.d/n`, or a bare address (all of its bits).
    pub fn parse(text: &str) -> Result<IpNet, String> {
        let bad = || format!("invalid address block '{text}': expected e.g. 10.0.0.0/8");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        // Peers are compared as IPv4 when they are IPv4-mapped: so are
        // blocks written that way.
        if let IpAddr::V6(v6) = addr {
            if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
                return Ok(IpNet {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                });
            }
        }
        Ok(IpNet { addr, prefix })
    }

    /// Does the address have bits set past the prefix (`10.0.0.1/8`)?
    pub fn has_host_bits(&self) -> bool {
        !self.contains_exactly_network()
    }

    fn contains_exactly_network(&self) -> bool {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(a) & !mask == 0
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(a) & !mask == 0
            }
        }
    }

    /// IPv4-mapped IPv6 addresses match IPv4 blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where a value came from: used to name file, document and field in errors
/// that are found after parsing (credential loading, route compilation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DocId {
    pub file: PathBuf,
    pub kind: String,
    pub name: String,
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}/{}", self.file.display(), self.kind, self.name)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RuntimeSettings {
    /// Plain-HTTP admin listener (default 127.0.0.1:15021).
    pub admin: SocketAddr,
    /// Folder of credential folders (default /etc/tlsgate/credentials).
    pub credentials_dir: PathBuf,
    pub outbound_policy: OutboundPolicy,
    pub access_log: AccessLogFormat,
    /// Pingora worker threads per service (default 1).
    pub threads: usize,
    /// Time between SIGTERM and closing listeners (default 0 s).
    pub grace_period: Duration,
    /// Time open connections get to finish after listeners close (default 1 s).
    pub shutdown_timeout: Duration,
    pub reload: ReloadSettings,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// File holding the bearer token that `POST /reload` needs from a
    /// peer outside loopback (read at each such request, never dumped).
    pub admin_token_file: Option<PathBuf>,
    /// `mesh`: the gateway's own mesh identity, for `ISTIO_MUTUAL`.
    pub mesh: Option<Mesh>,
    /// `listeners[]`: PROXY protocol and per-port limits.
    pub listeners: Vec<ListenerSettings>,
    /// `gatewayTopology.forwardClientCertDetails` and `clientCertDetails`.
    pub client_cert: super::client_cert::ClientCertForwarding,
    /// `gatewayTopology.numTrustedProxies`: how many proxies in front of
    /// the gateway append to `X-Forwarded-For` (default 0: none is
    /// believed; `remote.ip` is the connection's client).
    pub num_trusted_proxies: u32,
    /// `clientCertificateRequest.sendCaNames`: list the client CA bundle's
    /// subjects in the CertificateRequest (default true). Hundreds of
    /// names make a message some clients choke on, and a browser's
    /// certificate picker misbehave.
    pub send_client_ca_names: bool,
    /// `clientCertificateCache.entries`: how many verified client chains
    /// each server policy remembers on rustls listeners, so that a client
    /// reconnecting without resumption skips its chain's signature checks
    /// (0: every chain is verified in full, every time).
    pub client_certificate_cache: usize,
    /// `revocation`: CRL fetching and freshness.
    pub revocation: super::revocation::RevocationSettings,
    /// `ocspStapling`: OCSP responses fetched for the served certificates.
    pub ocsp_stapling: super::revocation::OcspStapling,
    /// `sessionTickets`: shared ticket keys, or this process's own.
    pub session_tickets: super::session_tickets::SessionTickets,
    /// `tlsLibrary`: what terminates TLS on the listeners (default
    /// rustls). Read at start: a reload does not change it.
    pub tls_library: TlsLibrary,
}

/// The library that runs the listeners' TLS handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsLibrary {
    /// OpenSSL 3: CBC suites too, and TLS 1.2 session ids.
    OpenSsl,
    /// rustls with aws-lc-rs (the default): memory-safe, cheaper
    /// handshakes and under half the memory per connection; AEAD suites
    /// only.
    #[default]
    Rustls,
}

impl TlsLibrary {
    pub fn parse(s: &str) -> Option<TlsLibrary> {
        match s.trim().to_ascii_lowercase().as_str() {
            "openssl" => Some(TlsLibrary::OpenSsl),
            "rustls" => Some(TlsLibrary::Rustls),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsLibrary::OpenSsl => "openssl",
            TlsLibrary::Rustls => "rustls",
        }
    }
}

pub use super::revocation::StaleCrl;

/// The gateway's workload identity in the mesh, as `istio-proxy` mounts
/// it: a credential folder with its certificate, key and the mesh CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mesh {
    /// Folder in `credentialsDir` (`tls.crt`/`cert-chain.pem`,
    /// `tls.key`/`key.pem`, `ca.crt`/`root-cert.pem`).
    pub credential_name: String,
    /// SPIFFE trust domain (`cluster.local`): the identities a peer in the
    /// mesh may present, `spiffe://<trustDomain>/...`.
    pub trust_domain: String,
}

/// How configuration and credential changes are picked up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadSettings {
    /// Watch the config paths and the credentials directory (default true).
    pub watch: bool,
    /// Quiet time after the last file event before reloading (default 200 ms).
    pub debounce: Duration,
    /// Full rescan even without events, in case one was missed (default 30 s).
    pub rescan_interval: Duration,
    /// Serve an expired certificate rather than refuse it (default false).
    pub allow_expired_credentials: bool,
}

impl Default for ReloadSettings {
    fn default() -> Self {
        ReloadSettings {
            watch: true,
            debounce: Duration::from_millis(200),
            rescan_interval: Duration::from_secs(30),
            allow_expired_credentials: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundPolicy {
    RegistryOnly,
    AllowAny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    Text,
    Json,
    Off,
}

#[derive(Debug, Clone, Serialize)]
pub struct Gateway {
    pub id: DocId,
    /// Namespace from metadata, if any (VirtualServices may say `ns/name`).
    pub namespace: Option<String>,
    pub servers: Vec<Server>,
    /// `selector` names an egress gateway (a label value ending in
    /// `egressgateway`, as Istio's `istio: egressgateway`): its plain-HTTP
    /// servers apply the outbound traffic policy to hosts no route names.
    pub egress: bool,
    /// `spec.selector`: which gateway deployment Istio would give it to.
    /// Here every Gateway is served by this one process.
    pub selector: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Server {
    /// Position in `spec.servers`, for error messages and metrics labels.
    pub index: usize,
    /// `port.name`, or `<gateway>-<index>` when absent.
    pub name: String,
    pub bind: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub hosts: Vec<HostPattern>,
    /// Present exactly when `protocol` is `Https` (or `Tls`).
    pub tls: Option<ServerTls>,
    /// `tls.httpsRedirect` on a plain HTTP server: every request gets a 301.
    pub https_redirect: bool,
    /// `tls.mode: PASSTHROUGH`: connections for these hosts go to a
    /// VirtualService `tls[]` route with the client's TLS untouched
    /// (`tls` is `None`).
    pub passthrough: bool,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Http,
    Https,
    /// TLS carrying anything: passed through by SNI, or terminated and
    /// forwarded as a byte stream (`tcp[]` routes).
    Tls,
    /// A plain byte stream (`tcp[]` routes).
    Tcp,
}

/// A Gateway/VirtualService host: `example.com`, `*.example.com` or `*`.
/// Always lower case; a `namespace/` prefix has been dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum HostPattern {
    Exact(String),
    /// `*.example.com`, stored as the suffix including the dot: `.example.com`.
    Suffix(String),
    Any,
}

impl HostPattern {
    /// Does this pattern match a concrete host name (lower case, no port)?
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => crate::names::suffix_matches(s, host),
            HostPattern::Any => true,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Suffix(s) => write!(f, "*{s}"),
            HostPattern::Any => f.write_str("*"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ServerTls {
    pub mode: ServerTlsMode,
    pub credential: CredentialSource,
    /// Allowed client certificate SANs (DNS, URI, IP, email as strings);
    /// empty means any certificate that chains to the CA bundle.
    pub subject_alt_names: Vec<String>,
    /// Set for `ISTIO_MUTUAL` (the mesh identity): without
    /// `subjectAltNames`, the client must present a SPIFFE identity of
    /// this trust domain.
    pub trust_domain: Option<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    /// OpenSSL cipher names (TLS 1.2) or TLS 1.3 suite names; empty = defaults.
    pub cipher_suites: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    Simple,
    Mutual,
    OptionalMutual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "TLSV1_2")]
    V1_2,
    #[serde(rename = "TLSV1_3")]
    V1_3,
}

/// Where a certificate, key and optional CA bundle come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum CredentialSource {
    /// `credentialName`: the folder `<credentials_dir>/<name>/`
    /// (and `<name>-cacert/` for a separate CA bundle).
    Named(String),
    /// Inline paths (`serverCertificate`/`privateKey`/`caCertificates`,
    /// or `clientCertificate`/`privateKey`/`caCertificates`), absolute.
    Files {
        cert: PathBuf,
        key: PathBuf,
        ca: Option<PathBuf>,
    },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Named(n) => f.write_str(n),
            CredentialSource::Files { cert, .. } => write!(f, "file:{}", cert.display()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VirtualService {
    pub id: DocId,
    pub namespace: Option<String>,
    pub hosts: Vec<HostPattern>,
    /// Gateway names as written (`name` or `namespace/name`); `mesh` dropped.
    pub gateways: Vec<String>,
    pub http: Vec<HttpRoute>,
    /// `tls[]`: passthrough routes by SNI.
    pub tls: Vec<L4Route>,
    /// `tcp[]`: byte-stream routes.
    pub tcp: Vec<L4Route>,
}

/// A VirtualService `tls[]` or `tcp[]` route.
#[derive(Debug, Clone, Serialize)]
pub struct L4Route {
    /// `<virtualservice>.tls[i]` / `<virtualservice>.tcp[i]`.
    pub name: String,
    /// Position in the file's `spec.tls` / `spec.tcp`.
    pub index: usize,
    /// Empty: every connection (only `tcp[]`; a `tls[]` route needs
    /// `sniHosts`).
    pub matches: Vec<L4Match>,
    pub destinations: Vec<WeightedDestination>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct L4Match {
    /// `tls[]` only; never empty there.
    pub sni_hosts: Vec<HostPattern>,
    pub port: Option<u16>,
    /// Gateways this match is limited to (`mesh` dropped); empty = all.
    pub gateways: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpRoute {
    /// `http[].name`, or `<virtualservice>.<index>` when absent.
    pub name: String,
    /// Position in the file's `spec.http` (mesh-only routes are skipped, so
    /// it can differ from the position here), for errors found later.
    pub index: usize,
    /// Empty means "match everything".
    pub matches: Vec<RouteMatch>,
    pub action: RouteAction,
    pub rewrite_uri: Option<String>,
    pub timeout: Option<Duration>,
    pub retries: Option<Retries>,
    pub request_headers: HeaderEdits,
    /// The VirtualService's `tlsgate.io/` client-certificate overrides.
    pub client_cert: Option<super::client_cert::ClientCertOverride>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteMatch {
    pub uri: Option<StringMatch>,
    /// Header names lower case.
    pub headers: Vec<(String, StringMatch)>,
    pub port: Option<u16>,
    /// Gateways (as written, `mesh` dropped) this match is limited to;
    /// empty means every gateway the VirtualService binds.
    pub gateways: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    /// Anchored at both ends, as Envoy's RE2 `safe_regex` is.
    Regex(#[serde(serialize_with = "ser_regex")] regex::Regex),
}

fn ser_regex<S: serde::Serializer>(r: &regex::Regex, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.as_str())
}

impl StringMatch {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(e) => e == value,
            StringMatch::Prefix(p) => value.starts_with(p.as_str()),
            StringMatch::Regex(r) => r.is_match(value),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub enum RouteAction {
    Forward(Vec<WeightedDestination>),
    Redirect(Redirect),
    DirectResponse { status: u16, body: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct WeightedDestination {
    /// Lower case; a short name is kept as written (DNS decides).
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<u16>,
    /// Istio semantics: weights of one route sum to 100, or a single
    /// destination with no weight gets 100.
    pub weight: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Redirect {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub scheme: Option<String>,
    pub port: Option<u16>,
    /// 301 unless `redirectCode` says otherwise.
    pub code: u16,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Retries {
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HeaderEdits {
    /// Names lower case.
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DestinationRule {
    pub id: DocId,
    pub host: String,
    pub traffic_policy: TrafficPolicy,
    pub subsets: Vec<Subset>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TrafficPolicy {
    pub tls: Option<ClientTls>,
    pub load_balancer: Option<LbPolicy>,
    /// Set exactly when `load_balancer` is `ConsistentHash`.
    pub hash_key: Option<HashKey>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<OutlierDetection>,
    /// `portLevelSettings[]`: TLS per destination port.
    pub port_tls: Vec<(u16, ClientTls)>,
    /// `portLevelSettings[]`: the rest, per destination port.
    pub port_level: Vec<PortLevel>,
    /// `proxyProtocol.version`: a PROXY protocol header to the upstream
    /// before the first byte of each TCP or passthrough connection.
    pub proxy_protocol: Option<ProxyVersion>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ProxyVersion {
    V1,
    V2,
}

/// What `portLevelSettings[]` sets for one port, besides TLS; each set
/// field wins over the policy's own for that port.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PortLevel {
    pub port: u16,
    pub load_balancer: Option<LbPolicy>,
    pub hash_key: Option<HashKey>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<OutlierDetection>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Subset {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub traffic_policy: Option<TrafficPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbPolicy {
    RoundRobin,
    Random,
    LeastRequest,
    /// `consistentHash`: the key is [`TrafficPolicy::hash_key`]; a request
    /// without one is balanced round robin.
    ConsistentHash,
}

/// `connectionPool` limits of a destination (Envoy's circuit breakers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConnectionPool {
    /// `tcp.maxConnections`: upstream connections busy at once (each
    /// HTTP/1.1 request holds one); more requests wait (unlimited if unset).
    pub max_connections: Option<u32>,
    /// `http.http2MaxRequests`: requests in flight at once; more are
    /// refused at once (unlimited if unset).
    pub max_requests: Option<u32>,
    /// `http.http1MaxPendingRequests`: requests waiting for one in flight
    /// to end (unlimited when absent, as Istio's default).
    pub max_pending: Option<u32>,
    /// `tcp.connectTimeout` (default 10 s).
    pub connect_timeout: Option<Duration>,
    /// `http.maxRequestsPerConnection`: an upstream connection is closed
    /// after this many requests.
    pub max_requests_per_connection: Option<u32>,
    /// `http.idleTimeout` (or `tcp.idleTimeout`): an idle upstream
    /// connection is closed after it (at most 55 s, tlsgate's own).
    pub idle_timeout: Option<Duration>,
    /// `tcp.tcpKeepalive`: probes on upstream connections.
    pub tcp_keepalive: Option<TcpKeepalive>,
}

/// `tcp.tcpKeepalive`: TCP keep-alive probes (the system's defaults for
/// what is not set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TcpKeepalive {
    pub time: Option<Duration>,
    pub interval: Option<Duration>,
    pub probes: Option<u32>,
}

/// `outlierDetection`: when an endpoint is taken out of balancing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OutlierDetection {
    /// `consecutive5xxErrors` (default 5; 0 turns it off).
    pub consecutive_5xx: u32,
    /// `consecutiveGatewayErrors` (502, 503, 504; default 0: off).
    pub consecutive_gateway: u32,
    /// `interval` (default 10 s): Envoy's sweep; ejections here end when
    /// their time is up.
    pub interval: Duration,
    /// `baseEjectionTime` (default 30 s), times the ejections in a row.
    pub base_ejection_time: Duration,
    /// `maxEjectionPercent` (default 10; at least one endpoint).
    pub max_ejection_percent: u32,
    /// `minHealthPercent` (default 0).
    pub min_health_percent: u32,
}

/// What a `consistentHash` policy hashes to pick the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HashKey {
    /// `httpHeaderName`, lower case.
    Header(String),
    /// `httpQueryParameterName`.
    QueryParameter(String),
    /// `useSourceIp`: the client's address as the gateway sees it.
    SourceIp,
    /// `httpCookie`: the cookie's value; with `ttl`, a client without the
    /// cookie is given one (`Max-Age` = ttl, a session cookie for 0 s).
    Cookie {
        name: String,
        path: Option<String>,
        ttl: Option<Duration>,
    },
}

/// Upstream TLS origination (DestinationRule `tls`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ClientTls {
    pub mode: ClientTlsMode,
    /// Client certificate and key (MUTUAL); also carries `ca.crt` when named.
    pub credential: Option<CredentialSource>,
    /// `caCertificates` path; else the credential's CA; else system roots.
    pub ca_certificates: Option<PathBuf>,
    pub sni: Option<String>,
    pub subject_alt_names: Vec<String>,
    /// Set for `ISTIO_MUTUAL` (the mesh identity, trusting only the mesh
    /// CA): without `subjectAltNames`, the upstream must present a SPIFFE
    /// identity of this trust domain (instead of the SNI name).
    pub trust_domain: Option<String>,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientTlsMode {
    Disable,
    Simple,
    Mutual,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceEntry {
    pub id: DocId,
    pub hosts: Vec<String>,
    pub ports: Vec<ServicePort>,
    pub location: Location,
    pub resolution: Resolution,
    pub endpoints: Vec<Endpoint>,
}

/// A Kubernetes `Service`: never served, but like Istio, a destination that
/// names it without a port uses its only port.
#[derive(Debug, Clone, Serialize)]
pub struct KubernetesService {
    pub id: DocId,
    pub namespace: Option<String>,
    pub ports: Vec<u16>,
}

impl KubernetesService {
    /// Does `host` name this Service as Istio does: its short `name`, or
    /// `name.ns.svc.cluster.local`? (Istio treats `name.ns` as an external
    /// host.) Without a namespace in its metadata, the Service is taken to
    /// be in `default`, where `kubectl apply` puts it.
    pub fn is_named_by(&self, host: &str) -> bool {
        host == self.id.name || host == self.fqdn()
    }

    /// `name.ns.svc.cluster.local`
    pub fn fqdn(&self) -> String {
        let ns = self.namespace.as_deref().unwrap_or("default");
        format!("{}.{ns}.svc.cluster.local", self.id.name)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServicePort {
    pub number: u16,
    pub name: String,
    pub protocol: String,
    pub target_port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    MeshExternal,
    MeshInternal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    Static,
    Dns,
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    /// IP address or DNS name.
    pub address: String,
    /// Port name -> port number overrides.
    pub ports: BTreeMap<String, u16>,
    pub labels: BTreeMap<String, String>,
}
