//! A request the direct path hands to Pingora's proxy carries its
//! decision along: Pingora builds its per-request context itself
//! (`ProxyHttp::new_ctx` takes no argument), so the decision waits in a
//! task-local scoped to exactly that one request's processing, and
//! `request_filter` takes it there instead of deciding again.

use std::cell::RefCell;
use std::future::Future;

use crate::decide::Decision;

tokio::task_local! {
    static HANDED: RefCell<Option<Decision>>;
}

/// Runs `fut` (one request through Pingora's proxy) with `decision`
/// waiting for it.
pub async fn with_decision<F: Future>(decision: Option<Decision>, fut: F) -> F::Output {
    HANDED.scope(RefCell::new(decision), fut).await
}

/// The decision handed over for the request being processed, once.
pub fn take() -> Option<Decision> {
    HANDED.try_with(|h| h.borrow_mut().take()).ok().flatten()
}
