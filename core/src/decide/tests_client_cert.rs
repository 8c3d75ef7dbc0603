//! What a forwarded request carries of the client's certificate, per
//! `forwardClientCertDetails` mode, over mTLS and plaintext, with headers a
//! client tried to slip through; and a route's override of the gateway's.

use std::sync::Arc;

use super::tests::{fixture, run, status, tls_conn, Map, World, YAML};
use super::*;
use crate::config::client_cert::{ClientCertOverride, ForwardClientCert, XfccElements};
use crate::credentials::client_identity;
use crate::tls::{ConnInfo, PeerCerts};

/// The world of `tests.rs` with `topology` as the GatewayRuntime's
/// `gatewayTopology` and `details` as its `clientCertDetails`.
fn world_with(topology: &str, details: &str) -> World {
    let f = fixture();
    let rt = format!(
        "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {{name: rt}}\n\
         spec: {{gatewayTopology: {topology}, clientCertDetails: {details}}}\n---\n"
    );
    let model = f.model(&format!("{rt}{YAML}")).unwrap();
    let rt = Arc::new(Runtime::build(model, 1).unwrap());
    World { _f: f, rt }
}

/// A connection to `mutual.test` that presented `f`'s client certificate
/// with the CA after it, as the TLS layer leaves it.
pub(super) fn mtls(w: &World) -> ConnInfo {
    let mut c = tls_conn(&w.rt, "mutual.test");
    let issued = w._f.client("partner", "spiffe://acme.com/partner");
    let id = client_identity(&issued.cert);
    let certs = PeerCerts::new(issued.cert.clone(), vec![w._f.ca_cert()]);
    let e = w.rt.model.runtime.client_cert.xfcc;
    c.xfcc = Some((e, id.xfcc(e, &[], Some(&certs))));
    c.client = Some(id);
    c.peer_certs = Some(certs);
    c
}

/// What the backend gets of the certificate headers: (kept client
/// headers, added headers), for a client that sent forged ones.
fn outcome(
    w: &World,
    conn: Option<&ConnInfo>,
    target: &str,
) -> (Vec<String>, Vec<(String, String)>) {
    let forged = Map(vec![
        (
            "x-forwarded-client-cert",
            "By=spiffe://front;URI=spiffe://forged",
        ),
        ("X_Forwarded_Client_Cert", "forged"),
        ("client-cert", ":Zm9yZ2Vk:"),
        ("client_cert_chain", ":Zm9yZ2Vk:"),
    ]);
    let (tls, port, host) = match conn {
        Some(c) => (Tls::Terminated(c), 8443, "mutual.test"),
        None => (Tls::Plain, 8080, "plain.test"),
    };
    let d = run(&w.rt, tls, port, "GET", target, Some(host), forged);
    let Action::Forward(plan) = &d.action else {
        panic!("{}", status(&d))
    };
    let kept = [
        "x-forwarded-client-cert",
        "X_Forwarded_Client_Cert",
        "client-cert",
        "client_cert_chain",
    ]
    .iter()
    .filter(|n| !plan.edits.drops(n))
    .map(|n| n.to_string())
    .collect();
    let added = plan
        .edits
        .add
        .iter()
        .filter(|(n, _)| n.contains("cert"))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    (kept, added)
}

#[test]
fn each_mode_sets_appends_forwards_or_drops_as_envoy_does() {
    for (mode, over_mtls, over_plain) in [
        ("SANITIZE", "", ""),
        ("FORWARD_ONLY", "keep", ""),
        ("APPEND_FORWARD", "append", ""),
        ("SANITIZE_SET", "set", ""),
        ("ALWAYS_FORWARD_ONLY", "keep", "keep"),
        // Istio's "not set": the gateway default, SANITIZE_SET.
        ("UNDEFINED", "set", ""),
    ] {
        let w = world_with(&format!("{{forwardClientCertDetails: {mode}}}"), "{}");
        let conn = mtls(&w);
        let ours = conn.xfcc.as_ref().unwrap().1.clone();
        assert!(ours.starts_with("Hash=") && ours.contains("URI=spiffe://acme.com/partner"));
        for (c, want) in [(Some(&conn), over_mtls), (None, over_plain)] {
            let (kept, added) = outcome(&w, c, "/");
            let label = format!("{mode} over {}", if c.is_some() { "mTLS" } else { "HTTP" });
            // A `_` look-alike never passes: the proxy in front checked
            // the real name only.
            let keep = ["x-forwarded-client-cert", "client-cert"];
            match want {
                "keep" => {
                    assert_eq!(kept, keep, "{label}");
                    assert!(added.is_empty(), "{label}: {added:?}");
                }
                "" => {
                    assert!(kept.is_empty(), "{label}: {kept:?}");
                    assert!(added.is_empty(), "{label}: {added:?}");
                }
                "set" | "append" => {
                    assert!(kept.is_empty(), "{label}: {kept:?}");
                    let value = if want == "set" {
                        ours.clone()
                    } else {
                        format!("By=spiffe://front;URI=spiffe://forged,{ours}")
                    };
                    assert_eq!(
                        added,
                        [("x-forwarded-client-cert".to_string(), value)],
                        "{label}"
                    );
                }
                _ => unreachable!(),
            }
        }
    }
}

#[test]
fn rfc9440_headers_carry_the_der_of_the_leaf_and_what_followed_it() {
    let w = world_with("{}", "{xfcc: [Hash, Cert], rfc9440: true}");
    let conn = mtls(&w);
    let (_, added) = outcome(&w, Some(&conn), "/");
    let b64 = |c: &openssl::x509::X509| openssl::base64::encode_block(&c.to_der().unwrap());
    let certs = conn.peer_certs.as_ref().unwrap();
    let names: Vec<&str> = added.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "x-forwarded-client-cert",
            "client-cert",
            "client-cert-chain"
        ]
    );
    assert_eq!(added[1].1, format!(":{}:", b64(&certs.leaf().unwrap())));
    assert_eq!(added[2].1, format!(":{}:", b64(&certs.chain()[0])));
    let xfcc = &added[0].1;
    assert!(xfcc.starts_with("Hash=") && xfcc.contains(";Cert=\"-----BEGIN%20CERTIFICATE"));
    assert!(
        !xfcc.contains("Subject=") && !xfcc.contains("URI="),
        "{xfcc}"
    );
    // A resumed session keeps no chain: no Client-Cert-Chain, not an
    // empty one.
    let mut resumed = mtls(&w);
    let leaf = resumed.peer_certs.as_ref().unwrap().leaf().unwrap();
    resumed.peer_certs = Some(PeerCerts::new(leaf, Vec::new()));
    let (_, added) = outcome(&w, Some(&resumed), "/");
    let names: Vec<&str> = added.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x-forwarded-client-cert", "client-cert"]);
}

#[test]
fn a_routes_override_replaces_the_gateways_setting_field_by_field() {
    let f = fixture();
    let mut model = f.model(YAML).unwrap();
    let vs = &mut model.virtual_services[0];
    let api = vs.http.iter_mut().find(|r| r.name == "api").unwrap();
    api.client_cert = Some(ClientCertOverride {
        mode: Some(ForwardClientCert::AppendForward),
        xfcc: Some(XfccElements {
            uri: true,
            ..XfccElements::NONE
        }),
        rfc9440: None,
    });
    let w = World {
        rt: Arc::new(Runtime::build(model, 1).unwrap()),
        _f: f,
    };
    let conn = mtls(&w);
    let (_, added) = outcome(&w, Some(&conn), "/api/x");
    assert_eq!(
        added,
        [(
            "x-forwarded-client-cert".to_string(),
            "By=spiffe://front;URI=spiffe://forged,URI=spiffe://acme.com/partner".to_string()
        )]
    );
    // Other routes keep the gateway's SANITIZE_SET with its elements.
    let (_, added) = outcome(&w, Some(&conn), "/other");
    assert_eq!(added[0].1, conn.xfcc.as_ref().unwrap().1);
}

#[test]
fn append_forward_joins_every_line_the_proxy_in_front_wrote() {
    let w = world_with("{forwardClientCertDetails: APPEND_FORWARD}", "{}");
    let conn = mtls(&w);
    let ours = conn.xfcc.as_ref().unwrap().1.clone();
    let headers = Map(vec![
        ("x-forwarded-client-cert", ""),
        ("x-forwarded-client-cert", "By=spiffe://a;Hash=1"),
        ("X-Forwarded-Client-Cert", " By=spiffe://b;Hash=2 "),
    ]);
    let d = run(
        &w.rt,
        Tls::Terminated(&conn),
        8443,
        "GET",
        "/",
        Some("mutual.test"),
        headers,
    );
    let Action::Forward(plan) = &d.action else {
        panic!("{}", status(&d))
    };
    let xfcc: Vec<&str> = plan
        .edits
        .add
        .iter()
        .filter(|(n, _)| n == "x-forwarded-client-cert")
        .map(|(_, v)| v.as_ref())
        .collect();
    assert_eq!(
        xfcc,
        [format!("By=spiffe://a;Hash=1,By=spiffe://b;Hash=2,{ours}")]
    );
    assert!(plan.edits.drops("x-forwarded-client-cert"));
}
