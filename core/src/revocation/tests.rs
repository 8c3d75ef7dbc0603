//! The verdict table: each case a real CA, leaf and signed CRL.

use std::sync::Arc;

use crate::certgen::{
    make_ca, make_crl_window, make_leaf, CaSpec, Issued, LeafSpec, Revoked, Usage,
};

use super::*;
use crate::config::StaleCrl;

fn ca(cn: &str) -> Issued {
    make_ca(&CaSpec::new("Acme", cn)).unwrap()
}

fn leaf(ca: &Issued, cn: &str) -> Issued {
    make_leaf(&LeafSpec::new(Usage::Client, cn), ca).unwrap()
}

fn serial(c: &Issued) -> String {
    c.cert
        .serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string()
}

const NOW: i64 = 1_800_000_000;

/// A CRL of `ca` listing `revoked`, valid from `from` to `to` (relative to NOW).
fn crl(ca: &Issued, revoked: &[&Issued], from: i64, to: i64) -> openssl::x509::X509Crl {
    let entries: Vec<Revoked> = revoked
        .iter()
        .map(|c| Revoked {
            serial: serial(c),
            at: NOW + from,
        })
        .collect();
    make_crl_window(ca, &entries, NOW + from, NOW + to, 1).unwrap()
}

fn index(ca_certs: &[&Issued], c: &openssl::x509::X509Crl) -> Arc<CrlIndex> {
    let cas: Vec<_> = ca_certs.iter().map(|c| c.cert.clone()).collect();
    Arc::new(CrlIndex::new(c, &cas).unwrap())
}

fn revocation(
    files: Vec<Arc<CrlIndex>>,
    stale: StaleCrl,
    leaf_only: bool,
    ca: &Issued,
) -> Revocation {
    Revocation::new(
        RevocationPolicy { stale, leaf_only },
        files,
        Vec::new(),
        vec![ca.cert.clone()],
    )
}

#[test]
fn verdicts() {
    let a = ca("a");
    let other = ca("other");
    let good = leaf(&a, "good");
    let bad = leaf(&a, "bad");
    let fresh = index(&[&a], &crl(&a, &[&bad], -60, 3600));
    let stale = index(&[&a], &crl(&a, &[&bad], -7200, -60));
    let future = index(&[&a], &crl(&a, &[&good], 3600, 7200));
    let others = index(&[&other], &crl(&other, &[], -60, 3600));
    use StaleCrl::{FailClosed, FailOpen};
    use Verdict::*;
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Vec<Arc<CrlIndex>>, StaleCrl, &Issued, Verdict)> = vec![
        (
            "fresh, not listed",
            vec![fresh.clone()],
            FailClosed,
            &good,
            Good,
        ),
        (
            "fresh, listed",
            vec![fresh.clone()],
            FailClosed,
            &bad,
            Revoked,
        ),
        (
            "stale, closed",
            vec![stale.clone()],
            FailClosed,
            &good,
            Stale { accepted: false },
        ),
        (
            "stale, open",
            vec![stale.clone()],
            FailOpen,
            &good,
            Stale { accepted: true },
        ),
        (
            "stale still revokes",
            vec![stale.clone()],
            FailOpen,
            &bad,
            Revoked,
        ),
        (
            "newest wins",
            vec![stale.clone(), fresh.clone()],
            FailClosed,
            &good,
            Good,
        ),
        (
            "future ignored",
            vec![fresh.clone(), future.clone()],
            FailClosed,
            &good,
            Good,
        ),
        (
            "only the future",
            vec![future.clone()],
            FailClosed,
            &good,
            Missing,
        ),
        (
            "another issuer's",
            vec![others.clone()],
            FailClosed,
            &good,
            Missing,
        ),
        ("none configured", vec![], FailClosed, &bad, NotChecked),
    ];
    for (name, files, stale, cert, want) in cases {
        let r = revocation(files, stale, false, &a);
        assert_eq!(r.check(&cert.cert, &a.cert, 0, false, NOW), want, "{name}");
    }
}

#[test]
fn trust_anchor_and_leaf_only() {
    let a = ca("a");
    let self_listed = index(&[&a], &crl(&a, &[&a], -60, 3600));
    let r = revocation(vec![self_listed.clone()], StaleCrl::FailClosed, false, &a);
    // The top of a chain is trusted by being in the bundle.
    assert_eq!(r.check(&a.cert, &a.cert, 1, true, NOW), Verdict::NotChecked);
    // An intermediate (depth 1, not top) is checked unless leafOnly.
    assert_eq!(r.check(&a.cert, &a.cert, 1, false, NOW), Verdict::Revoked);
    let r = revocation(vec![self_listed], StaleCrl::FailClosed, true, &a);
    assert_eq!(
        r.check(&a.cert, &a.cert, 1, false, NOW),
        Verdict::NotChecked
    );
}

#[test]
fn a_crl_signed_by_another_key_is_refused_at_load() {
    let a = ca("a");
    // Same name, another key: an impostor of `a`.
    let impostor = ca("a");
    let c = crl(&impostor, &[], -60, 3600);
    let e = CrlIndex::new(&c, std::slice::from_ref(&a.cert)).unwrap_err();
    assert!(matches!(e, CrlError::BadSignature { .. }), "{e}");
}

#[test]
fn an_intermediate_crl_is_verified_at_first_use_with_the_issuer_the_client_sent() {
    let root = ca("root");
    let inter = ca("inter");
    let impostor = ca("inter");
    let good = leaf(&inter, "good");
    // `inter` is not in the bundle: the signature waits for a handshake.
    let idx = index(&[&root], &crl(&inter, &[&good], -60, 3600));
    let r = revocation(vec![idx.clone()], StaleCrl::FailClosed, false, &root);
    assert_eq!(
        r.check(&good.cert, &impostor.cert, 0, false, NOW),
        Verdict::Missing,
        "an issuer whose key did not sign the CRL gets no use of it"
    );
    assert_eq!(
        r.check(&good.cert, &inter.cert, 0, false, NOW),
        Verdict::Revoked
    );
    assert!(idx.verified_with(&inter.cert.public_key().unwrap()));
    assert_eq!(
        r.check(&good.cert, &impostor.cert, 0, false, NOW),
        Verdict::Missing,
        "the key that verified it is remembered, and only it"
    );
}

#[test]
fn fetched_slots_are_shared_and_checked_with_files() {
    let a = ca("a");
    let bad = leaf(&a, "bad");
    let s = slot("http://127.0.0.1:1/revocation-tests.crl");
    assert!(Arc::ptr_eq(
        &s,
        &slot("http://127.0.0.1:1/revocation-tests.crl")
    ));
    let r = Revocation::new(
        RevocationPolicy {
            stale: StaleCrl::FailClosed,
            leaf_only: false,
        },
        Vec::new(),
        vec![s.clone()],
        vec![a.cert.clone()],
    );
    assert_eq!(r.check(&bad.cert, &a.cert, 0, false, NOW), Verdict::Missing);
    let epoch = crl_epoch();
    s.publish(index(&[&a], &crl(&a, &[&bad], -60, 3600)));
    assert!(crl_epoch() > epoch, "sessions are bound to the epoch");
    assert_eq!(r.check(&bad.cert, &a.cert, 0, false, NOW), Verdict::Revoked);
    assert!(live_slots().iter().any(|l| Arc::ptr_eq(l, &s)));
    drop(r);
    drop(s);
    assert!(!live_slots()
        .iter()
        .any(|l| l.url == "http://127.0.0.1:1/revocation-tests.crl"));
}

#[test]
fn a_hundred_thousand_entries_index_quickly_and_look_up_by_number() {
    let a = ca("a");
    let good = leaf(&a, "good");
    let entries: Vec<Revoked> = (1..=100_000u32)
        .map(|i| Revoked {
            serial: format!("{:X}", 0x1000_0000u64 + u64::from(i)),
            at: NOW,
        })
        .chain([Revoked {
            // Leading zeros: the same number as the entry without them.
            serial: format!("00{}", serial(&good)),
            at: NOW,
        }])
        .collect();
    let c = make_crl_window(&a, &entries, NOW - 60, NOW + 3600, 1).unwrap();
    let idx = index(&[&a], &c);
    assert_eq!(idx.entries(), 100_001);
    assert!(idx.lists(good.cert.serial_number()));
}

#[test]
fn a_fetched_crl_must_be_verified_dated_and_from_the_past() {
    let a = ca("a");
    let inter = ca("inter");
    let now = NOW;
    let c = crl(&inter, &[], -60, 3600);
    let e = CrlIndex::fetched(&c, std::slice::from_ref(&a.cert), now).unwrap_err();
    assert!(matches!(e, CrlError::UnknownIssuer { .. }), "{e}");
    let c = crl(&a, &[], 3600, 7200);
    let e = CrlIndex::fetched(&c, std::slice::from_ref(&a.cert), now).unwrap_err();
    assert!(matches!(e, CrlError::Future(_)), "{e}");
    let c = crl(&a, &[], -60, 3600);
    assert!(CrlIndex::fetched(&c, std::slice::from_ref(&a.cert), now).is_ok());
}

#[test]
fn a_crl_with_a_critical_extension_of_unknown_scope_is_refused() {
    use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
    use openssl::hash::MessageDigest;
    use openssl::x509::{X509CrlBuilder, X509Extension};
    let a = ca("a");
    let mut b = X509CrlBuilder::new().unwrap();
    b.set_issuer_name(a.cert.subject_name()).unwrap();
    b.set_last_update(&Asn1Time::from_unix(NOW - 60).unwrap())
        .unwrap();
    b.set_next_update(&Asn1Time::from_unix(NOW + 3600).unwrap())
        .unwrap();
    let holder = openssl::x509::X509::builder().unwrap();
    let aki = openssl::x509::extension::AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&holder.x509v3_context(Some(&a.cert), None))
        .unwrap();
    b.append_extension(aki).unwrap();
    let number = Asn1OctetString::new_from_bytes(&[2, 1, 7]).unwrap();
    let number_oid = Asn1Object::from_str("2.5.29.20").unwrap();
    b.append_extension(X509Extension::new_from_der(&number_oid, false, &number).unwrap())
        .unwrap();
    let oid = Asn1Object::from_str("1.3.6.1.4.1.55555.1").unwrap();
    let value = Asn1OctetString::new_from_bytes(&[5, 0]).unwrap();
    b.append_extension(X509Extension::new_from_der(&oid, true, &value).unwrap())
        .unwrap();
    b.sign(&a.key, MessageDigest::sha256()).unwrap();
    let c = b.build().unwrap();
    let e = CrlIndex::new(&c, std::slice::from_ref(&a.cert)).unwrap_err();
    assert!(matches!(e, CrlError::CriticalExtension(_)), "{e}");
}

#[test]
fn distribution_points_are_learned_within_bounds() {
    let a = ca("a");
    let r = Revocation::new(
        RevocationPolicy {
            stale: StaleCrl::FailClosed,
            leaf_only: false,
        },
        Vec::new(),
        Vec::new(),
        vec![a.cert.clone()],
    )
    .learning("learning-tests");
    assert!(r.is_active() && r.learns() && r.fetches());
    let with_points = |n: usize, tag: &str| {
        let mut spec = LeafSpec::new(Usage::Client, tag);
        spec.crl_urls = (0..n)
            .map(|i| format!("http://127.0.0.1:1/{tag}/{i}.crl"))
            .collect();
        make_leaf(&spec, &a).unwrap()
    };
    r.learn_from(&with_points(3, "first").cert, 0);
    assert_eq!(r.all_slots().len(), 2, "two per certificate");
    for i in 0..20 {
        r.learn_from(&with_points(1, &format!("c{i}")).cert, 0);
    }
    assert_eq!(r.all_slots().len(), MAX_LEARNED, "and at most this many");
    // A new runtime starts with what was learned.
    let again = Revocation::new(
        RevocationPolicy {
            stale: StaleCrl::FailClosed,
            leaf_only: true,
        },
        Vec::new(),
        Vec::new(),
        vec![a.cert.clone()],
    )
    .learning("learning-tests");
    assert_eq!(again.all_slots().len(), MAX_LEARNED);
    // Under leafOnly an intermediate's points are not fetched.
    let other = Revocation::new(
        RevocationPolicy {
            stale: StaleCrl::FailClosed,
            leaf_only: true,
        },
        Vec::new(),
        Vec::new(),
        vec![a.cert.clone()],
    )
    .learning("learning-tests-2");
    other.learn_from(&with_points(1, "intermediate").cert, 1);
    assert!(other.all_slots().is_empty());
}
