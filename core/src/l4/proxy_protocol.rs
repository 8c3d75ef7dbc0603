//! PROXY protocol v1 (text) and v2 (binary) headers, as HAProxy's
//! specification defines them: the client address a load balancer in
//! front of the gateway saw. Strict: anything the specification does not
//! allow is `Invalid`, and v2's TLVs are skipped unread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::Parsed;

/// v1's longest line, CRLF included (specification, 2.1).
const V1_MAX: usize = 107;
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v2 header accepted: addresses plus TLVs. The specification
/// allows 64 KiB; load balancers send a few hundred bytes.
pub const V2_MAX: usize = 16 + 1024;

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The client's and the proxy's addresses of a proxied TCP connection.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v1 `UNKNOWN`, v2 `LOCAL` or an address family other than TCP over
    /// IPv4/IPv6: the connection is the proxy's own (a health check);
    /// the socket's addresses stand.
    Local,
}

/// Parses the header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed<Header> {
    if buf.is_empty() {
        return Parsed::Incomplete(1);
    }
    if V2_SIGNATURE.starts_with(&buf[..buf.len().min(12)]) {
        return v2(buf);
    }
    if b"PROXY ".starts_with(&buf[..buf.len().min(6)]) {
        return v1(buf);
    }
    Parsed::Invalid("not_proxy_protocol")
}

/// The header that tells an upstream about `source` (the client) and
/// `destination` (the address it connected to): v1's text line or v2's
/// binary form. Mixed families (an IPv4 client on an IPv6 listener) are
/// sent as IPv6, IPv4-mapped.
pub fn encode(
    version: crate::config::ProxyVersion,
    source: SocketAddr,
    destination: SocketAddr,
) -> Vec<u8> {
    use crate::config::ProxyVersion;
    let (source, destination) = same_family(source, destination);
    match version {
        ProxyVersion::V1 => {
            let proto = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {proto} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            )
            .into_bytes()
        }
        ProxyVersion::V2 => {
            let mut out = V2_SIGNATURE.to_vec();
            out.push(0x21); // version 2, PROXY
            match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(0x11);
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    let v6 = |ip: IpAddr| match ip {
                        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                        IpAddr::V6(v6) => v6,
                    };
                    out.push(0x21);
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&v6(s).octets());
                    out.extend_from_slice(&v6(d).octets());
                }
            }
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&destination.port().to_be_bytes());
            out
        }
    }
}

fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a.is_ipv4() == b.is_ipv4() {
        return (a, b);
    }
    let v6 = |s: SocketAddr| match s.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), s.port()),
        IpAddr::V6(_) => s,
    };
    (v6(a), v6(b))
}

fn v1(buf: &[u8]) -> Parsed<Header> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Parsed::Invalid("v1_too_long")
        } else {
            Parsed::Incomplete(1)
        };
    };
    let Ok(line) = std::str::from_utf8(&buf[..end]) else {
        return Parsed::Invalid("v1_malformed");
    };
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Some(Header::Local),
        ["PROXY", proto @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            v1_addrs(proto, src, dst, sport, dport)
        }
        _ => None,
    };
    match header {
        Some(h) => Parsed::Done(h, end + 2),
        None => Parsed::Invalid("v1_malformed"),
    }
}

fn v1_addrs(proto: &str, src: &str, dst: &str, sport: &str, dport: &str) -> Option<Header> {
    let ip = |s: &str| -> Option<IpAddr> {
        let ip: IpAddr = s.parse().ok()?;
        (ip.is_ipv4() == (proto == "TCP4")).then_some(ip)
    };
    // Decimal, no sign, no leading zeros (specification, 2.1).
    let port = |s: &str| -> Option<u16> {
        let canonical = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        canonical.then(|| s.parse().ok()).flatten()
    };
    Some(Header::Proxied {
        source: SocketAddr::new(ip(src)?, port(sport)?),
        destination: SocketAddr::new(ip(dst)?, port(dport)?),
    })
}

fn v2(buf: &[u8]) -> Parsed<Header> {
    // Until the signature is whole, each byte may rule it out: ask for one.
    if buf.len() < 12 {
        return Parsed::Incomplete(1);
    }
    if buf.len() < 16 {
        return Parsed::Incomplete(16 - buf.len());
    }
    let (ver_cmd, family) = (buf[12], buf[13]);
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if ver_cmd >> 4 != 2 {
        return Parsed::Invalid("v2_bad_version");
    }
    if 16 + len > V2_MAX {
        return Parsed::Invalid("v2_too_long");
    }
    if buf.len() < 16 + len {
        return Parsed::Incomplete(16 + len - buf.len());
    }
    let body = &buf[16..16 + len];
    let total = 16 + len;
    match ver_cmd & 0x0f {
        0 => return Parsed::Done(Header::Local, total),
        1 => {}
        _ => return Parsed::Invalid("v2_bad_command"),
    }
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match family {
        // TCP over IPv4: 4 + 4 + 2 + 2 bytes.
        0x11 if len >= 12 => {
            let ip = |b: &[u8]| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
            Parsed::Done(
                Header::Proxied {
                    source: SocketAddr::new(ip(&body[0..4]), port(&body[8..10])),
                    destination: SocketAddr::new(ip(&body[4..8]), port(&body[10..12])),
                },
                total,
            )
        }
        // TCP over IPv6: 16 + 16 + 2 + 2 bytes.
        0x21 if len >= 36 => {
            let ip = |b: &[u8]| {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                IpAddr::V6(Ipv6Addr::from(a))
            };
            Parsed::Done(
                Header::Proxied {
                    source: SocketAddr::new(ip(&body[0..16]), port(&body[32..34])),
                    destination: SocketAddr::new(ip(&body[16..32]), port(&body[34..36])),
                },
                total,
            )
        }
        0x11 | 0x21 => Parsed::Invalid("v2_short_addresses"),
        // UNSPEC, UDP, UNIX: not a proxied TCP client; the socket's
        // addresses stand (specification, 2.2).
        _ => Parsed::Done(Header::Local, total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxied(src: &str, dst: &str) -> Header {
        Header::Proxied {
            source: src.parse().unwrap(),
            destination: dst.parse().unwrap(),
        }
    }

    /// A v2 header: signature, version/command, family, length, body.
    fn v2_bytes(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut b = V2_SIGNATURE.to_vec();
        b.push(0x20 | cmd);
        b.push(family);
        b.extend_from_slice(&(body.len() as u16).to_be_bytes());
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn v1_as_curl_and_haproxy_send_it() {
        let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(line),
            Parsed::Done(proxied("192.0.2.7:56324", "10.0.0.1:443"), 41)
        );
        let line = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n";
        assert_eq!(
            parse(line),
            Parsed::Done(
                proxied("[2001:db8::1]:1", "[2001:db8::2]:65535"),
                line.len()
            )
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Parsed::Done(Header::Local, 15));
        let unknown = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
        assert_eq!(parse(unknown), Parsed::Done(Header::Local, unknown.len()));
    }

    #[test]
    fn v1_byte_by_byte_is_incomplete_until_its_end() {
        let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n";
        for n in 0..line.len() {
            assert!(matches!(parse(&line[..n]), Parsed::Incomplete(_)), "{n}");
        }
        assert!(matches!(parse(line), Parsed::Done(..)));
    }

    #[test]
    fn v1_refuses_what_the_specification_does_not_allow() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
            b"PROXY TCP6 192.0.2.7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 056324 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 +1 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 443\r\n",
            b"PROXY TCP4 192.0.2.7  10.0.0.1 1 443\r\n",
            b"PROXY UDP4 192.0.2.7 10.0.0.1 1 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1 443 extra\r\n",
            b"PROXY TCP4 192.0.2.\xff 10.0.0.1 1 443\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Parsed::Invalid("v1_malformed"),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY ".as_slice(), &[b'A'; 200]].concat();
        assert_eq!(parse(&long), Parsed::Invalid("v1_too_long"));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n"),
            Parsed::Invalid("not_proxy_protocol")
        );
        assert_eq!(
            parse(&[0x16, 0x03, 0x01]),
            Parsed::Invalid("not_proxy_protocol")
        );
    }

    #[test]
    fn v2_addresses_local_and_tlvs() {
        let mut body = vec![192, 0, 2, 7, 10, 0, 0, 1];
        body.extend_from_slice(&56324u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        let tlv = [0x04, 0x00, 0x02, 0xab, 0xcd]; // PP2_TYPE_NOOP, skipped
        let with_tlv = [body.as_slice(), &tlv].concat();
        let b = v2_bytes(1, 0x11, &with_tlv);
        let mut next = b.clone();
        next.extend_from_slice(b"\x16\x03\x01");
        assert_eq!(
            parse(&next),
            Parsed::Done(proxied("192.0.2.7:56324", "10.0.0.1:443"), b.len())
        );
        for n in 0..b.len() {
            assert!(matches!(parse(&b[..n]), Parsed::Incomplete(_)), "{n}");
        }
        let mut six = Vec::new();
        six.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        six.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        six.extend_from_slice(&[0, 1, 0, 2]);
        assert_eq!(
            parse(&v2_bytes(1, 0x21, &six)),
            Parsed::Done(proxied("[2001:db8::1]:1", "[2001:db8::2]:2"), 16 + 36)
        );
        assert_eq!(
            parse(&v2_bytes(0, 0x00, &[])),
            Parsed::Done(Header::Local, 16)
        );
        assert_eq!(
            parse(&v2_bytes(1, 0x31, &[0; 216])),
            Parsed::Done(Header::Local, 232)
        );
    }

    #[test]
    fn v2_refuses_bad_versions_commands_lengths() {
        let mut b = v2_bytes(1, 0x11, &[0; 12]);
        b[12] = 0x11;
        assert_eq!(parse(&b), Parsed::Invalid("v2_bad_version"));
        assert_eq!(
            parse(&v2_bytes(2, 0x11, &[0; 12])),
            Parsed::Invalid("v2_bad_command")
        );
        assert_eq!(
            parse(&v2_bytes(1, 0x11, &[0; 8])),
            Parsed::Invalid("v2_short_addresses")
        );
        assert_eq!(
            parse(&v2_bytes(1, 0x21, &[0; 20])),
            Parsed::Invalid("v2_short_addresses")
        );
        // A length past the bound is refused before its bytes arrive.
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&huge), Parsed::Invalid("v2_too_long"));
        let mut sig = V2_SIGNATURE.to_vec();
        sig[11] = b'X';
        assert_eq!(parse(&sig), Parsed::Invalid("not_proxy_protocol"));
    }

    /// Whatever the bytes, the parser answers without panicking, and a
    /// `Done` length never passes the input.
    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 64) as usize;
            let mut buf: Vec<u8> = (0..len).map(|i| (seed >> (i % 56)) as u8).collect();
            if seed % 3 == 0 {
                buf.splice(0..0, V2_SIGNATURE);
            } else if seed % 3 == 1 {
                buf.splice(0..0, *b"PROXY ");
            }
            if let Parsed::Done(_, n) = parse(&buf) {
                assert!(n <= buf.len());
            }
        }
    }

    #[test]
    fn what_is_encoded_parses_back() {
        use crate::config::ProxyVersion;
        let cases: [(&str, &str); 3] = [
            ("192.0.2.7:51000", "10.0.0.1:443"),
            ("[2001:db8::7]:51000", "[2001:db8::1]:443"),
            ("192.0.2.7:51000", "[2001:db8::1]:443"),
        ];
        for (src, dst) in cases {
            let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            for v in [ProxyVersion::V1, ProxyVersion::V2] {
                let bytes = encode(v, src, dst);
                let Parsed::Done(
                    Header::Proxied {
                        source,
                        destination,
                    },
                    n,
                ) = parse(&bytes)
                else {
                    panic!("{v:?} {src} {dst}: {:?}", parse(&bytes));
                };
                assert_eq!(n, bytes.len());
                let (s, d) = same_family(src, dst);
                assert_eq!((source, destination), (s, d), "{v:?}");
            }
        }
        assert_eq!(
            encode(
                ProxyVersion::V1,
                "192.0.2.7:51000".parse().unwrap(),
                "10.0.0.1:443".parse().unwrap()
            ),
            b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 443\r\n"
        );
    }
}
