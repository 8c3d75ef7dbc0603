//! The TLS facts of one downstream connection.

use std::sync::Arc;

use super::policy::ServerPolicy;
use crate::config::client_cert::XfccElements;
use crate::credentials::ClientIdentity;

/// The client's certificate and the rest of the chain it was verified
/// with, up to the CA of the bundle (empty on a resumed session: a ticket
/// keeps only the leaf).
#[derive(Debug, Clone)]
pub struct PeerCerts {
    leaf: Leaf,
    chain: Chain,
}

#[derive(Debug, Clone)]
enum Leaf {
    /// OpenSSL's, shared with the TLS session that holds it anyway.
    Decoded(openssl::x509::X509),
    /// rustls's: a decoded OpenSSL certificate is about 4 KB that an idle
    /// connection would hold for nothing; the identity and XFCC element
    /// are made at the handshake, and the rare later use decodes again.
    Der(Arc<[u8]>),
}

#[derive(Debug, Clone)]
enum Chain {
    /// As the TLS library verified it (OpenSSL's, or none when resumed).
    Known(Vec<openssl::x509::X509>),
    /// rustls's: which path verified is found again the first time
    /// something asks (a CRL re-check, an XFCC `Chain`, RFC 9440's
    /// header); decoding and matching certificates cost a tenth of a
    /// handshake that most connections never need.
    Later {
        /// What the client sent after its leaf, as DER.
        sent: Box<[Box<[u8]>]>,
        /// The credential whose CA bundle verified it.
        cas: Arc<crate::credentials::Credential>,
        found: std::sync::OnceLock<Vec<openssl::x509::X509>>,
    },
}

impl PeerCerts {
    pub fn new(leaf: openssl::x509::X509, chain: Vec<openssl::x509::X509>) -> PeerCerts {
        PeerCerts {
            leaf: Leaf::Decoded(leaf),
            chain: Chain::Known(chain),
        }
    }

    /// A leaf without its chain: a resumed session's.
    pub fn from_der(leaf: &[u8]) -> PeerCerts {
        PeerCerts {
            leaf: Leaf::Der(leaf.into()),
            chain: Chain::Known(Vec::new()),
        }
    }

    /// A leaf kept as DER with the path it was verified by, found already.
    pub fn from_der_with_chain(leaf: &[u8], chain: Vec<openssl::x509::X509>) -> PeerCerts {
        PeerCerts {
            leaf: Leaf::Der(leaf.into()),
            chain: Chain::Known(chain),
        }
    }

    /// A leaf verified with what the client `sent` after it against the
    /// CA bundle of `cas`.
    pub fn from_der_verified(
        leaf: &[u8],
        sent: Box<[Box<[u8]>]>,
        cas: Arc<crate::credentials::Credential>,
    ) -> PeerCerts {
        PeerCerts {
            leaf: Leaf::Der(leaf.into()),
            chain: Chain::Later {
                sent,
                cas,
                found: Default::default(),
            },
        }
    }

    /// The leaf, decoded (`None` only if DER a TLS library accepted does
    /// not decode).
    pub fn leaf(&self) -> Option<openssl::x509::X509> {
        match &self.leaf {
            Leaf::Decoded(x) => Some(x.clone()),
            Leaf::Der(d) => openssl::x509::X509::from_der(d).ok(),
        }
    }

    pub fn leaf_der(&self) -> Option<Vec<u8>> {
        match &self.leaf {
            Leaf::Decoded(x) => x.to_der().ok(),
            Leaf::Der(d) => Some(d.to_vec()),
        }
    }

    /// The chain above the leaf, up to and including the bundle's CA.
    pub fn chain(&self) -> &[openssl::x509::X509] {
        match &self.chain {
            Chain::Known(c) => c,
            Chain::Later { sent, cas, found } => found.get_or_init(|| {
                let Some(leaf) = self.leaf() else {
                    return Vec::new();
                };
                let sent: Vec<_> = sent
                    .iter()
                    .filter_map(|d| openssl::x509::X509::from_der(d).ok())
                    .collect();
                let mut path = crate::credentials::verified_path(leaf, &sent, &cas.ca_certs);
                path.remove(0);
                path
            }),
        }
    }
}

/// The TLS facts of one downstream connection, shared by its requests
/// (Pingora keeps it in `SslDigest.extension`).
#[derive(Debug)]
pub struct ConnInfo {
    pub listener: Arc<str>,
    /// The bind address of the listener (key of `TlsPolicy`).
    pub listener_addr: std::net::SocketAddr,
    pub sni: Option<Box<str>>,
    /// The server policy the handshake satisfied.
    pub policy: Option<Arc<ServerPolicy>>,
    /// The runtime of the handshake. Which hosts this connection may
    /// reach is decided against it for the connection's whole life, so a
    /// reload never turns a live keep-alive connection's requests into 421s
    /// (new connections and resumptions get the new policy).
    pub runtime: Arc<crate::runtime::Runtime>,
    /// Present only when a client certificate was verified (or resumed
    /// from a session that verified one under the same policy key).
    pub client: Option<ClientIdentity>,
    /// The verified client certificate itself, when `client` is there.
    pub peer_certs: Option<PeerCerts>,
    /// `x-forwarded-client-cert` element with these elements, computed
    /// once per connection (the gateway's setting at the handshake).
    pub xfcc: Option<(XfccElements, String)>,
    pub resumed: bool,
    /// The fetched-CRL epoch the client's certificate last passed under
    /// (at the handshake, then at each re-check after a CRL changed).
    pub crl_checked: std::sync::atomic::AtomicU64,
    pub version: &'static str,
    /// One span per connection, carrying SNI and peer identity: see
    /// [`ConnInfo::span`].
    pub span: std::sync::OnceLock<tracing::Span>,
}

impl ConnInfo {
    /// The connection's span, made the first time something logs under it
    /// (with access logs off, never): made at the handshake, a span cost
    /// every connection about 2 KB for its whole idle life, and the
    /// handshake the formatting of its fields.
    pub fn span(&self) -> &tracing::Span {
        self.span.get_or_init(|| {
            let client_id = self.client.as_ref().map(|c| c.id()).unwrap_or_default();
            tracing::info_span!(
                "conn",
                listener = %self.listener,
                sni = %self.sni.as_deref().unwrap_or(""),
                "client.id" = %client_id,
                tls = self.version,
                resumed = self.resumed,
            )
        })
    }

    /// Has a CRL fetched since the handshake (or since the last re-check)
    /// revoked the client's certificate, or gone stale under `failClosed`?
    /// Checked once per CRL change, so a keep-alive or HTTP/2 connection
    /// made before a revocation does not outlive it.
    pub fn revoked_since_handshake(&self, now: i64) -> bool {
        use crate::revocation::Verdict;
        use std::sync::atomic::Ordering;
        let (Some(policy), Some(peer)) = (&self.policy, &self.peer_certs) else {
            return false;
        };
        let r = &policy.revocation;
        if !r.fetches() {
            return false;
        }
        let epoch = crate::revocation::crl_epoch();
        if self.crl_checked.load(Ordering::Relaxed) == epoch {
            return false;
        }
        let Some(leaf) = peer.leaf() else {
            // Cannot happen to a certificate the handshake verified; if it
            // did, the connection is not let on unchecked.
            return true;
        };
        match r.recheck_leaf(&leaf, peer.chain().first().map(|c| &**c), now) {
            Verdict::Revoked | Verdict::Missing | Verdict::Stale { accepted: false } => true,
            Verdict::Good | Verdict::NotChecked | Verdict::Stale { accepted: true } => {
                self.crl_checked.store(epoch, Ordering::Relaxed);
                false
            }
        }
    }
}
