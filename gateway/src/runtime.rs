//! The serving state: one immutable [`Runtime`] per configuration
//! generation, published through one `ArcSwap`.
//!
//! Handshakes read the current runtime with `load()` (never held across an
//! `.await`); each request pins it with `load_full()` so that a reload in
//! the middle of a request cannot change its route or policy.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{ConfigError, ConfigErrors, CredentialSource, DocId, Model};
use crate::credentials::{self, Credential};
use crate::route::RouteTable;
use crate::tls::TlsPolicy;

pub type SharedRuntime = Arc<ArcSwap<Runtime>>;

pub struct Runtime {
    /// Starts at 1 and grows by one with every published reload.
    pub generation: u64,
    pub model: Arc<Model>,
    pub credentials: BTreeMap<CredentialSource, Arc<Credential>>,
    pub routes: RouteTable,
    pub tls: TlsPolicy,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Loads every credential the model names and compiles routes and TLS
    /// policy. Nothing is published here: the caller swaps it in.
    pub fn build(model: Model, generation: u64) -> Result<Runtime, ConfigErrors> {
        let mut errors = Vec::new();
        let mut credentials = BTreeMap::new();
        for (source, (doc, field)) in credential_references(&model) {
            match credentials::load(&source, &model.runtime.credentials_dir) {
                Ok(c) => {
                    credentials.insert(source, Arc::new(c));
                }
                Err(e) => errors.push(ConfigError::field(&doc, field, e.to_string())),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let routes = RouteTable::compile(&model)?;
        let tls = TlsPolicy::build(&model, &credentials)?;
        Ok(Runtime {
            generation,
            model: Arc::new(model),
            credentials,
            routes,
            tls,
        })
    }

    pub fn shared(self) -> SharedRuntime {
        Arc::new(ArcSwap::from_pointee(self))
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
