//! Reloading: file events (debounced), a periodic rescan, SIGHUP and
//! `POST /reload` all end in [`Reloader::reload`], which rebuilds the whole
//! runtime beside the live one and swaps it in only if it differs.
//!
//! A Kubernetes Secret volume changes by renaming a new `..data` symlink
//! over the old one; editors write a temporary file and rename it. Both are
//! directory events, so we watch directories (the credentials directory
//! recursively, and the folder of every config file), never single files,
//! and let the rebuild decide whether anything changed.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode, Watcher};
use serde::Serialize;

use crate::config::CredentialSource;
use crate::config::{self, ConfigErrors, Loaded, Model, Overrides, Protocol};
use crate::metrics::metrics;
use crate::runtime::{Runtime, SharedRuntime};

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    Files(Vec<PathBuf>),
    /// The embedded default: its text is fixed, its credentials are files.
    Embedded {
        name: PathBuf,
        yaml: &'static str,
        base_dir: PathBuf,
    },
}

impl ConfigSource {
    pub fn load(&self, overrides: &Overrides) -> Result<Model, ConfigErrors> {
        self.load_all(overrides).into_result()
    }

    /// [`ConfigSource::load`], keeping the partial model when there are errors.
    pub fn load_all(&self, overrides: &Overrides) -> Loaded {
        match self {
            ConfigSource::Files(paths) => config::load_all(paths, overrides),
            ConfigSource::Embedded {
                name,
                yaml,
                base_dir,
            } => config::load_str_all(name, yaml, base_dir, overrides),
        }
    }
}

/// What one reload did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// `applied`, `unchanged` or `error`.
    pub result: &'static str,
    pub generation: u64,
    /// Configuration errors (the running configuration was kept).
    pub errors: Vec<String>,
    /// Credentials whose newest files were refused (last good kept).
    pub refused: Vec<String>,
    /// Changes that only a restart can apply (new listeners, admin address).
    pub needs_restart: Vec<String>,
}

pub struct Reloader {
    rt: SharedRuntime,
    source: ConfigSource,
    overrides: Overrides,
    /// Serializes reloads; holds the last published model's fingerprint.
    last: Mutex<String>,
}

impl Reloader {
    pub fn new(rt: SharedRuntime, source: ConfigSource, overrides: Overrides) -> Arc<Self> {
        let fingerprint = fingerprint(&rt.load());
        Arc::new(Reloader {
            rt,
            source,
            overrides,
            last: Mutex::new(fingerprint),
        })
    }

    /// Rebuilds from the files now on disk; publishes only a changed runtime.
    pub fn reload(&self, trigger: &str) -> Outcome {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        // `maxConnections: 0` follows the descriptor limit as it is now.
        crate::listen::reread_fd_limit();
        let current = self.rt.load_full();
        let m = metrics();
        let mut outcome = Outcome {
            result: "error",
            generation: current.generation,
            errors: Vec::new(),
            refused: Vec::new(),
            needs_restart: Vec::new(),
        };
        let built = self
            .source
            .load(&self.overrides)
            .and_then(|model| Runtime::rebuild(model, &current, current.generation + 1));
        // The listeners' library is the one they started with.
        let built = built.and_then(|(next, refusals)| {
            if crate::tls::by_rustls::in_use() {
                crate::tls::by_rustls::check(&next)?;
            }
            Ok((next, refusals))
        });
        let (next, refusals) = match built {
            Ok(b) => b,
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!(trigger, error = %e, "reload refused; the running configuration stays");
                }
                outcome.errors = errors.0.iter().map(|e| e.to_string()).collect();
                m.reloads.with_label_values(&["error"]).inc();
                return outcome;
            }
        };
        for r in &refusals {
            let known = current.last_error(&r.subject) == Some(r.reason.as_str());
            if known {
                // Already logged and counted when these files first failed.
                continue;
            }
            tracing::error!(
                trigger,
                credential = %r.credential,
                reason = %r.reason,
                "credential refused; its last good version keeps serving"
            );
            m.credential_reloads
                .with_label_values(&[&r.credential, "refused"])
                .inc();
        }
        outcome.refused = refusals
            .iter()
            .map(|r| format!("{}: {}", r.credential, r.reason))
            .collect();
        let print = fingerprint(&next);
        if *last == print {
            outcome.result = "unchanged";
            m.reloads.with_label_values(&["unchanged"]).inc();
            return outcome;
        }
        outcome.needs_restart = needs_restart(&current.model, &next.model);
        outcome.generation = next.generation;
        outcome.result = "applied";
        *last = print;
        if crate::tls::by_rustls::in_use() {
            crate::tls::by_rustls::apply_limits(&next);
        }
        let next = Arc::new(next);
        // Stored before anything reports it: whoever sees the new
        // generation, or a credential counted as applied, is served by it.
        self.rt.store(next.clone());
        for what in &outcome.needs_restart {
            tracing::warn!(trigger, change = %what, "needs restart; the rest of the change applies");
            m.needs_restart.inc();
        }
        for (src, st) in &next.credential_status {
            if st.loaded_generation == next.generation {
                m.credential_reloads
                    .with_label_values(&[&src.to_string(), "applied"])
                    .inc();
            }
        }
        publish_gauges(&next);
        log_warnings(&next.model, trigger);
        m.reloads.with_label_values(&["applied"]).inc();
        tracing::info!(
            trigger,
            generation = outcome.generation,
            "configuration reloaded"
        );
        outcome
    }

    /// Directories to watch for the current configuration.
    fn watch_dirs(&self) -> BTreeSet<(PathBuf, bool)> {
        let rt = self.rt.load();
        let mut dirs = BTreeSet::new();
        dirs.insert((rt.model.runtime.credentials_dir.clone(), true));
        if let ConfigSource::Files(paths) = &self.source {
            for p in paths {
                let dir = if p.is_dir() {
                    p.clone()
                } else {
                    p.parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
                };
                dirs.insert((dir, false));
            }
        }
        // Files named by path in the configuration (inline certificates and
        // keys, DestinationRule CA bundles) may live anywhere: their
        // folders are watched too, so their rotation applies at once.
        let files = rt
            .credentials
            .keys()
            .flat_map(|src| match src {
                CredentialSource::Files { cert, key, ca } => [Some(cert), Some(key), ca.as_ref()]
                    .into_iter()
                    .flatten()
                    .collect(),
                CredentialSource::Named(_) => Vec::new(),
            })
            .chain(rt.ca_bundles.keys())
            .chain(rt.model.runtime.session_tickets.key_files.iter());
        for f in files {
            if let Some(dir) = f.parent().filter(|d| !d.as_os_str().is_empty()) {
                dirs.insert((dir.to_path_buf(), false));
            }
        }
        if let Some(d) = &rt.model.runtime.session_tickets.key_directory {
            dirs.insert((d.clone(), false));
        }
        dirs
    }

    /// Starts the watcher thread: file events debounced, plus a rescan.
    pub fn spawn_watcher(self: &Arc<Self>) -> std::io::Result<()> {
        let settings = self.rt.load().model.runtime.reload.clone();
        let (tx, rx) = mpsc::channel::<()>();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                // Our own reads show up as access events: reacting to them
                // would reload forever.
                // Reading a file also bumps its atime (a metadata event).
                let ours = matches!(
                    ev.kind,
                    EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_))
                );
                if !ours {
                    let _ = tx.send(());
                }
            }
        })
        .map_err(std::io::Error::other)?;
        let mut watched = BTreeSet::new();
        if settings.watch {
            watched = self.watch_dirs();
            for (dir, recursive) in &watched {
                add_watch(&mut watcher, dir, *recursive);
            }
        }
        let me = self.clone();
        std::thread::Builder::new()
            .name("tlsgate-reload".into())
            .spawn(move || {
                let _keep_alive = &watcher;
                let mut watched = watched;
                loop {
                    let trigger = match rx.recv_timeout(settings.rescan_interval) {
                        Ok(()) => {
                            debounce(&rx, settings.debounce);
                            "watch"
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => "rescan",
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    };
                    me.reload(trigger);
                    if settings.watch {
                        let now = me.watch_dirs();
                        for (dir, _) in watched.difference(&now) {
                            let _ = watcher.unwatch(dir);
                        }
                        for (dir, recursive) in now.difference(&watched) {
                            add_watch(&mut watcher, dir, *recursive);
                        }
                        watched = now;
                    }
                }
            })?;
        Ok(())
    }

    /// SIGHUP forces a reload.
    pub fn spawn_sighup(self: &Arc<Self>) -> std::io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
        let me = self.clone();
        std::thread::Builder::new()
            .name("tlsgate-sighup".into())
            .spawn(move || {
                for _ in signals.forever() {
                    me.reload("sighup");
                }
            })?;
        Ok(())
    }
}

fn add_watch(watcher: &mut impl Watcher, dir: &Path, recursive: bool) {
    let mode = if recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    if let Err(e) = watcher.watch(dir, mode) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch; the periodic rescan still applies changes");
    }
}

/// Waits until no event came for `quiet`, bounded so a constant stream of
/// events cannot postpone the reload forever.
fn debounce(rx: &mpsc::Receiver<()>, quiet: Duration) {
    let deadline = Instant::now() + quiet * 10;
    while Instant::now() < deadline {
        match rx.recv_timeout(quiet) {
            Ok(()) => continue,
            Err(_) => return,
        }
    }
}

/// Identity of what a runtime serves: the model as JSON plus each
/// credential's content. Equal prints mean a reload would change nothing.
fn fingerprint(rt: &Runtime) -> String {
    let mut s = serde_json::to_string(&*rt.model).unwrap_or_default();
    for (src, c) in &rt.credentials {
        s.push_str(&format!("|{src}={:x?}", c.content_id()));
        if let Some(e) = rt
            .credential_status
            .get(src)
            .and_then(|st| st.last_error.as_ref())
        {
            s.push_str(&format!("!{e}"));
        }
    }
    if let Some(id) = rt.tickets.content_id() {
        s.push_str(&format!("|tickets={id:x?}"));
    }
    if let Some(e) = &rt.tickets_error {
        s.push_str(&format!("!{e}"));
    }
    // A CA file is content, not only a path: a rotated one is a change.
    for (path, b) in &rt.ca_bundles {
        s.push_str(&format!("|ca:{}={:x?}", path.display(), b.content_id));
        if let Some(e) = rt.ca_status.get(path).and_then(|st| st.last_error.as_ref()) {
            s.push_str(&format!("!{e}"));
        }
    }
    s
}

/// Bound listeners by kind: HTTPS and TLS servers share one TLS listener,
/// so one becoming the other (a passthrough host added) needs no restart.
fn listeners(model: &Model) -> BTreeSet<(SocketAddr, Protocol)> {
    let kind = |p| match p {
        Protocol::Tls => Protocol::Https,
        other => other,
    };
    model
        .gateways
        .iter()
        .flat_map(|g| g.servers.iter().map(move |s| (s.addr(), kind(s.protocol))))
        .collect()
}

fn needs_restart(old: &Model, new: &Model) -> Vec<String> {
    let (a, b) = (listeners(old), listeners(new));
    let mut out: Vec<String> = b
        .difference(&a)
        .map(|(addr, p)| format!("new listener {addr} {p:?}"))
        .chain(a.difference(&b).map(|(addr, p)| {
            format!("removed listener {addr} {p:?} (no longer served, still bound)")
        }))
        .collect();
    if old.runtime.admin != new.runtime.admin {
        out.push(format!(
            "admin address {} -> {}",
            old.runtime.admin, new.runtime.admin
        ));
    }
    if old.runtime.threads != new.runtime.threads {
        out.push("threads".to_string());
    }
    // libssl's cache is sized when the listener's context is made.
    let (a, b) = (
        old.runtime.limits.tls_session_cache_bytes,
        new.runtime.limits.tls_session_cache_bytes,
    );
    if a != b && !crate::tls::by_rustls::in_use() {
        out.push(format!(
            "limits.tlsSessionCacheBytes {a} -> {b} (OpenSSL listeners' session cache)"
        ));
    }
    if old.runtime.tls_library != new.runtime.tls_library {
        out.push(format!(
            "tlsLibrary {} -> {}",
            old.runtime.tls_library.as_str(),
            new.runtime.tls_library.as_str()
        ));
    }
    out
}

/// Once per load that is applied: what the configuration does not apply,
/// and what it applies with a caution.
pub fn log_warnings(model: &crate::config::Model, trigger: &str) {
    for w in &model.warnings {
        if w.applied {
            tracing::warn!(
                trigger,
                file = %w.file.display(),
                doc = %w.doc,
                field = %w.field,
                reason = %w.reason,
                "configuration applied with a caution"
            );
        } else {
            tracing::warn!(
                trigger,
                file = %w.file.display(),
                doc = %w.doc,
                field = %w.field,
                reason = %w.reason,
                "configuration ignored"
            );
        }
    }
}

/// Gauges that describe the runtime being published. The per-credential
/// ones are rebuilt, so a credential or CRL taken out of the
/// configuration leaves no value behind; a certificate near its end is
/// logged when it is loaded (the gauge is kept current at each scrape,
/// [`refresh_expiring`]).
pub fn publish_gauges(rt: &Runtime) {
    let m = metrics();
    m.generation.set(rt.generation as i64);
    m.config_warnings.set(rt.model.warnings.len() as i64);
    m.credential_expiry.reset();
    for c in rt.credentials.values() {
        let i = &c.info;
        m.credential_expiry
            .with_label_values(&[&i.name])
            .set(i.not_after_unix);
    }
    let now = tlsgate_core::credentials::now_unix();
    for (src, st) in &rt.credential_status {
        let Some(c) = rt.credentials.get(src) else {
            continue;
        };
        if st.loaded_generation == rt.generation && expiring(c.info.not_after_unix, now) {
            tracing::warn!(
                credential = %c.info.name,
                not_after = %c.info.not_after,
                "the served certificate expires within 14 days: rotate it"
            );
        }
    }
    refresh_expiring(rt);
}

/// `tlsgate_credential_expiring_soon` as of now: run at each scrape, as
/// time, not a reload, moves a certificate into its last 14 days.
pub fn refresh_expiring(rt: &Runtime) {
    let m = metrics();
    let now = tlsgate_core::credentials::now_unix();
    m.credential_expiring.reset();
    m.crl_next_update.reset();
    m.ocsp_next_update.reset();
    for (src, c) in &rt.credentials {
        // Fetched responses change between reloads too.
        let policy = rt.tls.policies().find(|p| p.credential.source == *src);
        for (i, served) in c.served().enumerate() {
            let staple = match policy {
                Some(p) => p.staple(i, now),
                None => served.ocsp.clone(),
            };
            if let Some(next) = staple.and_then(|o| o.next_update) {
                m.ocsp_next_update
                    .with_label_values(&[&c.info.name, &served.info.fingerprint_sha256])
                    .set(next);
            }
        }
        // The second certificate ends on its own date.
        let not_after = c.served().map(|s| s.info.not_after_unix).min();
        m.credential_expiring
            .with_label_values(&[&c.info.name])
            .set(i64::from(expiring(
                not_after.unwrap_or(c.info.not_after_unix),
                now,
            )));
        // Files and fetched CRLs alike: the fetched ones change between
        // reloads, so the gauge is made at each scrape.
        let fetched = rt
            .revocation_of(src)
            .into_iter()
            .flat_map(|r| r.all_slots().into_iter().filter_map(|s| s.current()))
            .map(|c| (c.issuer_str.clone(), c.next_update));
        let files = c
            .info
            .crls
            .iter()
            .map(|c| (c.issuer.clone(), c.next_update_unix));
        let mut newest: std::collections::BTreeMap<String, i64> = Default::default();
        for (issuer, next) in files.chain(fetched) {
            let Some(next) = next else { continue };
            let e = newest.entry(issuer).or_insert(next);
            *e = (*e).max(next);
        }
        for (issuer, next) in newest {
            m.crl_next_update
                .with_label_values(&[&c.info.name, &issuer])
                .set(next);
        }
    }
}

fn expiring(not_after: i64, now: i64) -> bool {
    not_after - now < EXPIRY_WARNING_SECS
}

/// How long before a served certificate's notAfter the gateway warns.
const EXPIRY_WARNING_SECS: i64 = 14 * 86_400;
