//! Bounded child processes: any command, `curl`, `openssl s_client`, `tlsgate`.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::certs::client_cert;

/// What a finished (or killed) command printed.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Exit code; `None` when killed by a signal (e.g. after the timeout).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The command outlived its timeout and was killed.
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout then stderr, for assertions that do not care which.
    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}{} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            if self.timed_out {
                " (timed out, killed)"
            } else {
                ""
            },
            self.elapsed,
            self.stdout,
            self.stderr
        )
    }
}

/// Run `program args...`, feed it `stdin` (then close it), and wait at most
/// `timeout`; past that the child is killed by its PID.
pub fn run_command<S: AsRef<OsStr>>(
    program: &OsStr,
    args: &[S],
    stdin: Option<&[u8]>,
    timeout: Duration,
    cwd: Option<&Path>,
) -> CmdOutput {
    let start = Instant::now();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return CmdOutput {
                code: None,
                stdout: String::new(),
                stderr: format!("cannot spawn {}: {e}", program.to_string_lossy()),
                timed_out: false,
                elapsed: start.elapsed(),
            }
        }
    };
    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
                // Dropping `pipe` closes the child's stdin.
            }))
        }
        _ => None,
    };
    let out_reader = reader(child.stdout.take());
    let err_reader = reader(child.stderr.take());

    let deadline = start + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill(); // SIGKILL to this child's PID
            break child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    CmdOutput {
        code: status.and_then(|s| s.code()),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        timed_out,
        elapsed: start.elapsed(),
    }
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// The curl used by every test.
pub const CURL: &str = "/usr/bin/curl";

/// Run `/usr/bin/curl -sS [--max-time 5] args...` (no `--resolve` added).
pub fn curl(args: &[&str]) -> CmdOutput {
    let mut all: Vec<String> = vec!["-sS".into()];
    let mut max_time = 5u64;
    if let Some(i) = args.iter().position(|a| *a == "--max-time" || *a == "-m") {
        max_time = args
            .get(i + 1)
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v.ceil() as u64)
            .unwrap_or(5);
    } else {
        all.push("--max-time".into());
        all.push("5".into());
    }
    all.extend(args.iter().map(|s| s.to_string()));
    run_command(
        OsStr::new(CURL),
        &all,
        None,
        Duration::from_secs(max_time + 5),
        None,
    )
}

const MARK: &str = "\n@@tlsgate-harness@@";

/// The result of a [`Curl`] run: the body separated from the status line.
#[derive(Debug, Clone)]
pub struct CurlResult {
    pub code: Option<i32>,
    /// The response body (the write-out marker removed).
    pub body: String,
    pub stderr: String,
    /// HTTP status, 0 when there was no response.
    pub status: u16,
    /// `1.1`, `2`, or `0` when there was no response.
    pub http_version: String,
    pub timed_out: bool,
    pub elapsed: Duration,
    /// The command line, for failure messages.
    pub command: String,
}

impl CurlResult {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The body parsed as JSON (panics with the whole result otherwise).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {self}"))
    }

    /// A request header as the echo backend reported it (name lower case).
    pub fn backend_header(&self, name: &str) -> Option<String> {
        self.json()["headers"][name].as_str().map(str::to_string)
    }
}

impl std::fmt::Display for CurlResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}`: exit {:?}{}, HTTP {} (version {}) after {:?}\n--- body ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.code,
            if self.timed_out { " (timed out)" } else { "" },
            self.status,
            self.http_version,
            self.elapsed,
            self.body,
            self.stderr
        )
    }
}

/// A curl command line under construction.
///
/// ```no_run
/// # use tlsgate_integration::Curl;
/// let r = Curl::https("partner.example.com", 8443, "/")
///     .insecure()
///     .client("great-partner")
///     .tls13()
///     .run();
/// assert_eq!(r.status, 200, "{r}");
/// ```
#[derive(Debug, Clone)]
pub struct Curl {
    args: Vec<String>,
    url: String,
    max_time: u64,
}

impl Curl {
    /// A request to `url` as given (no `--resolve`).
    pub fn new(url: impl Into<String>) -> Self {
        Curl {
            args: Vec::new(),
            url: url.into(),
            max_time: 5,
        }
    }

    /// `https://host:port/path` with `--resolve host:port:127.0.0.1`.
    pub fn https(host: &str, port: u16, path: &str) -> Self {
        Curl::new(format!("https://{host}:{port}{path}")).resolve(host, port)
    }

    /// `http://host:port/path` with `--resolve host:port:127.0.0.1`.
    pub fn http(host: &str, port: u16, path: &str) -> Self {
        Curl::new(format!("http://{host}:{port}{path}")).resolve(host, port)
    }

    pub fn resolve(self, host: &str, port: u16) -> Self {
        self.arg("--resolve")
            .arg(format!("{host}:{port}:127.0.0.1"))
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    /// `-H "Name: value"`.
    pub fn header(self, h: &str) -> Self {
        self.arg("-H").arg(h)
    }

    /// `--cert`/`--key` of `certs-example/clients/<name>`.
    pub fn client(self, name: &str) -> Self {
        let (crt, key) = client_cert(name);
        self.cert_files(&crt, &key)
    }

    pub fn cert_files(self, crt: &Path, key: &Path) -> Self {
        self.arg("--cert")
            .arg(path_str(crt))
            .arg("--key")
            .arg(path_str(key))
    }

    pub fn cacert(self, ca: &Path) -> Self {
        self.arg("--cacert").arg(path_str(ca))
    }

    /// `-k`.
    pub fn insecure(self) -> Self {
        self.arg("-k")
    }

    /// `--tlsv1.3` (TLS 1.3 only).
    pub fn tls13(self) -> Self {
        self.arg("--tlsv1.3")
    }

    /// `--tlsv1.2 --tls-max 1.2` (TLS 1.2 only).
    pub fn tls12(self) -> Self {
        self.args(["--tlsv1.2", "--tls-max", "1.2"])
    }

    pub fn http2(self) -> Self {
        self.arg("--http2")
    }

    pub fn http1(self) -> Self {
        self.arg("--http1.1")
    }

    /// `-v`: the handshake and headers go to stderr.
    pub fn verbose(self) -> Self {
        self.arg("-v")
    }

    pub fn max_time(mut self, secs: u64) -> Self {
        self.max_time = secs;
        self
    }

    pub fn run(self) -> CurlResult {
        let mut all: Vec<String> = vec![
            "-sS".into(),
            "--max-time".into(),
            self.max_time.to_string(),
            "-w".into(),
            format!("{MARK}%{{http_code}} %{{http_version}}"),
        ];
        all.extend(self.args.iter().cloned());
        all.push(self.url.clone());
        let command = format!("curl {}", all.join(" "));
        let out = run_command(
            OsStr::new(CURL),
            &all,
            None,
            Duration::from_secs(self.max_time + 5),
            None,
        );
        let (body, status, http_version) = match out.stdout.rfind(MARK) {
            Some(i) => {
                let tail = &out.stdout[i + MARK.len()..];
                let mut it = tail.split_whitespace();
                let status = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let version = it.next().unwrap_or("0").to_string();
                (out.stdout[..i].to_string(), status, version)
            }
            None => (out.stdout.clone(), 0, "0".to_string()),
        };
        CurlResult {
            code: out.code,
            body,
            stderr: out.stderr,
            status,
            http_version,
            timed_out: out.timed_out,
            elapsed: out.elapsed,
            command,
        }
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Run `openssl s_client args...` with `stdin`, killed after `timeout`.
pub fn openssl_s_client(args: &[&str], stdin: &[u8], timeout: Duration) -> CmdOutput {
    let mut all = vec!["s_client"];
    all.extend_from_slice(args);
    run_command(OsStr::new("openssl"), &all, Some(stdin), timeout, None)
}

/// Run `openssl args...` (x509, req, ...), killed after 20 s.
pub fn openssl(args: &[&str]) -> CmdOutput {
    run_command(
        OsStr::new("openssl"),
        args,
        None,
        Duration::from_secs(20),
        None,
    )
}

/// Run the tlsgate binary with `args` (cwd: the workspace root), killed after `timeout`.
pub fn run_tlsgate<S: AsRef<OsStr>>(args: &[S], timeout: Duration) -> CmdOutput {
    let bin: PathBuf = crate::tlsgate_bin();
    run_command(
        bin.as_os_str(),
        args,
        None,
        timeout,
        Some(&crate::workspace_root()),
    )
}

/// [`s_client_get`] of `/` on the partner host, TLS 1.2 without tickets
/// (so resuming by session id), as the client certificate `client` (see
/// `client_cert`): the session goes to `sess` when `save`, else is
/// offered from it.
pub fn s_client_session_id(port: u16, client: &str, sess: &str, save: bool) -> CmdOutput {
    let (crt, key) = crate::client_cert(client);
    let (crt, key) = (crt.display().to_string(), key.display().to_string());
    let io = if save { "-sess_out" } else { "-sess_in" };
    let args = [
        "-tls1_2",
        "-no_ticket",
        io,
        sess,
        "-cert",
        &crt,
        "-key",
        &key,
    ];
    s_client_get(port, crate::PARTNER_HOST, crate::PARTNER_HOST, "/", &args)
}

/// An HTTP/1.1 `GET path` with `Host: host` (and `Connection: close`) sent by
/// `openssl s_client -connect 127.0.0.1:port -servername sni -ign_eof extra...`,
/// so the output shows the handshake (`New,`/`Reused,`) and the response.
pub fn s_client_get(port: u16, sni: &str, host: &str, path: &str, extra: &[&str]) -> CmdOutput {
    let connect = format!("127.0.0.1:{port}");
    let mut args: Vec<&str> = vec!["-connect", &connect, "-servername", sni, "-ign_eof"];
    args.extend_from_slice(extra);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: s_client\r\nConnection: close\r\n\r\n"
    );
    openssl_s_client(&args, req.as_bytes(), Duration::from_secs(10))
}
