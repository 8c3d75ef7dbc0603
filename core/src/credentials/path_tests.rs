use super::*;
use crate::certgen::{make_ca, make_leaf, CaSpec, Issued, LeafSpec, Usage};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::extension::BasicConstraints;
use openssl::x509::X509Name;

/// An intermediate CA `CN=<cn>` with a key of its own, signed by `by`;
/// its key identifier that of its key, or `like`'s.
fn intermediate(cn: &str, by: &Issued, serial: u32, like: Option<&X509>) -> Issued {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(by.cert.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    let ca = BasicConstraints::new().critical().ca().build().unwrap();
    b.append_extension(ca).unwrap();
    let skid = match like.and_then(|l| l.subject_key_id()) {
        Some(id) => {
            let hex: Vec<String> = id.as_slice().iter().map(|b| format!("{b:02X}")).collect();
            #[allow(deprecated)]
            openssl::x509::X509Extension::new_nid(
                None,
                None,
                Nid::SUBJECT_KEY_IDENTIFIER,
                &hex.join(":"),
            )
            .unwrap()
        }
        None => openssl::x509::extension::SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap(),
    };
    b.append_extension(skid).unwrap();
    b.sign(&by.key, MessageDigest::sha256()).unwrap();
    Issued {
        cert: b.build(),
        key,
    }
}

fn serial(c: &X509) -> String {
    c.serial_number()
        .to_bn()
        .unwrap()
        .to_dec_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_path_follows_signatures_not_names() {
    let root = make_ca(&CaSpec::new("Acme", "root.acme")).unwrap();
    let real = intermediate("inter.acme", &root, 7, None);
    // Same name and key identifier, another key: a look-alike the
    // client slips in (its serial is not on the CRL).
    let fake = intermediate("inter.acme", &root, 8, Some(&real.cert));
    assert_eq!(
        fake.cert.issued(
            &make_leaf(&LeafSpec::new(Usage::Client, "x"), &real)
                .unwrap()
                .cert
        ),
        X509VerifyResult::OK,
        "names and ids alone match"
    );
    let leaf = make_leaf(&LeafSpec::new(Usage::Client, "alice"), &real).unwrap();
    let cas = [root.cert.clone()];
    for sent in [
        vec![fake.cert.clone(), real.cert.clone()],
        vec![real.cert.clone(), fake.cert.clone()],
        vec![real.cert.clone()],
    ] {
        let chain = verified_path(leaf.cert.clone(), &sent, &cas);
        assert_eq!(chain.len(), 3, "leaf, intermediate, root");
        assert_eq!(serial(&chain[1]), "7", "the one that signed the leaf");
        assert!(same(&chain[2], &root.cert));
    }
    // A bundle holding an old and a new CA of one name.
    let old = make_ca(&CaSpec::new("Acme", "ca.acme")).unwrap();
    let new = make_ca(&CaSpec::new("Acme", "ca.acme")).unwrap();
    let bob = make_leaf(&LeafSpec::new(Usage::Client, "bob"), &new).unwrap();
    for cas in [
        [old.cert.clone(), new.cert.clone()],
        [new.cert.clone(), old.cert.clone()],
    ] {
        let chain = verified_path(bob.cert.clone(), &[], &cas);
        assert_eq!(chain.len(), 2);
        assert!(same(&chain[1], &new.cert), "the CA that signed bob");
    }
}
