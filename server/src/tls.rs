//! Server-side TLS: SNI -> credential and client verification, decided per
//! connection from the live `Runtime`, with sessions bound to the policy.
//!
//! Only the listener's fixed parts live in its `SslContext` (ALPN, the
//! callbacks); everything a reload may change is read per connection.

mod accept;
pub mod by_rustls;
mod conn;
pub mod outcome;
mod session;
pub mod sni;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use openssl::ex_data::Index;
use openssl::ssl::{
    select_next_proto, AlpnError, SslAcceptor, SslContext, SslMethod, SslMode, SslOptions,
    SslSessionCacheMode,
};

pub use accept::Acceptor;

pub(crate) use conn::record_failure;
pub use conn::FailureReason;
pub use tlsgate_core::tls::{
    policy, ConnInfo, ListenerTls, PeerCerts, ServerPolicy, SniMap, TlsPolicy,
};

use crate::runtime::SharedRuntime;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS listener {addr}: {message}")]
    Listener { addr: SocketAddr, message: String },
}

fn listener_name_index() -> Index<SslContext, Arc<str>> {
    static IDX: OnceLock<Index<SslContext, Arc<str>>> = OnceLock::new();
    *IDX.get_or_init(|| SslContext::new_ex_index().expect("OpenSSL ex data index"))
}

/// The TLS acceptor of the listener bound at `addr`.
pub fn listener_acceptor(rt: SharedRuntime, addr: SocketAddr) -> Result<SslAcceptor, TlsError> {
    let err = |message: String| TlsError::Listener { addr, message };
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
        .map_err(|e| err(format!("cannot create acceptor: {e}")))?;
    b.set_alpn_select_callback(|ssl, offered| {
        // A `TLS` server relays bytes it does not read: it must not tell
        // the client they are h2 or HTTP/1.1.
        let stream = ssl
            .ex_data(accept::conn_state_index())
            .and_then(|s| s.policy.as_ref())
            .is_some_and(|p| p.stream);
        if stream {
            return Err(AlpnError::NOACK);
        }
        select_next_proto(ALPN_PREFERENCE, offered).ok_or(AlpnError::NOACK)
    });
    let name: Arc<str> = addr.to_string().into();
    b.set_ex_data(listener_name_index(), name.clone());
    // Client-initiated renegotiation costs us a full handshake each time,
    // at the client's will: refused (and counted, see conn.rs).
    b.set_options(SslOptions::NO_RENEGOTIATION);
    // Server-side cache for TLS 1.2 session ids; tickets are stateless.
    // Both are bound to the policy key (see session.rs). libssl counts
    // sessions, not bytes: `limits.tlsSessionCacheBytes` at 2 KiB each (a
    // session with its client certificate, decoded), read at start.
    let cache_bytes = rt.load().model.runtime.limits.tls_session_cache_bytes;
    if cache_bytes == 0 {
        b.set_session_cache_mode(SslSessionCacheMode::OFF);
    } else {
        b.set_session_cache_mode(SslSessionCacheMode::SERVER);
        b.set_session_cache_size(i32::try_from(cache_bytes / 2048).unwrap_or(i32::MAX).max(1));
    }
    // An idle keep-alive connection then holds no 34 KB of TLS record
    // buffers (nginx does the same): memory per idle connection is what
    // limits how many clients one gateway holds.
    b.set_mode(SslMode::RELEASE_BUFFERS);
    // OpenSSL reads whole socket buffers itself (one read per request
    // instead of header then body), so the listener needs no read buffer
    // of its own, and OpenSSL's is released while a connection idles.
    b.set_read_ahead(true);
    tlsgate_ossl::bind_tickets::<session::PolicyKey>(&mut b)
        .map_err(|e| err(format!("session tickets: {e}")))?;
    // Our keys, not OpenSSL's per-context random ones: replicas sharing
    // the key files resume each other's tickets.
    tlsgate_ossl::use_ticket_keys::<session::RuntimeKeys>(&mut b)
        .map_err(|e| err(format!("session ticket keys: {e}")))?;
    // One TLS 1.3 ticket per handshake, not OpenSSL's two: each costs an
    // encoding and a decoding of the session with the client's certificate
    // in it (a seventh of a full mTLS handshake each, by `perf`), and a
    // client resumes with one.
    b.set_num_tickets(1)
        .map_err(|e| err(format!("session tickets: {e}")))?;
    b.set_status_callback(accept::staple)
        .map_err(|e| err(format!("OCSP stapling: {e}")))?;
    b.set_client_hello_callback(move |ssl, alert| {
        accept::client_hello(&rt, addr, &name, ssl, alert)
    });
    tlsgate_ossl::set_info_callback::<conn::Info>(&mut b);
    Ok(b.build())
}

/// The TLS facts of the connection whose digest this is, whichever
/// library made it: OpenSSL's handshake attaches them to the digest,
/// rustls streams register theirs (`by_rustls`).
pub fn conn_info_of(digest: &Arc<pingora::protocols::tls::SslDigest>) -> Option<Arc<ConnInfo>> {
    if let Some(info) = digest.extension.get::<Arc<ConnInfo>>() {
        return Some(info.clone());
    }
    by_rustls::registered(digest)
}

/// ALPN, in our order of preference (wire format).
const ALPN_PREFERENCE: &[u8] = b"\x02h2\x08http/1.1";
