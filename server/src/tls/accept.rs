//! Per-connection TLS decisions on a listener.
//!
//! Order inside OpenSSL's server handshake, and what we do at each step:
//! 1. ClientHello callback (before version negotiation and before any
//!    session is looked up): read SNI from the raw extension, pick the
//!    server policy from the live `Runtime`, set the protocol versions and
//!    ciphers, and bind session resumption to the policy key (session id
//!    context; ticket app data in `session.rs`). Unknown SNI stops here.
//! 2. Pingora's certificate callback (`TlsAccept`), skipped on resumption:
//!    install the credential and client verification of the policy chosen in 1.
//! 3. Handshake complete: record SNI, policy and verified client identity in
//!    `ConnInfo`, which Pingora hands to every request of the connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use openssl::error::ErrorStack;
use openssl::ssl::{ClientHelloResponse, Ssl, SslAlert, SslRef, SslVerifyMode, SslVersion};
use openssl::stack::Stack;
use openssl::x509::{X509Name, X509StoreContextRef, X509VerifyResult};
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use pingora::tls::ext;

use super::conn::FailureReason;
use super::sni;
use crate::config::{ServerTlsMode, TlsVersion};
use crate::credentials::{client_identity, now_unix};
use crate::metrics::metrics;
use crate::runtime::{Runtime, SharedRuntime};
use crate::tls::ServerPolicy;
use tlsgate_core::revocation::Revocation;

/// Per-SSL state, stored in the SSL's ex data from the ClientHello on.
pub(crate) struct ConnState {
    pub listener: Arc<str>,
    pub listener_addr: SocketAddr,
    pub sni: Option<Box<str>>,
    pub policy: Option<Arc<ServerPolicy>>,
    /// The runtime the policy was chosen from: the connection keeps it.
    pub runtime: Arc<Runtime>,
    /// Set by our callbacks when they refuse, read by the alert callback.
    pub failure: Arc<AtomicU8>,
    /// What this connection's sessions are bound to, taken once at the
    /// ClientHello: a ticket minted later in the handshake must not carry
    /// a CRL epoch newer than the check its certificate passed.
    pub session_key: [u8; 32],
    /// The fetched-CRL epoch the client's certificate is checked under.
    pub crl_epoch: u64,
}

pub(crate) fn conn_state_index() -> openssl::ex_data::Index<Ssl, ConnState> {
    static IDX: OnceLock<openssl::ex_data::Index<Ssl, ConnState>> = OnceLock::new();
    *IDX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex data index"))
}

/// The ClientHello callback of the listener at `addr`.
pub(crate) fn client_hello(
    rt: &SharedRuntime,
    addr: SocketAddr,
    listener_name: &Arc<str>,
    ssl: &mut SslRef,
    alert: &mut SslAlert,
) -> Result<ClientHelloResponse, ErrorStack> {
    let runtime = rt.load_full();
    let sni = sni::from_client_hello(ssl);
    let failure = Arc::new(AtomicU8::new(FailureReason::None as u8));
    let policy = runtime.tls.listener(&addr).and_then(|l| match &sni {
        Some(name) => l.sni.select(name),
        None => l.sni.without_sni(),
    });
    // Read before the key: a CRL published between the two only makes
    // the check (at the later epoch) stricter than the key says.
    let crl_epoch = tlsgate_core::revocation::crl_epoch();
    let now = now_unix();
    let state = ConnState {
        listener: listener_name.clone(),
        listener_addr: addr,
        sni: sni.map(Into::into),
        policy: policy.cloned(),
        runtime: runtime.clone(),
        failure,
        session_key: policy.map(|p| p.session_key(now)).unwrap_or_default(),
        crl_epoch,
    };
    let Some(policy) = policy.cloned() else {
        let reason = if state.sni.is_none() {
            FailureReason::NoSni
        } else {
            FailureReason::UnknownSni
        };
        state.failure.store(reason as u8, Ordering::Relaxed);
        ssl.set_ex_data(conn_state_index(), state);
        *alert = SslAlert::UNRECOGNIZED_NAME;
        return Err(ErrorStack::get());
    };
    drop(runtime);
    if let Err(e) = apply_handshake_params(ssl, &policy, &state.session_key) {
        state
            .failure
            .store(FailureReason::Handshake as u8, Ordering::Relaxed);
        ssl.set_ex_data(conn_state_index(), state);
        *alert = SslAlert::HANDSHAKE_FAILURE;
        return Err(e);
    }
    ssl.set_ex_data(conn_state_index(), state);
    Ok(ClientHelloResponse::SUCCESS)
}

fn version(v: TlsVersion) -> SslVersion {
    match v {
        TlsVersion::V1_2 => SslVersion::TLS1_2,
        TlsVersion::V1_3 => SslVersion::TLS1_3,
    }
}

/// What must be set before OpenSSL negotiates the version, the cipher, or a
/// resumed session.
fn apply_handshake_params(
    ssl: &mut SslRef,
    policy: &ServerPolicy,
    session_key: &[u8; 32],
) -> Result<(), ErrorStack> {
    if let Some(v) = policy.min_version {
        ssl.set_min_proto_version(Some(version(v)))?;
    }
    if let Some(v) = policy.max_version {
        ssl.set_max_proto_version(Some(version(v)))?;
    }
    if let Some(c) = &policy.cipher_list {
        ssl.set_cipher_list(c)?;
    }
    if let Some(c) = &policy.ciphersuites {
        ssl.set_ciphersuites(c)?;
    }
    // A session minted under another policy key is a cache miss (TLS 1.2
    // session ids and tickets); TLS 1.3 tickets are checked in session.rs.
    tlsgate_ossl::set_session_id_context(ssl, session_key)?;
    // Without this a MUTUAL host could not refuse a client whose cert
    // fails, before the certificate callback: set it for the whole policy.
    set_client_verification(ssl, policy);
    Ok(())
}

fn set_client_verification(ssl: &mut SslRef, policy: &ServerPolicy) {
    let mode = match policy.mode {
        ServerTlsMode::Simple => {
            ssl.set_verify(SslVerifyMode::NONE);
            return;
        }
        ServerTlsMode::Mutual => SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        ServerTlsMode::OptionalMutual => SslVerifyMode::PEER,
    };
    let cred = &policy.credential;
    if let Some(store) = &cred.ca_store {
        if let Err(e) = ext::ssl_set_verify_cert_store(ssl, store) {
            tracing::error!(error = %e, "cannot set client CA store");
        }
    }
    // Without names, a client offers whatever certificate it has (its
    // CA is still checked): what a bundle of hundreds of CAs needs.
    let names = if policy.send_ca_names {
        Stack::<X509Name>::new().ok()
    } else {
        None
    };
    if let Some(mut names) = names {
        for ca in &cred.ca_certs {
            if let Ok(n) = ca.subject_name().to_owned() {
                let _ = names.push(n);
            }
        }
        ssl.set_client_ca_list(names);
    }
    let allowed = policy.allowed_sans.clone();
    let spiffe = policy.spiffe_prefix.clone();
    let revocation = policy.revocation.clone();
    let credential = policy.credential.clone();
    let max_intermediates = policy.max_intermediates;
    ssl.set_verify_callback(mode, move |ok, ctx| {
        if !chain_length_allowed(ctx, max_intermediates) {
            return false;
        }
        if ok && !check_revocation(ctx, &revocation, &credential.info.name) {
            return false;
        }
        let ok = verify_client(ok, ctx, &allowed, spiffe.as_deref());
        if ok && ctx.error_depth() == 0 {
            end_session_with_leaf(ctx);
        }
        ok
    });
}

/// The session this handshake makes (a TLS 1.2 session id libssl caches,
/// or a ticket) ends no later than the client certificate it rests on.
fn end_session_with_leaf(ctx: &mut X509StoreContextRef) {
    let Ok(idx) = openssl::x509::X509StoreContext::ssl_idx() else {
        return;
    };
    let (Some(ssl), Some(leaf)) = (ctx.ex_data(idx), ctx.current_cert()) else {
        return;
    };
    if let Some(session) = ssl.session() {
        tlsgate_ossl::cap_session_lifetime(session, leaf.not_after());
    }
}

/// `limits.clientCertificateIntermediates`, on what the client sent (not
/// on the path OpenSSL built from it): the same count rustls listeners
/// refuse at. On refusal it leaves the error and failure reason.
fn chain_length_allowed(ctx: &mut X509StoreContextRef, max_intermediates: usize) -> bool {
    if tlsgate_ossl::peer_sent_certificates(ctx) <= max_intermediates + 1 {
        return true;
    }
    ctx.set_error(tlsgate_ossl::verify_result(
        tlsgate_ossl::verify_error::CERT_CHAIN_TOO_LONG,
    ));
    if let Some(state) = ssl_of(ctx).and_then(|s| s.ex_data(conn_state_index())) {
        state
            .failure
            .store(FailureReason::ChainTooLong as u8, Ordering::Relaxed);
    }
    false
}

/// Our CRL check of the certificate at the context's depth, once OpenSSL
/// has verified the chain (see `revocation`). On refusal it leaves the
/// error and failure reason, and returns false.
fn check_revocation(ctx: &mut X509StoreContextRef, r: &Revocation, credential: &str) -> bool {
    use tlsgate_core::revocation::Verdict;
    use tlsgate_ossl::verify_error as code;
    if !r.is_active() {
        return true;
    }
    let depth = ctx.error_depth() as usize;
    let verdict = {
        let Some(chain) = ctx.chain() else {
            return true;
        };
        let Some(cert) = chain.get(depth) else {
            return true;
        };
        let top = depth + 1 >= chain.len();
        let issuer = chain.get(depth + 1).unwrap_or(cert);
        r.learn_from(cert, depth);
        r.check(cert, issuer, depth, top, now_unix())
    };
    let (error, reason) = match verdict {
        Verdict::Good | Verdict::NotChecked => return true,
        Verdict::Stale { accepted: true } => {
            count_stale_crl_accepted(credential, depth);
            return true;
        }
        Verdict::Revoked => {
            count_revoked(credential);
            (code::CERT_REVOKED, FailureReason::Revoked)
        }
        Verdict::Stale { accepted: false } => (code::CRL_PATH_VALIDATION, FailureReason::CrlStale),
        Verdict::Missing => (code::UNABLE_TO_GET_CRL, FailureReason::CrlMissing),
    };
    ctx.set_error(tlsgate_ossl::verify_result(error));
    if let Some(state) = ssl_of(ctx).and_then(|s| s.ex_data(conn_state_index())) {
        state.failure.store(reason as u8, Ordering::Relaxed);
    }
    false
}

/// A client certificate let through on a stale CRL, counted and logged
/// (whichever TLS library checked it).
pub(crate) fn count_stale_crl_accepted(credential: &str, depth: usize) {
    static LOG: crate::logrl::Throttle = crate::logrl::Throttle::new();
    metrics()
        .crl_stale_accepted
        .with_label_values(&[credential])
        .inc();
    if let Some(suppressed) = LOG.allow() {
        tracing::warn!(
            credential,
            depth,
            suppressed,
            "client certificate accepted on a CRL past its nextUpdate (staleCrl: failOpen)"
        );
    }
}

pub(crate) fn count_revoked(credential: &str) {
    metrics()
        .client_cert_revoked
        .with_label_values(&[credential])
        .inc();
}

/// OpenSSL's chain verdict, plus the server's `subjectAltNames` allow list
/// (or, for `ISTIO_MUTUAL`, its SPIFFE trust domain) on the leaf. The
/// failure class is left on the SSL for the alert callback.
fn verify_client(
    preverify_ok: bool,
    ctx: &mut X509StoreContextRef,
    allowed: &[String],
    spiffe: Option<&str>,
) -> bool {
    let reason = if !preverify_ok {
        Some(super::conn::classify_verify_error(ctx.error()))
    } else if ctx.error_depth() == 0 && (!allowed.is_empty() || spiffe.is_some()) {
        let ok = ctx.current_cert().is_some_and(|c| match spiffe {
            Some(prefix) if allowed.is_empty() => crate::origin::check_trust_domain(c, prefix).ok,
            _ => client_identity(c).matches_any(allowed),
        });
        if ok {
            None
        } else {
            ctx.set_error(X509VerifyResult::APPLICATION_VERIFICATION);
            Some(FailureReason::SanNotAllowed)
        }
    } else {
        None
    };
    let Some(reason) = reason else { return true };
    if let Some(state) = ssl_of(ctx).and_then(|s| s.ex_data(conn_state_index())) {
        state.failure.store(reason as u8, Ordering::Relaxed);
    }
    false
}

fn ssl_of(ctx: &X509StoreContextRef) -> Option<&SslRef> {
    let idx = openssl::x509::X509StoreContext::ssl_idx().ok()?;
    ctx.ex_data(idx)
}

/// The `TlsAccept` of one listener.
pub struct Acceptor;

#[async_trait]
impl TlsAccept for Acceptor {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        let Some(policy) = ssl
            .ex_data(conn_state_index())
            .and_then(|s| s.policy.clone())
        else {
            return;
        };
        if let Err(e) = install_credential(ssl, &policy) {
            tracing::error!(server = %policy.server, error = %e, "cannot install server credential");
        }
    }

    async fn handshake_complete_callback(
        &self,
        ssl: &TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        let state = ssl.ex_data(conn_state_index())?;
        // An `Arc<ConnInfo>` inside: the engines take their own reference
        // (`tls::conn_info_of`), as they do of a rustls stream's.
        let info = Arc::new(super::conn::conn_info(ssl, state));
        Some(Arc::new(info))
    }
}

/// The leaf with its chain, and the second certificate (another key
/// type) in its own slot: OpenSSL serves one the client's signature
/// algorithms accept, in the client's order of preference.
fn install_credential(ssl: &mut SslRef, policy: &ServerPolicy) -> Result<(), ErrorStack> {
    for cred in policy.credential.served() {
        let (leaf, chain) = cred.chain.split_first().ok_or_else(ErrorStack::get)?;
        // Sets the slot of the key's type, which the chain below goes to.
        ext::ssl_use_certificate(ssl, leaf)?;
        ext::ssl_use_private_key(ssl, &cred.key)?;
        for c in chain {
            ext::ssl_add_chain_cert(ssl, c)?;
        }
    }
    Ok(())
}

/// An OCSP response not stapled because it is past its nextUpdate.
pub(crate) fn count_stale_staple(name: &str, source: &str) {
    static LOG: crate::logrl::Throttle = crate::logrl::Throttle::new();
    metrics()
        .ocsp_staples
        .with_label_values(&[name, "stale"])
        .inc();
    if let Some(suppressed) = LOG.allow() {
        tracing::warn!(
            credential = %name,
            source = %source,
            suppressed,
            "OCSP response past its nextUpdate: not stapled; replace it"
        );
    }
}

/// OpenSSL's status callback, when a client asks for OCSP: the response
/// of the certificate OpenSSL chose, if it has one and it is current.
pub(crate) fn staple(ssl: &mut SslRef) -> Result<bool, ErrorStack> {
    use foreign_types::ForeignTypeRef;
    let Some(policy) = ssl
        .ex_data(conn_state_index())
        .and_then(|s| s.policy.clone())
    else {
        return Ok(false);
    };
    let Some(chosen) = ssl.certificate().map(|c| c.as_ptr()) else {
        return Ok(false);
    };
    let Some(index) = policy
        .credential
        .served()
        .position(|c| c.leaf().as_ptr() == chosen)
    else {
        return Ok(false);
    };
    let Some(staple) = policy.staple(index, now_unix()) else {
        return Ok(false);
    };
    let name = &policy.credential.info.name;
    if !staple.fresh(now_unix()) {
        count_stale_staple(name, &staple.source);
        return Ok(false);
    }
    ssl.set_ocsp_status(&staple.der)?;
    metrics()
        .ocsp_staples
        .with_label_values(&[name, "stapled"])
        .inc();
    Ok(true)
}
