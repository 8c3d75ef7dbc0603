//! CPU time of other processes, from Linux `/proc/<pid>/stat`.

use std::time::Duration;

/// CPU time of a process (all its threads), split as the kernel accounts it:
/// in user space, and in the kernel on its behalf (system calls, and on
/// loopback the TCP input its own sends run for the receiver).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cpu {
    pub user: Duration,
    pub system: Duration,
}

impl Cpu {
    pub fn total(self) -> Duration {
        self.user + self.system
    }

    /// What was used between `before` and `self`.
    pub fn since(self, before: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(before.user),
            system: self.system.saturating_sub(before.system),
        }
    }
}

impl std::iter::Sum for Cpu {
    fn sum<I: Iterator<Item = Cpu>>(iter: I) -> Cpu {
        iter.fold(Cpu::default(), |a, b| Cpu {
            user: a.user + b.user,
            system: a.system + b.system,
        })
    }
}

/// CPU time of `pid`, or `None` when the process is gone or `/proc` is not
/// there.
pub fn cpu_time(pid: u32) -> Option<Cpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (user, system) = parse_stat_ticks(&stat)?;
    let hz = clock_ticks();
    Some(Cpu {
        user: Duration::from_secs_f64(user as f64 / hz),
        system: Duration::from_secs_f64(system as f64 / hz),
    })
}

/// (utime, stime), in clock ticks, from the text of /proc/<pid>/stat.
pub fn parse_stat_ticks(stat: &str) -> Option<(u64, u64)> {
    // The command name (field 2) may contain spaces and parentheses: the
    // fields after it start after the last ')'. utime and stime are fields
    // 14 and 15, so 11 and 12 counting from the state (field 3).
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// Total CPU time of `pids`; `None` if any of them cannot be read.
pub fn total(pids: &[u32]) -> Option<Cpu> {
    pids.iter().map(|&p| cpu_time(p)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_line() {
        let line = "4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 1234 0 0 0 \
                    150 37 0 0 20 0 1 0 123456 12345678 2000 18446744073709551615";
        assert_eq!(parse_stat_ticks(line), Some((150, 37)));
        assert_eq!(parse_stat_ticks("1 (x) S 0"), None);
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(cpu_time(me).is_some());
        assert!(total(&[me, me]).is_some());
        assert!(total(&[me, u32::MAX]).is_none());
        let one = cpu_time(me).unwrap();
        let two = total(&[me, me]).unwrap();
        assert!(two.total() >= one.total());
    }

    #[test]
    fn since_never_goes_negative() {
        let a = Cpu {
            user: Duration::from_millis(30),
            system: Duration::from_millis(10),
        };
        let b = Cpu {
            user: Duration::from_millis(50),
            system: Duration::from_millis(5),
        };
        let d = b.since(a);
        assert_eq!(d.user, Duration::from_millis(20));
        assert_eq!(d.system, Duration::ZERO);
        assert_eq!(d.total(), Duration::from_millis(20));
    }
}
