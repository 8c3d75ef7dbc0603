//! Test harness for tlsgate's acceptance tests: the real `tlsgate` binary,
//! real HTTP backends, the real `curl` and `openssl s_client`.
//!
//! Everything binds 127.0.0.1 only, every wait is bounded, and every child
//! process is killed by its PID when its owner is dropped.
//!
//! - [`tlsgate_bin`], [`free_port`], the paths of `certs-example/` ([`certs`]);
//! - [`Gateway`]: one running `tlsgate run` with its own admin port and log file;
//! - [`Backend`]: an HTTP/1.1 + h2c echo server that records what it received;
//! - [`RawUpstream`]: a hand-written HTTP/1.1 upstream (plain or TLS) that
//!   records each request's exact bytes and answers from a script;
//! - [`wire`]: raw HTTP/1.1 exchanges, responses as sent, line diffs;
//! - [`Curl`] / [`curl`], [`openssl_s_client`], [`run_tlsgate`]: bounded commands;
//! - [`ConfigDir`] and [`seed000_yaml`]: YAML written into a temporary folder;
//! - [`Metrics`]: a small Prometheus text parser;
//! - [`hostile`]: the attacker's toolkit of the hardening tests.

#![forbid(unsafe_code)]

pub mod backend;
pub mod certs;
pub mod cmd;
pub mod config;
pub mod crl_server;
pub mod gateway;
pub mod hostile;
pub mod http;
pub mod load;
pub mod metrics;
pub mod readme;
pub mod scenario;
pub mod script;
pub mod stream;
pub mod tls_client;
pub mod upstream;
pub mod wire;

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use backend::{Backend, RecordedRequest};
pub use certs::*;
pub use cmd::{
    curl, openssl, openssl_s_client, run_command, run_tlsgate, s_client_get, s_client_session_id,
    CmdOutput, Curl, CurlResult,
};
pub use config::{
    app_service_yaml, gateway_preamble, route_all, seed000_yaml, ConfigDir, Seed000Ports,
};
pub use gateway::{Gateway, GatewayOptions};
pub use http::{http_get, HttpResponse};
pub use load::{HttpsLoad, LoadOutcome};
pub use metrics::Metrics;
pub use scenario::{Seed000, FRONTEND_HOST, PARTNER_HOST};
pub use stream::StreamBackend;
pub use upstream::{Answer, RawUpstream, Received};

/// The workspace root (the folder holding `gateway/`, `integration/`, `conf/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent")
        .to_path_buf()
}

/// A file of the workspace's `conf/` folder.
pub fn conf_file(name: &str) -> PathBuf {
    workspace_root().join("conf").join(name)
}

fn target_dir() -> PathBuf {
    // The test binary lives in <target>/<profile>/deps/: its grandparent is the
    // profile folder of the very target dir cargo used for this run.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            if profile_dir.join("deps").is_dir() {
                if let Some(t) = profile_dir.parent() {
                    return t.to_path_buf();
                }
            }
        }
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// The `tlsgate` binary of this workspace, built by cargo.
///
/// `cargo test` builds the tlsgate package's test harnesses but not its plain
/// binary (it has no integration tests of its own), and `cargo test -p
/// tlsgate-integration` does not build tlsgate at all. So the first call in
/// each test process runs
/// `cargo build --workspace --lib --bins --tests --examples`: the same
/// selection, hence the same unified features, as `cargo test --workspace`,
/// so after it only the final binaries are linked (and later calls are
/// no-ops). If another workspace member does not build, it falls back to
/// `cargo build -p tlsgate --bin tlsgate`. A stale binary is never tested.
/// Set `TLSGATE_BIN` to test another binary without building.
/// `TLSGATE_TEST_TLS_LIBRARY` (openssl or rustls): the TLS library every
/// gateway a test starts terminates with (`--tls-library`); unset, the
/// gateway's default.
pub fn test_tls_library() -> Option<String> {
    std::env::var("TLSGATE_TEST_TLS_LIBRARY")
        .ok()
        .filter(|s| !s.is_empty())
}

/// The library the suite's gateways terminate with when their file names
/// none: the forced one, else tlsgate's default (rustls).
pub fn suite_tls_library() -> String {
    test_tls_library().unwrap_or_else(|| "rustls".into())
}

pub fn tlsgate_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(locate_or_build)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn locate_or_build() -> Result<PathBuf, String> {
    if let Some(b) = std::env::var_os("TLSGATE_BIN") {
        let b = PathBuf::from(b);
        return if b.is_file() {
            Ok(b)
        } else {
            Err(format!("TLSGATE_BIN={} is not a file", b.display()))
        };
    }
    let release = {
        // Same profile folder as the test binary (normally `debug`).
        let exe = std::env::current_exe().ok();
        exe.as_deref()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .is_some_and(|p| p == "release")
    };
    let target = target_dir();
    let bin = target
        .join(if release { "release" } else { "debug" })
        .join("tlsgate");
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO")));
    let target_s = target.to_string_lossy().into_owned();
    let common = ["--target-dir", target_s.as_str()];
    let attempts: [&[&str]; 2] = [
        &[
            "build",
            "--workspace",
            "--lib",
            "--bins",
            "--tests",
            "--examples",
        ],
        &["build", "-p", "tlsgate", "--bin", "tlsgate"],
    ];
    let mut errors = String::new();
    for attempt in attempts {
        let mut args: Vec<&str> = attempt.to_vec();
        args.extend_from_slice(&common);
        if release {
            args.push("--release");
        }
        let out = cmd::run_command(
            cargo.as_os_str(),
            &args,
            None,
            Duration::from_secs(1500),
            Some(&workspace_root()),
        );
        if out.code == Some(0) && bin.is_file() {
            return Ok(bin);
        }
        errors.push_str(&format!(
            "cargo {}: exit {:?}{}\n{}\n",
            args.join(" "),
            out.code,
            if out.timed_out { " (timed out)" } else { "" },
            out.stderr
        ));
    }
    Err(format!("could not build {}:\n{errors}", bin.display()))
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Never the same port
/// twice in one test process, so parallel tests do not collide with each other.
///
/// Drawn from below the kernel's ephemeral range: a port the kernel hands out
/// (a backend's `bind(0)`, a client connection's source port) can be taken
/// between this check and the gateway's own bind, and a CI run failed on
/// exactly that ("Address already in use" for a listener). Below the range
/// only an explicit bind can take it, and in this process that is us.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    let mut g = given.lock().unwrap_or_else(|p| p.into_inner());
    let (lo, hi) = quiet_port_range();
    for i in 0..400u64 {
        let port = if hi > lo {
            lo + (random_u64(i) % u64::from(hi - lo)) as u16
        } else {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            l.local_addr().expect("local_addr").port()
        };
        if !g.contains(&port) && port_bindable(port) {
            g.insert(port);
            return port;
        }
    }
    panic!("no free port found in 400 tries");
}

/// `[lo, hi)`: the ports between half the ephemeral range's start and its
/// start (16384..32768 on Linux's defaults); empty where that is too small to
/// draw from, and then `free_port` takes the kernel's choice.
fn quiet_port_range() -> (u16, u16) {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let lo = (start / 2).max(1024);
    if start.saturating_sub(lo) < 2048 {
        (0, 0)
    } else {
        (lo, start)
    }
}

/// A different number for each call and each process: std's per-process
/// random hash keys, so two test processes do not walk the same ports.
fn random_u64(i: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let mut h = KEYS.get_or_init(Default::default).build_hasher();
    h.write_u64(i);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Is something accepting TCP connections on 127.0.0.1:port?
pub fn port_open(port: u16) -> bool {
    // A connect to a closed port of the ephemeral range can pick that very
    // port as its source and "succeed", connected to itself (TCP
    // simultaneous open): that is nobody listening.
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
        .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}

/// Can 127.0.0.1:port be bound right now?
pub fn port_bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Poll `f` every 50 ms until it returns `Some`, at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
