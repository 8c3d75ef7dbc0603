//! Why an upstream could not be reached, in words an operator can act on.
//!
//! Pingora reports TLS failures as an error type plus OpenSSL's text. The
//! side that detects a problem names it differently from the side that is
//! told: when *we* reject the upstream's certificate, OpenSSL says
//! "certificate verify failed"; when the *upstream* rejects ours, we receive
//! its alert ("alert unknown ca", "alert certificate required", "alert bad
//! certificate"), during the handshake with TLS 1.2 and on the first read
//! with TLS 1.3. Name mismatches are found by our own check (see
//! `origination.rs`) and recorded directly.

use std::fmt;

use pingora_error::{Error, ErrorType};

use crate::metrics::metrics;

/// A reason class, as logged and as the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The upstream certificate does not chain to the CA we trust.
    UnknownCa,
    /// The upstream certificate is otherwise invalid (expired, not yet valid).
    BadCertificate,
    /// The upstream certificate carries none of the expected names.
    SanMismatch,
    /// The upstream refused our client certificate (or wanted one).
    ClientCertRejected,
    /// Another TLS handshake failure (protocol, cipher, closed mid-handshake).
    Handshake,
    /// TCP connect refused, unreachable or timed out.
    Connect,
    /// The upstream host name does not resolve.
    Dns,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownCa => "upstream_unknown_ca",
            Reason::BadCertificate => "upstream_bad_certificate",
            Reason::SanMismatch => "upstream_san_mismatch",
            Reason::ClientCertRejected => "upstream_client_cert_rejected",
            Reason::Handshake => "upstream_tls_handshake",
            Reason::Connect => "upstream_connect",
            Reason::Dns => "upstream_dns",
        }
    }

    /// 503 when nothing answered, 502 when something answered wrongly.
    pub fn status(self) -> u16 {
        match self {
            Reason::Connect | Reason::Dns => 503,
            _ => 502,
        }
    }

    /// Retrying cannot fix a certificate or a name.
    pub fn retryable(self) -> bool {
        matches!(self, Reason::Connect | Reason::Handshake)
    }

    fn explain(self) -> &'static str {
        match self {
            Reason::UnknownCa => "the upstream certificate is not signed by a trusted CA",
            Reason::BadCertificate => "the upstream certificate is not valid",
            Reason::SanMismatch => "the upstream certificate does not name the expected host",
            Reason::ClientCertRejected => "the upstream rejected our client certificate",
            Reason::Handshake => "the TLS handshake with the upstream failed",
            Reason::Connect => "cannot connect to the upstream",
            Reason::Dns => "cannot resolve the upstream host",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure with the detail worth putting in the body.
#[derive(Debug, Clone)]
pub struct Failure {
    pub reason: Reason,
    pub detail: String,
}

impl Failure {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Failure {
            reason,
            detail: detail.into(),
        }
    }

    /// The response body: reason class, destination, what to look at.
    pub fn body(&self, destination: &str) -> String {
        let mut b = format!(
            "{} ({}) for {destination}",
            self.reason.explain(),
            self.reason
        );
        if !self.detail.is_empty() {
            b.push_str(": ");
            b.push_str(&self.detail);
        }
        b.push('\n');
        b
    }

    /// Counts and logs the failure once per request.
    pub fn record(&self, destination: &str, upstream: &str, host: &str, error: &Error) {
        metrics()
            .upstream_tls_failures
            .with_label_values(&[destination, self.reason.as_str()])
            .inc();
        tracing::warn!(
            reason = self.reason.as_str(),
            destination,
            upstream,
            host,
            detail = %self.detail,
            error = %error,
            "upstream failure"
        );
    }
}

/// The reason class of a Pingora upstream error, if it is one we explain.
pub fn classify(e: &Error) -> Option<Reason> {
    let text = e.to_string().to_ascii_lowercase();
    classify_parts(e.etype(), &text)
}

fn classify_parts(etype: &ErrorType, text: &str) -> Option<Reason> {
    const REJECTED: [&str; 7] = [
        "alert unknown ca",
        "alert certificate required",
        "alert bad certificate",
        "alert certificate unknown",
        "alert certificate revoked",
        "alert certificate expired",
        "alert unsupported certificate",
    ];
    if REJECTED.iter().any(|a| text.contains(a)) {
        return Some(Reason::ClientCertRejected);
    }
    if text.contains("certificate verify failed") || *etype == ErrorType::InvalidCert {
        let invalid = ["certificate has expired", "not yet valid"];
        if invalid.iter().any(|s| text.contains(s)) {
            return Some(Reason::BadCertificate);
        }
        if text.contains("hostname mismatch") {
            return Some(Reason::SanMismatch);
        }
        return Some(Reason::UnknownCa);
    }
    match etype {
        ErrorType::ConnectTimedout
        | ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError => Some(Reason::Connect),
        ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::HandshakeError => Some(Reason::Handshake),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(etype: ErrorType, text: &str) -> Option<&'static str> {
        classify_parts(&etype, &text.to_ascii_lowercase()).map(Reason::as_str)
    }

    #[test]
    fn our_verdict_on_the_upstream_certificate() {
        let verify = " TLSHandshakeFailure context: TLS connect() failed: error:0A000086:SSL \
                      routines:tls_post_process_server_certificate:certificate verify failed";
        assert_eq!(
            class(ErrorType::InvalidCert, verify),
            Some("upstream_unknown_ca")
        );
        assert_eq!(
            class(ErrorType::TLSHandshakeFailure, verify),
            Some("upstream_unknown_ca")
        );
        let expired = format!("{verify} (Verify error:certificate has expired)");
        assert_eq!(
            class(ErrorType::InvalidCert, &expired),
            Some("upstream_bad_certificate")
        );
        let mismatch = format!("{verify} (Verify error:hostname mismatch)");
        assert_eq!(
            class(ErrorType::InvalidCert, &mismatch),
            Some("upstream_san_mismatch")
        );
    }

    #[test]
    fn the_upstream_verdict_on_our_certificate() {
        for alert in [
            "error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca",
            "ssl3_read_bytes:tlsv13 alert certificate required:ssl/record/rec_layer_s3.c",
            "SSL routines:ssl3_read_bytes:sslv3 alert bad certificate",
        ] {
            // TLS 1.2: during the handshake; TLS 1.3: on the first read.
            assert_eq!(
                class(ErrorType::TLSHandshakeFailure, alert),
                Some("upstream_client_cert_rejected")
            );
            assert_eq!(
                class(ErrorType::ReadError, alert),
                Some("upstream_client_cert_rejected")
            );
        }
    }

    #[test]
    fn connect_handshake_and_the_rest() {
        assert_eq!(
            class(
                ErrorType::ConnectRefused,
                "Connection refused (os error 111)"
            ),
            Some("upstream_connect")
        );
        assert_eq!(
            class(ErrorType::ConnectTimedout, "timeout 10s"),
            Some("upstream_connect")
        );
        assert_eq!(
            class(ErrorType::TLSHandshakeFailure, "wrong version number"),
            Some("upstream_tls_handshake")
        );
        assert_eq!(class(ErrorType::ReadTimedout, "read timeout"), None);
        assert_eq!(class(ErrorType::HTTPStatus(500), ""), None);
    }

    #[test]
    fn statuses_retries_and_bodies() {
        assert_eq!(Reason::Connect.status(), 503);
        assert_eq!(Reason::Dns.status(), 503);
        assert_eq!(Reason::UnknownCa.status(), 502);
        assert!(!Reason::SanMismatch.retryable());
        assert!(Reason::Connect.retryable());
        let body = Failure::new(Reason::Dns, "cannot resolve 'x.test'").body("x.test:80");
        assert_eq!(
            body,
            "cannot resolve the upstream host (upstream_dns) for x.test:80: \
             cannot resolve 'x.test'\n"
        );
    }
}
