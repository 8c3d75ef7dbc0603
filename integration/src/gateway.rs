//! One running `tlsgate run` process.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::http::{http_get, HttpResponse};
use crate::metrics::Metrics;
use crate::{free_port, test_tls_library, tlsgate_bin, workspace_root};

/// How long [`Gateway::start`] waits for `/healthz/ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How to start the process, beyond its arguments.
#[derive(Debug, Clone, Copy, Default)]
pub struct GatewayOptions {
    /// `--admin` (default 127.0.0.1:<free>). The harness's own admin
    /// requests go to 127.0.0.1 when this is a wildcard address.
    pub admin: Option<SocketAddr>,
    /// `RLIMIT_NOFILE` (soft and hard) of the process, as `ulimit -n` sets it.
    pub nofile: Option<u64>,
    /// Environment variables set for the process only.
    pub env: &'static [(&'static str, &'static str)],
}

/// A `tlsgate run` child process with its own admin port; killed (SIGKILL, by
/// PID) when dropped. Its stdout and stderr go to files in a temporary folder.
pub struct Gateway {
    child: Option<Child>,
    pid: u32,
    admin: SocketAddr,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    stderr_path: PathBuf,
    stdout_path: PathBuf,
    args: Vec<String>,
    exit: Option<ExitStatus>,
}

impl Gateway {
    /// `tlsgate run --config F... --admin 127.0.0.1:<free> extra...`, ready.
    /// Panics (with the gateway's logs) if it does not become ready.
    pub fn start<P: AsRef<Path>>(configs: &[P], extra: &[&str]) -> Gateway {
        let mut args: Vec<String> = Vec::new();
        for c in configs {
            args.push("--config".into());
            args.push(c.as_ref().to_string_lossy().into_owned());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Gateway::start_args(&args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `tlsgate run --admin 127.0.0.1:<free> args...`, waiting for readiness.
    pub fn start_args(args: &[String]) -> Result<Gateway, String> {
        // Through `start_with`: a run of the suite failed when the admin
        // port was taken and another process answered for readiness.
        Gateway::start_with(args, GatewayOptions::default())
    }

    /// Spawn `tlsgate run --admin 127.0.0.1:<free> args...` without waiting.
    pub fn spawn(args: &[String]) -> Result<Gateway, String> {
        Gateway::spawn_with(args, GatewayOptions::default())
    }

    /// [`Gateway::spawn`] then wait for readiness, with `opts`.
    ///
    /// An admin port taken meanwhile (another test's process, or a client
    /// connection's ephemeral port under a `0.0.0.0` bind) would answer
    /// for another process: the gateway is started again on a new port.
    pub fn start_with(args: &[String], mut opts: GatewayOptions) -> Result<Gateway, String> {
        for _ in 0..3 {
            let mut g = Gateway::spawn_with(args, opts)?;
            g.wait_ready(READY_TIMEOUT)?;
            if !g.logs().contains(" is in use") {
                return Ok(g);
            }
            eprintln!("NOTE: the admin port {} was taken; starting again", g.admin);
            g.kill();
            let ip = opts
                .admin
                .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
            opts.admin = Some(SocketAddr::new(ip, free_port()));
        }
        Err(format!("no free admin port for tlsgate {}", args.join(" ")))
    }

    /// [`Gateway::spawn`] with another admin address or a descriptor limit.
    pub fn spawn_with(args: &[String], opts: GatewayOptions) -> Result<Gateway, String> {
        let bind: SocketAddr = opts
            .admin
            .unwrap_or_else(|| ([127, 0, 0, 1], free_port()).into());
        let admin = if bind.ip().is_unspecified() {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bind.port())
        } else {
            bind
        };
        let dir = tempfile::Builder::new()
            .prefix("tlsgate-run-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let stderr_path = dir.path().join("stderr.log");
        let stdout_path = dir.path().join("stdout.log");
        let stderr = File::create(&stderr_path).map_err(|e| e.to_string())?;
        let stdout = File::create(&stdout_path).map_err(|e| e.to_string())?;
        let mut full: Vec<String> = vec!["run".into(), "--admin".into(), bind.to_string()];
        full.extend(args.iter().cloned());
        // The whole suite runs again on OpenSSL listeners (`make test`).
        if let Some(lib) = test_tls_library() {
            full.extend(["--tls-library".to_string(), lib]);
        }
        let bin = tlsgate_bin();
        // A lower open-file limit goes through the shell's `ulimit`, which
        // then execs the gateway (same PID, so it is still ours to stop).
        let mut cmd = match opts.nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = cmd
            .args(&full)
            .current_dir(workspace_root())
            .env("RUST_BACKTRACE", "1")
            .envs(opts.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        Ok(Gateway {
            pid: child.id(),
            child: Some(child),
            admin,
            dir_path: dir.path().to_path_buf(),
            dir: Some(dir),
            stderr_path,
            stdout_path,
            args: full,
            exit: None,
        })
    }

    /// Poll `/healthz/ready` until it answers 200 (or the process exits).
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            if let Some(st) = self.try_wait() {
                return Err(format!(
                    "tlsgate {} exited with {st} before it was ready\n{}",
                    self.args.join(" "),
                    self.describe()
                ));
            }
            match http_get(self.admin, "/healthz/ready", Duration::from_secs(1)) {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => last = format!("HTTP {}: {}", r.status, r.body),
                Err(e) => last = e,
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "tlsgate {} not ready after {timeout:?} (last: {last})\n{}",
                    self.args.join(" "),
                    self.describe()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The temporary folder holding the logs (removed on drop, kept when
    /// the test is failing).
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// Everything written to stderr so far (stdout appended when not empty).
    pub fn logs(&self) -> String {
        let err = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let out = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        if out.trim().is_empty() {
            err
        } else {
            format!("{err}\n--- stdout ---\n{out}")
        }
    }

    /// [`Gateway::logs`] once they contain `needle` (log lines are written
    /// a moment after the metrics that count them), or after 5 s.
    pub fn logs_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let logs = self.logs();
            if logs.contains(needle) || Instant::now() >= deadline {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET path` on the admin port (5 s at most).
    pub fn admin_get(&self, path: &str) -> Result<HttpResponse, String> {
        http_get(self.admin, path, Duration::from_secs(5))
    }

    /// `/metrics`, parsed; panics if the admin port does not answer 200.
    pub fn metrics(&self) -> Metrics {
        match self.admin_get("/metrics") {
            Ok(r) if r.status == 200 => Metrics::parse(&r.body),
            Ok(r) => panic!(
                "/metrics answered {}: {}\n{}",
                r.status,
                r.body,
                self.describe()
            ),
            Err(e) => panic!("/metrics: {e}\n{}", self.describe()),
        }
    }

    /// Poll `/metrics` (up to `timeout`) until `pred` holds; returns the last
    /// metrics read either way, with whether `pred` held.
    pub fn wait_metrics(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Metrics) -> bool,
    ) -> (bool, Metrics) {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.metrics();
            if pred(&m) {
                return (true, m);
            }
            if Instant::now() >= deadline {
                return (false, m);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asserts that the counter `name`, summed over the series matching
    /// `labels`, is `expected`. A request is counted once its response is
    /// written (Pingora's logging phase, the direct path's end of exchange),
    /// so a test holding the response may read a moment early: this waits
    /// (5 s at most) for the sum to reach `expected`; a sum past it fails.
    pub fn assert_counter(&self, name: &str, labels: &[(&str, &str)], expected: f64) {
        let (_, m) = self.wait_metrics(Duration::from_secs(5), |m| m.sum(name, labels) >= expected);
        let got = m.sum(name, labels);
        assert!(
            got == expected,
            "{name}{labels:?} is {got}, expected {expected}\n{}\n{}",
            m.text,
            self.describe()
        );
    }

    /// Has the process exited? (reaps it if so)
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                self.exit = Some(st);
            }
        }
        self.exit
    }

    /// Send SIGTERM and wait up to `timeout` for the exit. `None` if it was
    /// still running then (it is then killed with SIGKILL).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(st) = self.try_wait() {
            return Some(st);
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send `sig` to the gateway's PID (if it has not been reaped).
    pub fn signal(&mut self, sig: libc::c_int) {
        if self.try_wait().is_some() {
            return;
        }
        // Our own child, not yet reaped: the PID cannot have been reused.
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid).expect("pid fits pid_t"));
        if let Ok(sig) = nix::sys::signal::Signal::try_from(sig) {
            let _ = nix::sys::signal::kill(pid, sig);
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if self.try_wait().is_some() {
            return;
        }
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            if let Ok(st) = c.wait() {
                self.exit = Some(st);
            }
        }
    }

    /// Command line and logs, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "--- tlsgate {} (pid {}, admin {}) ---\n{}\n--- end of tlsgate logs ---",
            self.args.join(" "),
            self.pid,
            self.admin,
            tail(&self.logs(), 200)
        )
    }
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[... {start} earlier lines]\n"));
    }
    out.push_str(&all[start..].join("\n"));
    out
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.describe());
            if let Some(d) = self.dir.take() {
                eprintln!("tlsgate logs kept in {}", d.keep().display());
            }
        }
    }
}
