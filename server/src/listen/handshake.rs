//! The server TLS handshake of one connection, within
//! `timeouts.tlsHandshake` from accept, whatever the client sends or
//! withholds. A client that closes, stalls or is refused loses its
//! descriptor right here (a refused one after a short linger, see
//! `sock.rs`); only a finished handshake goes on to HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{SslAcceptor, SslVersion};
use pingora::protocols::tls::server::handshake_with_callback;
use pingora::protocols::Stream;
use pingora_error::{Error, ErrorType::TLSHandshakeFailure};
use tokio::io::AsyncWriteExt;

use super::sock::Sock;
use crate::metrics::metrics;
use crate::runtime::SharedRuntime;
use crate::tls::outcome;
use crate::tls::{Acceptor, FailureReason};

/// A TLS listener's fixed parts.
pub struct TlsFront {
    pub library: Library,
    pub name: Arc<str>,
}

/// What runs a listener's handshakes (`GatewayRuntime.tlsLibrary`).
pub enum Library {
    OpenSsl {
        acceptor: SslAcceptor,
        callbacks: Acceptor,
    },
    /// rustls builds each policy's config itself, from the live runtime.
    Rustls { rt: SharedRuntime, addr: SocketAddr },
}

pub use crate::tls::outcome::refused_in_scope;

/// The finished handshake, or `None` when the connection is gone (and
/// its failure counted).
pub async fn accept(front: &TlsFront, mut sock: Sock, within: Duration) -> Option<Stream> {
    // The session ticket, written last, leaves with the first response.
    sock.hold_flushes(true);
    let (acceptor, callbacks) = match &front.library {
        Library::OpenSsl {
            acceptor,
            callbacks,
        } => (acceptor, callbacks),
        Library::Rustls { rt, addr } => {
            return outcome::scope(async {
                let hs = crate::tls::by_rustls::accept(rt, *addr, &front.name, sock);
                match pingora_timeout::timeout(within, hs).await {
                    Ok(stream) => stream.map(|s| Box::new(s) as Stream),
                    Err(_) => {
                        metrics()
                            .timeouts
                            .with_label_values(&["tls_handshake"])
                            .inc();
                        crate::tls::record_failure(&front.name, "-", "", FailureReason::Timeout, 0);
                        None
                    }
                }
            })
            .await;
        }
    };
    outcome::scope(async {
        let hs = async {
            let mut stream = handshake_with_callback(acceptor, sock, callbacks).await?;
            let tls13 = stream.ssl().version2() == Some(SslVersion::TLS1_3);
            let sock = stream.get_mut();
            sock.hold_flushes(false);
            if tls13 {
                sock.keep_held_until_written();
            } else {
                // The client waits for our last flight (Finished).
                sock.flush().await.map_err(|e| {
                    Error::because(TLSHandshakeFailure, "sending the last flight", e)
                })?;
            }
            Ok::<_, Box<Error>>(stream)
        };
        let failure = match pingora_timeout::timeout(within, hs).await {
            Ok(Ok(stream)) => return Some(Box::new(stream) as Stream),
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
/// Pingora passes the OpenSSL error on as text only.
fn client_went_away(e: &pingora_error::Error) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    [
        "unexpected eof",
        "connection reset",
        "broken pipe",
        "peer closed",
    ]
    .iter()
    .any(|m| text.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_error::{Error, ErrorType};

    #[test]
    fn eof_and_resets_are_the_client_going_away() {
        for (msg, gone) in [
            ("TLS accept() failed: unexpected EOF", true),
            (
                "TLS accept() failed: error:0A000126:SSL routines::unexpected eof while reading",
                true,
            ),
            (
                "TLS accept() failed: Connection reset by peer (os error 104)",
                true,
            ),
            (
                "TLS accept() failed: error:0A00010B:SSL routines::wrong version number",
                false,
            ),
        ] {
            let e = Error::explain(ErrorType::TLSHandshakeFailure, msg);
            assert_eq!(client_went_away(&e), gone, "{msg}");
        }
    }
}
