//! Which process listens where, from /proc: the pid file names the
//! process to replace, and the socket table confirms it. A PID alone can
//! have been reused by another program, or by another tlsgate (another
//! admin port, another user's under root) that must not get SIGQUIT.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Does `pid` hold a socket listening on one of `addrs`? An error when
/// its descriptors cannot be read (another user's process).
pub fn listens_on(pid: i32, addrs: &[SocketAddr]) -> std::io::Result<bool> {
    let inodes = listening_inodes(addrs);
    if inodes.is_empty() {
        return Ok(false);
    }
    let fds = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(fds) => fds,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .is_some_and(|inode| inodes.contains(inode))
        })
    }))
}

/// The inodes of the sockets in LISTEN state on `addrs`.
fn listening_inodes(addrs: &[SocketAddr]) -> HashSet<String> {
    let mut out = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            if let Some((addr, inode)) = parse_listen_line(line) {
                if addrs.contains(&addr) {
                    out.insert(inode.to_string());
                }
            }
        }
    }
    out
}

/// `sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ...`, state
/// `0A` (LISTEN); the address in hex, each 32-bit word in host order.
fn parse_listen_line(line: &str) -> Option<(SocketAddr, &str)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 || f[3] != "0A" {
        return None;
    }
    let (ip, port) = f[1].split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).ok()?.to_ne_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((SocketAddr::new(ip, port), f[9]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_found_listening_where_it_listens_only() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let me = std::process::id() as i32;
        assert!(listens_on(me, &[addr]).unwrap());
        let other: SocketAddr = ([127, 0, 0, 1], addr.port().wrapping_add(1)).into();
        assert!(!listens_on(me, &[other]).unwrap());
        // A connected socket on that port is not a listener.
        let _c = std::net::TcpStream::connect(addr).unwrap();
        drop(l);
        assert!(!listens_on(me, &[addr]).unwrap());
        let v6 = std::net::TcpListener::bind("[::1]:0");
        if let Ok(v6) = v6 {
            assert!(listens_on(me, &[v6.local_addr().unwrap()]).unwrap());
        }
    }

    #[test]
    fn lines_of_the_socket_table_parse() {
        let v4 = "   0: 0100007F:3AAD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0";
        let (a, inode) = parse_listen_line(v4).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(a, "127.0.0.1:15021".parse().unwrap());
        }
        assert_eq!(inode, "123456");
        let established = v4.replace(" 0A ", " 01 ");
        assert!(parse_listen_line(&established).is_none());
        assert!(parse_listen_line("garbage").is_none());
        assert!(parse_listen_line("0: ZZ:1 0:0 0A a b c d e f").is_none());
    }
}
