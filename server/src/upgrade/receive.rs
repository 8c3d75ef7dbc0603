//! Receiving the old process's listening sockets, from it and nobody
//! else. Pingora's receiver takes the first connection to the upgrade
//! socket, whoever made it, and panics on a payload whose names and
//! descriptors do not pair up; this one reads only a connection whose
//! peer (`SO_PEERCRED`, fixed at connect) is the process it signalled,
//! and drops any other unread, counted and logged. The sender is still
//! Pingora's (`Fds::send_to_sock`): names joined by spaces, descriptors
//! in one `SCM_RIGHTS` message.

use std::io::{ErrorKind, IoSliceMut};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags};

/// Pingora's sender fits its names in 2 KiB and its descriptors in one
/// message of at most this many.
const MAX_FDS: usize = super::MAX_HANDOVER_SOCKETS;
const MAX_NAMES: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Sys(#[from] nix::Error),
    #[error("process {0} sent nothing within {1:?}")]
    Timeout(i32, Duration),
    #[error("the handover is not what Pingora sends: {0}")]
    Malformed(String),
}

/// Listens on `path` and returns the (name, descriptor) pairs that
/// process `from` sends, within `within`. `ready` runs once the socket
/// listens (it signals the old process).
pub fn receive(
    path: &Path,
    from: i32,
    within: Duration,
    ready: impl FnOnce() -> Result<(), super::UpgradeError>,
) -> Result<Result<Vec<(String, RawFd)>, ReceiveError>, super::UpgradeError> {
    let _ = std::fs::remove_file(path);
    let listener = match UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) => return Ok(Err(e.into())),
    };
    let result = (|| {
        listener.set_nonblocking(true)?;
        Ok::<_, ReceiveError>(())
    })();
    if let Err(e) = result {
        return Ok(Err(e));
    }
    ready()?;
    let until = Instant::now() + within;
    let received = loop {
        match listener.accept() {
            Ok((conn, _)) => {
                let peer = socket::getsockopt(&conn, sockopt::PeerCredentials).map(|c| c.pid());
                if peer != Ok(from) {
                    crate::metrics::metrics()
                        .connections_refused
                        .with_label_values(&["upgrade_stranger"])
                        .inc();
                    tracing::warn!(peer = ?peer, expected = from, "upgrade socket: a connection from another process, ignored");
                    continue;
                }
                break read_handover(&conn);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= until {
                    break Err(ReceiveError::Timeout(from, within));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Err(e.into()),
        }
    };
    drop(listener);
    let _ = std::fs::remove_file(path);
    Ok(received)
}

fn read_handover(
    conn: &std::os::unix::net::UnixStream,
) -> Result<Vec<(String, RawFd)>, ReceiveError> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut names = vec![0u8; MAX_NAMES];
    let mut iov = [IoSliceMut::new(&mut names)];
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let msg = socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(mut got) = c {
            fds.append(&mut got);
        }
    }
    let (bytes, truncated) = (msg.bytes, msg.flags.contains(MsgFlags::MSG_CTRUNC));
    let fail = |fds: Vec<RawFd>, why: String| {
        for fd in fds {
            let _ = nix::unistd::close(fd);
        }
        Err(ReceiveError::Malformed(why))
    };
    if truncated {
        return fail(fds, format!("more than {MAX_FDS} descriptors"));
    }
    let Ok(text) = std::str::from_utf8(&names[..bytes]) else {
        return fail(fds, "names are not UTF-8".into());
    };
    let keys: Vec<String> = text.split_ascii_whitespace().map(String::from).collect();
    if keys.len() != fds.len() {
        let why = format!("{} names for {} descriptors", keys.len(), fds.len());
        return fail(fds, why);
    }
    Ok(keys.into_iter().zip(fds).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// `python3` connecting to `path` as another process: sends `send`
    /// (or nothing), holds `hold` seconds, leaves.
    fn stranger(path: &Path, send: &str, hold: f32) -> std::process::Child {
        let code = format!(
            "import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.connect({:?})\ns.sendall({send:?}.encode())\ntime.sleep({hold})\n",
            path.display().to_string()
        );
        Command::new("python3").args(["-c", &code]).spawn().unwrap()
    }

    #[test]
    fn strangers_first_then_the_old_process_sockets_only_theirs_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("up.sock");
        let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listening.local_addr().unwrap().to_string();
        let (p, a) = (path.clone(), addr.clone());
        let me = std::process::id() as i32;
        // The "old process" is this test: it sends once the strangers
        // (garbage, nothing at all, a flood that vanishes) are queued.
        let receiver = std::thread::spawn(move || {
            receive(&p, me, Duration::from_secs(20), || Ok(()))
                .unwrap()
                .unwrap()
        });
        while !path.exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut strangers = vec![
            stranger(&path, "127.0.0.1:1 127.0.0.1:2", 0.5),
            stranger(&path, "", 0.0),
        ];
        for _ in 0..20 {
            strangers.push(stranger(&path, "x", 0.0));
        }
        for s in &mut strangers {
            s.wait().unwrap();
        }
        let mut fds = pingora::server::Fds::new();
        fds.add(a.clone(), listening.as_raw_fd());
        fds.send_to_sock(path.to_string_lossy().as_ref()).unwrap();
        let got = receiver.join().unwrap();
        let ignored = crate::metrics::metrics()
            .connections_refused
            .with_label_values(&["upgrade_stranger"])
            .get();
        assert!(ignored >= 22, "strangers ignored: {ignored}");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, addr);
        let adopted = tlsgate_ossl::adopt_tcp_listener(got[0].1).unwrap();
        assert_eq!(
            adopted.local_addr().unwrap(),
            listening.local_addr().unwrap()
        );
        assert!(!path.exists(), "the socket file is removed");
    }

    #[test]
    fn nothing_sent_is_a_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("up.sock");
        let got = receive(&path, 1, Duration::from_millis(200), || Ok(())).unwrap();
        assert!(matches!(got, Err(ReceiveError::Timeout(1, _))), "{got:?}");
    }
}
