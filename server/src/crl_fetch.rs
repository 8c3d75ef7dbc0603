//! Keeps fetched CRLs fresh: one background thread that fetches each CRL
//! URL a credential names (`ca.crl.url`, `GatewayRuntime`
//! `spec.revocation.credentials`) before its CRL's nextUpdate, and at most
//! `refreshInterval` apart.
//!
//! A new CRL replaces the one in use only when it parses, is signed by a
//! CA of a bundle that names its URL (when the issuer is there: an
//! intermediate's CRL is verified at the first handshake with that
//! intermediate), and is not older than it: otherwise the last good CRL
//! stays, and the failure is logged, counted and shown in `/certs`.

mod http;
mod ocsp;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openssl::x509::{X509Crl, X509};
use tlsgate_core::revocation::{self, CrlError, CrlIndex, CrlSlot};

use crate::metrics::metrics;
use crate::runtime::SharedRuntime;
pub use http::FetchError;

/// Starts the fetcher thread (it runs for the life of the process).
pub fn spawn(rt: SharedRuntime) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tlsgate-crl".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "CRL fetcher not started");
                    return;
                }
            };
            runtime.block_on(run(rt));
        })
        .map(|_| ())
}

/// How often the work list is looked at: a URL added by a reload is
/// fetched within this.
pub(crate) const TICK: Duration = Duration::from_millis(500);
/// Fetches in flight at once.
pub(crate) const PARALLEL: usize = 4;

async fn run(rt: SharedRuntime) {
    // OCSP responders on their own loop: a slow one never delays a CRL.
    tokio::spawn(ocsp::run_loop(rt.clone()));
    let mut validators: BTreeMap<String, http::Validators> = BTreeMap::new();
    loop {
        let due = work(&rt);
        let known = validators.clone();
        run_batched(
            due,
            move |job: Arc<Job>| {
                let v = known.get(&job.slot.url).cloned().unwrap_or_default();
                async move { fetch(&job, &v).await }
            },
            |job, result| {
                if let Some(v) = record(job, result) {
                    validators.insert(job.slot.url.clone(), v);
                }
            },
        )
        .await;
        validators.retain(|url, _| revocation::live_slots().iter().any(|s| &s.url == url));
        mark_stale();
        tokio::time::sleep(TICK).await;
    }
}

/// One URL to fetch now, with what checking its CRL needs.
struct Job {
    slot: Arc<CrlSlot>,
    /// Every credential naming it (metric labels).
    credentials: Vec<String>,
    /// Their CA bundles, together.
    cas: Vec<X509>,
    settings: crate::config::revocation::RevocationSettings,
}

/// The URLs of the runtime now serving whose next attempt is due.
fn work(rt: &SharedRuntime) -> Vec<Job> {
    let rt = rt.load();
    let now = now_unix();
    let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
    for p in rt.tls.policies().filter(|p| p.requests_client_cert()) {
        for slot in p.revocation.all_slots() {
            let job = jobs.entry(slot.url.clone()).or_insert_with(|| Job {
                slot: slot.clone(),
                credentials: Vec::new(),
                cas: Vec::new(),
                settings: rt.model.runtime.revocation.clone(),
            });
            let name = &p.credential.info.name;
            if !job.credentials.contains(name) {
                job.credentials.push(name.clone());
                job.cas.extend(p.revocation.cas().iter().cloned());
            }
        }
    }
    jobs.into_values()
        .filter(|j| j.slot.status().next_attempt_unix.is_none_or(|t| t <= now))
        .collect()
}

/// What one attempt gave: a new CRL, the same one, or why none.
enum Outcome {
    New(Arc<CrlIndex>, http::Validators),
    Unchanged(Option<http::Validators>),
}

async fn fetch(job: &Job, v: &http::Validators) -> Result<Outcome, FetchError> {
    let s = &job.settings;
    let got = http::get_within(&job.slot.url, v, s.max_crl_bytes, s.fetch_timeout).await?;
    let (body, validators) = match got {
        // Only an answer to our own validators, for a CRL we hold.
        http::Fetched::NotModified if job.slot.current().is_some() && !v.is_empty() => {
            return Ok(Outcome::Unchanged(None))
        }
        http::Fetched::NotModified => {
            return Err(FetchError {
                class: "bad_response",
                message: format!("{}: 304 Not Modified for a CRL never sent", job.slot.url),
            })
        }
        http::Fetched::Body { body, validators } => (body, validators),
    };
    let crl = parse(&body).map_err(|e| refused("parse", &job.slot.url, &e))?;
    // Signature and SHA-256 over megabytes: not on the async thread's hot
    // path, but this thread has nothing else to do.
    let index = CrlIndex::fetched(&crl, &job.cas, now_unix()).map_err(|e| {
        let class = match e {
            CrlError::BadSignature { .. } | CrlError::UnknownIssuer { .. } => "bad_signature",
            CrlError::Future(_) | CrlError::NoNextUpdate => "bad_dates",
            _ => "parse",
        };
        refused(class, &job.slot.url, &e)
    })?;
    if let Some(cur) = job.slot.current() {
        if cur.sha256 == index.sha256 {
            return Ok(Outcome::Unchanged(Some(validators)));
        }
        if index.this_update < cur.this_update {
            let e = CrlError::Older {
                new: rfc3339(index.this_update),
                current: rfc3339(cur.this_update),
            };
            return Err(refused("older", &job.slot.url, &e));
        }
    }
    Ok(Outcome::New(Arc::new(index), validators))
}

fn refused(class: &'static str, url: &str, e: &CrlError) -> FetchError {
    FetchError {
        class,
        message: format!("CRL from {url} {e}"),
    }
}

/// DER, or the first CRL of a PEM file.
fn parse(body: &[u8]) -> Result<X509Crl, CrlError> {
    let pem = body.starts_with(b"-----") || body.windows(10).take(64).any(|w| w == b"-----BEGIN");
    let r = if pem {
        X509Crl::from_pem(body)
    } else {
        X509Crl::from_der(body)
    };
    r.map_err(|e| CrlError::Parse(e.to_string()))
}

/// Publishes, logs and counts one attempt; returns the validators to
/// send next time.
fn record(job: &Job, result: Result<Outcome, FetchError>) -> Option<http::Validators> {
    let now = now_unix();
    let s = &job.settings;
    let slot = &job.slot;
    let (class, next, validators, error) = match result {
        Ok(Outcome::New(index, v)) => {
            tracing::info!(
                url = %slot.url,
                issuer = %index.issuer_str,
                entries = index.entries(),
                next_update = index.next_update.map(rfc3339).unwrap_or_default(),
                "CRL fetched and in use"
            );
            let next = next_fetch(&index, now, s);
            slot.publish(index);
            ("ok", next, Some(v), None)
        }
        Ok(Outcome::Unchanged(v)) => {
            let next = slot
                .current()
                .map_or(now + secs(s.retry_interval), |c| next_fetch(&c, now, s));
            ("unchanged", next, v, None)
        }
        Err(e) => {
            static LOG: crate::logrl::Throttle = crate::logrl::Throttle::new();
            if let Some(suppressed) = LOG.allow() {
                tracing::warn!(
                    url = %slot.url,
                    result = e.class,
                    error = %e,
                    suppressed,
                    "CRL fetch failed; the last good CRL (if any) stays in use"
                );
            }
            let next = retry_at(slot.status().consecutive_failures + 1, s, now);
            (e.class, next, None, Some(e.message))
        }
    };
    slot.update_status(|st| st.record(class, error.as_deref(), now, next));
    for c in &job.credentials {
        metrics().crl_fetch.with_label_values(&[c, class]).inc();
    }
    validators
}

/// After `failures` failures in a row: doubling from retryInterval up to
/// refreshInterval, so a server that keeps failing is not hammered.
pub(crate) fn retry_at(
    failures: u32,
    s: &crate::config::revocation::RevocationSettings,
    now: i64,
) -> i64 {
    let backoff = secs(s.retry_interval).saturating_mul(1 << (failures.clamp(1, 6) - 1));
    now + backoff.min(secs(s.refresh_interval))
}

/// Runs `jobs` a few at a time (each may hold a whole body and its
/// parse), `attempt` on each and `record` on each result. A panic in
/// one attempt is that job's failure (class `internal`), not the end of
/// the others' nor of this thread.
pub(crate) async fn run_batched<J, R, A, F>(
    mut jobs: Vec<J>,
    attempt: A,
    mut record: impl FnMut(&J, Result<R, FetchError>),
) where
    J: Send + Sync + 'static,
    R: Send + 'static,
    A: Fn(Arc<J>) -> F,
    F: std::future::Future<Output = Result<R, FetchError>> + Send + 'static,
{
    while !jobs.is_empty() {
        let batch: Vec<J> = jobs.drain(..jobs.len().min(PARALLEL)).collect();
        let mut tasks = tokio::task::JoinSet::new();
        let mut running = std::collections::HashMap::new();
        for job in batch {
            let job = Arc::new(job);
            let handle = tasks.spawn(attempt(job.clone()));
            running.insert(handle.id(), job);
        }
        while let Some(done) = tasks.join_next_with_id().await {
            let (id, result) = match done {
                Ok((id, r)) => (id, r),
                Err(e) => (
                    e.id(),
                    Err(FetchError {
                        class: "internal",
                        message: format!("fetch failed: {e}"),
                    }),
                ),
            };
            if let Some(job) = running.remove(&id) {
                record(&job, result);
            }
        }
    }
}

/// The next fetch after a good one: at most `refreshInterval` away, and
/// well before nextUpdate (a tenth of the CRL's validity before it), so
/// a late CA or a failing fetch has time before the CRL goes stale.
fn next_fetch(crl: &CrlIndex, now: i64, s: &crate::config::revocation::RevocationSettings) -> i64 {
    let mut next = now + secs(s.refresh_interval);
    if let Some(nu) = crl.next_update {
        let margin = ((nu - crl.this_update) / 10).max(1);
        let before = nu - margin;
        next = if before > now {
            next.min(before)
        } else {
            // Already past the point: keep trying at the retry pace.
            next.min(now + secs(s.retry_interval))
        };
    }
    next.max(now + 1)
}

/// Sessions of a credential with fetched CRLs are bound to the CRL epoch:
/// when one of those CRLs goes stale the epoch moves, so no session
/// resumes past it without the stale policy being applied.
fn mark_stale() {
    use std::sync::Mutex;
    static STALE: Mutex<BTreeMap<String, [u8; 32]>> = Mutex::new(BTreeMap::new());
    let now = now_unix();
    let mut seen = STALE.lock().unwrap_or_else(|e| e.into_inner());
    let mut moved = false;
    let live = revocation::live_slots();
    for s in &live {
        let Some(c) = s.current() else { continue };
        if c.next_update.is_some_and(|n| n < now) && seen.get(&s.url) != Some(&c.sha256) {
            seen.insert(s.url.clone(), c.sha256);
            moved = true;
        }
    }
    seen.retain(|url, _| live.iter().any(|s| &s.url == url));
    if moved {
        revocation::bump_epoch();
    }
}

pub(crate) fn secs(d: Duration) -> i64 {
    d.as_secs().max(1) as i64
}

pub(crate) use tlsgate_core::credentials::now_unix;

fn rfc3339(unix: i64) -> String {
    tlsgate_core::credentials::rfc3339(unix)
}
