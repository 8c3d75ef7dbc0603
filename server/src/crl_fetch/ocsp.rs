//! With `ocspStapling.fetch`: each served certificate's OCSP response,
//! fetched from the responder its AIA names (RFC 6960's GET form), checked
//! as a `tls.ocsp` file is, and refreshed halfway to its nextUpdate. A
//! response that fails the checks never replaces the last good one.

use std::collections::BTreeMap;
use std::sync::Arc;

use tlsgate_core::revocation::StapleSlot;

use super::http::{self, FetchError};
use super::{now_unix, retry_at, run_batched, secs, TICK};
use crate::metrics::metrics;
use crate::runtime::SharedRuntime;

pub(super) struct Job {
    slot: Arc<StapleSlot>,
    credential: String,
    settings: crate::config::revocation::RevocationSettings,
}

/// Responses are small; a responder sending more is refused.
const MAX_RESPONSE: u64 = 64 * 1024;

pub(super) fn work(rt: &SharedRuntime) -> Vec<Job> {
    let rt = rt.load();
    let now = now_unix();
    let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
    for p in rt.tls.policies() {
        for slot in p.ocsp_slots.iter().flatten() {
            jobs.entry(slot.fingerprint.clone()).or_insert_with(|| Job {
                slot: slot.clone(),
                credential: p.credential.info.name.clone(),
                settings: rt.model.runtime.revocation.clone(),
            });
        }
    }
    jobs.into_values()
        .filter(|j| j.slot.status().next_attempt_unix.is_none_or(|t| t <= now))
        .collect()
}

pub(super) async fn run_loop(rt: SharedRuntime) {
    loop {
        run_batched(
            work(&rt),
            |job: Arc<Job>| async move { attempt(&job).await },
            record,
        )
        .await;
        tokio::time::sleep(TICK).await;
    }
}

async fn attempt(job: &Job) -> Result<Arc<tlsgate_core::credentials::Staple>, FetchError> {
    let (s, slot) = (&job.settings, &job.slot);
    let mut last = Err(FetchError {
        class: "url",
        message: "no OCSP responder URL".into(),
    });
    for url in &slot.urls {
        last = fetch_one(slot, url, s).await;
        if last.is_ok() {
            break;
        }
    }
    last
}

async fn fetch_one(
    slot: &StapleSlot,
    url: &str,
    s: &crate::config::revocation::RevocationSettings,
) -> Result<Arc<tlsgate_core::credentials::Staple>, FetchError> {
    let b64 = openssl::base64::encode_block(&slot.request);
    let encoded = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let sep = if url.ends_with('/') { "" } else { "/" };
    let target = format!("{url}{sep}{encoded}");
    let got = http::get_within(
        &target,
        &http::Validators::default(),
        MAX_RESPONSE,
        s.fetch_timeout,
    )
    .await?;
    let http::Fetched::Body { body, .. } = got else {
        return Err(FetchError {
            class: "bad_response",
            message: format!("{url}: 304 to a request without validators"),
        });
    };
    let staple = tlsgate_core::credentials::check_ocsp_response(&body, &slot.chain, url).map_err(
        |reason| FetchError {
            // The responder says the served certificate is revoked: the
            // operator must replace it, whatever is still stapled.
            class: if reason.contains("REVOKED") {
                "revoked"
            } else {
                "refused"
            },
            message: format!("OCSP response from {url} {reason}"),
        },
    )?;
    if staple.next_update.is_some_and(|n| n <= now_unix()) {
        return Err(FetchError {
            class: "stale",
            message: format!("OCSP response from {url} is past its nextUpdate"),
        });
    }
    if let Some(cur) = slot.current() {
        if staple.this_update < cur.this_update {
            return Err(FetchError {
                class: "older",
                message: format!("OCSP response from {url} is older than the one in use"),
            });
        }
    }
    Ok(Arc::new(staple))
}

fn record(job: &Job, result: Result<Arc<tlsgate_core::credentials::Staple>, FetchError>) {
    let now = now_unix();
    let s = &job.settings;
    let slot = &job.slot;
    let (class, next, error) = match result {
        Ok(staple) => {
            // Halfway to nextUpdate, at most refreshInterval away.
            let mut next = now + secs(s.refresh_interval);
            if let Some(nu) = staple.next_update {
                next = next.min(now + ((nu - now) / 2).max(1));
            }
            tracing::info!(
                credential = %job.credential,
                source = %staple.source,
                "OCSP response fetched and stapled from now on"
            );
            slot.publish(staple);
            ("ok", next, None)
        }
        Err(e) => {
            static LOG: crate::logrl::Throttle = crate::logrl::Throttle::new();
            if let Some(suppressed) = LOG.allow() {
                tracing::warn!(
                    credential = %job.credential,
                    result = e.class,
                    error = %e,
                    suppressed,
                    "OCSP fetch failed; the last good response (if any, while current) stays stapled"
                );
            }
            let next = retry_at(slot.status().consecutive_failures + 1, s, now);
            (e.class, next, Some(e.message))
        }
    };
    slot.update_status(|st| st.record(class, error.as_deref(), now, next));
    metrics()
        .ocsp_fetch
        .with_label_values(&[&job.credential, class])
        .inc();
}
