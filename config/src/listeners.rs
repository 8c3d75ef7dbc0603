//! `GatewayRuntime.spec.listeners[]`: what a data-plane port does before
//! TLS or HTTP (PROXY protocol, and its own connection limit and
//! timeouts). Istio says PROXY protocol per gateway deployment
//! (`gatewayTopology.proxyProtocol` in the proxy's mesh config), which is
//! not a document tlsgate reads; this is the per-port form of it.

use std::collections::HashSet;
use std::net::IpAddr;

use super::parse::{duration, upper, Report};
use super::raw::RawListener;
use super::{IpNet, ListenerSettings, ProxyProtocolIn};

pub(crate) fn convert(raw: &[RawListener], report: &mut Report<'_>) -> Vec<ListenerSettings> {
    let mut seen = HashSet::new();
    raw.iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let p = format!("spec.listeners[{i}]");
            if l.port == 0 {
                report.error(format!("{p}.port"), "port 0 is not a port");
            }
            let bind =
                match &l.bind {
                    None => None,
                    Some(b) => Some(report.check(
                        &format!("{p}.bind"),
                        b.parse::<IpAddr>().map_err(|_| {
                            format!("invalid bind address '{b}': expected an IP address")
                        }),
                    )?),
                };
            if !seen.insert((l.port, bind)) {
                report.error(
                    format!("{p}.port"),
                    format!("port {} is listed twice", l.port),
                );
            }
            let proxy_protocol = match &l.proxy_protocol {
                None => ProxyProtocolIn::Off,
                Some(pp) => proxy_protocol(&p, pp, report)?,
            };
            let max_connections = match l.max_connections {
                Some(0) => {
                    report.error(format!("{p}.maxConnections"), "must be at least 1");
                    None
                }
                Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                None => None,
            };
            let mut timeout = |field: &str, raw: &Option<String>| {
                let path = format!("{p}.{field}");
                match report.check(&path, duration(raw.as_ref()?)) {
                    Some(d) if d.is_zero() => {
                        report.error(&path, "must be more than 0s");
                        None
                    }
                    Some(d) if field == "tcpIdleTimeout" && d < super::limits::MIN_TCP_TIMEOUT => {
                        report.error(&path, "must be at least 1s");
                        None
                    }
                    d => d,
                }
            };
            Some(ListenerSettings {
                index: i,
                port: l.port,
                bind,
                proxy_protocol,
                max_connections,
                first_bytes_timeout: timeout("firstBytesTimeout", &l.first_bytes_timeout),
                tcp_idle_timeout: timeout("tcpIdleTimeout", &l.tcp_idle_timeout),
            })
        })
        .collect()
}

fn proxy_protocol(
    p: &str,
    raw: &super::raw::RawProxyProtocolIn,
    report: &mut Report<'_>,
) -> Option<ProxyProtocolIn> {
    let trusted: Vec<IpNet> = raw
        .trusted_sources
        .iter()
        .enumerate()
        .filter_map(|(j, t)| {
            report.check(
                &format!("{p}.proxyProtocol.trustedSources[{j}]"),
                IpNet::parse(t),
            )
        })
        .collect();
    let mode = upper(&raw.mode);
    let needs_sources = |report: &mut Report<'_>| {
        if raw.trusted_sources.is_empty() {
            // A header is a claim anyone can make: whom to believe is
            // never a default.
            report.error(
                format!("{p}.proxyProtocol.trustedSources"),
                "list the load balancers' addresses (e.g. 10.0.0.0/8; 0.0.0.0/0 and ::/0 \
                 trust everyone)",
            );
        }
    };
    for (j, net) in trusted.iter().enumerate() {
        let field = format!("{p}.proxyProtocol.trustedSources[{j}]");
        if net.prefix == 0 {
            report.caution(
                &field,
                format!(
                    "{net} trusts every address: anyone who reaches this port can claim any \
                     client address (right only when the load balancer is the only way in)"
                ),
            );
        } else if net.has_host_bits() {
            report.caution(&field, format!("{net} has bits set past its prefix length"));
        }
    }
    match mode.as_deref() {
        None if !raw.trusted_sources.is_empty() => {
            report.error(
                format!("{p}.proxyProtocol.mode"),
                "missing: trustedSources alone reads no header; say REQUIRED or OPTIONAL",
            );
            None
        }
        None | Some("OFF") => Some(ProxyProtocolIn::Off),
        Some("REQUIRED") => {
            needs_sources(report);
            Some(ProxyProtocolIn::Required { trusted })
        }
        Some("OPTIONAL") => {
            needs_sources(report);
            Some(ProxyProtocolIn::Optional { trusted })
        }
        Some(other) => {
            report.error(
                format!("{p}.proxyProtocol.mode"),
                format!("unknown mode '{other}': expected REQUIRED, OPTIONAL or OFF"),
            );
            None
        }
    }
}

/// `listeners[]` against the Gateways: an entry for a port no server
/// listens on is a mistake that would silently turn a REQUIRED header off;
/// OPTIONAL on a TCP port waits for the client to speak first.
pub(crate) fn check(
    doc: &crate::DocId,
    listeners: &[ListenerSettings],
    gateways: &[crate::Gateway],
    out: &mut crate::Findings,
) {
    let mut report = Report::new(doc, out);
    for l in listeners {
        let servers: Vec<&crate::Server> = gateways
            .iter()
            .flat_map(|g| &g.servers)
            .filter(|s| s.port == l.port && l.bind.is_none_or(|b| b == s.bind))
            .collect();
        let p = format!("spec.listeners[{}]", l.index);
        if servers.is_empty() {
            report.error(
                format!("{p}.port"),
                format!(
                    "no Gateway server listens on port {}{}",
                    l.port,
                    l.bind.map(|b| format!(" at {b}")).unwrap_or_default()
                ),
            );
            continue;
        }
        let optional = matches!(l.proxy_protocol, ProxyProtocolIn::Optional { .. });
        if optional && servers.iter().any(|s| s.protocol == crate::Protocol::Tcp) {
            report.caution(
                format!("{p}.proxyProtocol.mode"),
                "OPTIONAL waits for the client's first bytes: clients of protocols where the \
                 server speaks first (MySQL, SMTP) wait until firstBytesTimeout; use REQUIRED",
            );
        }
    }
}
