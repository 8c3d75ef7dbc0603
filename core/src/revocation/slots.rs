//! Fetched CRLs: one slot per URL for the whole process.
//!
//! Runtimes hold their slots strongly and the registry weakly, so a URL no
//! configuration names any more is forgotten, and one a reload keeps is the
//! same slot, with its last good CRL, before and after.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwapOption;

use super::CrlIndex;

/// The last good CRL fetched from one URL, and how fetching it went.
#[derive(Debug)]
pub struct CrlSlot {
    pub url: String,
    current: ArcSwapOption<CrlIndex>,
    status: Mutex<FetchStatus>,
}

/// What `/certs` shows of a URL's fetching.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FetchStatus {
    /// `ok`, `unchanged`, or the failure class of the last attempt.
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    pub last_attempt_unix: Option<i64>,
    pub last_success_unix: Option<i64>,
    pub next_attempt_unix: Option<i64>,
    pub consecutive_failures: u32,
}

impl FetchStatus {
    /// Records one attempt: `class` is `ok`/`unchanged` or the failure
    /// class, `error` its message.
    pub fn record(&mut self, class: &str, error: Option<&str>, now: i64, next: i64) {
        self.last_result = Some(class.to_string());
        self.last_attempt_unix = Some(now);
        self.next_attempt_unix = Some(next);
        match error {
            None => {
                self.last_success_unix = Some(now);
                self.last_error = None;
                self.consecutive_failures = 0;
            }
            Some(e) => {
                self.last_error = Some(e.to_string());
                self.consecutive_failures += 1;
            }
        }
    }
}

impl CrlSlot {
    pub fn current(&self) -> Option<Arc<CrlIndex>> {
        self.current.load_full()
    }

    /// Publishes a newer CRL. Sessions of credentials that fetch CRLs are
    /// bound to [`crl_epoch`], so none made before outlives the change.
    pub fn publish(&self, index: Arc<CrlIndex>) {
        self.current.store(Some(index));
        bump_epoch();
    }

    pub fn status(&self) -> FetchStatus {
        self.lock().clone()
    }

    pub fn update_status(&self, f: impl FnOnce(&mut FetchStatus)) {
        f(&mut self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FetchStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

static REGISTRY: Mutex<BTreeMap<String, Weak<CrlSlot>>> = Mutex::new(BTreeMap::new());
static EPOCH: AtomicU64 = AtomicU64::new(0);

fn registry() -> std::sync::MutexGuard<'static, BTreeMap<String, Weak<CrlSlot>>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The slot of `url`, the same one as long as any runtime holds it.
pub fn slot(url: &str) -> Arc<CrlSlot> {
    let mut r = registry();
    if let Some(s) = r.get(url).and_then(Weak::upgrade) {
        return s;
    }
    let s = Arc::new(CrlSlot {
        url: url.to_string(),
        current: ArcSwapOption::empty(),
        status: Mutex::new(FetchStatus::default()),
    });
    r.insert(url.to_string(), Arc::downgrade(&s));
    s
}

/// Every slot some runtime still holds (the fetcher's work list).
pub fn live_slots() -> Vec<Arc<CrlSlot>> {
    let mut r = registry();
    r.retain(|_, w| w.strong_count() > 0);
    r.values().filter_map(Weak::upgrade).collect()
}

/// Changes whenever a fetched CRL does (or one goes stale).
pub fn crl_epoch() -> u64 {
    EPOCH.load(Ordering::Relaxed)
}

pub fn bump_epoch() {
    EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// Distribution points learned from client certificates, by credential:
/// kept across reloads (a new runtime starts with them), at most
/// [`MAX_LEARNED`] a credential, so clients cannot make the gateway fetch
/// at will (and only certificates a trusted CA signed are read).
static LEARNED: Mutex<BTreeMap<String, Vec<String>>> = Mutex::new(BTreeMap::new());

/// URLs learned per credential, at most.
pub const MAX_LEARNED: usize = 16;

/// The URLs learned so far for `credential`.
pub fn learned_urls(credential: &str) -> Vec<String> {
    LEARNED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(credential)
        .cloned()
        .unwrap_or_default()
}

/// Remembers `url` for `credential`; false when its list is full.
pub fn remember(credential: &str, url: &str) -> bool {
    let mut l = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
    let urls = l.entry(credential.to_string()).or_default();
    if urls.iter().any(|u| u == url) {
        return true;
    }
    if urls.len() >= MAX_LEARNED {
        return false;
    }
    urls.push(url.to_string());
    true
}
