//! What the backend is told of the client's certificate: the gateway's
//! `forwardClientCertDetails` with the route's override, turned into this
//! hop's header values for [`super::Edits`] to set, append or leave alone.

use std::borrow::Cow;

use crate::config::client_cert::{ClientCertForwarding, ForwardClientCert};
use crate::config::HttpRoute;
use crate::runtime::Runtime;
use crate::tls::{ConnInfo, ServerPolicy};

/// The client-certificate headers of one forwarded request.
#[derive(Debug, Clone)]
pub struct CertHeaders<'a> {
    pub mode: ForwardClientCert,
    /// The connection presented a verified client certificate.
    pub mtls: bool,
    /// This hop's XFCC element, when the mode writes one.
    pub xfcc: Option<Cow<'a, str>>,
    /// RFC 9440 `Client-Cert`: the leaf's DER as a structured-field byte
    /// sequence (`:base64:`).
    pub client_cert: Option<String>,
    /// RFC 9440 `Client-Cert-Chain`: what the client sent after its leaf.
    pub client_cert_chain: Option<String>,
}

impl CertHeaders<'_> {
    /// Nothing set, the client's copies dropped (a connection without a
    /// verified certificate under any mode but `ALWAYS_FORWARD_ONLY`).
    pub fn sanitize() -> CertHeaders<'static> {
        CertHeaders {
            mode: ForwardClientCert::Sanitize,
            mtls: false,
            xfcc: None,
            client_cert: None,
            client_cert_chain: None,
        }
    }

    /// `SANITIZE_SET` with this hop's XFCC element `xfcc` (none: no
    /// verified client certificate).
    pub fn sanitize_set(xfcc: Option<&str>) -> CertHeaders<'_> {
        CertHeaders {
            mode: ForwardClientCert::SanitizeSet,
            mtls: xfcc.is_some(),
            xfcc: xfcc.map(Cow::Borrowed),
            ..CertHeaders::sanitize()
        }
    }

    /// The client's own certificate headers go on unchanged.
    pub fn forwards_client_headers(&self) -> bool {
        self.mode.forwards_client_headers(self.mtls)
    }
}

/// The forwarding that applies to a request on `route`: the route's
/// VirtualService override over the gateway's setting.
pub fn forwarding(rt: &Runtime, route: Option<&HttpRoute>) -> ClientCertForwarding {
    let base = rt.model.runtime.client_cert;
    route
        .and_then(|r| r.client_cert)
        .map_or(base, |o| o.over(base))
}

/// This hop's values under `fwd` for a request on a connection with
/// `info` (`None`: plaintext).
pub fn cert_headers(fwd: ClientCertForwarding, info: Option<&ConnInfo>) -> CertHeaders<'_> {
    let client = info.and_then(|i| Some((i, i.client.as_ref()?)));
    let mut h = CertHeaders {
        mode: fwd.mode,
        mtls: client.is_some(),
        ..CertHeaders::sanitize()
    };
    let writes = matches!(
        fwd.mode,
        ForwardClientCert::SanitizeSet | ForwardClientCert::AppendForward
    );
    let Some((info, id)) = client.filter(|_| writes) else {
        return h;
    };
    h.xfcc = Some(match &info.xfcc {
        Some((e, v)) if *e == fwd.xfcc => Cow::Borrowed(v.as_str()),
        _ => Cow::Owned(id.xfcc(
            fwd.xfcc,
            &by(info.policy.as_deref()),
            info.peer_certs.as_ref(),
        )),
    });
    if fwd.rfc9440 {
        if let Some(c) = &info.peer_certs {
            h.client_cert = c.leaf_der().map(|d| sf_binary(&d));
            let chain: Vec<String> = c
                .chain()
                .iter()
                .filter_map(|x| x.to_der().ok())
                .map(|d| sf_binary(&d))
                .collect();
            h.client_cert_chain = (!chain.is_empty()).then(|| chain.join(", "));
        }
    }
    h
}

/// Envoy's XFCC `By`: the URI SANs of the certificate this gateway served
/// under `policy`.
pub fn by(policy: Option<&ServerPolicy>) -> Vec<&str> {
    policy.map_or_else(Vec::new, |p| {
        p.credential
            .info
            .sans
            .iter()
            .filter_map(|s| s.strip_prefix("URI:"))
            .collect()
    })
}

/// An RFC 8941 byte sequence of the certificate's DER.
/// RFC 9440's structured-field byte sequence of a certificate's DER.
fn sf_binary(der: &[u8]) -> String {
    format!(":{}:", openssl::base64::encode_block(der))
}
