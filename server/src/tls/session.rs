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

/// Ticket keys from the runtime the connection's ClientHello was decided
/// by: shared files, or this process's own (`runtime/tickets.rs`).
pub(crate) struct RuntimeKeys;

impl tlsgate_ossl::TicketKeyStore for RuntimeKeys {
    fn encrypting(ssl: &SslRef) -> Option<tlsgate_ossl::TicketKeyMaterial> {
        let state = ssl.ex_data(conn_state_index())?;
        state.runtime.tickets.keys().first().cloned()
    }

    fn decrypting(ssl: &SslRef, name: &[u8; 16]) -> Option<tlsgate_ossl::TicketKeyMaterial> {
        let state = ssl.ex_data(conn_state_index())?;
        let keys = state.runtime.tickets.keys();
        let found = keys.iter().position(|k| &k.name == name);
        let age = match found {
            Some(0) => "0",
            Some(1) => "1",
            Some(_) => "2+",
            None => "unknown",
        };
        crate::metrics::metrics()
            .ticket_keys
            .with_label_values(&[age])
            .inc();
        found.map(|i| keys[i].clone())
    }
}
