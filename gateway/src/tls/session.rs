//! Session resumption bound to the server policy.
//!
//! OpenSSL decides on resumption before the certificate callback, and skips
//! it on a resumed session, so a ticket from a SIMPLE host would otherwise
//! resume on a MUTUAL one. TLS 1.2 sessions carry the session id context we
//! set per connection (a mismatch is a cache miss). TLS 1.3 tickets do not
//! check it, so each ticket carries the policy key as app data and the
//! decrypt callback refuses a ticket whose key differs from the policy the
//! ClientHello callback chose for this connection.

use libc::{c_int, c_uchar, c_void, size_t};
use openssl::ssl::{SslContextBuilder, SslRef};

use super::accept::conn_state_index;
use super::ffi;

pub(crate) fn install(ctx: &mut SslContextBuilder) -> Result<(), openssl::error::ErrorStack> {
    // SAFETY: the callbacks are plain functions; `arg` is unused.
    let ok = unsafe {
        ffi::SSL_CTX_set_session_ticket_cb(
            ctx.as_ptr(),
            Some(on_ticket_new),
            Some(on_ticket_decrypted),
            std::ptr::null_mut(),
        )
    };
    if ok != 1 {
        return Err(openssl::error::ErrorStack::get());
    }
    Ok(())
}

fn policy_key(ssl: *const openssl_sys::SSL) -> Option<[u8; 32]> {
    // SAFETY: OpenSSL passes a live SSL to its callbacks.
    let ssl = unsafe { <SslRef as foreign_types::ForeignTypeRef>::from_ptr(ssl as *mut _) };
    let state = ssl.ex_data(conn_state_index())?;
    Some(state.policy.as_ref()?.key)
}

unsafe extern "C" fn on_ticket_new(s: *mut openssl_sys::SSL, _arg: *mut c_void) -> c_int {
    let Some(key) = policy_key(s) else {
        // No policy means no handshake we would accept: mint nothing usable.
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

unsafe extern "C" fn on_ticket_decrypted(
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
    let Some(key) = policy_key(s) else {
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
    if !same {
        return ffi::SSL_TICKET_RETURN_IGNORE_RENEW;
    }
    if status == ffi::SSL_TICKET_SUCCESS {
        ffi::SSL_TICKET_RETURN_USE
    } else {
        ffi::SSL_TICKET_RETURN_USE_RENEW
    }
}
