//! CPU time of other processes, from Linux `/proc/<pid>/stat`.

use std::time::Duration;

/// User plus system CPU time of `pid` (all its threads), or `None` when the
/// process is gone or `/proc` is not there.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&stat)?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
}

/// utime + stime, in clock ticks, from the text of /proc/<pid>/stat.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses: the
    // fields after it start after the last ')'. utime and stime are fields
    // 14 and 15, so 11 and 12 counting from the state (field 3).
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// Total CPU time of `pids`; `None` if any of them cannot be read.
pub fn total(pids: &[u32]) -> Option<Duration> {
    pids.iter().map(|&p| cpu_time(p)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_line() {
        let line = "4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 1234 0 0 0 \
                    150 37 0 0 20 0 1 0 123456 12345678 2000 18446744073709551615";
        assert_eq!(parse_stat_ticks(line), Some(187));
        assert_eq!(parse_stat_ticks("1 (x) S 0"), None);
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(cpu_time(me).is_some());
        assert!(total(&[me, me]).is_some());
        assert!(total(&[me, u32::MAX]).is_none());
    }
}
