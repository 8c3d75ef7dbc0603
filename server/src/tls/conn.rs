//! What a finished handshake tells the HTTP layer, and how a failed one is
//! classified, logged and counted.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use openssl::ssl::SslRef;
use openssl::x509::X509VerifyResult;

use super::accept::{conn_state_index, ConnState};
use crate::credentials::client_identity;
use crate::metrics::metrics;
use crate::tls::{ConnInfo, PeerCerts, ServerPolicy};
use tlsgate_ossl::{SSL_CB_ALERT, SSL_CB_EXIT, SSL_CB_WRITE};

/// What a finished handshake leaves for its connection's requests.
pub(crate) fn conn_info(ssl: &SslRef, state: &ConnState) -> ConnInfo {
    let peer = state
        .policy
        .as_ref()
        .filter(|p| p.requests_client_cert())
        .and_then(|_| ssl.peer_certificate())
        .map(|leaf| {
            // The chain as verified (leaf first, then up to the bundle's
            // CA), not as sent: a client may send certificates that
            // played no part. Empty on a resumed session, which keeps
            // only the leaf.
            let chain = ssl
                .verified_chain()
                .map(|s| s.iter().skip(1).map(|x| x.to_owned()).collect())
                .unwrap_or_default();
            (client_identity(&leaf), PeerCerts::new(leaf, chain))
        });
    Handshaken {
        listener: state.listener.clone(),
        listener_addr: state.listener_addr,
        sni: state.sni.clone(),
        policy: state.policy.clone(),
        runtime: state.runtime.clone(),
        peer,
        resumed: ssl.session_reused(),
        version: ssl.version_str(),
        crl_checked: state.crl_epoch,
    }
    .into_conn_info()
}

/// What either TLS library tells of a finished handshake.
pub(crate) struct Handshaken {
    pub listener: Arc<str>,
    pub listener_addr: std::net::SocketAddr,
    pub sni: Option<Box<str>>,
    pub policy: Option<Arc<ServerPolicy>>,
    pub runtime: Arc<crate::runtime::Runtime>,
    /// The verified client certificate, when the policy asks for one: its
    /// identity, and the certificate as the connection keeps it.
    pub peer: Option<(crate::credentials::ClientIdentity, PeerCerts)>,
    pub resumed: bool,
    pub version: &'static str,
    pub crl_checked: u64,
}

impl Handshaken {
    /// Counts the handshake and makes the connection's [`ConnInfo`].
    pub(crate) fn into_conn_info(self) -> ConnInfo {
        let (client, peer) = match self.peer {
            Some((id, certs)) => (Some(id), Some(certs)),
            None => (None, None),
        };
        metrics()
            .handshakes
            .with_label_values(&[
                &self.listener,
                self.version,
                if self.resumed { "true" } else { "false" },
            ])
            .inc();
        ConnInfo {
            xfcc: client
                .as_ref()
                .filter(|_| writes_xfcc(&self.runtime))
                .map(|c| {
                    // Most requests use the gateway's own elements.
                    let e = self.runtime.model.runtime.client_cert.xfcc;
                    let by = tlsgate_core::decide::client_cert::by(self.policy.as_deref());
                    (e, c.xfcc(e, &by, peer.as_ref()))
                }),
            listener: self.listener,
            listener_addr: self.listener_addr,
            sni: self.sni,
            policy: self.policy,
            runtime: self.runtime,
            client,
            peer_certs: peer,
            resumed: self.resumed,
            crl_checked: self.crl_checked.into(),
            version: self.version,
            span: Default::default(),
        }
    }
}

/// Does the gateway's own setting (at the handshake) write an XFCC
/// element? Only then is it made here, once; a route's override makes its
/// own per request.
fn writes_xfcc(runtime: &crate::runtime::Runtime) -> bool {
    use tlsgate_core::config::client_cert::ForwardClientCert as F;
    matches!(
        runtime.model.runtime.client_cert.mode,
        F::SanitizeSet | F::AppendForward
    )
}

/// Handshake failure classes, as logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FailureReason {
    None = 0,
    NoSni,
    UnknownSni,
    NoClientCert,
    UnknownCa,
    BadClientCert,
    SanNotAllowed,
    Handshake,
    /// The client closed before the handshake ended.
    ClientClosed,
    /// The handshake did not end within `timeouts.tlsHandshake`.
    Timeout,
    /// A TLS 1.2 renegotiation the client asked for, refused.
    Renegotiation,
    /// A CRL lists the client's certificate (or one of its CAs).
    Revoked,
    /// The issuer's CRL is past nextUpdate, under `staleCrl: failClosed`.
    CrlStale,
    /// CRLs are configured, none from this issuer is loaded.
    CrlMissing,
    /// More certificates after the client's own than
    /// `limits.clientCertificateIntermediates`.
    ChainTooLong,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::None | FailureReason::Handshake => "handshake",
            FailureReason::NoSni => "no_sni",
            FailureReason::UnknownSni => "unknown_sni",
            FailureReason::NoClientCert => "no_client_cert",
            FailureReason::UnknownCa => "unknown_ca",
            FailureReason::BadClientCert => "bad_client_cert",
            FailureReason::SanNotAllowed => "san_not_allowed",
            FailureReason::ClientClosed => "client_closed",
            FailureReason::Timeout => "timeout",
            FailureReason::Renegotiation => "renegotiation",
            FailureReason::Revoked => "revoked",
            FailureReason::CrlStale => "crl_stale",
            FailureReason::CrlMissing => "crl_missing",
            FailureReason::ChainTooLong => "chain_too_long",
        }
    }

    fn from_u8(v: u8) -> FailureReason {
        [
            FailureReason::None,
            FailureReason::NoSni,
            FailureReason::UnknownSni,
            FailureReason::NoClientCert,
            FailureReason::UnknownCa,
            FailureReason::BadClientCert,
            FailureReason::SanNotAllowed,
            FailureReason::Handshake,
            FailureReason::ClientClosed,
            FailureReason::Timeout,
            FailureReason::Renegotiation,
            FailureReason::Revoked,
            FailureReason::CrlStale,
            FailureReason::CrlMissing,
            FailureReason::ChainTooLong,
        ]
        .get(v as usize)
        .copied()
        .unwrap_or(FailureReason::Handshake)
    }
}

/// Chain errors that mean "not issued by a CA this host trusts".
pub(crate) fn classify_verify_error(e: X509VerifyResult) -> FailureReason {
    match e.as_raw() {
        // UNABLE_TO_GET_ISSUER_CERT, DEPTH_ZERO_SELF_SIGNED_CERT,
        // SELF_SIGNED_CERT_IN_CHAIN, UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
        // UNABLE_TO_VERIFY_LEAF_SIGNATURE, CERT_SIGNATURE_FAILURE
        2 | 18 | 19 | 20 | 21 | 7 => FailureReason::UnknownCa,
        _ => FailureReason::BadClientCert,
    }
}

/// TLS alert descriptions we map when no callback of ours left a reason.
const ALERT_HANDSHAKE_FAILURE: i32 = 40;
const ALERT_UNKNOWN_CA: i32 = 48;
const ALERT_NO_RENEGOTIATION: i32 = 100;
const ALERT_CERTIFICATE_REQUIRED: i32 = 116;

/// OpenSSL's info callback (installed on every listener's context): a
/// fatal alert we send is a failed handshake. It runs inside OpenSSL, so
/// nothing here may panic (the trampoline catches it, but a failure
/// uncounted is a failure unseen): no indexing, no unwrap.
pub(crate) struct Info;

impl tlsgate_ossl::InfoCallback for Info {
    fn on_info(ssl: &SslRef, where_: i32, ret: i32) {
        on_info(ssl, where_, ret);
    }
}

fn on_info(ssl: &SslRef, where_: i32, ret: i32) {
    if where_ & SSL_CB_EXIT != 0 && ret <= 0 {
        // A handshake step ended: without a queued error it only waits for
        // I/O; with one it failed, maybe without any alert (plain HTTP on a
        // TLS port), and the connection must close now, not at a timeout.
        // OpenSSL clears the queue at the start of every handshake step, so
        // an error here is this step's own.
        if ret == 0 || tlsgate_ossl::error_queued() {
            super::outcome::mark_refused();
        }
        return;
    }
    if where_ & SSL_CB_ALERT == 0 || where_ & SSL_CB_WRITE == 0 {
        return;
    }
    let (level, desc) = ((ret >> 8) & 0xff, ret & 0xff);
    if level != 2 {
        // A warning: the one a client provokes at will is our refusal of
        // its TLS 1.2 renegotiation (SSL_OP_NO_RENEGOTIATION).
        if desc == ALERT_NO_RENEGOTIATION {
            let state = ssl.ex_data(conn_state_index());
            let listener = state.map_or("unknown", |s| &s.listener);
            let sni = state.and_then(|s| s.sni.as_deref()).unwrap_or("");
            record_failure(listener, "-", sni, FailureReason::Renegotiation, desc);
        }
        return;
    }
    super::outcome::mark_refused();
    let Some(state) = ssl.ex_data(conn_state_index()) else {
        // Failed before the ClientHello callback ran (garbage, old
        // protocol): there is no SNI or listener name to report.
        record_failure("unknown", "-", "", FailureReason::Handshake, desc);
        return;
    };
    let mut reason = FailureReason::from_u8(state.failure.load(Ordering::Relaxed));
    if reason == FailureReason::None {
        let mutual = state
            .policy
            .as_ref()
            .is_some_and(|p| p.requests_client_cert());
        reason = match desc {
            ALERT_CERTIFICATE_REQUIRED => FailureReason::NoClientCert,
            ALERT_HANDSHAKE_FAILURE if mutual && ssl.peer_certificate().is_none() => {
                FailureReason::NoClientCert
            }
            ALERT_UNKNOWN_CA => FailureReason::UnknownCa,
            _ => FailureReason::Handshake,
        };
    }
    let sni = state.sni.as_deref().unwrap_or("");
    // Label with the configured host pattern, never the raw SNI: clients
    // choose the SNI, and a label per random name would grow without bound.
    let label = state
        .policy
        .as_ref()
        .and_then(|p| sni_label(p, sni))
        .unwrap_or_else(|| "-".to_string());
    record_failure(&state.listener, &label, sni, reason, desc);
}

pub(crate) fn sni_label(policy: &ServerPolicy, sni: &str) -> Option<String> {
    policy
        .hosts
        .iter()
        .find(|h| h.matches(sni))
        .map(|h| h.to_string())
}

/// Counts a failed handshake and logs it, at most a few lines a second.
/// `server` is the host pattern that labels the metric, `sni` what the
/// client sent (logged, never a label).
pub(crate) fn record_failure(
    listener: &str,
    server: &str,
    sni: &str,
    reason: FailureReason,
    alert: i32,
) {
    static LOG: crate::logrl::Throttle = crate::logrl::Throttle::new();
    super::outcome::mark_recorded();
    metrics()
        .handshake_failures
        .with_label_values(&[listener, server, reason.as_str()])
        .inc();
    if let Some(suppressed) = LOG.allow() {
        // A client's SNI is at most 255 bytes by the protocol, but nothing
        // it sends is trusted to be: cut it for the log.
        let sni: String = sni.chars().take(255).collect();
        tracing::warn!(
            listener,
            server,
            sni = %sni,
            reason = reason.as_str(),
            alert,
            suppressed,
            "TLS handshake refused"
        );
    }
}
