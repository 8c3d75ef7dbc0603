//! The connection-level routes: what a listener does with a connection
//! before (or instead of) HTTP. Compiled with the HTTP routes, from the
//! same model, sharing their destinations:
//! - a `PASSTHROUGH` server's hosts send a TLS connection, untouched, to
//!   the `tls[]` route whose `sniHosts` match its SNI most specifically;
//! - a `TLS` server that terminates sends the decrypted stream to the
//!   `tcp[]` route of its VirtualService for that host;
//! - a `TCP` server sends every connection to its first `tcp[]` route.
//!
//! A route applies to a server when its VirtualService binds the server's
//! Gateway, its hosts meet the server's hosts, and one of its matches
//! names the server's port (or none does) and the Gateway (or none).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use rand::Rng;

use crate::config::{
    gateway_ref_matches, ConfigError, DocId, Gateway, HostPattern, L4Match, L4Route, Model,
    Protocol, Server, VirtualService,
};
use crate::names::HostMap;

use super::host::{binds, intersect};
use super::resolve::Resolver;
use super::Destination;

/// One compiled `tls[]` or `tcp[]` route.
#[derive(Debug)]
pub struct StreamRoute {
    /// `<virtualservice>.tls[i]`, for logs and metrics.
    pub id: Arc<str>,
    pub vs: DocId,
    pub destinations: Vec<Arc<Destination>>,
    /// Running sums of the weights (to 100).
    cumulative: Vec<u32>,
}

impl StreamRoute {
    /// A destination drawn by weight.
    pub fn pick_with(&self, rng: &mut dyn rand::RngCore) -> Option<&Arc<Destination>> {
        let total = *self.cumulative.last()?;
        if total == 0 {
            return self.destinations.first();
        }
        let n = rng.gen_range(0..total);
        let i = self.cumulative.iter().position(|c| n < *c)?;
        self.destinations.get(i)
    }
}

/// A server that routes connections, and its routes by host.
#[derive(Debug)]
pub struct StreamServer {
    /// The Gateway server's name (metrics `server` label).
    pub name: Arc<str>,
    /// By SNI (passthrough, terminated TLS).
    pub routes: HostMap<Arc<StreamRoute>>,
    /// The first route that applies, in VirtualService and route order:
    /// a TCP server's (there is no name to choose by).
    pub first: Option<Arc<StreamRoute>>,
}

/// What an SNI selects on a TLS listener.
#[derive(Debug, Clone)]
pub enum SniDoor {
    /// The TLS handshake (and then HTTP, or a `tcp[]` route).
    Terminate,
    Passthrough(Arc<StreamServer>),
}

/// One listener's connection-level view.
#[derive(Debug, Default)]
pub struct StreamListener {
    /// Every TLS server's hosts (terminating or passthrough): which kind
    /// the SNI picks. Empty on listeners without passthrough servers.
    pub sni: HostMap<SniDoor>,
    /// Has a passthrough server: the ClientHello must be read first.
    pub passthrough: bool,
    /// Every terminating server's hosts, as the TLS policy picks them:
    /// `Some` for a `TLS` server (its decrypted stream's routes), `None`
    /// for an HTTPS one (HTTP).
    pub terminated: HostMap<Option<Arc<StreamServer>>>,
    /// The `TCP` server of a TCP listener.
    pub tcp: Option<Arc<StreamServer>>,
}

impl StreamListener {
    /// Where a TLS connection with this SNI goes (`None`: no SNI).
    pub fn door(&self, sni: Option<&str>) -> SniDoor {
        let found = match sni {
            Some(name) => self.sni.select(name),
            None => self.sni.any(),
        };
        found.cloned().unwrap_or(SniDoor::Terminate)
    }
}

pub(super) struct StreamCompiler<'m, 'r> {
    model: &'m Model,
    resolver: &'r mut Resolver<'m>,
    errors: &'r mut Vec<ConfigError>,
    /// Compiled once per route, shared by every server it serves.
    compiled: BTreeMap<(usize, &'static str, usize), Arc<StreamRoute>>,
}

impl<'m, 'r> StreamCompiler<'m, 'r> {
    pub fn new(
        model: &'m Model,
        resolver: &'r mut Resolver<'m>,
        errors: &'r mut Vec<ConfigError>,
    ) -> Self {
        StreamCompiler {
            model,
            resolver,
            errors,
            compiled: BTreeMap::new(),
        }
    }

    pub fn compile(mut self) -> std::collections::HashMap<SocketAddr, StreamListener> {
        let mut listeners: BTreeMap<SocketAddr, StreamListener> = BTreeMap::new();
        let model = self.model;
        for gw in &model.gateways {
            for server in &gw.servers {
                let kind = match server.protocol {
                    Protocol::Http => continue,
                    Protocol::Https if !server.passthrough => {
                        // Terminated for HTTP: only claims its hosts, so a
                        // passthrough wildcard cannot take them.
                        let l = listeners.entry(server.addr()).or_default();
                        for h in &server.hosts {
                            l.sni.insert(h, SniDoor::Terminate);
                            l.terminated.insert(h, None);
                        }
                        continue;
                    }
                    p => p,
                };
                let (routes, first) = self.server_routes(gw, server);
                let stream = Arc::new(StreamServer {
                    name: server.name.as_str().into(),
                    routes,
                    first,
                });
                let l = listeners.entry(server.addr()).or_default();
                match kind {
                    Protocol::Tcp => {
                        if l.tcp.is_none() {
                            l.tcp = Some(stream);
                        }
                    }
                    _ if server.passthrough => {
                        l.passthrough = true;
                        for h in &server.hosts {
                            l.sni.insert(h, SniDoor::Passthrough(stream.clone()));
                        }
                    }
                    _ => {
                        for h in &server.hosts {
                            l.sni.insert(h, SniDoor::Terminate);
                            l.terminated.insert(h, Some(stream.clone()));
                        }
                    }
                }
            }
        }
        listeners.into_iter().collect()
    }

    /// The routes of every VirtualService bound to `server`, by host:
    /// passthrough by `sniHosts`, the others by the VirtualService's hosts.
    fn server_routes(
        &mut self,
        gw: &Gateway,
        server: &Server,
    ) -> (HostMap<Arc<StreamRoute>>, Option<Arc<StreamRoute>>) {
        let mut map = HostMap::default();
        let mut first = None;
        let model = self.model;
        for (vi, vs) in model.virtual_services.iter().enumerate() {
            if !binds(vs, gw) {
                continue;
            }
            let (section, routes) = if server.passthrough {
                ("tls", &vs.tls)
            } else {
                ("tcp", &vs.tcp)
            };
            for (ri, route) in routes.iter().enumerate() {
                let applies: Vec<&L4Match> = route
                    .matches
                    .iter()
                    .filter(|m| match_applies(m, gw, server.port))
                    .collect();
                if !route.matches.is_empty() && applies.is_empty() {
                    continue;
                }
                // A route's names are its VirtualService's hosts, narrowed
                // by its sniHosts (the loader checks they are covered; the
                // intersection keeps that true whatever the model says).
                let patterns: Vec<HostPattern> = if server.passthrough {
                    applies
                        .iter()
                        .flat_map(|m| &m.sni_hosts)
                        .flat_map(|sni| vs.hosts.iter().filter_map(|vh| intersect(sni, vh)))
                        .collect()
                } else {
                    vs.hosts.clone()
                };
                let mut hosts = Vec::new();
                for p in &patterns {
                    for sh in &server.hosts {
                        if let Some(h) = intersect(p, sh) {
                            hosts.push(h);
                        }
                    }
                }
                if hosts.is_empty() {
                    continue;
                }
                let Some(compiled) = self.route(vi, vs, section, ri, route) else {
                    continue;
                };
                for h in &hosts {
                    map.insert(h, compiled.clone());
                }
                first.get_or_insert(compiled);
            }
        }
        (map, first)
    }

    fn route(
        &mut self,
        vi: usize,
        vs: &VirtualService,
        section: &'static str,
        ri: usize,
        route: &L4Route,
    ) -> Option<Arc<StreamRoute>> {
        if let Some(done) = self.compiled.get(&(vi, section, ri)) {
            return Some(done.clone());
        }
        let mut destinations = Vec::new();
        let mut cumulative = Vec::new();
        let mut sum = 0;
        for (j, d) in route.destinations.iter().enumerate() {
            let field = format!("spec.{section}[{}].route[{j}].destination", route.index);
            match self.resolver.resolve(d, &vs.id, &field) {
                Ok(dest) => {
                    sum += d.weight;
                    destinations.push(dest);
                    cumulative.push(sum);
                }
                Err(e) => self.errors.push(e),
            }
        }
        if destinations.len() != route.destinations.len() {
            return None;
        }
        let compiled = Arc::new(StreamRoute {
            id: format!("{}/{}", vs.id.name, route.name).into(),
            vs: vs.id.clone(),
            destinations,
            cumulative,
        });
        self.compiled.insert((vi, section, ri), compiled.clone());
        Some(compiled)
    }
}

fn match_applies(m: &L4Match, gw: &Gateway, port: u16) -> bool {
    m.port.is_none_or(|p| p == port)
        && (m.gateways.is_empty()
            || m.gateways
                .iter()
                .any(|r| gateway_ref_matches(r, &gw.id.name, gw.namespace.as_deref())))
}
