//! The CA bundles DestinationRules name by path (`caCertificates`), loaded
//! with the runtime like credentials: parsed and fingerprinted by content
//! at build, a broken file refused with the last good bundle kept, so a
//! rotated CA applies at the next reload and a garbage one never replaces
//! a good one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use openssl::x509::X509;

use super::refs::client_tls_blocks;
use super::{CredentialStatus, Refusal, Runtime, Subject};
use crate::config::{ConfigError, DocId, Model};
use crate::credentials::{self, CredentialError};

/// One `caCertificates` file as it was when loaded.
#[derive(Debug)]
pub struct CaBundle {
    pub path: PathBuf,
    pub certs: Vec<X509>,
    /// SHA-256 over the certificates' DER.
    pub content_id: [u8; 32],
}

impl CaBundle {
    pub fn load(path: &std::path::Path) -> Result<CaBundle, CredentialError> {
        let pem = credentials::read_file(path)?;
        let certs = credentials::parse_ca_bundle(path, &pem)?;
        let mut h = openssl::sha::Sha256::new();
        for c in &certs {
            let der = c.to_der().map_err(|e| CredentialError::CaParse {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            h.update(&(der.len() as u64).to_be_bytes());
            h.update(&der);
        }
        Ok(CaBundle {
            path: path.to_path_buf(),
            certs,
            content_id: h.finish(),
        })
    }
}

#[derive(Default)]
pub(super) struct LoadedCas {
    pub bundles: BTreeMap<PathBuf, Arc<CaBundle>>,
    pub status: BTreeMap<PathBuf, CredentialStatus>,
    pub refusals: Vec<Refusal>,
    pub errors: Vec<ConfigError>,
}

/// Every `caCertificates` path of `model` with the first place naming it.
fn references(model: &Model) -> BTreeMap<PathBuf, (DocId, String)> {
    let mut refs = BTreeMap::new();
    for dr in &model.destination_rules {
        for (field, t) in client_tls_blocks(dr) {
            if let Some(path) = &t.ca_certificates {
                refs.entry(path.clone())
                    .or_insert_with(|| (dr.id.clone(), format!("{field}.caCertificates")));
            }
        }
    }
    refs
}

/// Loads each bundle on its own: one that fails keeps `prev`'s version (a
/// refusal), or is an error naming its document and field when there is
/// none (at start, or a path new in this configuration).
pub(super) fn load(model: &Model, generation: u64, prev: Option<&Runtime>) -> LoadedCas {
    let mut out = LoadedCas::default();
    for (path, (doc, field)) in references(model) {
        let previous = prev.and_then(|p| Some((p.ca_bundles.get(&path)?, p.ca_status.get(&path)?)));
        let (bundle, status) = match (CaBundle::load(&path), previous) {
            (Ok(new), Some((old, st))) if new.content_id == old.content_id => (
                old.clone(),
                CredentialStatus {
                    loaded_generation: st.loaded_generation,
                    last_error: None,
                },
            ),
            (Ok(new), _) => (
                Arc::new(new),
                CredentialStatus {
                    loaded_generation: generation,
                    last_error: None,
                },
            ),
            (Err(e), Some((old, st))) => {
                let reason = e.to_string();
                out.refusals.push(Refusal {
                    subject: Subject::CaBundle(path.clone()),
                    credential: format!("file:{}", path.display()),
                    reason: reason.clone(),
                });
                (
                    old.clone(),
                    CredentialStatus {
                        loaded_generation: st.loaded_generation,
                        last_error: Some(reason),
                    },
                )
            }
            (Err(e), None) => {
                out.errors
                    .push(ConfigError::field(&doc, field, e.to_string()));
                continue;
            }
        };
        out.bundles.insert(path.clone(), bundle);
        out.status.insert(path, status);
    }
    out
}
