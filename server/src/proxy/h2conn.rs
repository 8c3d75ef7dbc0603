//! One downstream HTTP/2 connection: the handshake within
//! `timeouts.firstRequest`, then streams accepted and handed to the
//! application, each holding one of `http2MaxConcurrentStreams` permits
//! until its work (upstream included) is over; so what one connection sets
//! in motion stays bounded whatever the client resets. A connection that
//! resets too much, sends too many malformed streams or idles too long is
//! ended, counted and logged (rate-limited).

mod budget;
mod frames;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::protocols::http::v2::server::{self as h2server, H2Accept, HttpSession};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Digest, Stream};
use pingora::server::ShutdownWatch;
use tokio::sync::{Notify, Semaphore};

use crate::config::{Limits, Timeouts, RESET_WINDOW};
use crate::metrics::metrics;
use budget::ResetBudget;
use frames::Watched;

type H2Conn = h2::server::Connection<Stream, bytes::Bytes>;

/// After we decided to end a connection: how long its last frames (GOAWAY,
/// the answers of streams in flight) may take to leave.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Streams refused as malformed before the connection is ended.
const MAX_MALFORMED: usize = 32;

/// What runs each accepted stream.
pub type OnStream = Arc<dyn Fn(ServerSession, StreamGuard) + Send + Sync>;

pub async fn serve(
    stream: Stream,
    shutdown: &ShutdownWatch,
    limits: Limits,
    timeouts: Timeouts,
    on_stream: OnStream,
) {
    let digest = Arc::new(Digest {
        ssl_digest: stream.get_ssl_digest(),
        timing_digest: stream.get_timing_digest(),
        proxy_digest: stream.get_proxy_digest(),
        socket_digest: stream.get_socket_digest(),
    });
    let budget = Arc::new(ResetBudget::new(
        limits.http2_max_reset_streams,
        RESET_WINDOW,
    ));
    let stream: Stream = Box::new(Watched::new(stream, budget.clone()));
    let mut options = h2server::default_h2_options();
    options
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.request_head_bytes).unwrap_or(u32::MAX))
        // MadeYouReset: resets the client provokes (bad frames on a
        // stream) are ended by the codec itself with ENHANCE_YOUR_CALM.
        .max_local_error_reset_streams(Some(limits.http2_max_reset_streams as usize));
    let handshake = h2server::handshake(stream, Some(options));
    let mut conn = match pingora_timeout::timeout(timeouts.first_request, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            // Not the preface: the client does not speak HTTP/2 (a client
            // that just left is not news).
            if find_h2_error(&e).is_some_and(|h| !h.is_io()) {
                metrics()
                    .http_refused
                    .with_label_values(&["h2_bad_preface"])
                    .inc();
                log_end("h2_bad_preface", &e.to_string());
            }
            return;
        }
        Err(_) => {
            metrics()
                .timeouts
                .with_label_values(&["first_request"])
                .inc();
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(limits.http2_max_concurrent_streams as usize));
    let active = Arc::new(Active::new());
    let mut shutdown = shutdown.clone();
    let mut draining = false;
    let mut malformed = 0;
    // Made once, not per stream: each would register a waiter (and the
    // idle one a timer) for every request on a busy connection.
    let spent = budget.spent();
    let stopping = shutdown.changed();
    let idle = active.idle_for(timeouts.http2_idle);
    tokio::pin!(spent, stopping, idle);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut spent => {
                end(&mut conn, "rapid_reset").await;
                return;
            }
            changed = &mut stopping, if !draining => {
                // Streams in flight finish; Pingora's grace period bounds it.
                let _ = changed;
                conn.graceful_shutdown();
                draining = true;
                continue;
            }
            () = &mut idle, if !draining => {
                // Nothing in flight: GOAWAY with the last stream we took,
                // and close once it is sent (no second round trip to wait
                // for, which a dead peer would never answer).
                metrics().timeouts.with_label_values(&["http2_idle"]).inc();
                conn.abrupt_shutdown(h2::Reason::NO_ERROR);
                let _ = pingora_timeout::timeout(CLOSE_GRACE, drive(&mut conn)).await;
                return;
            }
            a = HttpSession::from_h2_conn(&mut conn, digest.clone()) => a,
        };
        let session = match accepted {
            Ok(Some(H2Accept::Session(s))) => s,
            Ok(Some(H2Accept::Rejected)) => {
                // (its reset is counted on the wire, see frames.rs)
                malformed += 1;
                if malformed > MAX_MALFORMED {
                    end(&mut conn, "too_many_malformed").await;
                    return;
                }
                continue;
            }
            Ok(None) => return,
            Err(e) => {
                codec_ended(&e);
                return;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Streams the client reset still hold their permits until their
            // work is cancelled: the client opened more than the limit.
            let mut session = session;
            session.shutdown_with_reason(h2::Reason::REFUSED_STREAM);
            continue;
        };
        on_stream(
            ServerSession::new_http2(session),
            StreamGuard {
                _permit: permit,
                _active: active.start(),
            },
        );
    }
}

/// Held by a stream's task for as long as its work lasts.
pub struct StreamGuard {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _active: ActiveGuard,
}

/// GOAWAY `ENHANCE_YOUR_CALM` now, then a short time for it to leave.
async fn end(conn: &mut H2Conn, reason: &'static str) {
    metrics().h2_goaway.with_label_values(&[reason]).inc();
    log_end(reason, "GOAWAY ENHANCE_YOUR_CALM");
    conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
    let _ = pingora_timeout::timeout(CLOSE_GRACE, async {
        while let Ok(Some(_)) = conn.accept().await.transpose() {}
    })
    .await;
}

/// Polls the connection until it closes, refusing new streams.
async fn drive(conn: &mut H2Conn) {
    while let Some(Ok((_, mut respond))) = conn.accept().await {
        respond.send_reset(h2::Reason::REFUSED_STREAM);
    }
}

/// The codec ended the connection: count a GOAWAY it sent for a client's
/// protocol error; a client that went away is not news.
fn codec_ended(e: &pingora_error::Error) {
    let Some(h2e) = find_h2_error(e) else { return };
    if h2e.is_remote() || h2e.is_io() || !h2e.is_go_away() {
        return;
    }
    let reason = match h2e.reason() {
        Some(h2::Reason::PROTOCOL_ERROR) => "protocol_error",
        Some(h2::Reason::COMPRESSION_ERROR) => "compression_error",
        Some(h2::Reason::FRAME_SIZE_ERROR) => "frame_size_error",
        Some(h2::Reason::FLOW_CONTROL_ERROR) => "flow_control_error",
        Some(h2::Reason::ENHANCE_YOUR_CALM) => "enhance_your_calm",
        _ => "other",
    };
    metrics().h2_goaway.with_label_values(&[reason]).inc();
    log_end(reason, &h2e.to_string());
}

fn find_h2_error(e: &pingora_error::Error) -> Option<&h2::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e
        .cause
        .as_deref()
        .map(|c| c as &(dyn std::error::Error + 'static));
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<h2::Error>() {
            return Some(h);
        }
        cause = c.source();
    }
    None
}

fn log_end(reason: &str, detail: &str) {
    static LOG: crate::logrl::Throttle = crate::logrl::Throttle::new();
    if let Some(suppressed) = LOG.allow() {
        tracing::warn!(reason, detail, suppressed, "HTTP/2 connection ended");
    }
}

/// Streams in flight on one connection, so that an idle one can be told
/// from a busy one.
struct Active {
    count: AtomicUsize,
    /// When the last stream ended (or the connection began), in
    /// nanoseconds since `base`: the idle period runs from there.
    last_end: AtomicU64,
    base: Instant,
    /// Told when the last stream in flight ends.
    idle: Notify,
}

pub struct ActiveGuard(Arc<Active>);

impl Active {
    fn new() -> Self {
        Active {
            count: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
            base: Instant::now(),
            idle: Notify::new(),
        }
    }

    fn start(self: &Arc<Self>) -> ActiveGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        ActiveGuard(self.clone())
    }

    /// Resolves once no stream has been in flight for `idle`. One future
    /// lives as long as the connection: a busy connection costs it a
    /// wake-up when its last stream ends, and a timer only once it idles.
    async fn idle_for(&self, idle: Duration) {
        loop {
            loop {
                let notified = self.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.count.load(Ordering::Acquire) == 0 {
                    break;
                }
                notified.await;
            }
            let since = Duration::from_nanos(self.last_end.load(Ordering::Acquire));
            let left = (since + idle).saturating_sub(self.base.elapsed());
            if left.is_zero() {
                if self.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                continue;
            }
            pingora_timeout::sleep(left).await;
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let a = &self.0;
        let now = u64::try_from(a.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        a.last_end.fetch_max(now, Ordering::AcqRel);
        if a.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.idle.notify_waiters();
        }
    }
}
