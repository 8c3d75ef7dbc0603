//! What a process holds, from `/proc`: open descriptors, sockets in
//! CLOSE_WAIT (the peer closed, the process never did), resident memory.

use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Open file descriptors of `pid` (entries of `/proc/<pid>/fd`); 0 if unreadable.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Socket inodes among `pid`'s descriptors (`socket:[<inode>]` links).
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// TCP sockets of `pid` in state CLOSE_WAIT (`08` in `/proc/net/tcp{,6}`).
pub fn close_wait_sockets(pid: u32) -> usize {
    let mine = socket_inodes(pid);
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && cols[3] == "08" {
                if let Ok(inode) = cols[9].parse::<u64>() {
                    n += usize::from(mine.contains(&inode));
                }
            }
        }
    }
    n
}

/// Poll `pred` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Descriptors and memory of a process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub fds: usize,
    pub close_wait: usize,
    pub rss_kb: u64,
}

impl Usage {
    pub fn of(pid: u32) -> Usage {
        Usage {
            fds: fd_count(pid),
            close_wait: close_wait_sockets(pid),
            rss_kb: rss_kb(pid),
        }
    }

    /// Back to `base`: at most `fd_slack` more descriptors, no more
    /// sockets in CLOSE_WAIT, at most `rss_slack_kb` more memory.
    pub fn near(&self, base: &Usage, fd_slack: usize, rss_slack_kb: u64) -> bool {
        self.fds <= base.fds + fd_slack
            && self.close_wait <= base.close_wait
            && self.rss_kb <= base.rss_kb + rss_slack_kb
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} fds ({} in CLOSE_WAIT), RSS {} KiB",
            self.fds, self.close_wait, self.rss_kb
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_our_own_sockets_and_memory() {
        let pid = std::process::id();
        let before = Usage::of(pid);
        assert!(before.fds > 0 && before.rss_kb > 0, "{before}");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        drop(client);
        // Our accepted socket's peer closed and we did not: CLOSE_WAIT.
        assert!(wait_until(Duration::from_secs(2), || close_wait_sockets(
            pid
        ) >= 1));
        // Other tests of this binary open and close descriptors meanwhile:
        // look for ours rather than count.
        use std::os::fd::AsRawFd;
        for fd in [listener.as_raw_fd(), server.as_raw_fd()] {
            assert!(
                std::path::Path::new(&format!("/proc/{pid}/fd/{fd}")).exists(),
                "fd {fd} not seen"
            );
        }
        assert!(fd_count(pid) > 0);
        drop(server);
        assert!(wait_until(Duration::from_secs(2), || close_wait_sockets(
            pid
        ) == 0));
    }
}
