use super::*;
use crate::certgen::{make_ca, make_leaf, CaSpec, KeyKind, LeafSpec, Usage};
use crate::credentials::{client_identity, client_identity_der, unix_time};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509Name, X509};

/// What OpenSSL reads of `cert`: the answer the DER reader must give.
fn by_openssl(cert: &X509) -> (crate::credentials::ClientIdentity, Option<i64>) {
    (client_identity(cert), unix_time(cert.not_after()).ok())
}

/// A certificate signed by a throwaway key, with this subject, these SAN
/// extensions (each a list for one extension) and this notAfter.
fn custom(
    subject: &[(&str, &str)],
    sans: &[fn(&mut SubjectAlternativeName)],
    not_after: &str,
) -> X509 {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509Name::builder().unwrap();
    for (k, v) in subject {
        name.append_entry_by_text(k, v).unwrap();
    }
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_str(not_after).unwrap())
        .unwrap();
    for fill in sans {
        let mut san = SubjectAlternativeName::new();
        fill(&mut san);
        let ext = san.build(&b.x509v3_context(None, None)).unwrap();
        b.append_extension(ext).unwrap();
    }
    b.sign(&key, MessageDigest::sha256()).unwrap();
    b.build()
}

fn table() -> Vec<(&'static str, X509)> {
    let ca = make_ca(&CaSpec::new("Acme Inc.", "acme.com")).unwrap();
    let leaf = |f: &dyn Fn(&mut LeafSpec)| {
        let mut spec = LeafSpec::new(Usage::Client, "great-partner.apps.acme.com");
        f(&mut spec);
        make_leaf(&spec, &ca).unwrap().cert
    };
    vec![
        ("no SANs", leaf(&|_| {})),
        (
            "org, DNS, URI, IPs",
            leaf(&|s| {
                s.org = Some("Great Department".into());
                s.dns = vec!["a.acme.com".into(), "B.Acme.com".into()];
                s.uris = vec!["spiffe://acme.com/ns/x/sa/y".into()];
                s.ips = vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
            }),
        ),
        (
            "RSA, CRL and OCSP urls",
            leaf(&|s| {
                s.key = KeyKind::Rsa(2048);
                s.crl_urls = vec!["http://127.0.0.1:1/ca.crl".into()];
                s.ocsp_urls = vec!["http://127.0.0.1:1/ocsp".into()];
            }),
        ),
        (
            "escapes, UTF-8, two CNs, an emailAddress, an unnamed OID",
            custom(
                &[
                    ("C", "DE"),
                    ("O", " Lead,ing+;<>\\ "),
                    ("OU", "#hash \"quoted\""),
                    ("CN", "first"),
                    ("CN", "Zoë ünïcode"),
                    ("emailAddress", "a@acme.com"),
                    ("1.2.3.4.5", "unnamed"),
                ],
                &[],
                "20491231235959Z",
            ),
        ),
        (
            "every GeneralName kind read, GeneralizedTime",
            custom(
                &[("CN", "kinds")],
                &[|s| {
                    s.email("x@acme.com")
                        .dns("d.acme.com")
                        .uri("spiffe://acme.com/k")
                        .ip("fe80::1")
                        .ip("192.168.1.1");
                }],
                "20500101000000Z",
            ),
        ),
        (
            "leap day, far future",
            custom(&[("CN", "leap")], &[], "20960229120000Z"),
        ),
    ]
}

#[test]
fn plain_certificates_read_as_openssl_reads_them() {
    for (what, cert) in table() {
        let der = cert.to_der().unwrap();
        assert!(CertView::parse(&der).is_some(), "{what}: not read from DER");
        assert_eq!(client_identity_der(&der), Some(by_openssl(&cert)), "{what}");
    }
}

#[test]
fn a_second_san_extension_is_left_to_openssl() {
    let cert = custom(
        &[("CN", "twice")],
        &[
            |s| {
                s.dns("one.acme.com");
            },
            |s| {
                s.dns("two.acme.com");
            },
        ],
        "20401231000000Z",
    );
    let der = cert.to_der().unwrap();
    assert_eq!(CertView::parse(&der), None);
    assert_eq!(client_identity_der(&der), Some(by_openssl(&cert)));
}

#[test]
fn names_of_kinds_not_read_leave_the_certificate_to_openssl() {
    let cert = custom(
        &[("CN", "others")],
        &[|s| {
            s.dns("d.acme.com")
                .rid("1.2.3.4")
                .dir_name2({
                    let mut n = X509Name::builder().unwrap();
                    n.append_entry_by_text("CN", "dir").unwrap();
                    n.build()
                })
                .other_name2(
                    openssl::asn1::Asn1Object::from_str("1.3.6.1.4.1.311.20.2.3").unwrap(),
                    b"\x0c\x03upn",
                );
        }],
        "20401231000000Z",
    );
    let der = cert.to_der().unwrap();
    assert_eq!(CertView::parse(&der), None);
    let (id, _) = client_identity_der(&der).unwrap();
    assert_eq!(id.dns, ["d.acme.com"]);
    assert_eq!(client_identity_der(&der), Some(by_openssl(&cert)));
}

#[test]
fn truncated_certificates_are_refused_at_every_length() {
    for (what, cert) in table() {
        let der = cert.to_der().unwrap();
        for n in 0..der.len() {
            assert_eq!(CertView::parse(&der[..n]), None, "{what} cut at {n}");
            assert_eq!(client_identity_der(&der[..n]), None, "{what} cut at {n}");
        }
        let mut longer = der.clone();
        longer.push(0);
        assert_eq!(CertView::parse(&longer), None, "{what} with a byte more");
    }
}

/// Every byte of real certificates changed: the reader never panics, and
/// whatever it still reads, OpenSSL reads the same (or cannot decode).
#[test]
fn changed_bytes_never_read_differently_from_openssl() {
    let mut read = 0;
    for (what, cert) in table() {
        let der = cert.to_der().unwrap();
        for i in 0..der.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = der.clone();
                bad[i] ^= flip;
                if CertView::parse(&bad).is_none() {
                    continue;
                }
                let Ok(x) = X509::from_der(&bad) else {
                    continue;
                };
                read += 1;
                let (mut want, ends) = by_openssl(&x);
                // OpenSSL hashes its own encoding: where it normalizes
                // what it read (a signature's unused bits, which webpki
                // refuses anyway), the hash of the bytes sent is ours.
                if x.to_der().unwrap() != bad {
                    want.hash = crate::credentials::identity::hex(&openssl::sha::sha256(&bad));
                }
                assert_eq!(
                    client_identity_der(&bad),
                    Some((want, ends)),
                    "{what}: byte {i} ^ {flip:#x}"
                );
            }
        }
    }
    assert!(read > 100, "only {read} changed certificates were read");
}

#[test]
fn garbage_lengths_and_tags_are_refused() {
    let cases: &[&[u8]] = &[
        &[],
        &[0x30],
        &[0x30, 0x80, 0x00, 0x00],             // indefinite length
        &[0x30, 0x85, 1, 0, 0, 0, 0],          // five length bytes
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], // four, far past the end
        &[0x30, 0x81],                         // length bytes missing
        &[0x3f, 0x01, 0x00, 0x00],             // multi-byte tag
        &[0x31, 0x00],                         // not a SEQUENCE
        &[0x30, 0x00],                         // empty certificate
    ];
    for c in cases {
        assert_eq!(CertView::parse(c), None, "{c:02x?}");
        assert_eq!(client_identity_der(c), None, "{c:02x?}");
    }
    // A deterministic stream of random buffers, some starting as a
    // certificate does.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 300) as usize;
        let mut buf: Vec<u8> = (0..len)
            .map(|i| (x.rotate_left(i as u32 % 64) >> 3) as u8)
            .collect();
        if len > 4 && x % 2 == 0 {
            buf[0] = 0x30;
            buf[1] = 0x82;
        }
        let _ = CertView::parse(&buf);
    }
}

#[test]
fn times_are_read_as_openssl_reads_them() {
    let cases = [
        "491231235959Z",
        "500101000000Z",
        "700101000000Z",
        "991231235959Z",
        "000229000000Z",
        "20500101000000Z",
        "20240229120000Z",
        "21000301000000Z",
        "99991231235959Z",
    ];
    for t in cases {
        let want = unix_time(&Asn1Time::from_str(t).unwrap()).unwrap();
        let got = if t.len() == 13 {
            utc_time(t.as_bytes())
        } else {
            generalized_time(t.as_bytes())
        };
        assert_eq!(got, Some(want), "{t}");
    }
    for bad in [
        "20230229000000Z",
        "20231301000000Z",
        "20231231240000Z",
        "20231231236000Z",
        "20231231235960Z",
        "20231231235959+0100",
        "2023123123595Z",
        "2023123123595aZ",
        "231231235959",
    ] {
        let got = if bad.len() == 13 {
            utc_time(bad.as_bytes())
        } else {
            generalized_time(bad.as_bytes())
        };
        assert_eq!(got, None, "{bad}");
    }
}
