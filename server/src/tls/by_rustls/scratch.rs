//! What one handshake's rustls callbacks leave for each other and for the
//! task driving it. They run inside that task's poll of the handshake, so
//! a task-local holds it: no table keyed by connection.

use std::cell::RefCell;
use std::future::Future;

use tlsgate_core::credentials::ClientIdentity;

#[derive(Default)]
struct Scratch {
    /// The identity of the client's leaf, read once by the verifier.
    identity: Option<ClientIdentity>,
    /// When the client certificate this session rests on ends: from the
    /// verified leaf, or from the ticket a resumption presented.
    not_after: Option<i64>,
    /// A chain the verifier accepted, remembered only once the client's
    /// CertificateVerify proves it holds the leaf's key.
    pending_chain: Option<super::verify::PendingChain>,
    /// A TLS 1.2 session rustls asked to store, and whether a ticket left
    /// with it (sessions.rs).
    session: Option<super::sessions::Pending>,
    ticket_issued: bool,
    /// The client's CertificateVerify did not verify: webpki says
    /// `BadSignature`, as for a chain no CA signed, but this is no
    /// unknown CA (OpenSSL's side counts it as a failed handshake too).
    proof_refused: bool,
    /// The policy's session key when this handshake first read it (at the
    /// session lookup, the ticket's opening or the client certificate's
    /// verification, whichever came first).
    session_key: Option<[u8; 32]>,
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

/// The verifier accepted a leaf with this identity and end.
pub(super) fn verified(identity: ClientIdentity, not_after: Option<i64>) {
    with(|s| {
        s.identity = Some(identity);
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

pub(super) fn set_pending_chain(p: super::verify::PendingChain) {
    with(|s| s.pending_chain = Some(p));
}

pub(super) fn take_pending_chain() -> Option<super::verify::PendingChain> {
    with(|s| s.pending_chain.take()).flatten()
}

pub(super) fn proof_refused() {
    with(|s| s.proof_refused = true);
}

pub(super) fn take_proof_refused() -> bool {
    with(|s| std::mem::take(&mut s.proof_refused)).unwrap_or(false)
}

pub(super) fn take_identity() -> Option<ClientIdentity> {
    with(|s| s.identity.take()).flatten()
}

/// Did the verifier accept a client certificate in this handshake (its
/// identity not yet taken)?
pub(super) fn verified_here() -> bool {
    with(|s| s.identity.is_some()).unwrap_or(false)
}

pub(super) fn hold_session(p: super::sessions::Pending) {
    with(|s| s.session = Some(p));
}

/// Whether `key`, the policy's session key now, is the one this handshake
/// first read. A fetched CRL that changes while a client holds back its
/// last flight changes the key: a session made then would be bound to a
/// CRL its certificate was never checked against (and, on a TLS-stream
/// server, nothing checks it again). Outside a handshake: true.
pub(super) fn same_session_key(key: [u8; 32]) -> bool {
    with(|s| *s.session_key.get_or_insert(key) == key).unwrap_or(true)
}

pub(super) fn ticket_issued() {
    with(|s| s.ticket_issued = true);
}

pub(super) fn take_session() -> (Option<super::sessions::Pending>, bool) {
    with(|s| (s.session.take(), std::mem::take(&mut s.ticket_issued))).unwrap_or((None, false))
}
