//! Server-side TLS policy: which credential and client verification each
//! SNI gets on each listener. Built whole with each `Runtime`; immutable.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use openssl::sha::Sha256;

use crate::config::revocation::RevocationSettings;
use crate::config::{ConfigError, CredentialSource, HostPattern, Model, ServerTlsMode, TlsVersion};
use crate::credentials::Credential;
use crate::names::HostMap;
use crate::revocation::{Revocation, RevocationPolicy};

/// What one Gateway server asks of a TLS connection.
#[derive(Debug)]
pub struct ServerPolicy {
    pub gateway: Arc<str>,
    /// Gateway server name, as used in metrics labels.
    pub server: Arc<str>,
    pub hosts: Vec<HostPattern>,
    pub mode: ServerTlsMode,
    /// A `TLS` (not `HTTPS`) server: the decrypted stream is relayed, so no
    /// HTTP protocol is negotiated by ALPN.
    pub stream: bool,
    pub credential: Arc<Credential>,
    /// Allowed client SANs (`DNS`/`URI`/`IP` values); empty = any.
    pub allowed_sans: Vec<String>,
    /// `ISTIO_MUTUAL`: a client identity must be a SPIFFE URI under this
    /// prefix (`spiffe://<trust domain>/`).
    pub spiffe_prefix: Option<String>,
    /// List the client CA bundle's subjects in the CertificateRequest.
    pub send_ca_names: bool,
    /// How many verified client chains a rustls verifier of this policy
    /// remembers (`clientCertificateCache.entries`).
    pub verified_chains: usize,
    /// Certificates a client may send after its own
    /// (`limits.clientCertificateIntermediates`).
    pub max_intermediates: usize,
    /// The client CA bundle's CRLs (files and fetched) and their policy.
    pub revocation: Arc<Revocation>,
    /// With `ocspStapling.fetch`: per certificate served (in
    /// `Credential::served` order), its fetched OCSP response.
    pub ocsp_slots: Vec<Option<Arc<crate::revocation::StapleSlot>>>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    /// TLS 1.2 cipher list (OpenSSL names), if configured.
    pub cipher_list: Option<String>,
    /// TLS 1.3 suites, if configured.
    pub ciphersuites: Option<String>,
    /// Digest of everything above except names and hosts, and of the
    /// credential's content. Sessions are bound to it (they only resume
    /// where it is equal) and a request's Host may go to another server only
    /// when that server's key is equal, so no request or resumed session
    /// crosses into a stricter policy.
    pub key: [u8; 32],
    /// Digest of what a client must satisfy, and nothing about the server
    /// side: mode, versions, ciphers and, when a client certificate is
    /// asked for, the allowed SANs, CA bundle and CRLs. A connection made
    /// under one runtime only reaches a host of a later one whose
    /// `auth_key` is still its own (a rotated server certificate changes
    /// nothing; a removed CA does).
    pub auth_key: [u8; 32],
    /// What another TLS library than OpenSSL builds from this policy once
    /// (rustls: its `ServerConfig`), kept as long as the policy is.
    pub library: LibrarySlot,
}

/// A TLS library's own form of a [`ServerPolicy`], built on first use.
#[derive(Default)]
pub struct LibrarySlot(pub std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>);

impl std::fmt::Debug for LibrarySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "LibrarySlot(built)"
        } else {
            "LibrarySlot(empty)"
        })
    }
}

impl ServerPolicy {
    /// The OCSP response to staple with served certificate `index`: the
    /// newer of its file and its fetched one that is current.
    pub fn staple(&self, index: usize, now: i64) -> Option<Arc<crate::credentials::Staple>> {
        let cred = self.credential.served().nth(index)?;
        let fetched = self
            .ocsp_slots
            .get(index)
            .and_then(|s| s.as_ref())
            .and_then(|s| s.current());
        let all: Vec<_> = cred.ocsp.iter().cloned().chain(fetched).collect();
        // The newest current one; else the newest, which the caller will
        // find stale and not staple (and count).
        all.iter()
            .filter(|s| s.fresh(now))
            .max_by_key(|s| s.this_update)
            .or_else(|| all.iter().max_by_key(|s| s.this_update))
            .cloned()
    }

    pub fn requests_client_cert(&self) -> bool {
        !matches!(self.mode, ServerTlsMode::Simple)
    }

    /// What sessions are bound to: [`ServerPolicy::key`], and, where CRLs
    /// are fetched, what those CRLs are now (their digests and staleness),
    /// so no session resumes past a CRL that changed (a ticket is not
    /// checked against CRLs again) on this replica or on another one.
    pub fn session_key(&self, now: i64) -> [u8; 32] {
        if !self.revocation.fetches() || !self.requests_client_cert() {
            return self.key;
        }
        let mut h = Sha256::new();
        h.update(&self.key);
        h.update(&self.revocation.fingerprint(now));
        h.finish()
    }
}

/// The revocation checking of credential `source` under `settings`: its
/// own CRL files and URLs, and the URLs and policy the runtime gives it.
fn revocation_for(
    source: &CredentialSource,
    credential: &Credential,
    settings: &RevocationSettings,
) -> Revocation {
    let name = match source {
        CredentialSource::Named(n) => n.as_str(),
        CredentialSource::Files { .. } => "",
    };
    let own = settings.for_credential(name);
    let (stale, leaf_only) = (own.stale_crl, own.leaf_only);
    let mut urls = credential.crl_urls.clone();
    if own.distribution_points {
        // A CA certificate's distribution point serves the CRL that
        // would revoke that CA: the whole-chain check needs it.
        for ca in &credential.ca_certs {
            for u in crate::revocation::distribution_points(ca) {
                if !urls.contains(&u) {
                    urls.push(u);
                }
            }
        }
    }
    for u in settings
        .credentials
        .get(name)
        .map(|c| c.crl_urls.as_slice())
        .unwrap_or_default()
    {
        if !urls.contains(u) {
            urls.push(u.clone());
        }
    }
    let r = Revocation::new(
        RevocationPolicy { stale, leaf_only },
        credential.crl_index.clone(),
        urls.iter().map(|u| crate::revocation::slot(u)).collect(),
        credential.ca_certs.clone(),
    );
    if own.distribution_points {
        r.learning(&credential.info.name)
    } else {
        r
    }
}

/// SNI -> policy on one listener: exact host, then the longest `*.suffix`,
/// then `*` (`names::HostMap`).
#[derive(Debug, Default)]
pub struct SniMap(HostMap<Arc<ServerPolicy>>);

impl SniMap {
    /// `name` must be lower case without a trailing dot.
    pub fn select(&self, name: &str) -> Option<&Arc<ServerPolicy>> {
        self.0.select(name)
    }

    /// The policy for a client that sent no SNI: only a `*` server takes it.
    pub fn without_sni(&self) -> Option<&Arc<ServerPolicy>> {
        self.0.any()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ServerPolicy>> {
        self.0.values()
    }

    fn insert(&mut self, host: &HostPattern, policy: &Arc<ServerPolicy>) {
        // The loader refuses a host named twice on one port; first wins here
        // so a slip there cannot make the choice depend on map order.
        self.0.insert(host, policy.clone());
    }
}

/// One TLS listener's view.
#[derive(Debug)]
pub struct ListenerTls {
    /// `bind:port`, the `listener` label.
    pub name: Arc<str>,
    pub sni: SniMap,
}

/// Every TLS listener, keyed by its bind address.
#[derive(Debug, Default)]
pub struct TlsPolicy {
    listeners: HashMap<SocketAddr, ListenerTls>,
}

impl TlsPolicy {
    /// Builds the policy from the model and the credentials already loaded
    /// for it (`credentials` must hold every source a server names).
    pub fn build(
        model: &Model,
        credentials: &BTreeMap<CredentialSource, Arc<Credential>>,
    ) -> Result<TlsPolicy, ConfigError> {
        let mut listeners: HashMap<SocketAddr, ListenerTls> = HashMap::new();
        for gw in &model.gateways {
            let gateway: Arc<str> = gw.id.name.as_str().into();
            for server in &gw.servers {
                let Some(tls) = &server.tls else { continue };
                let credential = credentials.get(&tls.credential).cloned().ok_or_else(|| {
                    ConfigError::field(
                        &gw.id,
                        format!("spec.servers[{}].tls", server.index),
                        format!("credential '{}' was not loaded", tls.credential),
                    )
                })?;
                let (ciphersuites, cipher_list): (Vec<&String>, Vec<&String>) = tls
                    .cipher_suites
                    .iter()
                    .partition(|c| c.starts_with("TLS_"));
                let join = |v: Vec<&String>| {
                    (!v.is_empty())
                        .then(|| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(":"))
                };
                let mut policy = ServerPolicy {
                    gateway: gateway.clone(),
                    server: server.name.as_str().into(),
                    hosts: server.hosts.clone(),
                    mode: tls.mode,
                    stream: server.protocol == crate::config::Protocol::Tls,
                    credential: credential.clone(),
                    allowed_sans: tls.subject_alt_names.clone(),
                    spiffe_prefix: tls
                        .trust_domain
                        .as_deref()
                        .map(crate::origin::trust_domain_prefix),
                    send_ca_names: model.runtime.send_client_ca_names,
                    verified_chains: model.runtime.client_certificate_cache,
                    max_intermediates: model.runtime.limits.client_certificate_intermediates,
                    ocsp_slots: if model.runtime.ocsp_stapling.fetch {
                        credential
                            .served()
                            .map(|c| {
                                crate::revocation::staple_slot(&c.chain, &c.info.fingerprint_sha256)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                    revocation: Arc::new(revocation_for(
                        &tls.credential,
                        &credential,
                        &model.runtime.revocation,
                    )),
                    min_version: tls.min_version,
                    max_version: tls.max_version,
                    cipher_list: join(cipher_list),
                    ciphersuites: join(ciphersuites),
                    key: [0; 32],
                    auth_key: [0; 32],
                    library: LibrarySlot::default(),
                };
                policy.key = policy_key(&policy, true);
                policy.auth_key = policy_key(&policy, false);
                let policy = Arc::new(policy);
                let addr = server.addr();
                let listener = listeners.entry(addr).or_insert_with(|| ListenerTls {
                    name: addr.to_string().into(),
                    sni: SniMap::default(),
                });
                for host in &server.hosts {
                    listener.sni.insert(host, &policy);
                }
            }
        }
        Ok(TlsPolicy { listeners })
    }

    pub fn listener(&self, addr: &SocketAddr) -> Option<&ListenerTls> {
        self.listeners.get(addr)
    }

    /// The TLS listener that took a connection on `local` (its local
    /// address): the one bound to it, else the one on the unspecified
    /// address of its port.
    pub fn for_local(&self, local: SocketAddr) -> Option<&ListenerTls> {
        self.listeners.get(&local).or_else(|| {
            let any: std::net::IpAddr = match local.ip() {
                std::net::IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                std::net::IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
            };
            self.listeners.get(&SocketAddr::new(any, local.port()))
        })
    }

    /// Every server policy (one per Gateway server, listed once per host).
    pub fn policies(&self) -> impl Iterator<Item = &Arc<ServerPolicy>> {
        self.listeners.values().flat_map(|l| l.sni.iter())
    }

    pub fn addrs(&self) -> impl Iterator<Item = &SocketAddr> {
        self.listeners.keys()
    }
}

/// `with_credential`: the whole credential's content (server certificate
/// included); else only what verifies clients, and only when clients are
/// asked for a certificate.
fn policy_key(p: &ServerPolicy, with_credential: bool) -> [u8; 32] {
    let mut h = Sha256::new();
    let mode: &[u8] = match p.mode {
        ServerTlsMode::Simple => b"simple",
        ServerTlsMode::Mutual => b"mutual",
        ServerTlsMode::OptionalMutual => b"optional_mutual",
    };
    h.update(mode);
    // Length-prefix every variable part so no two policies hash alike by
    // shifting bytes between fields.
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    let verifies = p.requests_client_cert();
    for san in p
        .allowed_sans
        .iter()
        .filter(|_| verifies || with_credential)
    {
        field(san.as_bytes());
    }
    if verifies || with_credential {
        field(p.spiffe_prefix.as_deref().unwrap_or("").as_bytes());
    }
    field(format!("{:?}-{:?}", p.min_version, p.max_version).as_bytes());
    field(p.cipher_list.as_deref().unwrap_or("").as_bytes());
    field(p.ciphersuites.as_deref().unwrap_or("").as_bytes());
    if with_credential {
        field(&p.credential.content_id());
    } else if verifies {
        field(&p.credential.trust_id());
    }
    if verifies || with_credential {
        let r = &p.revocation;
        // Learning distribution points changes who passes: a part of it.
        field(format!("{:?} {} {}", r.policy, r.fetches(), r.learns()).as_bytes());
        for s in r.slots() {
            field(s.url.as_bytes());
        }
    }
    h.finish()
}
