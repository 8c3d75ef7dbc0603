//! The path a verified client certificate took to the bundle's CA, found
//! again from the certificates themselves: rustls verifies a chain without
//! saying which one it built, and the CRL check (and the chain a backend
//! is told of) must follow the one that verified.

use openssl::x509::{X509VerifyResult, X509};

/// The chain from `leaf` to a CA of the bundle, through the certificates
/// the client sent, as webpki verified it: each next one is the one whose
/// name (and key identifier) issued the last and, where several do, whose
/// key verifies the last's signature. Names alone are not enough: a client
/// could put a look-alike of a revoked intermediate (same subject, same
/// key identifier, its own serial) before the real one, and have the
/// look-alike checked against the CRL instead; a bundle may hold an old
/// and a new CA of one name.
pub fn verified_path(leaf: X509, sent: &[X509], cas: &[X509]) -> Vec<X509> {
    let mut chain = vec![leaf];
    // webpki allows paths of at most a few certificates; a loop of
    // certificates issuing each other ends here too.
    while chain.len() < 8 {
        let last = chain.last().expect("starts with the leaf");
        let Some((next, from_bundle)) = issuer(last, cas, sent) else {
            break;
        };
        chain.push(next);
        if from_bundle {
            break;
        }
    }
    chain
}

/// The issuer of `cert` among the bundle's CAs and the certificates the
/// client sent, and whether it is the bundle's.
fn issuer(cert: &X509, cas: &[X509], sent: &[X509]) -> Option<(X509, bool)> {
    let named: Vec<(&X509, bool)> = cas
        .iter()
        .map(|c| (c, true))
        .chain(sent.iter().map(|c| (c, false)))
        .filter(|(c, _)| c.issued(cert) == X509VerifyResult::OK && !same(c, cert))
        .collect();
    let pick = match named.as_slice() {
        [] => None,
        [one] => Some(*one),
        several => several
            .iter()
            .find(|(c, _)| {
                c.public_key()
                    .is_ok_and(|k| cert.verify(&k).unwrap_or(false))
            })
            .copied(),
    };
    pick.map(|(c, bundle)| (c.clone(), bundle))
}

/// `X509_cmp`: the SHA-1 of each certificate's encoding, which OpenSSL
/// keeps from decoding it (no new digest per candidate).
fn same(a: &X509, b: &X509) -> bool {
    a == b
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
