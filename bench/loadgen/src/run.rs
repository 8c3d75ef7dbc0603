//! The workers: HTTP/1.1 keep-alive or new-connection loops, HTTP/2
//! connections with concurrent streams, and idle holders. Each returns its
//! own [`Recorder`]; nothing is shared on the hot path but the schedule.
//!
//! Every await is bounded by the end of the run, so the run ends on time;
//! a request still in flight at the end is neither a response nor an error.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout_at, Instant};

use crate::args::{Mode, Plan};
use crate::conn::Connector;
use crate::h1;
use crate::schedule::Schedule;
use crate::stats::Recorder;

/// Pause after a failed connection attempt, so that a refused port does
/// not turn into a busy loop of errors.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);
/// Handshakes in flight while opening --idle connections.
const IDLE_RAMP: usize = 64;

pub struct Ctx {
    pub plan: Plan,
    pub connector: Connector,
    pub schedule: Schedule,
    pub request: Vec<u8>,
    pub h2_request: Option<(http::Uri, http::HeaderMap)>,
    pub timeout: Duration,
    pub warm_end: Instant,
    pub end: Instant,
}

impl Ctx {
    fn deadline(&self) -> Instant {
        (Instant::now() + self.timeout).min(self.end)
    }
}

/// Starts every worker; their recorders come back through the set.
pub fn spawn_all(ctx: Arc<Ctx>, set: &mut JoinSet<Recorder>) {
    let n = ctx.plan.connections;
    match (ctx.plan.mode, ctx.plan.h2) {
        (Mode::Idle, _) => {
            let ramp = Arc::new(Semaphore::new(IDLE_RAMP));
            let done = Arc::new(IdleProgress::default());
            for _ in 0..n {
                set.spawn(idle_worker(ctx.clone(), ramp.clone(), done.clone()));
            }
        }
        (_, true) => {
            for _ in 0..n {
                set.spawn(h2_connection(ctx.clone()));
            }
        }
        (_, false) => {
            for _ in 0..n {
                set.spawn(h1_worker(ctx.clone()));
            }
        }
    }
}

async fn h1_worker(ctx: Arc<Ctx>) -> Recorder {
    let mut rec = Recorder::default();
    let mut conn: Option<h1::Conn<crate::conn::Stream>> = None;
    let new_conn = ctx.plan.mode == Mode::NewConn;
    while let Some(start) = ctx.schedule.next().await {
        let counted = start >= ctx.warm_end;
        let deadline = ctx.deadline();
        let mut connect_failed = false;
        let result = timeout_at(deadline, async {
            if conn.is_none() {
                let opened = ctx.connector.open().await.inspect_err(|_| {
                    connect_failed = true;
                })?;
                if let (true, Some(resumed)) = (counted, opened.resumed) {
                    rec.handshake(resumed);
                }
                conn = Some(h1::Conn::new(opened.stream));
            }
            let c = conn.as_mut().expect("connected above");
            c.request(&ctx.request)
                .await
                .map_err(|e| format!("io: {e}"))
        })
        .await;
        match result {
            Ok(Ok(resp)) => {
                if counted {
                    rec.response(resp.status, start.elapsed());
                }
                if resp.close || new_conn {
                    if let Some(mut c) = conn.take() {
                        if !resp.close {
                            // close_notify and FIN, as a polite client does.
                            let _ = timeout_at(ctx.deadline(), c.get_mut().shutdown()).await;
                        }
                    }
                }
            }
            Ok(Err(kind)) => {
                if counted {
                    rec.error(&kind);
                }
                conn = None;
                if connect_failed {
                    sleep(CONNECT_BACKOFF).await;
                }
            }
            Err(_) if Instant::now() >= ctx.end => break,
            Err(_) => {
                if counted {
                    rec.error("timeout");
                }
                conn = None;
            }
        }
    }
    rec
}

/// One HTTP/2 connection at a time, with `streams` workers on it; a new
/// connection when it fails.
async fn h2_connection(ctx: Arc<Ctx>) -> Recorder {
    let mut rec = Recorder::default();
    while Instant::now() < ctx.end {
        let counted = Instant::now() >= ctx.warm_end;
        let opened = timeout_at(ctx.deadline(), async {
            let opened = ctx.connector.open().await?;
            let (send, connection) = h2::client::Builder::new()
                .initial_window_size(1 << 20)
                .initial_connection_window_size(1 << 24)
                .handshake::<_, Bytes>(opened.stream)
                .await
                .map_err(|e| format!("h2: {e}"))?;
            Ok::<_, String>((send, connection, opened.resumed))
        })
        .await;
        let (send, connection, resumed) = match opened {
            Ok(Ok(x)) => x,
            Ok(Err(kind)) => {
                if counted {
                    rec.error(&kind);
                }
                sleep(CONNECT_BACKOFF).await;
                continue;
            }
            Err(_) if Instant::now() >= ctx.end => break,
            Err(_) => {
                if counted {
                    rec.error("timeout");
                }
                continue;
            }
        };
        if let (true, Some(r)) = (counted, resumed) {
            rec.handshake(r);
        }
        let dead = Arc::new(AtomicBool::new(false));
        let driver = {
            let dead = dead.clone();
            tokio::spawn(async move {
                let _ = connection.await;
                dead.store(true, Ordering::Relaxed);
            })
        };
        let mut streams = JoinSet::new();
        for _ in 0..ctx.plan.streams {
            streams.spawn(h2_stream(ctx.clone(), send.clone(), dead.clone()));
        }
        drop(send);
        while let Some(r) = streams.join_next().await {
            rec.merge(r.unwrap_or_default());
        }
        driver.abort();
    }
    rec
}

async fn h2_stream(
    ctx: Arc<Ctx>,
    mut send: h2::client::SendRequest<Bytes>,
    dead: Arc<AtomicBool>,
) -> Recorder {
    let mut rec = Recorder::default();
    let (uri, headers) = ctx.h2_request.clone().expect("h2 request prepared");
    while let Some(start) = ctx.schedule.next().await {
        let counted = start >= ctx.warm_end;
        let result = timeout_at(ctx.deadline(), async {
            poll_fn(|cx| send.poll_ready(cx)).await?;
            let mut req = http::Request::new(());
            *req.uri_mut() = uri.clone();
            *req.headers_mut() = headers.clone();
            let (resp, _) = send.send_request(req, true)?;
            let resp = resp.await?;
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            while let Some(chunk) = body.data().await {
                let chunk = chunk?;
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            Ok::<u16, h2::Error>(status)
        })
        .await;
        match result {
            Ok(Ok(status)) => {
                if counted {
                    rec.response(status, start.elapsed());
                }
            }
            Ok(Err(e)) => {
                if counted {
                    rec.error(&format!("h2: {e}"));
                }
                if dead.load(Ordering::Relaxed) || e.is_io() || e.is_go_away() {
                    break;
                }
            }
            Err(_) if Instant::now() >= ctx.end => break,
            Err(_) => {
                if counted {
                    rec.error("timeout");
                }
            }
        }
        if dead.load(Ordering::Relaxed) {
            break;
        }
    }
    rec
}

/// Opens a connection, makes one request, then holds the connection until
/// the end of the run. Everything is counted (there is no warm-up).
#[derive(Default)]
struct IdleProgress {
    attempted: AtomicU32,
    established: AtomicU32,
}

async fn idle_worker(ctx: Arc<Ctx>, ramp: Arc<Semaphore>, done: Arc<IdleProgress>) -> Recorder {
    let mut rec = Recorder::default();
    let permit = ramp.acquire_owned().await;
    let start = Instant::now();
    let result = timeout_at(ctx.deadline(), async {
        let opened = ctx.connector.open().await?;
        if let Some(r) = opened.resumed {
            rec.handshake(r);
        }
        if ctx.plan.h2 {
            let (mut send, connection) = h2::client::Builder::new()
                .handshake::<_, Bytes>(opened.stream)
                .await
                .map_err(|e| format!("h2: {e}"))?;
            let driver = tokio::spawn(connection);
            let status = async {
                let mut req = http::Request::new(());
                let (uri, headers) = ctx.h2_request.clone().expect("h2 request prepared");
                *req.uri_mut() = uri;
                *req.headers_mut() = headers;
                let (resp, _) = send.send_request(req, true)?;
                let resp = resp.await?;
                let status = resp.status().as_u16();
                let mut body = resp.into_body();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk?;
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
                Ok::<u16, h2::Error>(status)
            }
            .await
            .map_err(|e| format!("h2: {e}"))?;
            Ok::<_, String>((status, Held::H2(send, driver)))
        } else {
            let mut c = h1::Conn::new(opened.stream);
            let resp = c
                .request(&ctx.request)
                .await
                .map_err(|e| format!("io: {e}"))?;
            Ok((resp.status, Held::H1(c)))
        }
    })
    .await;
    drop(permit);
    let held = match result {
        Ok(Ok((status, held))) => {
            rec.response(status, start.elapsed());
            done.established.fetch_add(1, Ordering::AcqRel);
            Some(held)
        }
        Ok(Err(kind)) => {
            rec.error(&kind);
            None
        }
        Err(_) => {
            rec.error("timeout");
            None
        }
    };
    let n = done.attempted.fetch_add(1, Ordering::AcqRel) + 1;
    if n == ctx.plan.connections {
        let ok = done.established.load(Ordering::Acquire);
        eprintln!("loadgen: idle: {ok} of {n} connections established; holding them until the end");
    }
    tokio::time::sleep_until(ctx.end).await;
    drop(held);
    rec
}

#[allow(dead_code)] // the fields are only held, never read
enum Held {
    H1(h1::Conn<crate::conn::Stream>),
    H2(
        h2::client::SendRequest<Bytes>,
        tokio::task::JoinHandle<Result<(), h2::Error>>,
    ),
}
