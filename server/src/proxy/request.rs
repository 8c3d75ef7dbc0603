//! The TLS facts of a request's connection, as Pingora's session carries
//! them.

use std::sync::Arc;

use pingora_proxy::Session;

use crate::tls::ConnInfo;

/// The TLS facts of the session's connection, if it is TLS.
pub fn conn_info(session: &Session) -> Option<Arc<ConnInfo>> {
    crate::tls::conn_info_of(session.digest()?.ssl_digest.as_ref()?)
}
