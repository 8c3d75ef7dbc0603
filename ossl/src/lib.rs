//! The OpenSSL operations tlsgate needs that rust-openssl does not offer,
//! each behind a safe function: the only crate of the workspace allowed
//! `unsafe` (every other crate has `#![forbid(unsafe_code)]`).
//!
//! - reading an extension of the ClientHello inside the ClientHello
//!   callback (SNI before OpenSSL parses it);
//! - a session id context per connection (TLS 1.2 session binding);
//! - TLS 1.3 session tickets bound to a 32-byte key ([`bind_tickets`]);
//! - OpenSSL's info callback ([`set_info_callback`]);
//! - read-ahead on one connection (the upstream ones Pingora makes), and a
//!   peek at the error queue;
//! - a trust store, and the extensions of a CRL ([`trust_store`], [`crl_has_extension`]).
//!
//! OpenSSL calls the callbacks; a Rust panic must never unwind into its C
//! frames, so each trampoline catches it and answers as a failure would.

mod ffi;

use std::panic::{catch_unwind, AssertUnwindSafe};

use foreign_types::ForeignTypeRef;
use libc::{c_char, c_int, c_uchar, c_uint, c_void, size_t};
use openssl::error::ErrorStack;
use openssl::ssl::{SslContextBuilder, SslRef, SslSessionRef};
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509CrlRef, X509};

pub use ffi::{SSL_CB_ALERT, SSL_CB_EXIT, SSL_CB_WRITE, SSL_MAX_SID_CTX_LENGTH};

/// Makes OpenSSL allocate with mimalloc, as the rest of the process does:
/// a full mTLS handshake makes hundreds of small allocations (certificates
/// and sessions decoded and encoded), and glibc's malloc was a tenth of its
/// CPU. Call it first thing in `main`, before anything can make OpenSSL
/// allocate; it acts once, and false says it did not (called again, or
/// OpenSSL had allocated already and keeps its own allocator).
pub fn allocate_with_mimalloc() -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    // A second switch would let a block from one allocator reach the
    // other's free.
    if DONE.swap(true, Ordering::SeqCst) {
        return false;
    }
    // SAFETY: the three functions have OpenSSL's signatures and behave as
    // malloc, realloc and free (mimalloc's are drop-in replacements), and
    // this runs at most once. OpenSSL refuses the switch once it has
    // allocated through its default functions, so no block it made before
    // is ever given to mimalloc's free.
    unsafe { ffi::CRYPTO_set_mem_functions(mi_malloc, mi_realloc, mi_free) == 1 }
}

unsafe extern "C" fn mi_malloc(n: size_t, _: *const c_char, _: c_int) -> *mut c_void {
    // SAFETY: malloc's contract.
    unsafe { libmimalloc_sys::mi_malloc(n).cast() }
}

unsafe extern "C" fn mi_realloc(
    p: *mut c_void,
    n: size_t,
    _: *const c_char,
    _: c_int,
) -> *mut c_void {
    // OpenSSL hands a custom realloc a size of 0 too: free, as realloc
    // does, rather than keep a small block.
    if n == 0 {
        // SAFETY: `p` came from `mi_malloc`/`mi_realloc` (or is null).
        unsafe { libmimalloc_sys::mi_free(p.cast()) };
        return std::ptr::null_mut();
    }
    // SAFETY: `p` came from `mi_malloc`/`mi_realloc` (or is null).
    unsafe { libmimalloc_sys::mi_realloc(p.cast(), n).cast() }
}

unsafe extern "C" fn mi_free(p: *mut c_void, _: *const c_char, _: c_int) {
    // SAFETY: `p` came from `mi_malloc`/`mi_realloc` (or is null).
    unsafe { libmimalloc_sys::mi_free(p.cast()) }
}

/// Lets OpenSSL read ahead on the TLS connection of `stream` (if it is
/// one): whole socket buffers at once instead of a record header, then its
/// body.
pub fn set_read_ahead(stream: &mut pingora::protocols::Stream) {
    if let Some(ssl) = stream.get_ssl() {
        // SAFETY: the SSL is live, and owned by `stream` alone, which is
        // borrowed exclusively: no other reference to it can be in use
        // while the flag is written. No pointer is kept.
        unsafe { ffi::SSL_set_read_ahead(ssl.as_ptr(), 1) };
    }
}

/// The session id context of this connection (at most 32 bytes): a TLS 1.2
/// session minted under another context does not resume.
pub fn set_session_id_context(ssl: &mut SslRef, context: &[u8]) -> Result<(), ErrorStack> {
    let len = context.len().min(SSL_MAX_SID_CTX_LENGTH);
    // SAFETY: `ssl` is live and borrowed mutably; OpenSSL copies `len`
    // bytes from `context`, which outlives the call.
    let ok =
        unsafe { ffi::SSL_set_session_id_context(ssl.as_ptr(), context.as_ptr(), len as c_uint) };
    if ok == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// The body of ClientHello extension `ext_type`, when the client sent it.
/// Only meaningful inside the ClientHello callback (the only place tlsgate
/// calls it), where OpenSSL keeps the ClientHello alive.
pub fn client_hello_ext(ssl: &SslRef, ext_type: u32) -> Option<&[u8]> {
    let mut data: *const c_uchar = std::ptr::null();
    let mut len: size_t = 0;
    // SAFETY: `ssl` is live; OpenSSL writes a pointer into its own
    // ClientHello buffer and its length, or returns 0.
    let found = unsafe {
        openssl_sys::SSL_client_hello_get0_ext(
            ssl.as_ptr(),
            ext_type as c_uint,
            &mut data,
            &mut len,
        )
    };
    if found != 1 || data.is_null() {
        return None;
    }
    // SAFETY: OpenSSL reported `len` readable bytes at `data`, valid while
    // the ClientHello is (the borrow of `ssl` bounds the slice's life).
    Some(unsafe { std::slice::from_raw_parts(data, len) })
}

/// Is an error queued on this thread's OpenSSL error queue (not popped)?
pub fn error_queued() -> bool {
    // SAFETY: reads the thread-local queue; no pointers involved.
    unsafe { ffi::ERR_peek_error() != 0 }
}

/// What OpenSSL's info callback reports: `SSL_CB_*` flags and a value
/// (for alerts: level << 8 | description).
pub trait InfoCallback {
    fn on_info(ssl: &SslRef, where_: i32, ret: i32);
}

/// Installs `C::on_info` as the context's info callback.
pub fn set_info_callback<C: InfoCallback>(ctx: &mut SslContextBuilder) {
    // SAFETY: the trampoline is a plain function valid for the program's
    // life; the context is not shared yet.
    unsafe { ffi::SSL_CTX_set_info_callback(ctx.as_ptr(), Some(info_trampoline::<C>)) };
}

unsafe extern "C" fn info_trampoline<C: InfoCallback>(
    ssl: *const openssl_sys::SSL,
    where_: c_int,
    ret: c_int,
) {
    if ssl.is_null() {
        return;
    }
    // SAFETY: OpenSSL passes the live SSL whose state changed.
    let ssl = unsafe { SslRef::from_ptr(ssl as *mut _) };
    let _ = catch_unwind(AssertUnwindSafe(|| C::on_info(ssl, where_, ret)));
}

/// The key a connection's TLS 1.3 tickets are bound to.
pub trait TicketKey {
    /// `None`: this connection may neither mint nor use a ticket.
    fn ticket_key(ssl: &SslRef) -> Option<[u8; 32]>;
}

/// Every TLS 1.3 ticket the context issues carries `K::ticket_key` as its
/// app data, and a ticket is only used when its app data equals the key of
/// the connection presenting it (OpenSSL does not check the session id
/// context for TLS 1.3 tickets). Anything else is a full handshake.
pub fn bind_tickets<K: TicketKey>(ctx: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    // SAFETY: the callbacks are plain functions valid for the program's
    // life; `arg` is unused; the context is not shared yet.
    let ok = unsafe {
        ffi::SSL_CTX_set_session_ticket_cb(
            ctx.as_ptr(),
            Some(ticket_new::<K>),
            Some(ticket_decrypted::<K>),
            std::ptr::null_mut(),
        )
    };
    if ok == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

unsafe extern "C" fn ticket_new<K: TicketKey>(
    s: *mut openssl_sys::SSL,
    _arg: *mut c_void,
) -> c_int {
    if s.is_null() {
        return 0;
    }
    // SAFETY: OpenSSL passes the live SSL minting the ticket.
    let ssl = unsafe { SslRef::from_ptr(s) };
    let Ok(Some(key)) = catch_unwind(AssertUnwindSafe(|| K::ticket_key(ssl))) else {
        // No key means no handshake we would accept: mint nothing usable.
        return 0;
    };
    // SAFETY: `s` is live; OpenSSL copies the app data into the session.
    unsafe {
        let sess = openssl_sys::SSL_get_session(s);
        if sess.is_null() {
            return 0;
        }
        ffi::SSL_SESSION_set1_ticket_appdata(sess, key.as_ptr().cast(), key.len())
    }
}

unsafe extern "C" fn ticket_decrypted<K: TicketKey>(
    s: *mut openssl_sys::SSL,
    sess: *mut openssl_sys::SSL_SESSION,
    _keyname: *const c_uchar,
    _keyname_len: size_t,
    status: c_int,
    _arg: *mut c_void,
) -> c_int {
    if status != ffi::SSL_TICKET_SUCCESS && status != ffi::SSL_TICKET_SUCCESS_RENEW {
        return ffi::SSL_TICKET_RETURN_IGNORE_RENEW;
    }
    if s.is_null() || sess.is_null() {
        return ffi::SSL_TICKET_RETURN_IGNORE_RENEW;
    }
    // SAFETY: OpenSSL passes the live SSL presenting the ticket.
    let ssl = unsafe { SslRef::from_ptr(s) };
    let Ok(Some(key)) = catch_unwind(AssertUnwindSafe(|| K::ticket_key(ssl))) else {
        return ffi::SSL_TICKET_RETURN_IGNORE_RENEW;
    };
    let mut data: *mut c_void = std::ptr::null_mut();
    let mut len: size_t = 0;
    // SAFETY: `sess` is the decrypted session OpenSSL hands us; the app data
    // pointer stays valid while it lives, and we only read `len` bytes.
    let same = unsafe {
        ffi::SSL_SESSION_get0_ticket_appdata(sess, &mut data, &mut len) == 1
            && !data.is_null()
            && std::slice::from_raw_parts(data as *const u8, len) == key.as_slice()
    };
    // A session whose client certificate has ended since is not resumed:
    // renewed tickets would otherwise carry it on for as long as the
    // client comes back. The full handshake then checks the certificate.
    // SAFETY: `sess` is live; the peer certificate is borrowed from it.
    let expired = unsafe {
        let peer = ffi::SSL_SESSION_get0_peer(sess);
        !peer.is_null()
            && openssl::asn1::Asn1Time::days_from_now(0)
                .is_ok_and(|now| openssl::x509::X509Ref::from_ptr(peer).not_after() < now)
    };
    if expired {
        return ffi::SSL_TICKET_RETURN_IGNORE_RENEW;
    }
    match (same, status == ffi::SSL_TICKET_SUCCESS) {
        (false, _) => ffi::SSL_TICKET_RETURN_IGNORE_RENEW,
        (true, true) => ffi::SSL_TICKET_RETURN_USE,
        (true, false) => ffi::SSL_TICKET_RETURN_USE_RENEW,
    }
}

/// Cuts `session`'s lifetime to end no later than `not_after` (its client
/// certificate's): libssl finds a cached TLS 1.2 session by id without
/// asking us (the ticket callback above sees only tickets). Called while
/// the certificate is verified, before libssl caches the session: once
/// cached, a change of its timeout would race with the cache's eviction.
pub fn cap_session_lifetime(session: &SslSessionRef, not_after: &openssl::asn1::Asn1TimeRef) {
    let Ok(now) = openssl::asn1::Asn1Time::days_from_now(0) else {
        return;
    };
    let Ok(left) = now.diff(not_after) else {
        return;
    };
    let left = i64::from(left.days) * 86_400 + i64::from(left.secs);
    let left = libc::c_long::try_from(left.max(0)).unwrap_or(libc::c_long::MAX);
    // SAFETY: `session` is live for the call and not yet in any cache (see
    // above), so nothing else reads its timeout meanwhile.
    unsafe {
        let sess = session.as_ptr();
        if left < ffi::SSL_SESSION_get_timeout(sess) {
            ffi::SSL_SESSION_set_timeout(sess, left);
        }
    }
}

/// Asks for a new handshake on an established TLS 1.2 client connection
/// (a client-initiated renegotiation; the hardening tests are that
/// client); `false` when OpenSSL refuses locally.
pub fn renegotiate<S: std::io::Read + std::io::Write>(
    stream: &mut openssl::ssl::SslStream<S>,
) -> bool {
    // SAFETY: the SSL is live and owned by `stream` alone, which is
    // borrowed exclusively; SSL_renegotiate only marks the connection for a
    // new handshake, which the caller then drives.
    unsafe { ffi::SSL_renegotiate(stream.ssl().as_ptr()) == 1 }
}

/// A store trusting `cas`. Revocation is checked outside OpenSSL.
pub fn trust_store(cas: &[X509]) -> Result<X509Store, ErrorStack> {
    trust_store_with(cas, None)
}

/// [`trust_store`] verifying under `param` (a purpose, a security level)
/// where no SSL connection sets them.
pub fn trust_store_with(
    cas: &[X509],
    param: Option<&openssl::x509::verify::X509VerifyParamRef>,
) -> Result<X509Store, ErrorStack> {
    let mut b = X509StoreBuilder::new()?;
    for ca in cas {
        b.add_cert(ca.clone())?;
    }
    if let Some(param) = param {
        b.set_param(param)?;
    }
    Ok(b.build())
}

/// The NIDs of the critical extensions of `crl` (0 for an unknown OID)
/// and of its entries' (the second list).
pub fn crl_critical_extensions(crl: &X509CrlRef) -> (Vec<c_int>, Vec<c_int>) {
    use openssl_sys as sys;
    let mut own = Vec::new();
    let mut entries = Vec::new();
    // SAFETY: `crl` is live for the call; every pointer read comes from it
    // and is only read, never kept.
    unsafe {
        let critical = |e: *mut sys::X509_EXTENSION| -> Option<c_int> {
            if e.is_null() || sys::X509_EXTENSION_get_critical(e) != 1 {
                return None;
            }
            Some(sys::OBJ_obj2nid(sys::X509_EXTENSION_get_object(e)))
        };
        let raw = crl.as_ptr();
        for i in 0..sys::X509_CRL_get_ext_count(raw) {
            own.extend(critical(sys::X509_CRL_get_ext(raw, i)));
        }
        if let Some(revoked) = crl.get_revoked() {
            for r in revoked {
                let r = r.as_ptr();
                for i in 0..sys::X509_REVOKED_get_ext_count(r) {
                    entries.extend(critical(sys::X509_REVOKED_get_ext(r, i)));
                }
            }
        }
    }
    (own, entries)
}

/// Does `crl` carry an extension of type `nid`?
pub fn crl_has_extension(crl: &X509CrlRef, nid: c_int) -> bool {
    // SAFETY: `crl` is a live CRL; the call only reads its extension list.
    unsafe { openssl_sys::X509_CRL_get_ext_by_NID(crl.as_ptr(), nid, -1) >= 0 }
}

extern "C" {
    fn X509_STORE_CTX_get0_untrusted(
        ctx: *const openssl_sys::X509_STORE_CTX,
    ) -> *mut openssl_sys::stack_st_X509;
}

/// How many certificates the peer sent, its own included, for the chain
/// `ctx` verifies (libssl hands them over as the untrusted list).
pub fn peer_sent_certificates(ctx: &openssl::x509::X509StoreContextRef) -> usize {
    // SAFETY: `ctx` is live for the call; the stack it returns belongs to
    // it and is only counted, never kept.
    unsafe {
        let sent = X509_STORE_CTX_get0_untrusted(ctx.as_ptr());
        if sent.is_null() {
            return 0;
        }
        usize::try_from(openssl_sys::OPENSSL_sk_num(sent.cast())).unwrap_or(0)
    }
}

/// X509 verification error codes openssl's crate has no constant for.
pub mod verify_error {
    /// "certificate chain too long": libssl sends `unknown_ca` for it.
    pub const CERT_CHAIN_TOO_LONG: libc::c_int = 22;
    /// `certificate_revoked` alert.
    pub const CERT_REVOKED: libc::c_int = 23;
    /// "unable to get certificate CRL": `unknown_ca` alert.
    pub const UNABLE_TO_GET_CRL: libc::c_int = 3;
    /// "CRL path validation error": OpenSSL maps no alert to it, so the
    /// client gets `certificate_unknown`.
    pub const CRL_PATH_VALIDATION: libc::c_int = 54;
}

/// The verification result of code `code` (one of [`verify_error`]).
pub fn verify_result(code: c_int) -> openssl::x509::X509VerifyResult {
    // SAFETY: any int is a valid X509 verification code to hold; OpenSSL
    // only ever maps it to a string or an alert.
    unsafe { openssl::x509::X509VerifyResult::from_raw(code) }
}

/// What an OCSP response says of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspAnswer {
    Good,
    /// Revoked at this Unix time.
    Revoked(i64),
}

/// A DER OCSP response for `cert`, signed by its issuer, valid from
/// `this_update` to `next_update` (Unix seconds): what a CA's responder
/// sends, made for tests and for `tlsgate certs ocsp`.
pub fn sign_ocsp_response(
    cert: &openssl::x509::X509Ref,
    issuer: &openssl::x509::X509Ref,
    issuer_key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
    answer: OcspAnswer,
    this_update: i64,
    next_update: i64,
) -> Result<Vec<u8>, ErrorStack> {
    use foreign_types::ForeignType;
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::ocsp::{OcspBasicResponse, OcspCertId, OcspResponse, OcspResponseStatus};
    let id = OcspCertId::from_cert(MessageDigest::sha1(), cert, issuer)?;
    let this = Asn1Time::from_unix(this_update)?;
    let next = Asn1Time::from_unix(next_update)?;
    let (status, revoked) = match answer {
        OcspAnswer::Good => (0, None),
        OcspAnswer::Revoked(at) => (1, Some(Asn1Time::from_unix(at)?)),
    };
    // SAFETY: a new, owned basic response (freed by its wrapper on every
    // path); `add1_status` copies the id and times; `sign` reads the
    // issuer and key, which outlive the call.
    unsafe {
        let raw = openssl_sys::OCSP_BASICRESP_new();
        if raw.is_null() {
            return Err(ErrorStack::get());
        }
        let basic = OcspBasicResponse::from_ptr(raw);
        let single = ffi::OCSP_basic_add1_status(
            raw,
            id.as_ptr(),
            status,
            -1,
            revoked
                .as_ref()
                .map_or(std::ptr::null_mut(), |t| t.as_ptr()),
            this.as_ptr(),
            next.as_ptr(),
        );
        if single.is_null() {
            return Err(ErrorStack::get());
        }
        let ok = ffi::OCSP_basic_sign(
            raw,
            issuer.as_ptr(),
            issuer_key.as_ptr(),
            MessageDigest::sha256().as_ptr(),
            std::ptr::null_mut(),
            0,
        );
        if ok != 1 {
            return Err(ErrorStack::get());
        }
        OcspResponse::create(OcspResponseStatus::SUCCESSFUL, Some(&basic))?.to_der()
    }
}

/// A GeneralizedTime (what OCSP responses carry) as Unix seconds.
pub fn generalized_time_unix(t: &openssl::asn1::Asn1GeneralizedTimeRef) -> Option<i64> {
    use openssl::asn1::{Asn1Time, Asn1TimeRef};
    // SAFETY: ASN1_GENERALIZEDTIME and ASN1_TIME are both ASN1_STRING;
    // ASN1_TIME_diff takes either type. The reference lives as long as `t`.
    let t = unsafe { Asn1TimeRef::from_ptr(t.as_ptr() as *mut openssl_sys::ASN1_TIME) };
    let d = Asn1Time::from_unix(0).ok()?.diff(t).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// One session ticket key: 16-byte name, HMAC-SHA256 key, AES-CBC key
/// (16 bytes: AES-128, 32: AES-256).
#[derive(Clone)]
pub struct TicketKeyMaterial {
    pub name: [u8; 16],
    pub hmac: Vec<u8>,
    pub aes: Vec<u8>,
}

impl std::fmt::Debug for TicketKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The name identifies a key; the secrets never go to a log.
        f.debug_struct("TicketKeyMaterial")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Where a listener's session ticket keys come from.
pub trait TicketKeyStore {
    /// The key new tickets are encrypted with.
    fn encrypting(ssl: &SslRef) -> Option<TicketKeyMaterial>;
    /// The key named `name`, if still listed. Every ticket decrypted is
    /// followed by a new one under the encrypting key.
    fn decrypting(ssl: &SslRef, name: &[u8; 16]) -> Option<TicketKeyMaterial>;
}

/// Encrypts and decrypts the context's session tickets with `K`'s keys
/// (nginx's and Envoy's scheme: AES-CBC and HMAC-SHA256 under a named key)
/// instead of OpenSSL's random per-context keys, so that replicas sharing
/// the keys resume each other's sessions.
pub fn use_ticket_keys<K: TicketKeyStore>(ctx: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    let cb: ffi::TicketKeyCb = ticket_key_cb::<K>;
    // SAFETY: OpenSSL stores the pointer and calls it with the signature
    // of `TicketKeyCb`, which is what `callback_ctrl` erases to `fn()`.
    let ok = unsafe {
        let erased: unsafe extern "C" fn() =
            std::mem::transmute::<ffi::TicketKeyCb, unsafe extern "C" fn()>(cb);
        ffi::SSL_CTX_callback_ctrl(
            ctx.as_ptr(),
            ffi::SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB,
            Some(erased),
        )
    };
    if ok == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

unsafe extern "C" fn ticket_key_cb<K: TicketKeyStore>(
    s: *mut openssl_sys::SSL,
    key_name: *mut c_uchar,
    iv: *mut c_uchar,
    cctx: *mut openssl_sys::EVP_CIPHER_CTX,
    hctx: *mut openssl_sys::HMAC_CTX,
    enc: c_int,
) -> c_int {
    if s.is_null() || key_name.is_null() || iv.is_null() || cctx.is_null() || hctx.is_null() {
        return -1;
    }
    // SAFETY: OpenSSL passes the live SSL, a 16-byte key name buffer, an
    // IV buffer of EVP_MAX_IV_LENGTH (16 for AES-CBC) and fresh contexts.
    let ssl = unsafe { SslRef::from_ptr(s) };
    // Only these lengths are read below: anything else is no key.
    let usable = |k: &TicketKeyMaterial| matches!(k.aes.len(), 16 | 32) && !k.hmac.is_empty();
    let cipher = |aes: &[u8]| {
        if aes.len() == 16 {
            unsafe { openssl_sys::EVP_aes_128_cbc() }
        } else {
            unsafe { openssl_sys::EVP_aes_256_cbc() }
        }
    };
    if enc == 1 {
        let Ok(Some(k)) = catch_unwind(AssertUnwindSafe(|| K::encrypting(ssl))) else {
            // No key: no ticket (a full handshake next time).
            return 0;
        };
        if !usable(&k) {
            return 0;
        }
        // SAFETY: buffers as above (the name is ours to write when
        // encrypting); the contexts are OpenSSL's to use.
        unsafe {
            if openssl_sys::RAND_bytes(iv, 16) != 1 {
                return -1;
            }
            std::ptr::copy_nonoverlapping(k.name.as_ptr(), key_name, 16);
            if openssl_sys::EVP_EncryptInit_ex(
                cctx,
                cipher(&k.aes),
                std::ptr::null_mut(),
                k.aes.as_ptr(),
                iv,
            ) != 1
                || openssl_sys::HMAC_Init_ex(
                    hctx,
                    k.hmac.as_ptr().cast(),
                    k.hmac.len() as c_int,
                    openssl_sys::EVP_sha256(),
                    std::ptr::null_mut(),
                ) != 1
            {
                return -1;
            }
        }
        return 1;
    }
    let mut wanted = [0u8; 16];
    // SAFETY: OpenSSL passes the ticket's 16-byte key name to read.
    unsafe { std::ptr::copy_nonoverlapping(key_name, wanted.as_mut_ptr(), 16) };
    let Ok(Some(k)) = catch_unwind(AssertUnwindSafe(|| K::decrypting(ssl, &wanted))) else {
        // Unknown key: the ticket is ignored, a full handshake follows.
        return 0;
    };
    if !usable(&k) {
        return 0;
    }
    // SAFETY: as above; the IV is the ticket's, read by OpenSSL.
    unsafe {
        if openssl_sys::HMAC_Init_ex(
            hctx,
            k.hmac.as_ptr().cast(),
            k.hmac.len() as c_int,
            openssl_sys::EVP_sha256(),
            std::ptr::null_mut(),
        ) != 1
            || openssl_sys::EVP_DecryptInit_ex(
                cctx,
                cipher(&k.aes),
                std::ptr::null_mut(),
                k.aes.as_ptr(),
                iv,
            ) != 1
        {
            return -1;
        }
    }
    // 2: valid, and a new ticket follows (under the current key for an
    // older one). Always: TLS 1.3 clients use a ticket once (RFC 8446
    // C.4), and without a new one their next connection is a full
    // handshake; OpenSSL's own keys behave the same.
    2
}

/// Takes ownership of a listening TCP socket handed over by the process
/// this one replaces (`tlsgate run --upgrade`: the descriptors arrive
/// over a Unix socket, `SCM_RIGHTS`). It lives here because turning a
/// descriptor number into an owner is `unsafe`; what the number is
/// (a socket, listening, bound where expected) is checked by the caller.
///
/// Call it at most once per descriptor received: two owners would close
/// it twice.
pub fn adopt_tcp_listener(fd: std::os::fd::RawFd) -> std::io::Result<std::net::TcpListener> {
    use std::os::fd::FromRawFd;
    // A descriptor that is not open in this process would make the owner
    // close a number some other code may open next.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open (checked above) and, per the
    // contract, owned by nobody else in this process.
    Ok(unsafe { std::net::TcpListener::from_raw_fd(fd) })
}
