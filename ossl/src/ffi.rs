//! The OpenSSL 3 functions and constants that openssl-sys does not bind.
//!
//! They resolve against the same statically linked libssl that Pingora's
//! vendored OpenSSL provides (Pingora declares `SSL_set_cert_cb` the same way).

use libc::{c_char, c_int, c_uchar, c_uint, c_void, size_t};
use openssl_sys::{SSL, SSL_CTX, SSL_SESSION};

pub const SSL_CB_EXIT: c_int = 0x02;
pub const SSL_CB_WRITE: c_int = 0x08;
pub const SSL_CB_ALERT: c_int = 0x4000;
pub const SSL_MAX_SID_CTX_LENGTH: usize = 32;

pub const SSL_TICKET_SUCCESS: c_int = 5;
pub const SSL_TICKET_SUCCESS_RENEW: c_int = 6;
pub const SSL_TICKET_RETURN_IGNORE_RENEW: c_int = 2;
pub const SSL_TICKET_RETURN_USE: c_int = 3;
pub const SSL_TICKET_RETURN_USE_RENEW: c_int = 4;

pub type InfoCb = unsafe extern "C" fn(ssl: *const SSL, where_: c_int, ret: c_int);
pub type TicketGenCb = unsafe extern "C" fn(s: *mut SSL, arg: *mut c_void) -> c_int;
pub type TicketDecCb = unsafe extern "C" fn(
    s: *mut SSL,
    ss: *mut SSL_SESSION,
    keyname: *const c_uchar,
    keyname_len: size_t,
    status: c_int,
    arg: *mut c_void,
) -> c_int;

pub type MallocFn = unsafe extern "C" fn(size_t, *const c_char, c_int) -> *mut c_void;
pub type ReallocFn = unsafe extern "C" fn(*mut c_void, size_t, *const c_char, c_int) -> *mut c_void;
pub type FreeFn = unsafe extern "C" fn(*mut c_void, *const c_char, c_int);

/// `SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB`.
pub const SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB: c_int = 72;

pub type TicketKeyCb = unsafe extern "C" fn(
    s: *mut SSL,
    key_name: *mut c_uchar,
    iv: *mut c_uchar,
    ctx: *mut openssl_sys::EVP_CIPHER_CTX,
    hctx: *mut openssl_sys::HMAC_CTX,
    enc: c_int,
) -> c_int;

extern "C" {
    pub fn SSL_SESSION_get0_peer(s: *mut SSL_SESSION) -> *mut openssl_sys::X509;
    pub fn SSL_SESSION_get_timeout(s: *const SSL_SESSION) -> libc::c_long;
    pub fn SSL_SESSION_set_timeout(s: *mut SSL_SESSION, t: libc::c_long) -> libc::c_long;
    pub fn SSL_CTX_callback_ctrl(
        ctx: *mut SSL_CTX,
        cmd: c_int,
        fp: Option<unsafe extern "C" fn()>,
    ) -> libc::c_long;
    pub fn OCSP_basic_add1_status(
        rsp: *mut openssl_sys::OCSP_BASICRESP,
        cid: *mut openssl_sys::OCSP_CERTID,
        status: c_int,
        reason: c_int,
        revtime: *mut openssl_sys::ASN1_TIME,
        thisupd: *mut openssl_sys::ASN1_TIME,
        nextupd: *mut openssl_sys::ASN1_TIME,
    ) -> *mut c_void;
    pub fn OCSP_basic_sign(
        brsp: *mut openssl_sys::OCSP_BASICRESP,
        signer: *mut openssl_sys::X509,
        key: *mut openssl_sys::EVP_PKEY,
        dgst: *const openssl_sys::EVP_MD,
        certs: *mut openssl_sys::stack_st_X509,
        flags: libc::c_ulong,
    ) -> c_int;
    pub fn CRYPTO_set_mem_functions(m: MallocFn, r: ReallocFn, f: FreeFn) -> c_int;
    pub fn ERR_peek_error() -> libc::c_ulong;
    pub fn SSL_renegotiate(ssl: *mut SSL) -> c_int;
    pub fn SSL_set_read_ahead(ssl: *mut SSL, yes: c_int);
    pub fn SSL_set_session_id_context(
        ssl: *mut SSL,
        sid_ctx: *const c_uchar,
        sid_ctx_len: c_uint,
    ) -> c_int;
    pub fn SSL_CTX_set_info_callback(ctx: *mut SSL_CTX, cb: Option<InfoCb>);
    pub fn SSL_CTX_set_session_ticket_cb(
        ctx: *mut SSL_CTX,
        gen_cb: Option<TicketGenCb>,
        dec_cb: Option<TicketDecCb>,
        arg: *mut c_void,
    ) -> c_int;
    pub fn SSL_SESSION_set1_ticket_appdata(
        ss: *mut SSL_SESSION,
        data: *const c_void,
        len: size_t,
    ) -> c_int;
    pub fn SSL_SESSION_get0_ticket_appdata(
        ss: *mut SSL_SESSION,
        data: *mut *mut c_void,
        len: *mut size_t,
    ) -> c_int;
}
