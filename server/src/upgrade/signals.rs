//! Pingora's shutdown signals, with SIGQUIT (hand the sockets over)
//! honoured only when a new tlsgate is waiting for them. Pingora, once it
//! takes SIGQUIT, shuts down whether the handover worked or not: a stray
//! SIGQUIT, or a new process that gave up or waits elsewhere, would leave
//! nobody serving.

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

use super::{Paths, MAX_HANDOVER_SOCKETS};

pub struct Signals {
    /// `None`: upgrades are off (the folder was refused), with why.
    paths: Result<Paths, String>,
    /// Listening sockets in the table (data listeners and admin).
    sockets: usize,
}

impl Signals {
    pub fn new(paths: Result<Paths, String>, sockets: usize) -> Self {
        Signals { paths, sockets }
    }

    /// Why a SIGQUIT now must not shut this process down, if it must not.
    fn refusal(&self) -> Option<String> {
        let paths = match &self.paths {
            Ok(p) => p,
            Err(why) => return Some(format!("upgrades are off: {why}")),
        };
        if self.sockets > MAX_HANDOVER_SOCKETS {
            return Some(format!(
                "{} listening sockets, more than the {MAX_HANDOVER_SOCKETS} a handover carries",
                self.sockets
            ));
        }
        if !paths.new_process_waiting() {
            return Some(format!(
                "no new tlsgate waits on {} (start one with `tlsgate upgrade` or `tlsgate run --upgrade`)",
                paths.socket.display()
            ));
        }
        None
    }
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install the signal handlers: shutting down");
            return ShutdownSignal::GracefulTerminate;
        };
        super::SIGNALS_READY.store(true, std::sync::atomic::Ordering::Release);
        loop {
            tokio::select! {
                _ = quit.recv() => match self.refusal() {
                    None => {
                        super::HANDED_OVER.store(true, std::sync::atomic::Ordering::Release);
                        tracing::info!("upgrade: handing the listening sockets over; accepting 5 s more, then finishing in-flight requests");
                        return ShutdownSignal::GracefulUpgrade;
                    }
                    Some(why) => tracing::warn!(%why, "SIGQUIT ignored: still serving"),
                },
                _ = term.recv() => return ShutdownSignal::GracefulTerminate,
                _ = int.recv() => return ShutdownSignal::FastShutdown,
            }
        }
    }
}
