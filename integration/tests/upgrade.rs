//! Binary upgrades (issue 17, part 2): `tlsgate run --upgrade` takes over
//! the listening sockets of the running process, which finishes what it
//! has and exits. Under keep-alive, new-connection, h2 and admin traffic,
//! five upgrades in a row refuse no connection and fail no request; a
//! relayed TCP connection open across an upgrade keeps working within the
//! old process's grace period; systemd is told the new main PID; and an
//! upgrade with nothing to take over, a bad configuration, a stale pid
//! file or a stray SIGQUIT leaves the running process alone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tlsgate_integration::*;

const ACCESS: &str = "  accessLog:\n    format: text\n";

/// The default pid file of the gateway on `admin`.
fn pid_file(admin: SocketAddr) -> PathBuf {
    let uid = nix::unistd::geteuid().as_raw();
    std::env::temp_dir()
        .join(format!("tlsgate-{uid}"))
        .join(format!("tlsgate-{}.pid", admin.port()))
}

fn pid_in(file: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// `tlsgate run --upgrade` with `args` on `old`'s admin port: waits
/// until it has taken over (the pid file names it) and the process it
/// replaced has exited, successfully.
fn upgrade(old: &mut Gateway, args: &[String]) -> Gateway {
    upgrade_keeping_old(old, args, &[], |_| {})
}

/// Sets the flag when dropped: the load threads of a failing test stop.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// curl's h2 client, 20 requests a connection, until `stop`: (200s, failures).
fn h2_load(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let url = format!("https://{FRONTEND_HOST}:{port}/");
        let resolve = format!("{FRONTEND_HOST}:{port}:127.0.0.1");
        let ca = ca_cert("example");
        let (mut ok, mut failed) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            let mut cmd = Command::new("curl");
            cmd.args(["-sS", "--http2", "--max-time", "20", "--resolve", &resolve])
                .arg("--cacert")
                .arg(&ca)
                .args(["-w", "%{http_code} %{http_version}\\n"]);
            for _ in 0..20 {
                cmd.args(["-o", "/dev/null", &url]);
            }
            let out = cmd.output().expect("curl");
            let text = String::from_utf8_lossy(&out.stdout);
            for line in text.lines() {
                if line == "200 2" {
                    ok += 1;
                } else {
                    failed.push(line.to_string());
                }
            }
            if !out.status.success() {
                failed.push(format!(
                    "curl {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        (ok, failed)
    })
}

/// `/healthz/live` every 20 ms until `stop`; the failed probes.
fn admin_probe(
    admin: SocketAddr,
    stop: Arc<AtomicBool>,
    probes: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut failed = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match http_get(admin, "/healthz/live", Duration::from_secs(5)) {
                Ok(r) if r.status == 200 => {}
                Ok(r) => failed.push(format!("HTTP {}", r.status)),
                Err(e) => failed.push(e),
            }
            probes.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(20));
        }
        failed
    })
}

#[test]
fn five_upgrades_under_load_refuse_no_connection_and_fail_no_request() {
    let s = Seed000::start_custom(&[], |_, yaml| {
        yaml.replacen(
            ACCESS,
            &format!("{ACCESS}  shutdown:\n    gracePeriod: 2s\n"),
            1,
        )
    });
    let args = vec!["--config".to_string(), s.config_path.display().to_string()];
    // The backends stay up; the gateway is replaced five times.
    let Seed000 {
        gateway: mut current,
        port,
        frontend: _frontend,
        backend_v1: _v1,
        backend_v2: _v2,
        conf: _conf,
        ..
    } = s;
    let admin = current.admin_addr();
    let load = HttpsLoad::start(port, FRONTEND_HOST, 4, 2);
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let h2 = h2_load(port, stop.0.clone());
    let probes = Arc::new(AtomicUsize::new(0));
    let probe = admin_probe(admin, stop.0.clone(), probes.clone());
    std::thread::sleep(Duration::from_millis(500));

    let mut pids = vec![current.pid()];
    for i in 0..5 {
        let next = upgrade(&mut current, &args);
        pids.push(next.pid());
        // The new process serves: its own counters.
        let (served, _) = next.wait_metrics(Duration::from_secs(10), |m| {
            m.sum("tlsgate_requests_total", &[]) >= 20.0
        });
        assert!(
            served,
            "upgrade {i}: the new process serves nothing\n{}",
            next.describe()
        );
        current = next;
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(stop);
    let outcome = load.stop();
    let (h2_ok, h2_failed) = h2.join().unwrap();
    let probe_failed = probe.join().unwrap();
    let logs = current.describe();

    assert_eq!(
        (outcome.refused, outcome.failed),
        (0, 0),
        "{outcome:?}\n{logs}"
    );
    assert!(
        outcome.ok > 500,
        "too little traffic to mean anything: {outcome:?}"
    );
    assert!(
        outcome.closed_by_server >= 5,
        "keep-alive clients were never told to close: {outcome:?}"
    );
    assert!(h2_failed.is_empty(), "h2: {h2_failed:?}\n{logs}");
    assert!(h2_ok > 50, "h2: only {h2_ok} requests");
    assert!(probe_failed.is_empty(), "admin: {probe_failed:?}\n{logs}");
    assert!(probes.load(Ordering::Relaxed) > 100);
    // Six different processes served in turn; the last one still does.
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 6);
    assert_eq!(pid_in(&pid_file(admin)), Some(current.pid()));
    let r = Curl::https(FRONTEND_HOST, port, "/")
        .cacert(&ca_cert("example"))
        .run();
    assert_eq!(r.status, 200, "{r:?}");
}

fn tcp_yaml(tcp: u16, echo: u16) -> String {
    format!(
        r#"apiVersion: tlsgate.io/v1
kind: GatewayRuntime
metadata: {{name: rt}}
spec:
  credentialsDir: {creds}
  shutdown: {{gracePeriod: 3s}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: db-gateway}}
spec:
  servers:
  - port: {{number: {tcp}, name: tcp-db, protocol: TCP}}
    bind: 127.0.0.1
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: db}}
spec:
  hosts: ["*"]
  gateways: [db-gateway]
  tcp:
  - route:
    - destination: {{host: db.internal, port: {{number: 5432}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: db}}
spec:
  hosts: [db.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 5432, name: tcp-pg, protocol: TCP}}]
  endpoints:
  - address: 127.0.0.1
    ports: {{tcp-pg: {echo}}}
"#,
        creds = credentials_dir().display()
    )
}

fn echo(c: &mut TcpStream, what: &[u8]) -> std::io::Result<Vec<u8>> {
    c.write_all(what)?;
    let mut back = vec![0; what.len()];
    c.read_exact(&mut back)?;
    Ok(back)
}

#[test]
fn a_relayed_connection_lives_through_the_grace_period_and_systemd_learns_the_new_pid() {
    require_certs_example();
    let backend = StreamBackend::echo(false);
    let tcp = free_port();
    let conf = ConfigDir::new();
    conf.write("db.yaml", &tcp_yaml(tcp, backend.port()));
    let args = vec!["--config".to_string(), conf.path().display().to_string()];
    let mut old = Gateway::start_args(&args).unwrap();
    let mut open = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(echo(&mut open, b"before").unwrap(), b"before");

    // systemd's notify socket, as `Type=notify` sets NOTIFY_SOCKET.
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let notify_env: &'static str = Box::leak(notify_path.display().to_string().into_boxed_str());
    let env: &'static [(&'static str, &'static str)] =
        Box::leak(Box::new([("NOTIFY_SOCKET", notify_env)]));
    let new = upgrade_keeping_old(&mut old, &args, env, |old| {
        // Once the old process has stopped accepting (5 s after the
        // handover: its grace period), it still relays what it had…
        let stopped = wait_for(Duration::from_secs(15), || {
            old.logs()
                .contains("shutting down: listeners closed")
                .then_some(())
        });
        assert!(stopped.is_some(), "{}", old.describe());
        assert_eq!(
            echo(&mut open, b"during").unwrap(),
            b"during",
            "{}",
            old.describe()
        );
        // …while new connections can only reach the new one.
        let mut fresh = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        fresh
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(echo(&mut fresh, b"new").unwrap(), b"new");
    });
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    let said = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(said, format!("READY=1\nMAINPID={}\n", new.pid()));
    // At the end of its grace period the old process closed the relay.
    let mut rest = Vec::new();
    let ended = open.read_to_end(&mut rest);
    let timed_out = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    };
    assert!(
        matches!(&ended, Ok(0)) || ended.as_ref().is_err_and(|e| !timed_out(e)),
        "the relay outlived its process: {ended:?}"
    );
    let mut again = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    again
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(echo(&mut again, b"after").unwrap(), b"after");
}

/// [`upgrade`], running `during` once the new process has taken over and
/// while the old one still runs.
fn upgrade_keeping_old(
    old: &mut Gateway,
    args: &[String],
    env: &'static [(&'static str, &'static str)],
    during: impl FnOnce(&Gateway),
) -> Gateway {
    let mut full = args.to_vec();
    full.push("--upgrade".into());
    let opts = GatewayOptions {
        admin: Some(old.admin_addr()),
        env,
        ..GatewayOptions::default()
    };
    let mut new = Gateway::spawn_with(&full, opts).unwrap();
    let file = pid_file(old.admin_addr());
    let took_over = wait_for(Duration::from_secs(20), || {
        (pid_in(&file) == Some(new.pid())).then_some(())
    });
    assert!(
        took_over.is_some(),
        "the new process did not take over\n{}\n{}",
        new.describe(),
        old.describe()
    );
    assert!(old.try_wait().is_none(), "the old process left at once");
    during(old);
    // 5 s of accepting side by side, the grace period, 1 s to stop.
    let status = wait_for(Duration::from_secs(20), || old.try_wait());
    let status =
        status.unwrap_or_else(|| panic!("the old process did not exit\n{}", old.describe()));
    assert!(status.success(), "{status}\n{}", old.describe());
    assert!(new.try_wait().is_none(), "{}", new.describe());
    new
}

#[test]
fn an_upgrade_with_a_bad_configuration_or_nothing_to_replace_changes_nothing() {
    let s = Seed000::start();
    let admin = s.gateway.admin_addr();
    // A configuration that does not load: refused before the running
    // process is asked for anything.
    let conf = ConfigDir::new();
    let bad = conf.write("bad.yaml", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  servers: [{port: {number: x}}]\n");
    let bad = bad.display().to_string();
    let out = run_tlsgate(
        &[
            "run",
            "--upgrade",
            "--admin",
            &admin.to_string(),
            "--config",
            &bad,
        ],
        Duration::from_secs(20),
    );
    assert!(!out.success() && out.stderr.contains("bad.yaml"), "{out}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        s.frontend("/").run().status,
        200,
        "{}",
        s.gateway.describe()
    );
    assert_eq!(pid_in(&pid_file(admin)), Some(s.gateway.pid()));

    // No tlsgate on that admin port: an error naming the pid file, at once.
    let lonely: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let _ = std::fs::remove_file(pid_file(lonely));
    let config = s.config_path.display().to_string();
    let lonely_run = [
        "run",
        "--upgrade",
        "--admin",
        &lonely.to_string(),
        "--config",
        &config,
    ];
    let out = run_tlsgate(&lonely_run, Duration::from_secs(20));
    assert!(
        !out.success()
            && out.stderr.contains("no tlsgate to upgrade")
            && out
                .stderr
                .contains(&format!("tlsgate-{}.pid", lonely.port())),
        "{out}"
    );
    // A pid file naming a process that is not tlsgate: never signalled.
    let file = pid_file(lonely);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(&file, format!("{}\n", sleeper.id())).unwrap();
    let out = run_tlsgate(&lonely_run, Duration::from_secs(20));
    let _ = std::fs::remove_file(&file);
    let mut sleeper = sleeper;
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "the stranger was signalled"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(
        !out.success() && out.stderr.contains("is not a running tlsgate"),
        "{out}"
    );
    // A stale pid file naming a live tlsgate that serves something else
    // (another admin port, another listener): not signalled either.
    let elsewhere = std::fs::read_to_string(&s.config_path)
        .unwrap()
        .replace(&s.port.to_string(), &free_port().to_string());
    let elsewhere = conf
        .write("elsewhere.yaml", &elsewhere)
        .display()
        .to_string();
    std::fs::write(&file, format!("{}\n", s.gateway.pid())).unwrap();
    let out = run_tlsgate(
        &[
            "run",
            "--upgrade",
            "--admin",
            &lonely.to_string(),
            "--config",
            &elsewhere,
        ],
        Duration::from_secs(20),
    );
    let _ = std::fs::remove_file(&file);
    assert!(
        !out.success() && out.stderr.contains("listens on none of"),
        "{out}"
    );
    // A stray SIGQUIT, with no new process waiting: ignored, said, and
    // the gateway serves on past the 5 s a handover would have given it.
    assert!(!s.gateway.logs().contains("SIGQUIT"));
    let mut s = s;
    s.gateway.signal(libc::SIGQUIT);
    assert!(
        s.gateway
            .logs_with("SIGQUIT ignored")
            .contains("no new tlsgate waits"),
        "{}",
        s.gateway.describe()
    );
    std::thread::sleep(Duration::from_secs(7));
    assert!(s.gateway.try_wait().is_none(), "{}", s.gateway.describe());
    assert_eq!(s.frontend("/").run().status, 200);
    assert!(!s.gateway.logs().contains("upgrade: handing"));
    assert_eq!(pid_in(&pid_file(admin)), Some(s.gateway.pid()));

    // A handover folder other users can reach: `--upgrade` refuses it,
    // naming it; a plain run serves with upgrades off.
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        open.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let pid = open.path().join("g.pid").display().to_string();
    let mut refused = lonely_run.to_vec();
    refused.extend(["--pid-file", &pid]);
    let out = run_tlsgate(&refused, Duration::from_secs(20));
    assert!(
        !out.success()
            && out.stderr.contains("other users can reach it")
            && out.stderr.contains(&open.path().display().to_string()),
        "{out}"
    );
    let mut off = Seed000::start_with(&["--pid-file", &pid]);
    assert!(off
        .gateway
        .logs_with("upgrades are off")
        .contains("other users can reach it"));
    assert_eq!(off.frontend("/").run().status, 200);
    assert!(
        !std::path::Path::new(&pid).exists(),
        "a pid file in an open folder"
    );
    off.gateway.signal(libc::SIGQUIT);
    assert!(off
        .gateway
        .logs_with("SIGQUIT ignored")
        .contains("upgrades are off"));
    assert_eq!(off.frontend("/").run().status, 200);
}

/// A tlsgate this test started but does not parent (`tlsgate upgrade`'s):
/// SIGKILL by PID if the test ends early.
struct StopPid(u32);

impl StopPid {
    /// SIGTERM, and its exit within 10 s (a graceful stop).
    fn stop(self) {
        let pid = nix::unistd::Pid::from_raw(self.0 as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let gone = wait_for(Duration::from_secs(10), || (!alive(self.0)).then_some(()));
        assert!(gone.is_some(), "{} did not stop on SIGTERM", self.0);
        std::mem::forget(self);
    }
}

impl Drop for StopPid {
    fn drop(&mut self) {
        if alive(self.0) {
            let pid = nix::unistd::Pid::from_raw(self.0 as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn the_upgrade_command_returns_once_the_new_process_serves() {
    let mut s = Seed000::start();
    let admin = s.gateway.admin_addr().to_string();
    let config = s.config_path.display().to_string();
    let logs = tempfile::NamedTempFile::new().unwrap();
    let out = upgrade_command(&["--admin", &admin, "--config", &config], logs.path());
    assert!(out.success(), "{out}\n{}", s.gateway.describe());
    let new = pid_in(&pid_file(s.gateway.admin_addr())).expect("pid file");
    assert_ne!(
        new,
        s.gateway.pid(),
        "the pid file still names the old process"
    );
    // Not this test's child: stopped by its PID, at the end or on a panic.
    let stop = StopPid(new);
    assert!(
        out.stdout
            .contains(&format!("upgraded: tlsgate {new} serves")),
        "{out}"
    );
    assert!(
        wait_for(Duration::from_secs(20), || s.gateway.try_wait()).is_some(),
        "{}",
        s.gateway.describe()
    );
    assert_eq!(s.frontend("/").run().status, 200);
    stop.stop();

    // Nothing to replace: the new process's failure is the command's.
    let lonely = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _ = std::fs::remove_file(pid_file(lonely));
    let lonely = lonely.to_string();
    let out = upgrade_command(&["--admin", &lonely, "--config", &config], logs.path());
    assert!(
        !out.success() && out.stderr.contains("no tlsgate to upgrade"),
        "{out}"
    );
}

/// `tlsgate upgrade ARGS` (see [`detaching`]).
fn upgrade_command(args: &[&str], logs: &std::path::Path) -> CmdOutput {
    let mut cmd = vec![tlsgate_bin().display().to_string(), "upgrade".into()];
    cmd.extend(args.iter().map(|a| a.to_string()));
    detaching(&cmd, None, logs)
}

/// Runs `cmd`, whose stderr the process it starts shares and which
/// outlives it: its stdout read, its stderr in `logs` (appended); at most
/// 60 s. `notify`: the NOTIFY_SOCKET systemd would set.
fn detaching(
    cmd: &[String],
    notify: Option<&std::path::Path>,
    logs: &std::path::Path,
) -> CmdOutput {
    let start = Instant::now();
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs)
        .unwrap();
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..])
        .stdout(std::process::Stdio::piped())
        .stderr(err);
    if let Some(n) = notify {
        c.env("NOTIFY_SOCKET", n);
    }
    let mut child = c.spawn().unwrap();
    let status = wait_for(Duration::from_secs(60), || child.try_wait().unwrap());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut stdout = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut stdout);
    CmdOutput {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr: std::fs::read_to_string(logs).unwrap_or_default(),
        timed_out: status.is_none(),
        elapsed: start.elapsed(),
    }
}

/// The command line of `Key=` in conf/systemd/tlsgate.service, with the
/// unit's paths made this test's.
fn unit_command(unit: &str, key: &str, subst: &[(&str, String)]) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in the unit"));
    line.split_whitespace()
        .map(|w| {
            subst
                .iter()
                .fold(w.to_string(), |w, (from, to)| w.replace(from, to))
        })
        .collect()
}

#[test]
fn the_systemd_unit_upgrades_and_tells_systemd_the_new_main_pid() {
    let unit_path = workspace_root().join("conf/systemd/tlsgate.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    for needed in [
        "Type=notify",
        "NotifyAccess=all",
        "RuntimeDirectoryMode=0700",
    ] {
        assert!(unit.contains(needed), "{needed}");
    }
    let mut s = Seed000::start();
    let admin = s.gateway.admin_addr();
    s.gateway.kill();
    let run = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        run.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let bin = tlsgate_bin().display().to_string();
    let subst = [
        ("/usr/local/bin/tlsgate", bin.clone()),
        ("/etc/tlsgate/config", s.config_path.display().to_string()),
        ("/run/tlsgate", run.path().display().to_string()),
    ];
    let start = unit_command(&unit, "ExecStart", &subst);
    let reload = unit_command(&unit, "ExecReload", &subst);
    assert_eq!(start[0], bin);
    // systemd's side: the notify socket, as Type=notify sets it.
    let notify_path = run.path().join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let logs = run.path().join("tlsgate.log");
    let main = Command::new(&start[0])
        .args(&start[1..])
        .args(["--admin", &admin.to_string()])
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&logs).unwrap())
        .spawn()
        .unwrap();
    // Stopped (and reaped) whatever happens next.
    struct KillChild(std::process::Child);
    impl Drop for KillChild {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut main = KillChild(main);
    let first = main.0.id();
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        format!("READY=1\nMAINPID={first}\n")
    );
    assert_eq!(s.frontend("/").run().status, 200);

    // `systemctl reload`: ExecReload, with the unit's environment.
    let mut reload = reload;
    reload.extend(["--admin".to_string(), admin.to_string()]);
    let out = detaching(&reload, Some(&notify_path), &logs);
    assert!(out.success(), "{out}");
    let pid_file = run.path().join("tlsgate.pid");
    let new = pid_in(&pid_file).expect("pid file");
    // Not this test's child: stopped by its PID, at the end or on a panic.
    let second = StopPid(new);
    assert_ne!(new, first);
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        format!("READY=1\nMAINPID={new}\n")
    );
    let status = wait_for(Duration::from_secs(20), || main.0.try_wait().unwrap());
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert_eq!(s.frontend("/").run().status, 200);
    second.stop();

    // systemd's own reading of the unit, when this machine has it.
    let verify_copy = run.path().join("tlsgate.service");
    std::fs::write(&verify_copy, unit.replace("/usr/local/bin/tlsgate", &bin)).unwrap();
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&verify_copy)
        .output()
    {
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            // Users and folders of a real host are not this test's.
            let problems: Vec<&str> = err
                .lines()
                .filter(|l| !l.contains("User=") && !l.contains("Group=") && !l.trim().is_empty())
                .collect();
            assert!(problems.is_empty(), "systemd-analyze verify: {err}");
        }
        Err(e) => eprintln!("NOTE: systemd-analyze not run: {e}"),
    }
}
