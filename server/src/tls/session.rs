//! Session resumption bound to the server policy.
//!
//! OpenSSL decides on resumption before the certificate callback, and skips
//! it on a resumed session, so a ticket from a SIMPLE host would otherwise
//! resume on a MUTUAL one. TLS 1.2 sessions carry the session id context we
//! set per connection (a mismatch is a cache miss). TLS 1.3 tickets do not
//! check it, so each ticket carries the policy key as app data and the
//! decrypt callback refuses a ticket whose key differs from the policy the
//! ClientHello callback chose for this connection.

use openssl::ssl::SslRef;

use super::accept::conn_state_index;

/// Tickets carry the key of the policy the ClientHello callback chose.
pub(crate) struct PolicyKey;

impl tlsgate_ossl::TicketKey for PolicyKey {
    fn ticket_key(ssl: &SslRef) -> Option<[u8; 32]> {
        let state = ssl.ex_data(conn_state_index())?;
        state.policy.as_ref()?;
        Some(state.session_key)
    }
}
