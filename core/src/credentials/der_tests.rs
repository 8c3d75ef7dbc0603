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
    custom_from(
        subject,
        sans,
        &Asn1Time::days_from_now(0).unwrap(),
        not_after,
    )
}

/// [`custom`], valid from `not_before`.
fn custom_from(
    subject: &[(&str, &str)],
    sans: &[fn(&mut SubjectAlternativeName)],
    not_before: &openssl::asn1::Asn1TimeRef,
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
    b.set_not_before(not_before).unwrap();
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
            // Flipped bits, and the bytes that turn a length long-form,
            // indefinite or empty.
            let values = [
                der[i] ^ 0x01,
                der[i] ^ 0x80,
                der[i] ^ 0xff,
                0x00,
                0x80,
                0x81,
                0x82,
            ];
            for (flip, value) in values.into_iter().enumerate() {
                let mut bad = der.clone();
                bad[i] = value;
                if CertView::parse(&bad).is_none() {
                    continue;
                }
                let Ok(x) = X509::from_der(&bad) else {
                    // What OpenSSL cannot decode gets no identity.
                    assert_eq!(
                        client_identity_der(&bad),
                        None,
                        "{what}: byte {i}, change {flip}"
                    );
                    continue;
                };
                read += 1;
                // What the reader reads, OpenSSL encodes back to the same
                // bytes: the hash of the bytes sent is OpenSSL's hash.
                assert_eq!(x.to_der().unwrap(), bad, "{what}: byte {i}, change {flip}");
                let (want, ends) = by_openssl(&x);
                assert_eq!(
                    client_identity_der(&bad),
                    Some((want, ends)),
                    "{what}: byte {i}, change {flip}"
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
        "230229000000Z",
        "231231235960Z",
        "2312312359Z0",
        "23123123595aZ",
    ] {
        assert_eq!(utc_time(bad.as_bytes()), None, "{bad}");
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

/// A DER TLV, its length minimal.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n => {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
    }
    out.extend_from_slice(content);
    out
}

/// The whole TLVs inside the SEQUENCE `content`.
fn items(content: &[u8]) -> Vec<Vec<u8>> {
    let mut r = Reader::new(content);
    let mut out = Vec::new();
    while let Some((_, _, whole)) = r.next() {
        out.push(whole.to_vec());
    }
    out
}

/// `der` with its TBSCertificate's fields edited (signature left as it
/// was: only decoding is at stake).
fn edited(der: &[u8], edit: impl FnOnce(&mut Vec<Vec<u8>>)) -> Vec<u8> {
    let mut outer = Reader::new(der);
    let cert = items(outer.expect(SEQUENCE).unwrap());
    let mut tbs = items(Reader::new(&cert[0]).expect(SEQUENCE).unwrap());
    edit(&mut tbs);
    let tbs = tlv(SEQUENCE, &tbs.concat());
    tlv(SEQUENCE, &[tbs, cert[1].clone(), cert[2].clone()].concat())
}

/// `der` with these extensions instead of its own.
fn with_extensions(der: &[u8], exts: &[Vec<u8>]) -> Vec<u8> {
    edited(der, |tbs| {
        tbs.retain(|f| f[0] != 0xa3);
        tbs.push(tlv(0xa3, &tlv(SEQUENCE, &exts.concat())));
    })
}

fn san(names: &[u8]) -> Vec<u8> {
    tlv(
        SEQUENCE,
        &[tlv(OID, SAN_OID), tlv(OCTET_STRING, &tlv(SEQUENCE, names))].concat(),
    )
}

/// A certificate with one extension (a SAN), for edits to replace.
fn plain() -> X509 {
    custom(
        &[("CN", "plain")],
        &[|s| {
            s.dns("plain.acme.com");
        }],
        "20401231000000Z",
    )
}

#[test]
fn the_rebuilt_certificate_reads_as_the_original() {
    let der = plain().to_der().unwrap();
    assert_eq!(edited(&der, |_| {}), der);
    let uri = b"spiffe://cluster.local/ns/prod/sa/admin";
    let one = with_extensions(&der, &[san(&tlv(0x86, uri))]);
    let x = X509::from_der(&one).unwrap();
    assert!(CertView::parse(&one).is_some());
    assert_eq!(client_identity_der(&one), Some(by_openssl(&x)));
    assert_eq!(
        by_openssl(&x).0.uris,
        [String::from_utf8(uri.to_vec()).unwrap()]
    );
}

/// A SAN list with a long-form length for an empty name at its end:
/// OpenSSL 3.0 throws the whole list away, the 3.6 linked here reads it.
/// Either way the reader must not decide: a reading OpenSSL does not
/// share could let a trust domain or allow list match where it refuses.
#[test]
fn a_san_list_with_a_long_form_length_is_read_as_openssl_reads_it() {
    let der = plain().to_der().unwrap();
    let uri = b"spiffe://cluster.local/ns/prod/sa/admin";
    for tail in [&[0x82, 0x81, 0x00][..], &[0x82, 0x82, 0x00, 0x00]] {
        let names = [tlv(0x86, uri), tail.to_vec()].concat();
        let bad = with_extensions(&der, &[san(&names)]);
        assert_eq!(CertView::parse(&bad), None, "{tail:02x?}");
        let x = X509::from_der(&bad).unwrap();
        assert_eq!(
            client_identity_der(&bad),
            Some(by_openssl(&x)),
            "{tail:02x?}"
        );
    }
}

/// Fields the identity does not use, in shapes webpki lets through and
/// OpenSSL refuses or that break X.509's order: left to OpenSSL.
#[test]
fn shapes_openssl_refuses_are_left_to_it() {
    let der = plain().to_der().unwrap();
    let serial = |c: &[u8]| edited(&der, |t| t[1] = tlv(INTEGER, c));
    let unique = |at: usize, f: Vec<u8>| edited(&der, |t| t.insert(at, f));
    let ext = |oid: &[u8], critical: Option<&[u8]>| {
        let mut e = tlv(OID, oid);
        if let Some(c) = critical {
            e.extend(tlv(BOOLEAN, c));
        }
        e.extend(tlv(OCTET_STRING, &tlv(NULL, &[])));
        with_extensions(&der, &[tlv(SEQUENCE, &e)])
    };
    let id = tlv(0x81, &[0x00, 0xaa]);
    let sid = tlv(0x82, &[0x00, 0xbb]);
    let n = items(Reader::new(&der).expect(SEQUENCE).unwrap()).len();
    assert_eq!(n, 3);
    let fields = {
        let cert = items(Reader::new(&der).expect(SEQUENCE).unwrap());
        items(Reader::new(&cert[0]).expect(SEQUENCE).unwrap()).len()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("padded serial", serial(&[0x00, 0x01])),
        ("empty serial", serial(&[])),
        (
            "OID with a padded sub-identifier",
            ext(&[0x2b, 0x80, 0x01], None),
        ),
        ("empty OID", ext(&[], None)),
        ("unended OID", ext(&[0x2b, 0x81], None)),
        (
            "critical of two bytes",
            ext(&[0x2b, 0x01], Some(&[0xff, 0xff])),
        ),
        ("critical of none", ext(&[0x2b, 0x01], Some(&[]))),
        (
            "version 6",
            edited(&der, |t| t[0] = tlv(0xa0, &tlv(INTEGER, &[5]))),
        ),
        (
            "issuerUniqueID after the extensions",
            unique(fields, id.clone()),
        ),
        ("subjectUniqueID before the issuer's", {
            edited(&der, |t| {
                let at = t.len() - 1;
                t.insert(at, id.clone());
                t.insert(at, sid.clone());
            })
        }),
        ("extensions twice", {
            edited(&der, |t| {
                let last = t.last().unwrap().clone();
                t.push(last);
            })
        }),
        (
            "unique id with 8 unused bits",
            unique(fields - 1, tlv(0x81, &[0x08, 0xaa])),
        ),
    ];
    for (what, bad) in cases {
        assert_eq!(CertView::parse(&bad), None, "{what}");
        match X509::from_der(&bad) {
            Ok(x) => assert_eq!(client_identity_der(&bad), Some(by_openssl(&x)), "{what}"),
            Err(_) => assert_eq!(client_identity_der(&bad), None, "{what}"),
        }
    }
    // The controls: a one-byte critical flag, and both unique ids in
    // order before the extensions, are read.
    let critical = ext(&[0x2b, 0x01], Some(&[0xff]));
    assert!(CertView::parse(&critical).is_some());
    let x = X509::from_der(&critical).unwrap();
    assert_eq!(client_identity_der(&critical), Some(by_openssl(&x)));
    let both = edited(&der, |t| {
        let at = t.len() - 1;
        t.insert(at, sid.clone());
        t.insert(at, id.clone());
    });
    assert!(CertView::parse(&both).is_some());
    let x = X509::from_der(&both).unwrap();
    assert_eq!(client_identity_der(&both), Some(by_openssl(&x)));
}

#[test]
fn lengths_are_minimal() {
    for (bytes, ok) in [
        (&[0x04, 0x01, 0xaa][..], true),
        (&[0x04, 0x81, 0x01, 0xaa], false),
        (&[0x04, 0x82, 0x00, 0x01, 0xaa], false),
    ] {
        assert_eq!(Reader::new(bytes).next().is_some(), ok, "{bytes:02x?}");
    }
    let mut long = vec![0x04, 0x81, 0x80];
    long.extend([0u8; 0x80]);
    assert!(Reader::new(&long).next().is_some());
}

/// The DER of a self-signed certificate valid from `not_before` to
/// `not_after` (`YYYYMMDDHHMMSSZ`).
pub(crate) fn cert_with_validity(not_before: &str, not_after: &str) -> Vec<u8> {
    let from = Asn1Time::from_str(not_before).unwrap();
    let cert = custom_from(&[("CN", "validity")], &[], &from, not_after);
    cert.to_der().unwrap()
}

#[test]
fn validity_reads_as_openssl_prints_it() {
    let der = cert_with_validity("19700101001640Z", "20500101000000Z");
    let view = CertView::parse(&der).unwrap();
    let cert = X509::from_der(&der).unwrap();
    assert_eq!(view.not_before, 1000);
    assert_eq!(Some(view.not_before), unix_time(cert.not_before()).ok());
    assert_eq!(Some(view.not_after), unix_time(cert.not_after()).ok());
}

/// A self-signed P-256 certificate of `version` (0 is v1).
fn versioned(version: i32) -> (X509, Vec<u8>) {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("CN", "alice").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(version).unwrap();
    let serial = BigNum::from_u32(0).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let spki = key.public_key_to_der().unwrap();
    (b.build(), spki)
}

#[test]
fn the_key_of_a_version_one_certificate_is_its_spki_split() {
    let (v1, spki) = versioned(0);
    let der = v1.to_der().unwrap();
    let key = version_one_key(&der).expect("a v1 certificate");
    // SubjectPublicKeyInfo ::= SEQUENCE { algorithm, BIT STRING (0 unused bits, key) }
    let parts = items(Reader::new(&spki).expect(SEQUENCE).unwrap());
    assert_eq!(key.algorithm, &parts[0][2..]);
    assert_eq!(key.key, &parts[1][3..]);
    // v2 and v3 are webpki's to read; so is anything truncated.
    for version in [1, 2] {
        let der = versioned(version).0.to_der().unwrap();
        assert_eq!(version_one_key(&der), None, "version {version}");
    }
    for cut in 0..der.len() {
        assert_eq!(version_one_key(&der[..cut]), None, "cut at {cut}");
    }
    let mut trailing = der.clone();
    trailing.push(0);
    assert_eq!(version_one_key(&trailing), None, "a byte after it");
}
