//! The one decision: whether a request passes, where it goes and what it
//! carries, made once per request by [`decide`], a pure function of the
//! runtime, the connection and the request (no I/O; the weighted pick's
//! randomness comes in as an argument). Both request engines, the direct
//! path and Pingora's proxy, only execute a [`Decision`]; one that hands a
//! request to the other hands its decision along.
//!
//! In order:
//! 1. `CONNECT` is a tunnel, on a plain-HTTP egress port only, to a host
//!    the registry or `outboundTrafficPolicy` allows;
//! 2. the Host (or `:authority`, or an absolute-form target's authority,
//!    which must agree with Host) must be a valid host name (400);
//! 3. on a TLS connection the Host must be served under the TLS policy the
//!    handshake satisfied, in the runtime of the handshake (421): no
//!    request reaches a host whose client-certificate policy its
//!    connection did not meet;
//! 4. the route table of the current runtime: direct response, redirect,
//!    or forward to a destination drawn by weight (404 for no route, 503
//!    for no destination); an egress port sends a host no route names to
//!    its ServiceEntry, or as `outboundTrafficPolicy` says (502 when
//!    `REGISTRY_ONLY` refuses it);
//! 5. a forward carries its [`Plan`]: the destination, the endpoint drawn
//!    once, the upstream TLS built with the runtime, timeouts and retries,
//!    and the header [`Edits`].

pub mod client_cert;
pub mod connection;
mod edits;
mod request;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_client_cert;
#[cfg(test)]
mod tests_connection;
#[cfg(test)]
mod tests_revocation;

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;

pub use edits::{rewrite_path, same_name, EditInputs, Edits};
pub use request::{normalize_host, RequestView};

use crate::authz::{AuthzInput, Verdict};
use crate::config::{
    HashKey, HttpRoute, OutboundPolicy, PeerMode, Redirect, Retries, RouteAction, ServerTlsMode,
};
use crate::origin::Origination;
use crate::route::{
    Admission, CompiledRoute, Destination, HeaderSource, InFlightGuard, Lookup, Overflow,
    Registered,
};
use crate::runtime::Runtime;
use crate::tls::ConnInfo;

/// The TLS side of the connection a request came on.
#[derive(Clone, Copy)]
pub enum Tls<'a> {
    Plain,
    Terminated(&'a ConnInfo),
    /// TLS, but the handshake left no facts (never expected): refused.
    Unknown,
}

/// What the decision knows of the connection.
pub struct ConnView<'a> {
    pub tls: Tls<'a>,
    /// The connection's local address (which listener took it).
    pub local: SocketAddr,
    pub client_ip: Option<IpAddr>,
}

impl ConnView<'_> {
    fn is_tls(&self) -> bool {
        !matches!(self.tls, Tls::Plain)
    }
}

/// What becomes of one request, with what its access line is labelled by.
#[derive(Debug)]
pub struct Decision {
    /// The gateway server that took the request (`-` when none did).
    pub server: Arc<str>,
    /// The host it routes by (lower case, no port); empty when it had none.
    pub host: String,
    pub route: Option<Arc<CompiledRoute>>,
    pub action: Action,
    /// What the AuthorizationPolicies said (`None`: there are none).
    pub authz: Option<Verdict>,
}

#[derive(Debug)]
pub enum Action {
    /// A response written by the gateway itself.
    Respond {
        status: u16,
        body: Cow<'static, str>,
        /// Refused by `REGISTRY_ONLY` (counted as such).
        blocked: bool,
    },
    Redirect {
        status: u16,
        location: String,
    },
    /// `CONNECT host:port`: a TCP tunnel to the endpoint.
    Tunnel(Target),
    Forward(Plan),
    /// 503: the destination's `connectionPool` limits are full.
    Overflow {
        dest: Arc<Destination>,
        why: Overflow,
    },
}

/// Where a request or a tunnel goes.
#[derive(Debug)]
pub struct Target {
    pub dest: Arc<Destination>,
    /// The endpoint, drawn once (`LEAST_REQUEST` counts it while held).
    pub endpoint: InFlightGuard,
    /// An unregistered host `ALLOW_ANY` lets through.
    pub passthrough: bool,
    /// The place under the destination's `connectionPool` limits, held
    /// until the request (or tunnel) ends; `None` when it has none.
    pub admission: Option<Admission>,
}

impl Target {
    /// Must the engine wait ([`Target::ready`]) before it connects?
    pub fn queued(&self) -> bool {
        self.admission.as_ref().is_some_and(Admission::is_queued)
    }

    /// Waits, at most `wait`, until a queued request may go.
    pub async fn ready(&mut self, wait: Duration) -> Result<(), Overflow> {
        match &mut self.admission {
            Some(a) => a.ready(wait).await,
            None => Ok(()),
        }
    }
}

/// How a request is forwarded.
#[derive(Debug)]
pub struct Plan {
    pub to: Target,
    pub origination: Option<Arc<Origination>>,
    /// Read and write timeout of one attempt (`perTryTimeout`, else the
    /// route's `timeout`).
    pub timeout: Option<Duration>,
    pub retries: Option<Retries>,
    pub edits: Edits,
    /// A `Set-Cookie` value for the response (`consistentHash.httpCookie`
    /// giving a client its key).
    pub set_cookie: Option<String>,
}

impl Plan {
    pub fn dest(&self) -> &Arc<Destination> {
        &self.to.dest
    }

    /// Must the engine wait ([`Plan::ready`]) before it connects?
    pub fn queued(&self) -> bool {
        self.to.queued()
    }

    /// Waits, at most `wait`, until a queued request may go.
    pub async fn ready(&mut self, wait: Duration) -> Result<(), Overflow> {
        self.to.ready(wait).await
    }
}

/// A forward, with its place under the destination's `connectionPool`
/// limits, or the 503 that refuses it.
fn admitted(plan: Plan) -> Action {
    admit(plan.to).map_or_else(
        |(dest, why)| Action::Overflow { dest, why },
        |to| Action::Forward(Plan { to, ..plan }),
    )
}

/// `to` with its place under its destination's `connectionPool` limits.
fn admit(mut to: Target) -> Result<Target, (Arc<Destination>, Overflow)> {
    match to.dest.admit() {
        Ok(admission) => {
            to.admission = admission;
            Ok(to)
        }
        Err(why) => Err((to.dest.clone(), why)),
    }
}

const NONE: &str = "-";

/// Decides what becomes of `req`. `rt` is the runtime the request is
/// pinned to (routing); the TLS policy check uses the runtime of the
/// connection's handshake (`ConnInfo::runtime`), so a reload never turns a
/// live connection's requests into 421s.
pub fn decide<H: HeaderSource + ?Sized>(
    rt: &Runtime,
    conn: &ConnView<'_>,
    req: &RequestView<'_, H>,
    rng: &mut dyn RngCore,
) -> Decision {
    let plain_server = || {
        rt.routes
            .server_name(conn.local)
            .unwrap_or_else(|| NONE.into())
    };
    let respond = |server: Arc<str>, host: String, status: u16, body: &'static str| Decision {
        server,
        host,
        route: None,
        action: Action::Respond {
            status,
            body: Cow::Borrowed(body),
            blocked: false,
        },
        authz: None,
    };
    if req.method == "CONNECT" {
        return tunnel(rt, conn, req);
    }
    let Some(host) = req.host().map(Cow::into_owned) else {
        return respond(
            plain_server(),
            String::new(),
            400,
            "missing or invalid Host\n",
        );
    };
    let server = match conn.tls {
        Tls::Terminated(info) => {
            let Some(policy) = &info.policy else {
                return respond(NONE.into(), host, 421, "misdirected request\n");
            };
            if !tls_covers(info, rt, &host) {
                return respond(policy.server.clone(), host, 421, "misdirected request\n");
            }
            // The client reconnects, and its new handshake meets the CRL.
            if info.revoked_since_handshake(crate::credentials::now_unix()) {
                return respond(policy.server.clone(), host, 421, "misdirected request\n");
            }
            policy.server.clone()
        }
        Tls::Unknown => return respond(NONE.into(), host, 421, "misdirected request\n"),
        Tls::Plain => {
            if let Some(refusal) = plaintext_refusal(rt, conn.local, &host) {
                return respond(plain_server(), host, 421, refusal);
            }
            plain_server()
        }
    };
    let path = req.path();
    // A request target has no fragment (RFC 9112 3.2), and Pingora would
    // forward the path without it: what is matched must be what is sent.
    if path.contains('#') {
        return respond(server, host, 400, "invalid request target\n");
    }
    // Under AuthorizationPolicies, a path a backend would read otherwise
    // (`/./admin`, `/%61dmin`, `\admin`) could pass a rule written for the
    // path it means: such paths are refused rather than guessed at.
    if !rt.model.authorization_policies.is_empty() && !is_normal_path(&path) {
        return respond(server, host, 400, "path is not in normal form\n");
    }
    let authz = authorize(rt, conn, req, &host, &path);
    if let Some(denied) = authz.as_ref().filter(|v| !v.allowed) {
        return Decision {
            server,
            host,
            route: None,
            action: Action::Respond {
                status: 403,
                body: Cow::Borrowed(RBAC_DENIED),
                blocked: false,
            },
            authz: Some(denied.clone()),
        };
    }
    let decided = |route: Option<Arc<CompiledRoute>>, action| Decision {
        server: server.clone(),
        host: host.clone(),
        route,
        action,
        authz: authz.clone(),
    };
    // On a TLS port only the routes of the server whose TLS policy owns the
    // Host apply (over TLS or plaintext alike).
    let lookup = match rt.tls.for_local(conn.local) {
        None => rt.routes.lookup(conn.local, &host, &path, req.headers),
        Some(listener) => match listener.sni.select(&host) {
            Some(p) => {
                let owner = (&*p.gateway, &*p.server);
                rt.routes
                    .lookup_server(conn.local, owner, &host, &path, req.headers)
            }
            None => Lookup::NoHost,
        },
    };
    match lookup {
        Lookup::Route(route) => {
            let action = match &route.route.action {
                RouteAction::DirectResponse { status, body } => Action::Respond {
                    status: *status,
                    body: Cow::Owned(body.clone().unwrap_or_default()),
                    blocked: false,
                },
                RouteAction::Redirect(r) => Action::Redirect {
                    status: r.code,
                    location: redirect_location(r, conn.is_tls(), &host, &path),
                },
                RouteAction::Forward(_) => match route.pick_with(rng) {
                    Some(dest) => {
                        let (to, set_cookie) = draw(dest.clone(), false, conn, req, rng);
                        let mut plan = plan(rt, conn, req, Some(&route.route), to);
                        plan.set_cookie = set_cookie;
                        admitted(plan)
                    }
                    None => Action::Respond {
                        status: 503,
                        body: Cow::Borrowed("no destination\n"),
                        blocked: false,
                    },
                },
            };
            decided(Some(route.clone()), action)
        }
        Lookup::HttpsRedirect => decided(
            None,
            Action::Redirect {
                status: 301,
                location: format!("https://{host}{path}"),
            },
        ),
        // Only an egress server forwards hosts no route names; anywhere
        // else that would make an ingress port an open proxy.
        Lookup::NoHost if !conn.is_tls() && rt.routes.is_egress(conn.local, &host) => {
            let action = match outbound(rt, &host, req.port()) {
                Ok((dest, passthrough)) => {
                    let (to, set_cookie) = draw(dest, passthrough, conn, req, rng);
                    let mut plan = plan(rt, conn, req, None, to);
                    plan.set_cookie = set_cookie;
                    admitted(plan)
                }
                Err(body) => Action::Respond {
                    status: 502,
                    body: Cow::Owned(body),
                    blocked: true,
                },
            };
            decided(None, action)
        }
        Lookup::NoHost | Lookup::NoRoute => Decision {
            authz: authz.clone(),
            ..respond(server.clone(), host.clone(), 404, "no route\n")
        },
    }
}

/// No dot segment, no backslash, no percent-encoded unreserved character,
/// no empty segment (the path part only; the query is not looked at).
fn is_normal_path(path: &str) -> bool {
    let p = path.split_once('?').map_or(path, |(p, _)| p);
    if p.contains('\\') || p.contains("//") {
        return false;
    }
    if p.split('/').any(|seg| seg == "." || seg == "..") {
        return false;
    }
    let b = p.as_bytes();
    !b.windows(3).any(|w| {
        w[0] == b'%' && {
            let hex = |c: u8| (c as char).to_digit(16);
            match (hex(w[1]), hex(w[2])) {
                (Some(h), Some(l)) => {
                    let c = (h * 16 + l) as u8;
                    c.is_ascii_alphanumeric() || b"-._~/".contains(&c)
                }
                _ => false,
            }
        }
    })
}

/// What Envoy's RBAC filter answers a denied request with.
pub const RBAC_DENIED: &str = "RBAC: access denied";

/// The AuthorizationPolicies' verdict on this request (`None`: none
/// apply). Plaintext connections carry no client identity.
fn authorize<H: HeaderSource + ?Sized>(
    rt: &Runtime,
    conn: &ConnView<'_>,
    req: &RequestView<'_, H>,
    host: &str,
    path: &str,
) -> Option<Verdict> {
    let policies = &rt.model.authorization_policies;
    if policies.is_empty() {
        return None;
    }
    let info = match conn.tls {
        Tls::Terminated(info) => Some(info),
        _ => None,
    };
    let input = AuthzInput {
        client: info.and_then(|i| i.client.as_ref()),
        // The TCP peer's own address is not kept once a PROXY protocol
        // header was believed: `ipBlocks` then sees the client's (README).
        source_ip: conn.client_ip,
        remote_ip: remote_ip(
            rt.model.runtime.num_trusted_proxies,
            req.headers,
            conn.client_ip,
        ),
        sni: info.and_then(|i| i.sni.as_deref()),
        host,
        port: conn.local.port(),
        method: req.method,
        path: path.split_once('?').map_or(path, |(p, _)| p),
        headers: req.headers,
    };
    crate::authz::evaluate(policies, &input)
}

/// The original client's address (`remote.ip`), as Envoy finds it with
/// `use_remote_address` and `xff_num_trusted_hops = hops`: the `hops`-th
/// address from the right of `X-Forwarded-For` (the proxies in front
/// append, so those are the entries a client cannot forge); the
/// connection's client when there are fewer, when that entry is not an
/// address, or when `hops` is 0.
pub fn remote_ip<H: HeaderSource + ?Sized>(
    hops: u32,
    headers: &H,
    client: Option<IpAddr>,
) -> Option<IpAddr> {
    if hops == 0 {
        return client;
    }
    // Every line counts, text or not: a client's line with one bad byte,
    // which a proxy then appended to, must not shorten the list (and so
    // move the pick onto the proxy's own address).
    let lines = headers.all_bytes("x-forwarded-for");
    let entries: Vec<&[u8]> = lines.iter().flat_map(|v| v.split(|&b| b == b',')).collect();
    let Some(i) = entries.len().checked_sub(hops as usize) else {
        return client;
    };
    std::str::from_utf8(entries[i])
        .ok()
        .and_then(|e| e.trim().parse().ok())
        .or(client)
}

/// Plaintext on a TLS port (PeerAuthentication PERMISSIVE or DISABLE):
/// refused when the port is STRICT in the runtime the request is routed by
/// (a reload to STRICT ends plaintext keep-alive connections too), and for
/// a host whose server requires a client certificate (`MUTUAL`), which a
/// plaintext client cannot present. `OPTIONAL_MUTUAL` and `SIMPLE` hosts
/// take it, as a TLS client without a certificate.
fn plaintext_refusal(rt: &Runtime, local: SocketAddr, host: &str) -> Option<&'static str> {
    let listener = rt.tls.for_local(local)?;
    if rt.model.peer_mode(local.port()) == PeerMode::Strict {
        return Some("plaintext is not accepted on this port\n");
    }
    let policy = listener.sni.select(host)?;
    (policy.mode == ServerTlsMode::Mutual)
        .then_some("this host requires a client certificate: use TLS\n")
}

/// The Host must be served under the TLS policy this connection satisfied
/// (same key, in the runtime of its handshake), else it could reach a
/// MUTUAL host over a SIMPLE handshake, or a host whose CA never saw this
/// client; and the runtime the request is routed by (`current`) must still
/// ask of clients for that host what the connection satisfied (same
/// `auth_key`): a host made MUTUAL, or a CA removed, since the handshake is
/// answered 421, and the client reconnects under the new policy.
pub fn tls_covers(conn: &ConnInfo, current: &Runtime, host: &str) -> bool {
    let Some(policy) = &conn.policy else {
        return false;
    };
    let select = |rt: &Runtime| {
        rt.tls
            .listener(&conn.listener_addr)
            .and_then(|l| l.sni.select(host))
            .cloned()
    };
    let then = select(&conn.runtime).is_some_and(|p| p.key == policy.key);
    let now = select(current).is_some_and(|p| p.auth_key == policy.auth_key);
    then && now
}

fn plan<H: HeaderSource + ?Sized>(
    rt: &Runtime,
    conn: &ConnView<'_>,
    req: &RequestView<'_, H>,
    route: Option<&HttpRoute>,
    to: Target,
) -> Plan {
    let info = match conn.tls {
        Tls::Terminated(info) => Some(info),
        _ => None,
    };
    let cert = client_cert::cert_headers(client_cert::forwarding(rt, route), info);
    let path = req.path();
    let edits = Edits::new(
        route,
        req.headers,
        &EditInputs {
            cert,
            client_ip: conn.client_ip,
            tls: conn.is_tls(),
            path: &path,
            absolute_form: req.absolute_form(),
            authority: req.raw_authority(),
            host_header: req.host_header.is_some(),
            method: req.method,
            http11: req.http11,
        },
    );
    Plan {
        origination: rt.origination(&to.dest),
        timeout: route.and_then(|r| r.retries.and_then(|r| r.per_try_timeout).or(r.timeout)),
        retries: route.and_then(|r| r.retries),
        edits,
        to,
        set_cookie: None,
    }
}

/// `CONNECT host:port`: only on a plain-HTTP egress port over HTTP/1.1.
fn tunnel<H: HeaderSource + ?Sized>(
    rt: &Runtime,
    conn: &ConnView<'_>,
    req: &RequestView<'_, H>,
) -> Decision {
    let server = rt
        .routes
        .server_name(conn.local)
        .unwrap_or_else(|| NONE.into());
    let respond = |host: String, status, body: Cow<'static, str>, blocked| Decision {
        server: server.clone(),
        host,
        route: None,
        action: Action::Respond {
            status,
            body,
            blocked,
        },
        authz: None,
    };
    let Some((host, port)) = req.connect_target() else {
        return respond(
            String::new(),
            400,
            "CONNECT needs host:port\n".into(),
            false,
        );
    };
    if conn.is_tls() || req.h2 || !rt.routes.is_egress(conn.local, &host) {
        let body = "CONNECT is only served on plain-HTTP egress ports (HTTP/1.1)\n";
        return respond(host, 405, body.into(), false);
    }
    // A tunnel has no path: policies see the target host and the method,
    // and, as Envoy's RBAC does, the listener's port.
    let authz = authorize(rt, conn, req, &host, "");
    if authz.as_ref().is_some_and(|v| !v.allowed) {
        return Decision {
            authz,
            ..respond(host, 403, Cow::Borrowed(RBAC_DENIED), false)
        };
    }
    let action = match outbound(rt, &host, port).map(|(dest, passthrough)| {
        admit(Target {
            endpoint: dest.acquire(),
            dest,
            passthrough,
            admission: None,
        })
    }) {
        Ok(Ok(to)) => Action::Tunnel(to),
        Ok(Err((dest, why))) => Action::Overflow { dest, why },
        Err(body) => {
            return Decision {
                authz,
                ..respond(host, 502, body.into(), true)
            }
        }
    };
    Decision {
        server: server.clone(),
        host,
        route: None,
        action,
        authz,
    }
}

/// The request's endpoint of `dest`, drawn once (by its hash key when the
/// destination hashes), and the cookie to give the client, if any.
fn draw<H: HeaderSource + ?Sized>(
    dest: Arc<Destination>,
    passthrough: bool,
    conn: &ConnView<'_>,
    req: &RequestView<'_, H>,
    rng: &mut dyn RngCore,
) -> (Target, Option<String>) {
    let (key, set_cookie) = match hash_input(&dest, conn, req, rng) {
        HashInput::Found(key) => (Some(key), None),
        HashInput::Missing => (None, None),
        HashInput::NewCookie { value, header } => {
            (Some(Cow::Owned(value.into_bytes())), Some(header))
        }
    };
    let to = Target {
        endpoint: dest.acquire_for(key.as_deref()),
        dest,
        passthrough,
        admission: None,
    };
    (to, set_cookie)
}

/// What a `consistentHash` destination hashes for this request.
enum HashInput<'r> {
    Found(Cow<'r, [u8]>),
    /// Not carried: balanced round robin.
    Missing,
    /// `httpCookie` with a `ttl` and no such cookie: a new value, hashed
    /// now and given to the client (`header`, a `Set-Cookie` value) so
    /// that its next requests hash alike.
    NewCookie {
        value: String,
        header: String,
    },
}

fn hash_input<'r, H: HeaderSource + ?Sized>(
    dest: &Destination,
    conn: &ConnView<'_>,
    req: &'r RequestView<'_, H>,
    rng: &mut dyn RngCore,
) -> HashInput<'r> {
    let found = |v: Option<Cow<'r, [u8]>>| v.map_or(HashInput::Missing, HashInput::Found);
    let Some(key) = dest.hash_key.as_ref() else {
        return HashInput::Missing;
    };
    match key {
        HashKey::Header(name) => {
            found(req.headers.first(name).map(|v| Cow::Borrowed(v.as_bytes())))
        }
        HashKey::SourceIp => found(
            conn.client_ip
                .map(|ip| Cow::Owned(ip.to_string().into_bytes())),
        ),
        HashKey::QueryParameter(name) => {
            let path = req.path();
            let value = path.split_once('?').and_then(|(_, query)| {
                query.split('&').find_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k == name).then_some(v)
                })
            });
            found(value.map(|v| Cow::Owned(v.as_bytes().to_vec())))
        }
        HashKey::Cookie { name, path, ttl } => {
            let sent = req.headers.all("cookie").into_iter().find_map(|line| {
                line.split(';').find_map(|c| {
                    let (k, v) = c.trim().split_once('=')?;
                    (k == name).then_some(v.trim_matches('"'))
                })
            });
            match (sent, ttl) {
                (Some(v), _) => HashInput::Found(Cow::Borrowed(v.as_bytes())),
                (None, None) => HashInput::Missing,
                (None, Some(ttl)) => {
                    let value = format!("{:016x}", rng.next_u64());
                    let mut header = format!("{name}=\"{value}\"");
                    if let Some(p) = path {
                        header.push_str("; Path=");
                        header.push_str(p);
                    }
                    if !ttl.is_zero() {
                        // Max-Age=0 would delete it: a part second is one.
                        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
                        header.push_str(&format!("; Max-Age={secs}"));
                    }
                    header.push_str("; HttpOnly");
                    HashInput::NewCookie { value, header }
                }
            }
        }
    }
}

/// An egress host no route names: its ServiceEntry's destination, else
/// what `outboundTrafficPolicy` says (`ALLOW_ANY`: passthrough as DNS
/// resolves it; `REGISTRY_ONLY`: refused, with the reason as the body).
/// `true` with the destination: an unregistered host `ALLOW_ANY` lets through.
fn outbound(rt: &Runtime, host: &str, port: u16) -> Result<(Arc<Destination>, bool), String> {
    let refusal = match rt.routes.registered(&rt.model, host, port) {
        Registered::Destination(dest) => return Ok((dest, false)),
        Registered::Refused(why) => why,
        Registered::Unknown => format!("host '{host}' is not registered by any ServiceEntry"),
    };
    match rt.model.runtime.outbound_policy {
        OutboundPolicy::AllowAny => Ok((Arc::new(Destination::passthrough(host, port)), true)),
        OutboundPolicy::RegistryOnly => Err(format!(
            "{host}:{port} blocked by outboundTrafficPolicy REGISTRY_ONLY: {refusal}\n"
        )),
    }
}

/// The `Location` of a VirtualService `redirect`: each part the rule does
/// not set keeps the request's value.
pub fn redirect_location(r: &Redirect, tls: bool, host: &str, path_and_query: &str) -> String {
    let scheme = r
        .scheme
        .as_deref()
        .unwrap_or(if tls { "https" } else { "http" });
    let authority = r.authority.as_deref().unwrap_or(host);
    let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
    let path = r.uri.as_deref().unwrap_or(path_and_query);
    format!("{scheme}://{authority}{port}{path}")
}
