//! Per-worker counters and latencies, merged at the end into the report.
//!
//! Latencies are kept exactly (microseconds, one `u32` each: 4 MB per
//! million requests) and sorted once; percentiles use the nearest-rank
//! definition, so every reported value is one that was measured.

use std::collections::BTreeMap;
use std::time::Duration;

/// Distinct error kinds kept; later new kinds are counted as "other".
const MAX_ERROR_KINDS: usize = 16;

#[derive(Debug, Default)]
pub struct Recorder {
    pub requests: u64,
    pub non_2xx: u64,
    pub errors: u64,
    pub handshakes_full: u64,
    pub handshakes_resumed: u64,
    pub latencies_us: Vec<u32>,
    pub error_kinds: BTreeMap<String, u64>,
}

impl Recorder {
    pub fn response(&mut self, status: u16, latency: Duration) {
        self.requests += 1;
        if !(200..300).contains(&status) {
            self.non_2xx += 1;
        }
        self.latency(latency);
    }

    /// A latency sample without a response (see `Schedule::unsent_waits`).
    pub fn latency(&mut self, latency: Duration) {
        let us = latency.as_micros().min(u32::MAX as u128) as u32;
        self.latencies_us.push(us);
    }

    pub fn error(&mut self, kind: &str) {
        self.errors += 1;
        let key = if self.error_kinds.contains_key(kind) || self.error_kinds.len() < MAX_ERROR_KINDS
        {
            kind
        } else {
            "other"
        };
        *self.error_kinds.entry(key.to_string()).or_default() += 1;
    }

    pub fn handshake(&mut self, resumed: bool) {
        if resumed {
            self.handshakes_resumed += 1;
        } else {
            self.handshakes_full += 1;
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        self.requests += other.requests;
        self.non_2xx += other.non_2xx;
        self.errors += other.errors;
        self.handshakes_full += other.handshakes_full;
        self.handshakes_resumed += other.handshakes_resumed;
        if self.latencies_us.is_empty() {
            self.latencies_us = other.latencies_us;
        } else {
            self.latencies_us.extend_from_slice(&other.latencies_us);
        }
        for (k, n) in other.error_kinds {
            *self.error_kinds.entry(k).or_default() += n;
        }
    }
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Nearest-rank percentile of sorted data: the smallest value such that at
/// least `p` percent of the samples are less than or equal to it.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    // The epsilon absorbs binary rounding (99.9% of 10,000 is 9,990, not
    // 9,990.000000000002, which would round up to the next rank).
    let rank = ((p / 100.0) * n as f64 - 1e-9).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Sorts `latencies_us` in place and summarizes it.
pub fn summarize(latencies_us: &mut [u32]) -> Summary {
    if latencies_us.is_empty() {
        return Summary::default();
    }
    latencies_us.sort_unstable();
    let ms = |p: f64| percentile(latencies_us, p).map_or(0.0, |us| us as f64 / 1000.0);
    let sum: u64 = latencies_us.iter().map(|&u| u as u64).sum();
    Summary {
        mean: sum as f64 / latencies_us.len() as f64 / 1000.0,
        p50: ms(50.0),
        p90: ms(90.0),
        p99: ms(99.0),
        p999: ms(99.9),
        max: ms(100.0),
    }
}

/// Rounds to microseconds for printing.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 99.9), Some(100));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.9), Some(7));
        // Classic example: 5 values, p30 is the 2nd, p40 the 2nd, p50 the 3rd.
        let w = [15, 20, 35, 40, 50];
        assert_eq!(percentile(&w, 30.0), Some(20));
        assert_eq!(percentile(&w, 40.0), Some(20));
        assert_eq!(percentile(&w, 50.0), Some(35));
        assert_eq!(percentile(&w, 100.0), Some(50));
    }

    #[test]
    fn tail_percentiles_on_large_sets() {
        // 10,000 samples: 9,990 at 1 ms and 10 at 100 ms. p99.9 is the
        // 9,990th value (1 ms); one more slow sample moves it.
        let mut v = vec![1000u32; 9990];
        v.extend(std::iter::repeat_n(100_000, 10));
        let s = summarize(&mut v);
        assert_eq!((s.p50, s.p99, s.p999, s.max), (1.0, 1.0, 1.0, 100.0));
        let mut v = vec![1000u32; 9989];
        v.extend(std::iter::repeat_n(100_000, 11));
        assert_eq!(summarize(&mut v).p999, 100.0);
    }

    #[test]
    fn summary_sorts_and_averages() {
        let mut v = vec![3000, 1000, 2000, 4000];
        let s = summarize(&mut v);
        assert_eq!(v, vec![1000, 2000, 3000, 4000]);
        assert_eq!(s.mean, 2.5);
        assert_eq!(s.p50, 2.0);
        assert_eq!(s.p90, 4.0);
        assert_eq!(summarize(&mut []), Summary::default());
    }

    #[test]
    fn recorder_counts_and_merges() {
        let mut a = Recorder::default();
        a.response(200, Duration::from_micros(1500));
        a.response(503, Duration::from_micros(500));
        a.error("connect");
        a.handshake(false);
        let mut b = Recorder::default();
        b.response(204, Duration::from_millis(2));
        b.error("connect");
        b.error("tls");
        b.handshake(true);
        a.merge(b);
        assert_eq!((a.requests, a.non_2xx, a.errors), (3, 1, 3));
        assert_eq!((a.handshakes_full, a.handshakes_resumed), (1, 1));
        assert_eq!(a.latencies_us, vec![1500, 500, 2000]);
        assert_eq!(a.error_kinds["connect"], 2);
        assert_eq!(a.error_kinds["tls"], 1);
    }

    #[test]
    fn error_kinds_are_bounded() {
        let mut r = Recorder::default();
        for i in 0..40 {
            r.error(&format!("kind {i}"));
        }
        r.error("kind 0");
        assert_eq!(r.error_kinds.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(r.error_kinds["other"], 40 - MAX_ERROR_KINDS as u64);
        assert_eq!(r.error_kinds["kind 0"], 2);
        assert_eq!(r.errors, 41);
    }
}
