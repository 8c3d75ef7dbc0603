//! Checks beyond parsing, before a credential may serve: its own validity
//! (period, chain) and what the configuration asks of it where it is used
//! (a CA bundle to verify peers with, names covering the hosts it serves).
//!
//! Each check is about one credential, so a failure refuses that credential
//! alone: the runtime keeps its last good version and the others update.

use std::path::Path;

use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509StoreContext, X509VerifyResult, X509};

use super::{files, Credential, CredentialError};

impl Credential {
    /// Refuses a certificate clients would refuse for its dates (unless
    /// `allow_expired`, which covers both ends of the validity period) or
    /// for a chain that does not lead to the CA it carries.
    pub fn check_validity(&self, allow_expired: bool) -> Result<(), CredentialError> {
        if let Some(alt) = &self.alt {
            alt.check_validity(allow_expired)?;
        }
        if !allow_expired {
            if self.expired() {
                return Err(CredentialError::Expired {
                    not_after: self.info.not_after.clone(),
                });
            }
            if self.not_yet_valid() {
                return Err(CredentialError::NotYetValid {
                    not_before: self.info.not_before.clone(),
                });
            }
        }
        self.verify_own_chain(allow_expired)
    }

    /// A MUTUAL or OPTIONAL_MUTUAL server, or SIMPLE origination through a
    /// `credentialName`, verifies its peer with this credential's CA bundle.
    pub fn require_ca(&self, credentials_dir: &Path) -> Result<(), CredentialError> {
        if self.ca_certs.is_empty() {
            return Err(files::no_ca_bundle(&self.source, credentials_dir));
        }
        Ok(())
    }

    /// The leaf must name `host` (see [`Credential::covers_host`]), or every
    /// client checking the hostname fails the handshake.
    pub fn require_host(&self, host: &str) -> Result<(), CredentialError> {
        if let Some(alt) = &self.alt {
            alt.require_host(host)?;
        }
        if self.covers_host(host) {
            return Ok(());
        }
        let names = if self.info.sans.is_empty() {
            format!("no SAN, {}", self.info.subject)
        } else {
            self.info.sans.join(", ")
        };
        Err(CredentialError::HostNotCovered {
            cert: self.info.files.first().cloned().unwrap_or_default(),
            host: host.to_string(),
            names,
        })
    }

    /// When `tls.crt` carries its CA (a self-signed certificate after the
    /// leaf), the leaf must chain up to it through the intermediates given:
    /// a chain that does not would be refused by every client anyway.
    fn verify_own_chain(&self, allow_expired: bool) -> Result<(), CredentialError> {
        let Some((leaf, rest)) = self.chain.split_first() else {
            return Ok(());
        };
        let self_signed = |x: &X509| {
            x.issued(x) == X509VerifyResult::OK
                && x.public_key().and_then(|k| x.verify(&k)).unwrap_or(false)
        };
        let roots: Vec<&X509> = rest.iter().filter(|x| self_signed(x)).collect();
        if roots.is_empty() {
            return Ok(());
        }
        let fail = |e: openssl::error::ErrorStack| CredentialError::ChainUnverified {
            reason: format!("cannot check the chain: {}", super::ossl_reason(&e)),
        };
        let mut store = X509StoreBuilder::new().map_err(fail)?;
        for r in roots {
            store.add_cert(r.clone()).map_err(fail)?;
        }
        if allow_expired {
            store
                .set_flags(X509VerifyFlags::NO_CHECK_TIME)
                .map_err(fail)?;
        }
        let store = store.build();
        let mut untrusted = Stack::new().map_err(fail)?;
        for x in rest {
            untrusted.push(x.clone()).map_err(fail)?;
        }
        let mut ctx = X509StoreContext::new().map_err(fail)?;
        let (ok, err) = ctx
            .init(&store, leaf, &untrusted, |ctx| {
                let ok = ctx.verify_cert()?;
                Ok((ok, ctx.error()))
            })
            .map_err(fail)?;
        if ok {
            Ok(())
        } else {
            Err(CredentialError::ChainUnverified {
                reason: err.error_string().to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certgen::{make_ca, make_leaf, CaSpec, Issued, LeafSpec, Usage};
    use crate::config::CredentialSource;

    fn credential(chain_ca: &Issued, signer: &Issued, starts_in_days: u32) -> Credential {
        let mut spec = LeafSpec::new(Usage::Server, "a.example.com");
        spec.dns = vec!["a.example.com".into(), "*.b.example.com".into()];
        spec.starts_in_days = starts_in_days;
        let leaf = make_leaf(&spec, signer).unwrap();
        Credential::from_parts(
            CredentialSource::Named("a".into()),
            vec![leaf.cert, chain_ca.cert.clone()],
            leaf.key,
            vec![],
            vec![],
        )
        .unwrap()
    }

    #[test]
    fn a_chain_that_carries_its_ca_must_verify_up_to_it() {
        let ca = make_ca(&CaSpec::new("Example", "example.com")).unwrap();
        let other = make_ca(&CaSpec::new("Other", "other.com")).unwrap();
        assert!(credential(&ca, &ca, 0).check_validity(false).is_ok());
        let e = credential(&other, &ca, 0)
            .check_validity(false)
            .unwrap_err();
        assert!(
            e.to_string().contains("does not verify up to the CA"),
            "{e}"
        );
    }

    #[test]
    fn a_certificate_not_valid_yet_is_refused_unless_allowed() {
        let ca = make_ca(&CaSpec::new("Example", "example.com")).unwrap();
        let c = credential(&ca, &ca, 2);
        assert!(c.not_yet_valid() && !c.expired());
        let e = c.check_validity(false).unwrap_err();
        assert!(matches!(e, CredentialError::NotYetValid { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "certificate is not valid before {}",
                c.info.not_before
            )) && text.contains("allowExpiredCredentials"),
            "{text}"
        );
        // The chain check ignores dates too, or it would refuse it anyway.
        assert!(c.check_validity(true).is_ok());
    }

    #[test]
    fn hosts_must_be_named_by_the_leaf() {
        let ca = make_ca(&CaSpec::new("Example", "example.com")).unwrap();
        let c = credential(&ca, &ca, 0);
        assert!(c.require_host("a.example.com").is_ok());
        assert!(c.require_host("x.b.example.com").is_ok());
        let e = c.require_host("b.example.com").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "certificate <memory> does not cover host 'b.example.com' \
                           (its names: DNS:a.example.com, DNS:*.b.example.com)"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_ca_bundle_when_peers_are_verified() {
        let ca = make_ca(&CaSpec::new("Example", "example.com")).unwrap();
        let c = credential(&ca, &ca, 0);
        let e = c.require_ca(Path::new("/creds")).unwrap_err().to_string();
        assert_eq!(
            e,
            "no CA bundle for credential 'a' in /creds: expected a/ca.crt, a/cacert or a-cacert/ca.crt"
        );
        let with_ca = Credential::from_parts(
            c.source.clone(),
            c.chain.clone(),
            c.key.clone(),
            vec![ca.cert.clone()],
            vec![],
        )
        .unwrap();
        assert!(with_ca.require_ca(Path::new("/creds")).is_ok());
    }
}
