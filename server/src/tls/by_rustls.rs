//! The listeners' TLS on rustls with aws-lc-rs (`tlsLibrary: rustls`): the
//! same decisions as the OpenSSL acceptor (`accept.rs`), in rustls's
//! order. The ClientHello is read first; SNI chooses the policy from the
//! live runtime; the policy's own `ServerConfig` (config.rs) runs the rest
//! of the handshake: its certificates, its client verification
//! (verify.rs), its tickets (tickets.rs, bound to the policy) and TLS 1.2
//! session ids (sessions.rs, bound the same way). Then the
//! same `ConnInfo` as on OpenSSL goes to every request (stream.rs).

mod config;
mod openssl_chain;
mod scratch;
mod sessions;
mod stream;
mod tickets;
mod verify;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::{HandshakeKind, ProtocolVersion};
use tlsgate_core::credentials::{client_identity_der, ClientIdentity};
use tokio::io::AsyncWriteExt;
use tokio_rustls::LazyConfigAcceptor;

pub use stream::{live_streams, RustlsStream};

use super::conn::{record_failure, sni_label, Handshaken};
use super::{outcome, FailureReason, PeerCerts, ServerPolicy};
use crate::listen::sock::Sock;
use crate::runtime::SharedRuntime;
use crate::tls::ConnInfo;

/// The `ConnInfo` of a live rustls stream whose digest this is.
pub(crate) fn registered(
    digest: &Arc<pingora::protocols::tls::SslDigest>,
) -> Option<Arc<ConnInfo>> {
    stream::registered(digest)
}

static IN_USE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From start on, this process's listeners run rustls: reloads must pass
/// [`check`].
pub fn serve_listeners() {
    IN_USE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The runtime about to serve (at start, or a reload about to be
/// published): its `limits.tlsSessionCacheBytes` bounds the session cache
/// from now on (a smaller bound evicts at the next store; 0 empties it).
pub fn apply_limits(rt: &crate::runtime::Runtime) {
    sessions::SessionCache::process()
        .set_max_bytes(rt.model.runtime.limits.tls_session_cache_bytes);
}

pub fn in_use() -> bool {
    IN_USE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Can every TLS policy of the runtime be served by rustls? Each one's
/// config is built now (and kept): a cipher rustls lacks or a key it
/// cannot use is told at start and at reload, naming the server, not at
/// a client's handshake.
pub fn check(rt: &crate::runtime::Runtime) -> Result<(), crate::config::ConfigErrors> {
    let mut errors = Vec::new();
    for policy in rt.tls.policies() {
        let Err(message) = config::for_policy(policy, rt) else {
            continue;
        };
        let server = rt.model.gateways.iter().find_map(|g| {
            let s = g
                .servers
                .iter()
                .find(|s| g.id.name == *policy.gateway && s.name == *policy.server)?;
            Some((g, s))
        });
        errors.push(match server {
            Some((g, s)) => crate::config::ConfigError::field(
                &g.id,
                format!("spec.servers[{}].tls", s.index),
                format!("{message} (tlsLibrary: rustls)"),
            ),
            None => crate::config::ConfigError::File {
                file: "tlsLibrary".into(),
                message: format!("server {}: {message}", policy.server),
            },
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(crate::config::ConfigErrors(errors))
    }
}

/// TLS alerts written before a `ServerHello`: plaintext records.
const ALERT_HANDSHAKE_FAILURE: u8 = 40;
const ALERT_UNRECOGNIZED_NAME: u8 = 112;
const ALERT_CERTIFICATE_REQUIRED: u8 = 116;

/// The handshake on `sock` (under `outcome::scope`, flushes held); `None`
/// when it failed, counted.
pub(crate) async fn accept(
    rt: &SharedRuntime,
    addr: SocketAddr,
    listener: &Arc<str>,
    sock: Sock,
) -> Option<RustlsStream> {
    scratch::scope(handshake(rt, addr, listener, sock)).await
}

async fn handshake(
    rt: &SharedRuntime,
    addr: SocketAddr,
    listener: &Arc<str>,
    sock: Sock,
) -> Option<RustlsStream> {
    let mut lazy = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), sock);
    let mut start = match (&mut lazy).await {
        Ok(s) => s,
        Err(e) => {
            // Counted before the client can read our alert: whoever sees
            // the refusal sees it counted.
            record_failure(listener, "-", "", failure(&e), 0);
            // Dropped here, in the scope: a refused client reads our alert.
            drop(lazy.take_io());
            return None;
        }
    };
    let runtime = rt.load_full();
    let sni: Option<Box<str>> = start.client_hello().server_name().map(Into::into);
    let policy = runtime.tls.listener(&addr).and_then(|l| match &sni {
        Some(name) => l.sni.select(name),
        None => l.sni.without_sni(),
    });
    // Read before the handshake: a CRL published meanwhile only makes the
    // check stricter than the epoch says.
    let crl_epoch = tlsgate_core::revocation::crl_epoch();
    let sni_str = sni.as_deref().unwrap_or("");
    let Some(policy) = policy.cloned() else {
        let reason = if sni.is_none() {
            FailureReason::NoSni
        } else {
            FailureReason::UnknownSni
        };
        record_failure(
            listener,
            "-",
            sni_str,
            reason,
            ALERT_UNRECOGNIZED_NAME.into(),
        );
        refuse(&mut start.io, ALERT_UNRECOGNIZED_NAME).await;
        return None;
    };
    let label = sni_label(&policy, sni_str).unwrap_or_else(|| "-".into());
    let config = match config::for_policy(&policy, &runtime) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(server = %policy.server, error = %e, "cannot serve this policy with rustls");
            record_failure(listener, &label, sni_str, FailureReason::Handshake, 40);
            refuse(&mut start.io, ALERT_HANDSHAKE_FAILURE).await;
            return None;
        }
    };
    let mut tls = match start.into_stream(config).into_fallible().await {
        Ok(tls) => tls,
        Err((e, mut io)) => {
            let reason = failure(&e);
            if reason == FailureReason::NoClientCert {
                // rustls answers a TLS 1.2 client without a certificate
                // with TLS 1.3's certificate_required, which RFC 5246
                // lacks; OpenSSL and nginx send handshake_failure there,
                // and that is what clients and runbooks expect.
                io.replace_held_alert(ALERT_CERTIFICATE_REQUIRED, ALERT_HANDSHAKE_FAILURE);
            }
            record_failure(listener, &label, sni_str, reason, 0);
            drop(io);
            return None;
        }
    };
    let (sock, conn) = tls.get_mut();
    let tls13 = conn.protocol_version() == Some(ProtocolVersion::TLSv1_3);
    let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
    let peer = peer_certs(&policy, conn.peer_certificates(), resumed);
    sock.hold_flushes(false);
    if tls13 {
        sock.keep_held_until_written();
        // A client that sent its request with its Finished (most do) has
        // it decrypted already: the ticket then leaves with the answer, in
        // one send instead of a send of its own before it.
        if conn
            .process_new_packets()
            .is_ok_and(|s| s.plaintext_bytes_to_read() > 0)
        {
            sock.request_already_read();
        }
    } else {
        // The client waits for our last flight (Finished).
        if let Err(e) = sock.flush().await {
            record_failure(listener, &label, sni_str, failure(&e), 0);
            return None;
        }
        sock.watch_records();
    }
    // Kept once our last flight is out: a handshake that fails here keeps
    // nothing.
    sessions::settle();
    let info = Handshaken {
        listener: listener.clone(),
        listener_addr: addr,
        sni,
        policy: Some(policy),
        runtime,
        peer,
        resumed,
        version: if tls13 { "TLSv1.3" } else { "TLSv1.2" },
        // A ticket does not say which CRLs its certificate passed: a
        // resumed connection's is checked again at its first request
        // wherever CRLs are fetched.
        crl_checked: if resumed { u64::MAX } else { crl_epoch },
    }
    .into_conn_info();
    Some(RustlsStream::new(tls, info))
}

/// The client's certificate as OpenSSL's side reports it: the identity
/// of its leaf, the leaf itself, and (found only if something asks) the
/// path up to the bundle's CA (none on a resumed session).
fn peer_certs(
    policy: &ServerPolicy,
    sent: Option<&[rustls::pki_types::CertificateDer<'static>]>,
    resumed: bool,
) -> Option<(ClientIdentity, PeerCerts)> {
    if !policy.requests_client_cert() {
        return None;
    }
    let (der, rest) = sent?.split_first()?;
    let identity = match scratch::take_identity() {
        Some(verified) => verified,
        // A resumption: no verifier ran, the ticket's leaf is read here.
        None => client_identity_der(der)?.0,
    };
    let kept = if resumed {
        PeerCerts::from_der(der)
    } else if keeps_sent(rest) {
        let rest = rest.iter().map(|c| c.as_ref().into()).collect();
        PeerCerts::from_der_verified(der, rest, policy.credential.clone())
    } else {
        // Whatever else the client sent (webpki ignores what plays no
        // part) is not kept for the connection's life: the path is found
        // now and only it is kept, as on OpenSSL.
        let leaf = openssl::x509::X509::from_der(der).ok()?;
        let sent: Vec<_> = rest
            .iter()
            .filter_map(|c| openssl::x509::X509::from_der(c).ok())
            .collect();
        let mut path =
            tlsgate_core::credentials::verified_path(leaf, &sent, &policy.credential.ca_certs);
        path.remove(0);
        PeerCerts::from_der_with_chain(der, path)
    };
    Some((identity, kept))
}

/// Are the certificates a client sent after its leaf few and small enough
/// to keep as they came, their path found only if something asks? A
/// client's chain has one or two intermediates; a client that sends tens
/// of kilobytes would otherwise have them held for as long as it stays.
fn keeps_sent(rest: &[rustls::pki_types::CertificateDer<'_>]) -> bool {
    const MOST: usize = 4;
    const MOST_BYTES: usize = 8 * 1024;
    rest.len() <= MOST && rest.iter().map(|c| c.len()).sum::<usize>() <= MOST_BYTES
}

/// Writes a fatal alert (held with the handshake's flushes, sent by the
/// lingering close) and marks the handshake refused.
async fn refuse(sock: &mut Sock, alert: u8) {
    outcome::mark_refused();
    let _ = sock
        .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, alert])
        .await;
}

/// The failure class of a handshake error; a refusal (not the client
/// going away) is marked so the close lets the client read the alert.
fn failure(e: &io::Error) -> FailureReason {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        outcome::mark_refused();
        if scratch::take_proof_refused() {
            return FailureReason::Handshake;
        }
        return verify::failure_reason(tls);
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => FailureReason::ClientClosed,
        _ => {
            outcome::mark_refused();
            FailureReason::Handshake
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;

    #[test]
    fn only_a_short_chain_is_kept_as_sent() {
        let cert = |n: usize| CertificateDer::from(vec![0u8; n]);
        assert!(keeps_sent(&[]));
        assert!(keeps_sent(&[cert(1500), cert(1500)]));
        assert!(!keeps_sent(&[
            cert(100),
            cert(100),
            cert(100),
            cert(100),
            cert(100)
        ]));
        assert!(!keeps_sent(&[cert(9000)]));
    }
}
