//! The serving state: one immutable [`Runtime`] per configuration
//! generation, published through one `ArcSwap`.
//!
//! Handshakes read the current runtime with `load_full()` and keep it for
//! the connection; each request pins the current one with `load_full()` so
//! that a reload in the middle of a request cannot change its route.
//!
//! A reload ([`Runtime::rebuild`]) builds the next runtime beside the live
//! one. Each credential is loaded and checked on its own: a broken one keeps
//! its last good version (and records why), so one bad file never stops
//! the other credentials or the configuration from updating.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::config::{ConfigError, ConfigErrors, CredentialSource, DocId, HostPattern, Model};
use crate::credentials::{self, Credential, CredentialInfo};
use crate::route::RouteTable;
use crate::tls::TlsPolicy;

pub type SharedRuntime = Arc<ArcSwap<Runtime>>;

pub struct Runtime {
    /// Starts at 1 and grows by one with every published reload.
    pub generation: u64,
    pub model: Arc<Model>,
    pub credentials: BTreeMap<CredentialSource, Arc<Credential>>,
    pub credential_status: BTreeMap<CredentialSource, CredentialStatus>,
    pub routes: RouteTable,
    pub tls: TlsPolicy,
}

/// What `/certs` says of a credential beyond its certificate.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialStatus {
    /// Generation in which the serving version was loaded.
    pub loaded_generation: u64,
    /// Why the newest files were refused, while the last good version serves.
    pub last_error: Option<String>,
}

/// A credential whose newest files were refused on a reload.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub source: CredentialSource,
    pub credential: String,
    pub reason: String,
}

/// One credential as `/certs` shows it.
#[derive(Debug, Serialize)]
pub struct CertView<'a> {
    #[serde(flatten)]
    pub info: &'a CredentialInfo,
    #[serde(flatten)]
    pub status: Option<&'a CredentialStatus>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// The first runtime: every credential must load.
    pub fn build(model: Model, generation: u64) -> Result<Runtime, ConfigErrors> {
        Self::assemble(model, generation, None).map(|(rt, _)| rt)
    }

    /// The next runtime after `prev`: a credential that fails to load or
    /// check keeps `prev`'s version (reported in the refusals); one that
    /// `prev` never had is an error, as at start. Unchanged credentials are
    /// shared with `prev`, so sessions bound to them keep resuming.
    pub fn rebuild(
        model: Model,
        prev: &Runtime,
        generation: u64,
    ) -> Result<(Runtime, Vec<Refusal>), ConfigErrors> {
        Self::assemble(model, generation, Some(prev))
    }

    fn assemble(
        model: Model,
        generation: u64,
        prev: Option<&Runtime>,
    ) -> Result<(Runtime, Vec<Refusal>), ConfigErrors> {
        let mut errors = Vec::new();
        let mut refusals = Vec::new();
        let mut credentials = BTreeMap::new();
        let mut status = BTreeMap::new();
        let allow_expired = model.runtime.reload.allow_expired_credentials;
        for (source, (doc, field)) in credential_references(&model) {
            let loaded = credentials::load(&source, &model.runtime.credentials_dir)
                .map_err(|e| e.to_string())
                .and_then(|c| check(&c, allow_expired).map(|()| c));
            let previous = prev.and_then(|p| {
                Some((
                    p.credentials.get(&source)?,
                    p.credential_status.get(&source)?,
                ))
            });
            match (loaded, previous) {
                (Ok(new), Some((old, st))) if new.content_id() == old.content_id() => {
                    // The files are good again (or never changed): whatever
                    // was refused before no longer stands.
                    credentials.insert(source.clone(), old.clone());
                    let st = CredentialStatus {
                        loaded_generation: st.loaded_generation,
                        last_error: None,
                    };
                    status.insert(source, st);
                }
                (Ok(new), _) => {
                    credentials.insert(source.clone(), Arc::new(new));
                    let st = CredentialStatus {
                        loaded_generation: generation,
                        last_error: None,
                    };
                    status.insert(source, st);
                }
                (Err(reason), Some((old, st))) => {
                    refusals.push(Refusal {
                        source: source.clone(),
                        credential: source.to_string(),
                        reason: reason.clone(),
                    });
                    credentials.insert(source.clone(), old.clone());
                    let st = CredentialStatus {
                        loaded_generation: st.loaded_generation,
                        last_error: Some(reason),
                    };
                    status.insert(source, st);
                }
                (Err(reason), None) => errors.push(ConfigError::field(&doc, field, reason)),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        warn_uncovered_hosts(&model, &credentials);
        let routes = RouteTable::compile(&model)?;
        let tls = TlsPolicy::build(&model, &credentials)?;
        let rt = Runtime {
            generation,
            model: Arc::new(model),
            credentials,
            credential_status: status,
            routes,
            tls,
        };
        Ok((rt, refusals))
    }

    pub fn shared(self) -> SharedRuntime {
        Arc::new(ArcSwap::from_pointee(self))
    }

    /// Every credential for `/certs`, with its reload status.
    pub fn cert_views(&self) -> Vec<CertView<'_>> {
        self.credentials
            .iter()
            .map(|(src, c)| CertView {
                info: &c.info,
                status: self.credential_status.get(src),
            })
            .collect()
    }
}

/// Checks beyond parsing, before a credential may serve.
fn check(c: &Credential, allow_expired: bool) -> Result<(), String> {
    if c.expired() && !allow_expired {
        return Err(format!(
            "certificate expired at {} (set GatewayRuntime spec.reload.allowExpiredCredentials to serve it anyway)",
            c.info.not_after
        ));
    }
    verify_own_chain(c, allow_expired)
}

/// When `tls.crt` carries its CA (a self-signed certificate after the
/// leaf), the leaf must chain up to it through the intermediates given:
/// a chain that does not would be refused by every client anyway.
fn verify_own_chain(c: &Credential, allow_expired: bool) -> Result<(), String> {
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::verify::X509VerifyFlags;
    use openssl::x509::{X509StoreContext, X509};

    let Some((leaf, rest)) = c.chain.split_first() else {
        return Ok(());
    };
    let self_signed = |x: &X509| {
        x.issued(x) == openssl::x509::X509VerifyResult::OK
            && x.public_key().and_then(|k| x.verify(&k)).unwrap_or(false)
    };
    let roots: Vec<&X509> = rest.iter().filter(|x| self_signed(x)).collect();
    if roots.is_empty() {
        return Ok(());
    }
    let fail = |e: openssl::error::ErrorStack| format!("cannot check the chain: {e}");
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
        Err(format!(
            "certificate chain does not verify up to the CA it carries: {}",
            err.error_string()
        ))
    }
}

/// A certificate that does not name a host it serves still serves (clients
/// may pin it), but it is almost always a mistake worth a log line.
fn warn_uncovered_hosts(model: &Model, creds: &BTreeMap<CredentialSource, Arc<Credential>>) {
    for gw in &model.gateways {
        for s in &gw.servers {
            let Some(tls) = &s.tls else { continue };
            let Some(c) = creds.get(&tls.credential) else {
                continue;
            };
            for h in &s.hosts {
                if let HostPattern::Exact(host) = h {
                    if !c.covers_host(host) {
                        tracing::warn!(
                            credential = %tls.credential,
                            host = %host,
                            gateway = %gw.id,
                            "certificate SANs do not cover this host"
                        );
                    }
                }
            }
        }
    }
}

/// Every credential source named by the model, with the first place that
/// names it (so a load error points at a document and field).
fn credential_references(model: &Model) -> BTreeMap<CredentialSource, (DocId, String)> {
    let mut refs = BTreeMap::new();
    for gw in &model.gateways {
        for s in &gw.servers {
            if let Some(tls) = &s.tls {
                refs.entry(tls.credential.clone()).or_insert_with(|| {
                    (
                        gw.id.clone(),
                        format!("spec.servers[{}].tls.credentialName", s.index),
                    )
                });
            }
        }
    }
    for dr in &model.destination_rules {
        let policies = std::iter::once(("spec.trafficPolicy".to_string(), &dr.traffic_policy))
            .chain(dr.subsets.iter().enumerate().filter_map(|(i, s)| {
                s.traffic_policy
                    .as_ref()
                    .map(|p| (format!("spec.subsets[{i}].trafficPolicy"), p))
            }));
        for (path, policy) in policies {
            let tls = policy.tls.iter().map(|t| (format!("{path}.tls"), t)).chain(
                policy
                    .port_tls
                    .iter()
                    .enumerate()
                    .map(|(i, (_, t))| (format!("{path}.portLevelSettings[{i}].tls"), t)),
            );
            for (field, t) in tls {
                if let Some(src) = &t.credential {
                    refs.entry(src.clone())
                        .or_insert_with(|| (dr.id.clone(), format!("{field}.credentialName")));
                }
            }
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certgen::{make_ca, make_leaf, CaSpec, LeafSpec, Usage};

    fn credential(
        chain_ca: &crate::certgen::Issued,
        signer: &crate::certgen::Issued,
    ) -> Credential {
        let mut spec = LeafSpec::new(Usage::Server, "a.example.com");
        spec.dns.push("a.example.com".into());
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
        assert_eq!(check(&credential(&ca, &ca), false), Ok(()));
        let err = check(&credential(&other, &ca), false).unwrap_err();
        assert!(err.contains("does not verify up to the CA"), "{err}");
    }
}
