//! The server TLS handshake of one connection, within
//! `timeouts.tlsHandshake` from accept, whatever the client sends or
//! withholds. A client that closes, stalls or is refused loses its
//! descriptor right here (a refused one after a short linger, see
//! `sock.rs`); only a finished handshake goes on to HTTP.

use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::SslAcceptor;
use pingora::protocols::tls::server::handshake_with_callback;
use pingora::protocols::tls::SslStream;

use super::sock::Sock;
use crate::metrics::metrics;
use crate::tls::outcome;
use crate::tls::{Acceptor, FailureReason};

/// A TLS listener's fixed parts.
pub struct TlsFront {
    pub acceptor: SslAcceptor,
    pub callbacks: Acceptor,
    pub name: Arc<str>,
}

pub use crate::tls::outcome::refused_in_scope;

/// The finished handshake, or `None` when the connection is gone (and
/// its failure counted).
pub async fn accept(front: &TlsFront, sock: Sock, within: Duration) -> Option<SslStream<Sock>> {
    outcome::scope(async {
        let hs = handshake_with_callback(&front.acceptor, sock, &front.callbacks);
        let failure = match pingora_timeout::timeout(within, hs).await {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => {
                if outcome::recorded_in_scope() {
                    return None;
                }
                if client_went_away(&e) {
                    FailureReason::ClientClosed
                } else {
                    FailureReason::Handshake
                }
            }
            Err(_) => {
                metrics()
                    .timeouts
                    .with_label_values(&["tls_handshake"])
                    .inc();
                FailureReason::Timeout
            }
        };
        crate::tls::record_failure(&front.name, "-", "", failure, 0);
        None
    })
    .await
}

/// EOF or a reset from the client, as opposed to a protocol failure.
fn client_went_away(e: &pingora_error::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e
        .cause
        .as_deref()
        .map(|c| c as &(dyn std::error::Error + 'static));
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            );
        }
        if let Some(ssl) = c.downcast_ref::<openssl::ssl::Error>() {
            if ssl.code() == openssl::ssl::ErrorCode::ZERO_RETURN {
                return true;
            }
            if ssl.code() == openssl::ssl::ErrorCode::SYSCALL && ssl.ssl_error().is_none() {
                // SYSCALL with an empty error queue is an EOF; with an io
                // error, that error says what happened.
                return ssl.io_error().is_none_or(|io| {
                    matches!(
                        io.kind(),
                        std::io::ErrorKind::UnexpectedEof
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::BrokenPipe
                    )
                });
            }
            // OpenSSL 3 reports an EOF in the middle of a record or
            // message as an SSL error, "unexpected eof while reading".
            return ssl
                .ssl_error()
                .is_some_and(|s| s.to_string().contains("unexpected eof"));
        }
        cause = c.source();
    }
    false
}
