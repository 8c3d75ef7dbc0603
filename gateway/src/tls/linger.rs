//! Lingering close after a refused handshake, so the client reads our alert.
//!
//! In TLS 1.3 a client sends its certificate and, before our verdict, its
//! first request. When we refuse the certificate, Pingora drops the socket
//! with that request unread, and the kernel answers with a RST that makes
//! the client lose the `unknown ca` alert it had not yet read (curl then
//! reports a bare "connection reset"). So for each TLS connection we hold a
//! duplicate of its socket until the handshake ends: on success it is simply
//! closed; on a refusal it sends FIN after the alert and drains what the
//! client still sends, for a bounded time, before the last close.
//!
//! The duplicate is found again by tokio task id: Pingora runs the pre-TLS
//! hook, the handshake and its callbacks in one task.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::stream::Stream as L4Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Pingora gives a handshake at most 60 s; an entry older than this belongs
/// to a connection that ended without an alert (client EOF, plain HTTP).
const STALE_AFTER: Duration = Duration::from_secs(65);
/// Bounds on what one refused client may cost us.
const DRAIN_FOR: Duration = Duration::from_secs(2);
const DRAIN_BYTES: usize = 256 * 1024;

static PENDING: Mutex<Option<HashMap<tokio::task::Id, (Instant, OwnedFd)>>> = Mutex::new(None);
static INSERTS: AtomicU64 = AtomicU64::new(0);

fn with_pending<R>(f: impl FnOnce(&mut HashMap<tokio::task::Id, (Instant, OwnedFd)>) -> R) -> R {
    let mut guard = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

pub struct LingerOnRefusal;

#[async_trait]
impl PreTlsProcess for LingerOnRefusal {
    async fn process(&self, stream: &mut L4Stream) -> pingora_error::Result<()> {
        let Some(id) = tokio::task::try_id() else {
            return Ok(());
        };
        // SAFETY: dup of a socket we are handed alive; the copy is owned.
        let dup = unsafe { libc::dup(stream.as_raw_fd()) };
        if dup < 0 {
            return Ok(());
        }
        // SAFETY: `dup` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(dup) };
        let sweep = INSERTS.fetch_add(1, Ordering::Relaxed) % 256 == 0;
        with_pending(|p| {
            if sweep {
                p.retain(|_, (at, _)| at.elapsed() < STALE_AFTER);
            }
            p.insert(id, (Instant::now(), fd));
        });
        Ok(())
    }
}

/// The handshake of the current task completed: forget the duplicate.
pub(crate) fn handshake_done() {
    if let Some(id) = tokio::task::try_id() {
        with_pending(|p| p.remove(&id));
    }
}

/// The handshake of the current task was refused with an alert.
pub(crate) fn handshake_refused() {
    let Some(id) = tokio::task::try_id() else {
        return;
    };
    let Some((_, fd)) = with_pending(|p| p.remove(&id)) else {
        return;
    };
    tokio::spawn(linger(fd));
}

async fn linger(fd: OwnedFd) {
    let std_stream = std::net::TcpStream::from(fd);
    if std_stream.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(mut stream) = tokio::net::TcpStream::from_std(std_stream) else {
        return;
    };
    // Let OpenSSL finish writing the alert on the original descriptor.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = stream.shutdown().await;
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while drained < DRAIN_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}
