//! A connection made before a CRL changed: its next request is re-checked
//! against the new CRL, and sent away (421) when its certificate is
//! revoked, so it reconnects and meets the CRL at the handshake.

use std::sync::Arc;

use super::tests::{fixture, run, status, Map, World, YAML};
use super::tests_client_cert::mtls;
use super::*;
use crate::certgen::make_crl;
use crate::revocation::{crl_epoch, slot, CrlIndex};

#[test]
fn a_connection_made_before_a_revocation_is_sent_away_at_its_next_request() {
    let f = fixture();
    let url = "http://127.0.0.1:1/decide-tests.crl";
    let rt = format!(
        "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {{name: rt}}\n\
         spec: {{revocation: {{credentials: {{mutual: {{crlUrls: [\"{url}\"]}}}}}}}}\n---\n"
    );
    let model = f.model(&format!("{rt}{YAML}")).unwrap();
    let rt = Arc::new(Runtime::build(model, 1).unwrap());
    let w = World { _f: f, rt };
    let s = slot(url);
    let now = 1_800_000_000;
    let publish = |revoked: &[&openssl::x509::X509Ref]| {
        let crl = make_crl(w._f.ca(), revoked, 30).unwrap();
        let idx = CrlIndex::fetched(&crl, &[w._f.ca_cert()], now + 60).unwrap();
        s.publish(Arc::new(idx));
    };
    publish(&[]);
    let (alice, bob) = (mtls(&w), mtls(&w));
    for c in [&alice, &bob] {
        c.crl_checked
            .store(crl_epoch(), std::sync::atomic::Ordering::Relaxed);
    }
    let get = |c: &crate::tls::ConnInfo| {
        status(&run(
            &w.rt,
            Tls::Terminated(c),
            8443,
            "GET",
            "/",
            Some("mutual.test"),
            Map(vec![]),
        ))
    };
    assert!(get(&alice).starts_with("forward"), "{}", get(&alice));
    publish(&[&alice.peer_certs.as_ref().unwrap().leaf().unwrap()]);
    assert_eq!(get(&alice), "421", "revoked since its handshake");
    assert_eq!(get(&alice), "421", "and for good");
    assert!(
        get(&bob).starts_with("forward"),
        "not listed: {}",
        get(&bob)
    );
}
