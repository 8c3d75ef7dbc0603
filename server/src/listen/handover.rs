//! The listening sockets and Pingora's descriptor table: every socket
//! that accepts is in it, so that the next upgrade (SIGQUIT, see
//! `crate::upgrade`) hands it over; and the pid file names this process
//! only once the table is whole.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pingora::server::{ListenFds, ShutdownWatch};
use tokio::net::TcpListener;

use super::bind_socket;
use crate::upgrade;

/// How long an address the old process still held is tried again, after
/// an upgrade: it is free once that process has exited.
const BIND_RETRY: Duration = Duration::from_secs(60);
const BIND_RETRY_EVERY: Duration = Duration::from_millis(200);

/// `bound`, made a tokio listener and registered in `table`.
pub(super) fn adopt(
    bound: std::net::TcpListener,
    addr: SocketAddr,
    table: Option<&ListenFds>,
) -> Option<TcpListener> {
    let listener = match TcpListener::from_std(bound) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "listener lost");
            return None;
        }
    };
    if let Some(table) = table {
        table.lock().add(addr.to_string(), listener.as_raw_fd());
    }
    Some(listener)
}

/// [`adopt`] of a socket bound when `addr` is free, retrying while
/// another process holds it; `None` when it never came, or the gateway
/// shut down first.
pub(super) async fn later(
    addr: SocketAddr,
    table: Option<&ListenFds>,
    shutdown: &ShutdownWatch,
) -> Option<TcpListener> {
    adopt(retry_bind(addr, shutdown).await?, addr, table)
}

async fn retry_bind(addr: SocketAddr, shutdown: &ShutdownWatch) -> Option<std::net::TcpListener> {
    let until = Instant::now() + BIND_RETRY;
    loop {
        match bind_socket(addr) {
            Ok(l) => {
                tracing::info!(%addr, "listening (the address was free again)");
                return Some(l);
            }
            Err(e) if Instant::now() >= until || *shutdown.borrow() => {
                tracing::error!(error = %e, "listener not started");
                return None;
            }
            Err(_) => tokio::time::sleep(BIND_RETRY_EVERY).await,
        }
    }
}

/// Writes the pid file (and tells systemd) once the admin service's
/// socket is in the table too: the next upgrade, which the pid file lets
/// start, must find every socket there.
/// `pid_file` `None`: upgrades are off; systemd is told all the same.
pub(super) async fn announce(table: Option<ListenFds>, admin: String, pid_file: Option<PathBuf>) {
    upgrade::signals_installed().await;
    if let (Some(table), Some(_)) = (table, &pid_file) {
        let until = Instant::now() + Duration::from_secs(30);
        while table.lock().get(&admin).is_none() {
            if Instant::now() >= until {
                // Another process's admin port, most likely: the pid file
                // is that process's to keep.
                tracing::warn!(%admin, "the admin port is not listening: no pid file, upgrades are off");
                return upgrade::announce(None);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    upgrade::announce(pid_file.as_deref());
}
