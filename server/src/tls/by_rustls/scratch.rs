//! What one handshake's rustls callbacks leave for each other and for the
//! task driving it. They run inside that task's poll of the handshake, so
//! a task-local holds it: no table keyed by connection.

use std::cell::RefCell;
use std::future::Future;

use openssl::x509::X509;

#[derive(Default)]
struct Scratch {
    /// The client's leaf, decoded once by the verifier.
    leaf: Option<X509>,
    /// When the client certificate this session rests on ends: from the
    /// verified leaf, or from the ticket a resumption presented.
    not_after: Option<i64>,
}

tokio::task_local! {
    static SCRATCH: RefCell<Scratch>;
}

pub(super) async fn scope<F: Future>(fut: F) -> F::Output {
    SCRATCH.scope(RefCell::new(Scratch::default()), fut).await
}

fn with<R>(f: impl FnOnce(&mut Scratch) -> R) -> Option<R> {
    SCRATCH.try_with(|s| f(&mut s.borrow_mut())).ok()
}

/// The verifier accepted `leaf`.
pub(super) fn verified(leaf: &X509) {
    let not_after = tlsgate_core::credentials::unix_time(leaf.not_after()).ok();
    with(|s| {
        s.leaf = Some(leaf.clone());
        s.not_after = not_after;
    });
}

/// A ticket was accepted whose certificate ends at `not_after`.
pub(super) fn resumed_until(not_after: Option<i64>) {
    with(|s| s.not_after = not_after);
}

pub(super) fn not_after() -> Option<i64> {
    with(|s| s.not_after).flatten()
}

pub(super) fn take_leaf() -> Option<X509> {
    with(|s| s.leaf.take()).flatten()
}
