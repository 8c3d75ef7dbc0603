//! Configuration: Istio YAML files -> validated [`Model`].
//!
//! Pipeline (to be completed by the loader):
//! 1. collect files (`--config` may name files or directories, `*.yaml`/`*.yml`),
//! 2. split each file into YAML documents, read `apiVersion`/`kind`/`metadata`,
//! 3. deserialize `spec` into the raw serde structs of `raw.rs`
//!    (unknown fields refused, field path kept by `serde_path_to_error`),
//! 4. convert raw -> `model.rs` types, checking each value and every
//!    reference between documents; every problem is collected, not just the first.

pub mod model;

use std::fmt;
use std::path::PathBuf;

pub use model::*;

/// One configuration problem, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A problem with a whole file (unreadable, not YAML).
    #[error("{}: {message}", file.display())]
    File { file: PathBuf, message: String },
    /// A problem with one field of one document.
    /// `doc` reads `Kind/name` (or `document N` when the kind is unknown).
    #[error("{}: {doc}: {field}: {message}", file.display())]
    Field {
        file: PathBuf,
        doc: String,
        field: String,
        message: String,
    },
}

impl ConfigError {
    /// An error about `field` (e.g. `spec.servers[1].tls.credentialName`) of a document.
    pub fn field(doc: &DocId, field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Field {
            file: doc.file.clone(),
            doc: format!("{}/{}", doc.kind, doc.name),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every problem found in one load; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}
