//! Seed 000 with the hardening settings of issue 10 (`spec.limits`,
//! `spec.timeouts`, short enough that every case takes seconds), and the
//! checks a hardening case ends with: good clients were served, descriptors
//! and memory came back, the refusal was counted.
//!
//! A binary that does not know these settings refuses the configuration
//! (`unknown field`). [`Hardening::start`] then runs the same seed without
//! them, on that binary's defaults, so the test still shows how the attack
//! fares; [`Target::finish`] fails such a run in any case.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use super::good::{GoodClients, GoodReport};
use super::proc::{wait_until, Usage};
use crate::gateway::GatewayOptions;
use crate::metrics::Metrics;
use crate::scenario::Seed000;

/// Descriptors allowed above the baseline once an attack is over.
pub const FD_SLACK: usize = 5;
/// Memory allowed above the baseline once an attack is over.
pub const RSS_SLACK_KB: u64 = 20 * 1024;
/// Good clients must be answered faster than this during an attack.
pub const GOOD_LATENCY: Duration = Duration::from_secs(1);

/// A change to the whole configuration text (ports already in it).
#[derive(Clone)]
struct Edit(std::sync::Arc<dyn Fn(&str) -> String + Send + Sync>);

impl std::fmt::Debug for Edit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Edit")
    }
}

/// `GatewayRuntime.spec` additions and how to start the process.
#[derive(Debug, Clone)]
pub struct Hardening {
    /// `(section, key, value)`; section `""` is `spec` itself.
    entries: Vec<(String, String, String)>,
    opts: GatewayOptions,
    args: Vec<String>,
    edits: Vec<Edit>,
}

impl Hardening {
    /// The limits at their documented defaults, every deadline at 1 s.
    pub fn short() -> Hardening {
        let mut h = Hardening::none();
        for (k, v) in [
            ("maxConnections", "10000"),
            ("requestHeadBytes", "65536"),
            ("requestHeaders", "100"),
            ("requestHeadMemory", "33554432"),
            ("http2MaxConcurrentStreams", "100"),
            ("http2MaxResetStreams", "100"),
        ] {
            h = h.set(&format!("limits.{k}"), v);
        }
        for k in [
            "tlsHandshake",
            "firstRequest",
            "requestHead",
            "requestBodyIdle",
            "keepAliveIdle",
            "http2Idle",
            "responseSendIdle",
        ] {
            h = h.set(&format!("timeouts.{k}"), "1s");
        }
        h
    }

    /// No hardening settings (only [`Hardening::set`] ones).
    pub fn none() -> Hardening {
        Hardening {
            entries: Vec::new(),
            opts: GatewayOptions::default(),
            args: Vec::new(),
            edits: Vec::new(),
        }
    }

    /// Set `section.key` (`limits.requestHeadMemory`) or a `spec` key
    /// (`adminTokenFile`) to `value`.
    pub fn set(mut self, path: &str, value: &str) -> Hardening {
        let (section, key) = path.rsplit_once('.').unwrap_or(("", path));
        match self
            .entries
            .iter_mut()
            .find(|(s, k, _)| s == section && k == key)
        {
            Some(e) => e.2 = value.to_string(),
            None => self
                .entries
                .push((section.to_string(), key.to_string(), value.to_string())),
        }
        self
    }

    /// Start the process with `ulimit -n n`.
    pub fn nofile(mut self, n: u64) -> Hardening {
        self.opts.nofile = Some(n);
        self
    }

    /// `--admin addr` instead of 127.0.0.1:<free>.
    pub fn admin(mut self, addr: SocketAddr) -> Hardening {
        self.opts.admin = Some(addr);
        self
    }

    /// `f` rewrites the configuration text (after the settings went in),
    /// e.g. to add documents for the seed's port.
    pub fn edit(mut self, f: impl Fn(&str) -> String + Send + Sync + 'static) -> Hardening {
        self.edits.push(Edit(std::sync::Arc::new(f)));
        self
    }

    /// More `tlsgate run` arguments.
    pub fn arg(mut self, a: &str) -> Hardening {
        self.args.push(a.to_string());
        self
    }

    /// The lines to put under `spec:` (indented).
    pub fn yaml(&self) -> String {
        let mut out = String::new();
        let mut sections: Vec<&str> = Vec::new();
        for (s, _, _) in &self.entries {
            if !sections.contains(&s.as_str()) {
                sections.push(s);
            }
        }
        for section in sections {
            let indent = if section.is_empty() {
                "  "
            } else {
                out.push_str(&format!("  {section}:\n"));
                "    "
            };
            for (_, k, v) in self.entries.iter().filter(|(s, _, _)| s == section) {
                out.push_str(&format!("{indent}{k}: {v}\n"));
            }
        }
        out
    }

    fn keys(&self) -> Vec<&str> {
        self.entries
            .iter()
            .map(|(s, k, _)| if s.is_empty() { k.as_str() } else { s.as_str() })
            .collect()
    }

    /// Seed 000 with these settings, warmed up, its baseline taken.
    pub fn start(&self) -> Target {
        let extra: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let added = self.yaml();
        let first = Seed000::try_start(self.opts, &extra, |_, yaml| {
            self.edits
                .iter()
                .fold(insert_into_runtime(&yaml, &added), |y, e| (e.0)(&y))
        });
        let (seed, unsupported) = match first {
            Ok(s) => (s, None),
            Err(e) => {
                let refused = e.lines().find(|l| {
                    l.contains("unknown field")
                        && self.keys().iter().any(|k| l.contains(&format!("`{k}`")))
                });
                let Some(line) = refused else {
                    panic!("the gateway did not start: {e}");
                };
                let line = line.trim().to_string();
                eprintln!(
                    "NOTE: this tlsgate refuses the hardening settings ({line}); the case \
                     runs on the binary's defaults to show the attack, and fails at the end."
                );
                let seed = Seed000::try_start(self.opts, &extra, |_, yaml| yaml)
                    .unwrap_or_else(|e| panic!("{e}"));
                (seed, Some(line))
            }
        };
        let mut t = Target {
            seed,
            unsupported,
            base: Usage {
                fds: 0,
                close_wait: 0,
                rss_kb: 0,
            },
            before: Metrics::default(),
            failures: Mutex::new(Vec::new()),
        };
        t.warm_up();
        t
    }
}

/// `added` right after the GatewayRuntime's `spec:` line.
fn insert_into_runtime(yaml: &str, added: &str) -> String {
    let kind = yaml
        .find("kind: GatewayRuntime")
        .expect("a GatewayRuntime document");
    let spec = yaml[kind..].find("\nspec:\n").expect("a spec") + kind + "\nspec:\n".len();
    format!("{}{added}{}", &yaml[..spec], &yaml[spec..])
}

/// The `tlsgate_h2_goaway_total` reasons a GOAWAY with `code` may count as.
pub fn goaway_reasons(code: u32) -> &'static [&'static str] {
    match code {
        0x1 => &["protocol_error", "too_many_malformed"],
        0x3 => &["flow_control_error"],
        0x6 => &["frame_size_error"],
        0x9 => &["compression_error"],
        0xb => &["enhance_your_calm", "rapid_reset", "too_many_malformed"],
        _ => &["other"],
    }
}

/// A running hardened gateway, its baseline and metrics before the attack.
///
/// The `check_*` methods record what is wrong rather than stop, so that one
/// run says everything that failed; [`Target::finish`] then fails the test
/// with the whole list.
pub struct Target {
    pub seed: Seed000,
    /// Why the hardening settings were refused, if they were.
    pub unsupported: Option<String>,
    /// Descriptors and memory after the warm-up.
    pub base: Usage,
    before: Metrics,
    failures: Mutex<Vec<String>>,
}

impl Target {
    pub fn port(&self) -> u16 {
        self.seed.port
    }

    pub fn pid(&self) -> u32 {
        self.seed.gateway.pid()
    }

    pub fn usage(&self) -> Usage {
        Usage::of(self.pid())
    }

    /// Good clients for a moment (pools and lazy state exist afterwards),
    /// then the baseline.
    fn warm_up(&mut self) {
        let good = GoodClients::start(self.port());
        std::thread::sleep(Duration::from_millis(400));
        let r = good.stop();
        if let Err(e) = r.check(1, Duration::from_secs(3)) {
            panic!("warm-up: {e}\n{}", self.seed.gateway.describe());
        }
        std::thread::sleep(Duration::from_millis(100));
        self.base = self.usage();
        if self.base.close_wait > 0 {
            eprintln!(
                "NOTE: before any attack the gateway already holds {} socket(s) in CLOSE_WAIT",
                self.base.close_wait
            );
        }
        self.before = self.seed.gateway.metrics();
    }

    /// Good clients against this gateway.
    pub fn good_clients(&self) -> GoodClients {
        GoodClients::start(self.port())
    }

    /// Record a failure unless `ok`.
    pub fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let what = what();
            eprintln!("CHECK FAILED: {what}");
            self.failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(what);
        }
    }

    /// Counter `name{labels}` now minus at the baseline.
    pub fn counted(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.seed.gateway.metrics().sum(name, labels) - self.before.sum(name, labels)
    }

    /// `name{labels}` grew by `at_least` (waiting 2 s at most).
    pub fn check_counted(&self, name: &str, labels: &[(&str, &str)], at_least: f64) {
        let ok = wait_until(Duration::from_secs(2), || {
            self.counted(name, labels) >= at_least
        });
        self.check(ok, || {
            let m = self.seed.gateway.metrics();
            let lines: Vec<&str> = m.text.lines().filter(|l| l.starts_with(name)).collect();
            format!(
                "(d) {name}{labels:?} grew by {}, want at least {at_least}; {}",
                self.counted(name, labels),
                if lines.is_empty() {
                    "the metric is absent".to_string()
                } else {
                    lines.join("; ")
                }
            )
        });
    }

    /// `name` grew by `at_least`, summed over the samples whose `label` is
    /// one of `values`.
    pub fn check_counted_any(&self, name: &str, label: &str, values: &[&str], at_least: f64) {
        let sum =
            |t: &Target| -> f64 { values.iter().map(|v| t.counted(name, &[(label, v)])).sum() };
        let ok = wait_until(Duration::from_secs(2), || sum(self) >= at_least);
        self.check(ok, || {
            let m = self.seed.gateway.metrics();
            let lines: Vec<&str> = m.text.lines().filter(|l| l.starts_with(name)).collect();
            format!(
                "(d) {name}{{{label} in {values:?}}} grew by {}, want at least {at_least}; {}",
                sum(self),
                if lines.is_empty() {
                    "the metric is absent".to_string()
                } else {
                    lines.join("; ")
                }
            )
        });
    }

    /// A GOAWAY with `code` was counted in `tlsgate_h2_goaway_total` under
    /// a reason that fits the code.
    pub fn check_goaway_counted(&self, code: u32) {
        self.check_counted_any(
            "tlsgate_h2_goaway_total",
            "reason",
            goaway_reasons(code),
            1.0,
        );
    }

    /// Good clients kept getting 200 within [`GOOD_LATENCY`].
    pub fn check_good(&self, r: &GoodReport) {
        let result = r.check(2, GOOD_LATENCY);
        self.check(result.is_ok(), || format!("(b) {}", result.unwrap_err()));
    }

    /// Descriptors and memory back near the baseline within `within`: at
    /// most [`FD_SLACK`] more descriptors and [`RSS_SLACK_KB`] more memory,
    /// no more sockets in CLOSE_WAIT than before.
    pub fn check_recovered(&self, within: Duration) {
        let ok = wait_until(within, || {
            self.usage().near(&self.base, FD_SLACK, RSS_SLACK_KB)
        });
        self.check(ok, || {
            format!(
                "(c) not back to the baseline ({}) within {within:?}: now {}",
                self.base,
                self.usage()
            )
        });
    }

    /// Fail the test with every recorded failure (and a refused
    /// configuration), with the gateway's logs.
    pub fn finish(self) {
        let mut all = std::mem::take(&mut *self.failures.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(why) = &self.unsupported {
            all.push(format!(
                "this tlsgate does not accept the hardening settings: {why}"
            ));
        }
        if !all.is_empty() {
            panic!(
                "{} failure(s):\n- {}\n{}",
                all.len(),
                all.join("\n- "),
                self.seed.gateway.describe()
            );
        }
    }
}
