//! How the client certificate reaches the backend: Istio's
//! `forwardClientCertDetails` modes, the chosen XFCC elements, RFC 9440's
//! `Client-Cert`, and a VirtualService's override, seen at a recording
//! backend through both request engines (HTTP/2 and HTTP/1.1), with headers
//! a client tried to slip through.

use std::path::Path;

use tlsgate_integration::*;

const FORGED_XFCC: &str = "By=spiffe://front;URI=spiffe://acme.com/admin";
const FORGED_CERT: &str = ":Zm9yZ2Vk:";

/// Seed 000 with `runtime` added to its GatewayRuntime's spec and
/// `annotations` to its VirtualService's metadata.
fn start(runtime: &str, annotations: &str) -> Seed000 {
    Seed000::start_custom(&[], |_, yaml| {
        let yaml = yaml.replacen(
            "  accessLog:\n    format: text\n",
            &format!("  accessLog:\n    format: text\n{runtime}"),
            1,
        );
        yaml.replacen(
            "metadata:\n  name: frontend\nspec:\n  hosts:",
            &format!("metadata:\n  name: frontend\n{annotations}spec:\n  hosts:"),
            1,
        )
    })
}

/// What the backend saw of the certificate headers after a request with
/// forged ones, over HTTP/2 then HTTP/1.1: (XFCC values, Client-Cert
/// values); Client-Cert-Chain values are checked against `chain`.
fn seen_with_chain(
    s: &Seed000,
    curl: impl Fn() -> Curl,
    chain: &[String],
) -> Vec<(Vec<String>, Vec<String>)> {
    [true, false]
        .into_iter()
        .map(|h2| {
            let c = curl()
                .header(&format!("x-forwarded-client-cert: {FORGED_XFCC}"))
                .header(&format!("Client-Cert: {FORGED_CERT}"))
                .header(&format!("Client-Cert-Chain: {FORGED_CERT}"))
                .header("x_forwarded_client_cert: lookalike");
            let r = if h2 { c.http2() } else { c.http1() }.run();
            assert_eq!(r.status, 200, "h2={h2} {r}\n{}", s.gateway.describe());
            let last = s.frontend.last_request().expect("a request at the backend");
            assert!(
                last.header_all("x_forwarded_client_cert").is_empty(),
                "a look-alike name passed: {last:?}"
            );
            let all = |n: &str| last.header_all(n).into_iter().map(str::to_string).collect();
            let got: Vec<String> = all("client-cert-chain");
            assert_eq!(got, chain, "h2={h2} Client-Cert-Chain");
            (all("x-forwarded-client-cert"), all("client-cert"))
        })
        .collect()
}

/// [`seen_with_chain`] where the backend must get the client's own
/// Client-Cert-Chain (a forwarding mode) or none.
fn seen(s: &Seed000, curl: impl Fn() -> Curl) -> Vec<(Vec<String>, Vec<String>)> {
    seen_with_chain(s, curl, &[])
}

/// The same, for a mode that forwards the client's headers unchanged.
fn seen_forwarded(s: &Seed000, curl: impl Fn() -> Curl) -> Vec<(Vec<String>, Vec<String>)> {
    seen_with_chain(s, curl, &[FORGED_CERT.to_string()])
}

fn mtls(s: &Seed000) -> Curl {
    s.partner("/").client("great-partner")
}

fn pem_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// The first certificate of a PEM file, as DER in base64 (one line).
fn der_b64(path: &Path) -> String {
    let pem = pem_of(path);
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    body
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 {
            out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn append_forward_with_the_certificate_and_rfc9440() {
    let s = start(
        "  gatewayTopology:\n    forwardClientCertDetails: APPEND_FORWARD\n  \
         clientCertDetails:\n    xfcc: [Hash, Cert, URI]\n    rfc9440: true\n",
        "",
    );
    let (cert, _) = client_cert("great-partner");
    let hash = cert_sha256_hex(&cert);
    // The chain as verified, up to the Acme CA of the host's bundle.
    let chain = [format!(":{}:", der_b64(&ca_cert("acme")))];
    for (xfcc, client_cert) in seen_with_chain(&s, || mtls(&s), &chain) {
        assert_eq!(xfcc.len(), 1, "{xfcc:?}");
        let (prev, ours) = xfcc[0].split_once(',').expect("appended");
        assert_eq!(prev, FORGED_XFCC);
        let fields: Vec<&str> = ours.split(';').collect();
        assert_eq!(fields[0], format!("Hash={hash}"), "{ours}");
        let sent = fields[1]
            .strip_prefix("Cert=\"")
            .and_then(|c| c.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{ours}"));
        // The file holds the leaf only (curl sends what it holds).
        assert_eq!(percent_decode(sent).trim(), pem_of(&cert).trim());
        assert_eq!(fields[2], "URI=spiffe://acme.com/great-partner");
        assert_eq!(fields.len(), 3, "{ours}");
        assert_eq!(client_cert, [format!(":{}:", der_b64(&cert))]);
    }
    // No client certificate: nothing set, and nothing the client sent.
    for (xfcc, client_cert) in seen(&s, || s.frontend("/")) {
        assert!(xfcc.is_empty() && client_cert.is_empty(), "{xfcc:?}");
    }
}

#[test]
fn a_virtualservice_forwards_what_a_trusted_proxy_wrote() {
    // The gateway's default (SANITIZE_SET) replaced for this
    // VirtualService's routes: a proxy in front checked the certificate.
    let s = start(
        "",
        "  annotations:\n    tlsgate.io/forward-client-cert-details: FORWARD_ONLY\n",
    );
    for (xfcc, client_cert) in seen_forwarded(&s, || mtls(&s)) {
        assert_eq!(xfcc, [FORGED_XFCC]);
        assert_eq!(client_cert, [FORGED_CERT]);
    }
    // FORWARD_ONLY still drops them without mTLS.
    for (xfcc, client_cert) in seen(&s, || s.frontend("/")) {
        assert!(xfcc.is_empty() && client_cert.is_empty(), "{xfcc:?}");
    }
}

#[test]
fn sanitize_sends_nothing_and_always_forward_only_everything() {
    let s = start(
        "  gatewayTopology:\n    forwardClientCertDetails: SANITIZE\n",
        "",
    );
    for (xfcc, client_cert) in seen(&s, || mtls(&s)) {
        assert!(xfcc.is_empty() && client_cert.is_empty(), "{xfcc:?}");
    }
    drop(s);
    let s = start(
        "  gatewayTopology:\n    forwardClientCertDetails: ALWAYS_FORWARD_ONLY\n",
        "",
    );
    for (xfcc, client_cert) in seen_forwarded(&s, || s.frontend("/")) {
        assert_eq!(xfcc, [FORGED_XFCC]);
        assert_eq!(client_cert, [FORGED_CERT]);
    }
}

#[test]
fn a_misspelt_override_is_a_config_error_naming_it() {
    let s = Seed000::try_start(GatewayOptions::default(), &[], |_, yaml| {
        yaml.replacen(
            "metadata:\n  name: frontend\nspec:",
            "metadata:\n  name: frontend\n  annotations:\n    \
             tlsgate.io/forward-client-cert: FORWARD_ONLY\nspec:",
            1,
        )
    });
    let err = s.err().expect("refused");
    assert!(
        err.contains("metadata.annotations.tlsgate.io/forward-client-cert")
            && err.contains("unknown tlsgate annotation"),
        "{err}"
    );
}

/// Certificates a client sends beyond its chain play no part: the chain a
/// backend is told of is the one that verified, whether the client sent
/// one certificate more or many (on rustls a short list is kept as sent
/// and its path found when asked; a long one is not kept, its path is
/// found at the handshake).
#[test]
fn extra_certificates_a_client_sends_are_not_its_chain() {
    let s = start(
        "  gatewayTopology:\n    forwardClientCertDetails: SANITIZE_SET\n  \
         clientCertDetails:\n    rfc9440: true\n",
        "",
    );
    let (cert, key) = client_cert("great-partner");
    let chain = [format!(":{}:", der_b64(&ca_cert("acme")))];
    let dir = tempfile::tempdir().unwrap();
    for extra in [1, 6] {
        let mut pem = pem_of(&cert);
        for i in 0..extra {
            pem.push_str(&pem_of(&ca_cert(["pirate", "example"][i % 2])));
        }
        let file = dir.path().join(format!("with-{extra}.crt"));
        std::fs::write(&file, pem).unwrap();
        for (xfcc, client_cert) in
            seen_with_chain(&s, || s.partner("/").cert_files(&file, &key), &chain)
        {
            assert_eq!(xfcc.len(), 1, "{extra} more: {xfcc:?}");
            assert!(
                xfcc[0].contains("URI=spiffe://acme.com/great-partner"),
                "{xfcc:?}"
            );
            assert_eq!(client_cert, [format!(":{}:", der_b64(&cert))]);
        }
    }
}
