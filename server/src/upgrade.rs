//! Binary upgrades: `tlsgate run --upgrade` takes over the listening
//! sockets of the tlsgate running on the same admin port, which then
//! stops accepting, finishes what it has and exits. The sockets never
//! close, so no connection is refused in between, not even one waiting in
//! a listen queue.
//!
//! The handover is Pingora's: on SIGQUIT the old process sends every
//! descriptor of its table (ours register there, see `listen::Front`)
//! over a Unix socket, keeps accepting for 5 s (both processes accept
//! meanwhile), then shuts down gracefully (`shutdown.gracePeriod`). The
//! new process listens on that Unix socket *before* it signals the old
//! one, so the old one never waits for it; and it has loaded and checked
//! its whole configuration before that, so a bad one stops here with the
//! old process untouched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

mod procfs;
mod receive;
mod signals;

pub use signals::Signals;

/// Pingora's handover carries at most this many descriptors; any more are
/// lost (and their addresses refused until bound again).
pub const MAX_HANDOVER_SOCKETS: usize = 32;

/// Where two generations of one gateway find each other.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Holds the PID of the process serving now (written once it accepts).
    pub pid_file: PathBuf,
    /// Where the new process receives the listening sockets.
    pub socket: PathBuf,
}

impl Paths {
    /// Named after the admin port: one gateway per admin port on a host,
    /// and the new process of an upgrade finds the old one's files
    /// without being told. `dir` is private to this user (see
    /// [`Paths::check`]).
    pub fn for_admin(admin: SocketAddr, dir: &Path) -> Paths {
        let port = admin.port();
        Paths {
            pid_file: dir.join(format!("tlsgate-{port}.pid")),
            socket: dir.join(format!("tlsgate-{port}.upgrade.sock")),
        }
    }

    /// Held by the new process from before it signals the old one until
    /// it has the sockets: one upgrade at a time, and the old process
    /// can tell that a new one really waits.
    fn lock_file(&self) -> PathBuf {
        let mut name = self.socket.clone().into_os_string();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Does a live `take_over` wait on the socket now?
    pub fn new_process_waiting(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        let listening = std::fs::metadata(&self.socket).is_ok_and(|m| m.file_type().is_socket());
        let locked = std::fs::File::open(self.lock_file())
            .is_ok_and(|f| matches!(try_lock(f), Err((_, nix::errno::Errno::EWOULDBLOCK))));
        listening && locked
    }

    /// The default folder: `$TMPDIR/tlsgate-<uid>`.
    pub fn default_dir() -> PathBuf {
        std::env::temp_dir().join(format!("tlsgate-{}", own_uid()))
    }

    /// Refuses folders other users could reach. Whoever connects to the
    /// upgrade socket first hands this process its listening sockets, and
    /// whoever can write the pid file chooses which process gets SIGQUIT;
    /// Pingora makes the socket itself world-writable, so only its folder
    /// keeps others out. A missing default folder is made, mode 0700.
    pub fn check(&self) -> Result<(), UpgradeError> {
        for file in [&self.pid_file, &self.socket] {
            let dir = file.parent().unwrap_or(Path::new("."));
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            private_dir(dir)?;
        }
        Ok(())
    }
}

/// flock(2), exclusive, not waiting: released when dropped (or when
/// the process ends, however it ends).
fn try_lock(
    f: std::fs::File,
) -> Result<nix::fcntl::Flock<std::fs::File>, (std::fs::File, nix::errno::Errno)> {
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
}

fn own_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn private_dir(dir: &Path) -> Result<(), UpgradeError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let fail = |why: String| UpgradeError::OpenFolder {
        path: dir.to_path_buf(),
        why,
    };
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        // Another gateway on this host may make it at the same moment.
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(fail(format!("cannot create it: {e}")))
        }
        _ => {}
    }
    let m = std::fs::symlink_metadata(dir).map_err(|e| fail(e.to_string()))?;
    if !m.is_dir() {
        return Err(fail("not a folder".into()));
    }
    let uid = own_uid();
    if m.uid() != uid && m.uid() != 0 {
        return Err(fail(format!(
            "owned by uid {}, not by this user ({uid}) or root",
            m.uid()
        )));
    }
    if m.mode() & 0o077 != 0 {
        return Err(fail(format!(
            "mode {:o}: other users can reach it (make it 0700)",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("no tlsgate to upgrade: cannot read the pid file {path}: {source}")]
    PidFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the upgrade folder {path} is refused: {why}")]
    OpenFolder { path: PathBuf, why: String },
    #[error("the pid file {path} does not hold a process id: {text:?}")]
    PidFileContent { path: PathBuf, text: String },
    #[error("process {pid} (from the pid file {path}) is not a running tlsgate")]
    NotTlsgate { pid: i32, path: PathBuf },
    #[error("process {pid} (from the pid file {path}) listens on none of {addrs:?}: not the tlsgate this configuration replaces (a stale pid file?)")]
    NotListening {
        pid: i32,
        path: PathBuf,
        addrs: Vec<SocketAddr>,
    },
    #[error("cannot see the sockets of process {pid} (/proc/{pid}/fd: {source}): run the upgrade as the gateway's user")]
    Proc {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("another upgrade is still under way after {LOCK_WAIT:?} ({path} is locked)")]
    InProgress { path: PathBuf },
    #[error("the upgrade lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signalling process {pid} to hand over its sockets: {source}")]
    Signal {
        pid: i32,
        #[source]
        source: nix::Error,
    },
    #[error("receiving the listening sockets of process {pid} on {path}: {source}")]
    Receive {
        pid: i32,
        path: PathBuf,
        #[source]
        source: receive::ReceiveError,
    },
    #[error("the listening socket handed over for {addr} is unusable: {source}")]
    Adopt {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// The process named by `pid_file`, if it is a running tlsgate other
/// than this one that listens on one of `addrs` (the admin address and
/// the listeners of the new configuration): a stale file naming a reused
/// PID must not get a SIGQUIT, whose default action kills, nor another
/// tlsgate, which would hand its sockets to nobody.
pub fn old_process(pid_file: &Path, addrs: &[SocketAddr]) -> Result<i32, UpgradeError> {
    use std::io::Read;
    let fail = |source| UpgradeError::PidFile {
        path: pid_file.to_path_buf(),
        source,
    };
    // A PID is a few digits: more than that is not a pid file.
    let mut text = String::new();
    std::fs::File::open(pid_file)
        .and_then(|f| f.take(64).read_to_string(&mut text))
        .map_err(fail)?;
    let pid: i32 = text.trim().parse().ok().filter(|p| *p > 0).ok_or_else(|| {
        UpgradeError::PidFileContent {
            path: pid_file.to_path_buf(),
            text: text.chars().take(32).collect(),
        }
    })?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    // `comm` is the executable's name, cut at 15 bytes: `tlsgate`, or a
    // versioned copy such as `tlsgate-1.4`.
    if !comm.starts_with("tlsgate") || pid as u32 == std::process::id() {
        return Err(UpgradeError::NotTlsgate {
            pid,
            path: pid_file.to_path_buf(),
        });
    }
    let listens =
        procfs::listens_on(pid, addrs).map_err(|source| UpgradeError::Proc { pid, source })?;
    if !listens {
        return Err(UpgradeError::NotListening {
            pid,
            path: pid_file.to_path_buf(),
            addrs: addrs.to_vec(),
        });
    }
    Ok(pid)
}

/// Listening sockets received from the old process, by bind address.
/// Those not taken are closed when it is dropped: the new configuration
/// no longer listens there.
pub struct Inherited {
    fds: HashMap<String, RawFd>,
    from: i32,
}

/// Receives the old process's listening sockets: listens on
/// `paths.socket`, then sends the old process SIGQUIT. Blocks until they
/// arrive (Pingora gives up after about 6 s).
pub fn take_over(paths: &Paths, addrs: &[SocketAddr]) -> Result<Inherited, UpgradeError> {
    take_over_within(paths, addrs, LOCK_WAIT)
}

/// How long an upgrade waits for the one before it (until that one's old
/// process has exited).
const LOCK_WAIT: Duration = Duration::from_secs(30);

fn take_over_within(
    paths: &Paths,
    addrs: &[SocketAddr],
    lock_wait: Duration,
) -> Result<Inherited, UpgradeError> {
    paths.check()?;
    let lock_path = paths.lock_file();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| UpgradeError::Lock {
            path: lock_path.clone(),
            source,
        })?;
    let until = Instant::now() + lock_wait;
    let mut lock = lock;
    let lock = loop {
        match try_lock(lock) {
            Ok(held) => break held,
            Err((f, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < until => {
                lock = f;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(UpgradeError::InProgress { path: lock_path })
            }
            Err((_, errno)) => {
                return Err(UpgradeError::Lock {
                    path: lock_path,
                    source: errno.into(),
                })
            }
        }
    };
    let pid = old_process(&paths.pid_file, addrs)?;
    let socket = paths.socket.clone();
    let received =
        receive::receive(&paths.socket, pid, RECEIVE_WAIT, || signal(pid))?.map_err(|source| {
            UpgradeError::Receive {
                pid,
                path: socket,
                source,
            }
        })?;
    // One upgrade at a time, until the old process has gone: another one
    // before that would find two processes to replace.
    hold_until_gone(lock, pid);
    let names: Vec<&String> = received.iter().map(|(n, _)| n).collect();
    tracing::info!(from = pid, sockets = ?names, "listening sockets received");
    Ok(Inherited {
        fds: received.into_iter().collect(),
        from: pid,
    })
}

/// Keeps `lock` (on a thread of its own) while `pid` lives, 10 minutes
/// at most.
fn hold_until_gone(lock: nix::fcntl::Flock<std::fs::File>, pid: i32) {
    let _ = std::thread::Builder::new()
        .name("tlsgate-upgrade-lock".into())
        .spawn(move || {
            let until = Instant::now() + Duration::from_secs(600);
            while running(pid) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(lock);
        });
}

/// Neither gone nor a zombie waiting for its parent to reap it.
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// How long the new process waits for the old one's sockets (Pingora's
/// sender tries for about 5 s).
const RECEIVE_WAIT: Duration = Duration::from_secs(15);

fn signal(pid: i32) -> Result<(), UpgradeError> {
    kill(Pid::from_raw(pid), Signal::SIGQUIT).map_err(|source| UpgradeError::Signal { pid, source })
}

impl Inherited {
    /// The old process's socket for `addr`, if it had one.
    pub fn take(
        &mut self,
        addr: SocketAddr,
    ) -> Result<Option<std::net::TcpListener>, UpgradeError> {
        let key = addr.to_string();
        let Some(fd) = self.fds.remove(&key) else {
            return Ok(None);
        };
        let fail = |source| UpgradeError::Adopt {
            addr: key.clone(),
            source,
        };
        let listener = tlsgate_ossl::adopt_tcp_listener(fd).map_err(fail)?;
        let listening =
            nix::sys::socket::getsockopt(&listener, nix::sys::socket::sockopt::AcceptConn)
                .map_err(|e| fail(e.into()))?;
        if !listening || listener.local_addr().map_err(fail)? != addr {
            return Err(fail(std::io::Error::other(
                "not a TCP socket listening on that address",
            )));
        }
        listener.set_nonblocking(true).map_err(fail)?;
        Ok(Some(listener))
    }

    pub fn from_pid(&self) -> i32 {
        self.from
    }
}

impl Drop for Inherited {
    fn drop(&mut self) {
        for (addr, fd) in self.fds.drain() {
            tracing::info!(%addr, "the new configuration no longer listens here: closing the old process's socket");
            drop(tlsgate_ossl::adopt_tcp_listener(fd));
        }
    }
}

/// Says this process serves now: its PID in the pid file (the next
/// upgrade's target), and, under systemd (`Type=notify`,
/// `NotifyAccess=all`), that it is ready and is the service's main
/// process.
/// `None`: upgrades are off, no pid file (systemd is told all the same).
pub fn announce(pid_file: Option<&Path>) {
    let pid = std::process::id();
    if let Some(pid_file) = pid_file {
        let tmp = pid_file.with_extension(format!("pid.{pid}"));
        let written =
            std::fs::write(&tmp, format!("{pid}\n")).and_then(|()| std::fs::rename(&tmp, pid_file));
        if let Err(e) = written {
            tracing::warn!(path = %pid_file.display(), error = %e, "cannot write the pid file: `tlsgate run --upgrade` will not find this process");
        }
    }
    notify_systemd(&format!("READY=1\nMAINPID={pid}\n"));
}

/// Set once the sockets were handed over: the pid file is the new
/// process's then.
static HANDED_OVER: AtomicBool = AtomicBool::new(false);
/// Set once SIGQUIT is caught: before that its default action would kill
/// this process, so the pid file (which invites it) waits for it.
static SIGNALS_READY: AtomicBool = AtomicBool::new(false);

/// Waits (30 s at most) until SIGQUIT is ours to handle.
pub async fn signals_installed() {
    let until = Instant::now() + Duration::from_secs(30);
    while !SIGNALS_READY.load(Ordering::Acquire) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// At shutdown: the pid file goes, unless this process handed its
/// sockets over (the file names the new one, or is about to).
pub fn retire(pid_file: &Path) {
    if HANDED_OVER.load(Ordering::Acquire) {
        return;
    }
    let ours =
        std::fs::read_to_string(pid_file).is_ok_and(|t| t.trim() == std::process::id().to_string());
    if ours {
        let _ = std::fs::remove_file(pid_file);
    }
}

/// sd_notify(3), without libsystemd: one datagram to `$NOTIFY_SOCKET`
/// (a path, or `@name` in the abstract namespace).
fn notify_systemd(state: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|sock| {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str());
        match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(state.as_bytes(), &addr)
            }
            None => sock.send_to(state.as_bytes(), &target),
        }
    });
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_admin_port() {
        let p = Paths::for_admin("127.0.0.1:15021".parse().unwrap(), Path::new("/run/x"));
        assert_eq!(p.pid_file, Path::new("/run/x/tlsgate-15021.pid"));
        assert_eq!(p.socket, Path::new("/run/x/tlsgate-15021.upgrade.sock"));
    }

    #[test]
    fn a_pid_file_naming_anything_but_a_running_tlsgate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.pid");
        assert!(matches!(
            old_process(&f, &[]),
            Err(UpgradeError::PidFile { .. })
        ));
        std::fs::write(&f, "garbage").unwrap();
        assert!(matches!(
            old_process(&f, &[]),
            Err(UpgradeError::PidFileContent { .. })
        ));
        std::fs::write(&f, "0\n").unwrap();
        assert!(matches!(
            old_process(&f, &[]),
            Err(UpgradeError::PidFileContent { .. })
        ));
        // PID 1 is never a tlsgate here; this test's own process is not one either.
        std::fs::write(&f, "1\n").unwrap();
        assert!(matches!(
            old_process(&f, &[]),
            Err(UpgradeError::NotTlsgate { .. })
        ));
        std::fs::write(&f, format!("{}\n", std::process::id())).unwrap();
        assert!(matches!(
            old_process(&f, &[]),
            Err(UpgradeError::NotTlsgate { .. })
        ));
    }

    #[test]
    fn an_upgrade_under_way_holds_the_lock_the_old_process_looks_for() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::for_admin("127.0.0.1:1".parse().unwrap(), &dir.path().join("h"));
        paths.check().unwrap();
        assert!(!paths.new_process_waiting());
        let lock = try_lock(std::fs::File::create(paths.lock_file()).unwrap()).unwrap();
        // Locked, but nobody listens: not waiting.
        assert!(!paths.new_process_waiting());
        let sock = std::os::unix::net::UnixListener::bind(&paths.socket).unwrap();
        assert!(paths.new_process_waiting());
        // A second upgrade meanwhile waits, then is refused before it
        // signals anyone.
        assert!(matches!(
            take_over_within(&paths, &[], Duration::from_millis(200)),
            Err(UpgradeError::InProgress { .. })
        ));
        // The waiter gone, its socket left behind: not waiting.
        drop(lock);
        assert!(!paths.new_process_waiting());
        drop(sock);
    }

    #[test]
    fn a_zombie_is_not_running() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !running(pid)
        });
        assert!(gone, "an exited child not yet reaped counts as running");
        child.wait().unwrap();
        assert!(!running(pid));
        assert!(running(std::process::id() as i32));
    }

    #[test]
    fn folders_other_users_can_reach_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("handover");
        let paths = Paths::for_admin("127.0.0.1:1".parse().unwrap(), &fresh);
        paths.check().unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = paths.check().unwrap_err().to_string();
        assert!(e.contains("mode 755") && e.contains("handover"), "{e}");
        let file = dir.path().join("plain");
        std::fs::write(&file, "").unwrap();
        let inside = Paths::for_admin("127.0.0.1:1".parse().unwrap(), &file);
        assert!(inside.check().is_err());
    }

    #[test]
    fn an_oversized_pid_file_is_not_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.pid");
        std::fs::write(&f, "1".repeat(10 << 20)).unwrap();
        match old_process(&f, &[]) {
            Err(UpgradeError::PidFileContent { text, .. }) => assert!(text.len() <= 32),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn announce_writes_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("g.pid");
        announce(Some(&f));
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            format!("{}\n", std::process::id())
        );
    }

    #[test]
    fn unusable_inherited_descriptors_are_refused() {
        let bound = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = bound.local_addr().unwrap();
        // A connected (not listening) socket under a listener's address.
        let client = std::net::TcpStream::connect(addr).unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(client);
        let mut inherited = Inherited {
            fds: HashMap::from([(addr.to_string(), fd)]),
            from: 0,
        };
        assert!(matches!(
            inherited.take(addr),
            Err(UpgradeError::Adopt { .. })
        ));
        assert!(inherited.take(addr).unwrap().is_none(), "taken once");
    }
}
