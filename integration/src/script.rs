//! Running a shell script (the seed runbooks) with a time limit.
//!
//! The script runs in a process group of its own. Past the limit the group
//! gets SIGTERM, so the script's `trap ... EXIT` kills what it started by
//! PID, and 5 s later SIGKILL; nothing outside that group is touched.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::CmdOutput;

/// Run `bash script` with `env` added to the environment, in `cwd`, for at
/// most `timeout`.
pub fn run_script(script: &Path, env: &[(&str, &str)], cwd: &Path, timeout: Duration) -> CmdOutput {
    use std::os::unix::process::CommandExt;

    let start = Instant::now();
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return CmdOutput {
                code: None,
                stdout: String::new(),
                stderr: format!("cannot spawn bash {}: {e}", script.display()),
                timed_out: false,
                elapsed: start.elapsed(),
            }
        }
    };
    let pgid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());

    let deadline = start + timeout;
    let mut timed_out = false;
    let mut term_sent: Option<Instant> = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(_) => break None,
        }
        let now = Instant::now();
        match term_sent {
            None if now >= deadline => {
                timed_out = true;
                signal_group(pgid, libc::SIGTERM);
                term_sent = Some(now);
            }
            Some(t) if now >= t + Duration::from_secs(5) => {
                signal_group(pgid, libc::SIGKILL);
                break child.wait().ok();
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if timed_out {
        // Whatever the script left behind in its group (it was interrupted).
        signal_group(pgid, libc::SIGKILL);
    }
    CmdOutput {
        code: status.and_then(|s| s.code()),
        stdout: String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned(),
        timed_out,
        elapsed: start.elapsed(),
    }
}

/// Signals the process group `pgid`, created for the script we spawned
/// (`process_group(0)`).
fn signal_group(pgid: libc::pid_t, sig: libc::c_int) {
    if let Ok(sig) = nix::sys::signal::Signal::try_from(sig) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), sig);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_past_its_time_is_stopped_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("slow.sh");
        let pidfile = dir.path().join("child.pid");
        std::fs::write(
            &script,
            format!(
                "sleep 30 &\nchild=$!\necho $child > {}\ntrap 'kill $child' EXIT\necho started\nsleep 30\n",
                pidfile.display()
            ),
        )
        .unwrap();
        let out = run_script(&script, &[("X", "1")], dir.path(), Duration::from_secs(1));
        assert!(out.timed_out, "{out}");
        assert!(out.elapsed < Duration::from_secs(10), "{out}");
        assert!(out.stdout.contains("started"), "{out}");
        let child: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background child was ended (by the trap or the group SIGKILL).
        let gone = crate::wait_for(Duration::from_secs(5), || {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            (stat.is_empty() || state == Some("Z")).then_some(())
        });
        assert!(gone.is_some(), "pid {child} still runs");
    }

    #[test]
    fn environment_and_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("env.sh");
        std::fs::write(&script, "echo \"v=$TLSGATE_X\"\nexit 3\n").unwrap();
        let out = run_script(
            &script,
            &[("TLSGATE_X", "yes")],
            dir.path(),
            Duration::from_secs(10),
        );
        assert_eq!(out.code, Some(3), "{out}");
        assert!(out.stdout.contains("v=yes"), "{out}");
    }
}
