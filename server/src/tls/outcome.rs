//! What OpenSSL's callbacks learned about a handshake that failed, for the
//! task driving it. The callbacks run synchronously inside that task's
//! poll of the handshake, so a task-local is all the plumbing needed: no
//! table keyed by task or descriptor that could outlive the connection.

use std::cell::Cell;
use std::future::Future;

#[derive(Default)]
struct Outcome {
    /// We sent a fatal alert or refused the ClientHello: the close should
    /// let the client read the alert (see `listen/sock.rs`).
    refused: Cell<bool>,
    /// The failure was already counted and logged with its reason.
    recorded: Cell<bool>,
}

tokio::task_local! {
    static OUTCOME: Outcome;
}

/// Runs the handshake `fut` with a fresh outcome; returns its output and
/// whether a callback already recorded a failure.
pub async fn scope<F: Future>(fut: F) -> F::Output {
    OUTCOME.scope(Outcome::default(), fut).await
}

pub(crate) fn mark_refused() {
    let _ = OUTCOME.try_with(|o| o.refused.set(true));
}

pub(crate) fn mark_recorded() {
    let _ = OUTCOME.try_with(|o| o.recorded.set(true));
}

/// Inside a handshake's scope: did we refuse it? (false outside one)
pub fn refused_in_scope() -> bool {
    OUTCOME.try_with(|o| o.refused.get()).unwrap_or(false)
}

/// Inside a handshake's scope: was the failure counted already?
pub fn recorded_in_scope() -> bool {
    OUTCOME.try_with(|o| o.recorded.get()).unwrap_or(false)
}
