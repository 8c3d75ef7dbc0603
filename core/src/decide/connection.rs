//! The connection-level half of the one decision: what a listener does
//! with a connection before any HTTP, from what its first bytes said.
//! Pure, like [`decide`](super::decide): the listener reads the bytes (a
//! PROXY protocol header, the ClientHello) and executes the answer.
//!
//! - Whom a PROXY protocol header is believed from ([`proxy_source`]).
//! - What kind of opening to wait for ([`look_for`]): nothing (today's
//!   TLS or HTTP path, at no cost), the first byte (a port that also takes
//!   plaintext), or the whole ClientHello (a port with passthrough hosts).
//! - What becomes of the connection ([`decide_opening`]): the TLS
//!   handshake, plaintext HTTP, a byte stream to a destination, or a
//!   refusal with its reason (a metric label).
//! - After a handshake on a `TLS` (not HTTPS) server, the stream's route
//!   ([`decide_terminated`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;

use crate::authz::{evaluate_stream, StreamInput, Verdict};
use crate::config::{HashKey, PeerMode, ProxyProtocolIn, ProxyVersion};
use crate::credentials::ClientIdentity;
use crate::l4::proxy_protocol::Header;
use crate::route::{SniDoor, StreamRoute, StreamServer};
use crate::runtime::Runtime;

use super::{admit, Target};

/// What kind of port took the connection (fixed when it was bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Http,
    Tls,
    Tcp,
}

/// How much of the connection the listener must read before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Nothing: decide at once.
    Nothing,
    /// The first byte: TLS (a handshake record) or plaintext.
    FirstByte,
    /// The whole ClientHello (its SNI), when the first byte says TLS.
    ClientHello,
}

/// What the first bytes were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening<'a> {
    /// Not looked at ([`Look::Nothing`]).
    Unread,
    /// A TLS handshake record; the SNI (lower case) when the ClientHello
    /// was read and carries one.
    Tls { sni: Option<&'a str> },
    /// Anything else: plaintext.
    Plain,
}

/// What becomes of a connection.
#[derive(Debug)]
pub enum ConnAction {
    /// The TLS handshake, then HTTP (or [`decide_terminated`]).
    Terminate,
    /// Plaintext HTTP.
    Http,
    /// Bytes relayed to a destination, untouched.
    Stream(StreamPlan),
    /// Closed at once; the reason is the metric label.
    Refuse(&'static str),
    /// Closed at once by an AuthorizationPolicy (`authz_denied`).
    Denied(Verdict),
}

impl ConnAction {
    /// The refusal's metric label, when the connection is refused.
    pub fn refusal(&self) -> Option<&'static str> {
        match self {
            ConnAction::Refuse(reason) => Some(reason),
            ConnAction::Denied(_) => Some("authz_denied"),
            _ => None,
        }
    }
}

/// A relayed connection: where it goes and what it carries.
#[derive(Debug)]
pub struct StreamPlan {
    /// The Gateway server that took it.
    pub server: Arc<str>,
    pub route: Arc<StreamRoute>,
    pub to: Target,
    /// A PROXY protocol header to send first (the destination's
    /// `proxyProtocol`).
    pub proxy_protocol: Option<ProxyVersion>,
    /// No byte either way for this long closes both sides.
    pub idle: Duration,
    /// Once one side has closed, no byte for this long (at most `idle`)
    /// closes the other.
    pub half_closed: Duration,
    /// What the AuthorizationPolicies said (`None`: there are none).
    pub authz: Option<Verdict>,
}

/// Where a PROXY protocol header may come from, and what it says.
#[derive(Debug, PartialEq, Eq)]
pub enum ProxySource {
    /// Not configured, or optional and not sent: the socket's address.
    Socket,
    /// The header's client address.
    Client(SocketAddr),
}

/// Is the header (or its absence) acceptable from `peer`? `header` is
/// `None` when the connection did not start with one. Err: the refusal
/// reason.
pub fn proxy_source(
    setting: &ProxyProtocolIn,
    peer: IpAddr,
    header: Option<&Header>,
) -> Result<ProxySource, &'static str> {
    let trusted = setting.trusts(peer);
    match (setting, header) {
        (ProxyProtocolIn::Off, _) => Ok(ProxySource::Socket),
        // Whoever is not trusted must not even try: a client of an
        // optional port that sends a header is spoofing its address.
        (_, Some(_)) if !trusted => Err("proxy_protocol_untrusted"),
        (ProxyProtocolIn::Required { .. }, None) if !trusted => Err("proxy_protocol_untrusted"),
        (ProxyProtocolIn::Required { .. }, None) => Err("proxy_protocol_missing"),
        (ProxyProtocolIn::Optional { .. }, None) => Ok(ProxySource::Socket),
        (_, Some(Header::Local)) => Ok(ProxySource::Socket),
        (_, Some(Header::Proxied { source, .. })) => Ok(ProxySource::Client(*source)),
    }
}

/// What the listener at `local` must read before [`decide_opening`].
pub fn look_for(rt: &Runtime, local: SocketAddr, kind: ListenerKind) -> Look {
    if kind != ListenerKind::Tls {
        return Look::Nothing;
    }
    if rt.routes.streams(local).is_some_and(|l| l.passthrough) {
        return Look::ClientHello;
    }
    match rt.model.peer_mode(local.port()) {
        PeerMode::Strict => Look::Nothing,
        PeerMode::Permissive | PeerMode::Disable => Look::FirstByte,
    }
}

/// Decides a new connection on the listener at `local`.
pub fn decide_opening(
    rt: &Runtime,
    local: SocketAddr,
    kind: ListenerKind,
    opening: Opening<'_>,
    client_ip: IpAddr,
    rng: &mut dyn RngCore,
) -> ConnAction {
    let streams = rt.routes.streams(local);
    match kind {
        ListenerKind::Http => ConnAction::Http,
        ListenerKind::Tcp => match streams.and_then(|l| l.tcp.as_ref()) {
            Some(server) => {
                let who = Who::new(None, client_ip, None, local);
                stream(rt, local, server, server.first.as_ref(), &who, rng)
            }
            None => ConnAction::Refuse("no_route"),
        },
        ListenerKind::Tls => {
            let mode = rt.model.peer_mode(local.port());
            match opening {
                Opening::Unread if mode == PeerMode::Strict => ConnAction::Terminate,
                // As a STRICT sidecar does: the client sees a reset
                // (curl: "(56) Recv failure").
                Opening::Plain if mode == PeerMode::Strict => {
                    ConnAction::Refuse("plaintext_on_tls_port")
                }
                Opening::Unread | Opening::Plain => ConnAction::Http,
                Opening::Tls { .. } if mode == PeerMode::Disable => {
                    ConnAction::Refuse("tls_on_plaintext_port")
                }
                Opening::Tls { sni } => match streams.map(|l| l.door(sni)) {
                    Some(SniDoor::Passthrough(server)) => {
                        let route = match sni {
                            Some(name) => server.routes.select(name),
                            None => server.routes.any(),
                        };
                        let who = Who::new(None, client_ip, sni, local);
                        stream(rt, local, &server, route, &who, rng)
                    }
                    Some(SniDoor::Terminate) | None => ConnAction::Terminate,
                },
            }
        }
    }
}

/// After the handshake: the route of a `TLS` server's decrypted stream,
/// or `None` for HTTP. `rt` is the runtime of the handshake (the one whose
/// TLS policy the connection satisfied), `local` the listener's address.
/// `revoked`: a CRL fetched since the client's certificate was checked
/// (during the handshake itself, or before the session it resumed) refuses
/// it (`ConnInfo::revoked_since_handshake`). HTTP checks that at each
/// request; a relayed stream has no requests, so it is checked here, once.
pub fn decide_terminated(
    rt: &Runtime,
    local: SocketAddr,
    sni: Option<&str>,
    client: Option<&ClientIdentity>,
    client_ip: IpAddr,
    revoked: impl FnOnce() -> bool,
    rng: &mut dyn RngCore,
) -> Option<ConnAction> {
    let listener = rt.routes.streams(local)?;
    let server = match sni {
        Some(name) => listener.terminated.select(name),
        None => listener.terminated.any(),
    }?
    .as_ref()?;
    if revoked() {
        return Some(ConnAction::Refuse("revoked"));
    }
    let route = match sni {
        Some(name) => server.routes.select(name),
        None => server.routes.any(),
    };
    let who = Who::new(client, client_ip, sni, local);
    Some(stream(rt, local, server, route, &who, rng))
}

/// Who a relayed connection is, for its AuthorizationPolicies.
struct Who<'a> {
    input: StreamInput<'a>,
    client_ip: IpAddr,
}

impl<'a> Who<'a> {
    fn new(
        client: Option<&'a ClientIdentity>,
        client_ip: IpAddr,
        sni: Option<&'a str>,
        local: SocketAddr,
    ) -> Self {
        Who {
            input: StreamInput {
                client,
                remote_ip: Some(client_ip),
                sni,
                port: local.port(),
            },
            client_ip,
        }
    }
}

fn stream(
    rt: &Runtime,
    local: SocketAddr,
    server: &StreamServer,
    route: Option<&Arc<StreamRoute>>,
    who: &Who<'_>,
    rng: &mut dyn RngCore,
) -> ConnAction {
    // Policies apply to relayed connections too (Istio's TCP rules).
    let authz = evaluate_stream(&rt.model.authorization_policies, &who.input);
    if let Some(denied) = authz.as_ref().filter(|v| !v.allowed) {
        return ConnAction::Denied(denied.clone());
    }
    let client_ip = who.client_ip;
    let Some(route) = route else {
        return ConnAction::Refuse("no_route");
    };
    let Some(dest) = route.pick_with(rng) else {
        return ConnAction::Refuse("no_route");
    };
    // `useSourceIp` is the one hash key a byte stream carries.
    let key = matches!(dest.hash_key, Some(HashKey::SourceIp)).then(|| client_ip.to_string());
    let to = Target {
        endpoint: dest.acquire_for(key.as_deref().map(str::as_bytes)),
        dest: dest.clone(),
        passthrough: false,
        admission: None,
    };
    let Ok(to) = admit(to) else {
        return ConnAction::Refuse("overflow");
    };
    let settings = rt.model.listener(local);
    let idle = settings
        .and_then(|s| s.tcp_idle_timeout)
        .unwrap_or(rt.model.runtime.timeouts.tcp_idle);
    ConnAction::Stream(StreamPlan {
        server: server.name.clone(),
        route: route.clone(),
        proxy_protocol: dest.proxy_protocol,
        idle,
        half_closed: rt.model.runtime.timeouts.tcp_half_closed.min(idle),
        to,
        authz,
    })
}
