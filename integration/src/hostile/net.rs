//! The machine's own addresses.

use std::net::Ipv4Addr;

/// An IPv4 address of this machine that is not loopback (`getifaddrs`),
/// if it has one: a connection to it from here has a non-loopback peer.
pub fn non_loopback_ipv4() -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter_map(|ifa| ifa.address?.as_sockaddr_in().map(|a| a.ip()))
        .find(|ip| !ip.is_loopback() && !ip.is_unspecified())
}
