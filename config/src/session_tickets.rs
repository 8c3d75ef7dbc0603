//! `GatewayRuntime.spec.sessionTickets`: where TLS session ticket keys
//! come from. Replicas that share the key files resume each other's
//! sessions; without them each process makes its own keys.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::parse::{duration, resolve, Report};
use super::raw::null_default;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionTickets {
    /// Key files, the first encrypting, all decrypting (Envoy's list).
    pub key_files: Vec<PathBuf>,
    /// Or a folder of key files (a mounted Secret): sorted by name, the
    /// first encrypting.
    pub key_directory: Option<PathBuf>,
    /// Without key files: how often the process's own random key is
    /// replaced (the two before it still decrypt). Default 1 h.
    pub rotation: Duration,
}

impl Default for SessionTickets {
    fn default() -> Self {
        SessionTickets {
            key_files: Vec::new(),
            key_directory: None,
            rotation: Duration::from_secs(3600),
        }
    }
}

impl SessionTickets {
    /// Are the keys read from files (shared), rather than made here?
    pub fn from_files(&self) -> bool {
        !self.key_files.is_empty() || self.key_directory.is_some()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSessionTickets {
    #[serde(default, deserialize_with = "null_default")]
    pub key_files: Vec<String>,
    pub key_directory: Option<String>,
    pub rotation: Option<String>,
}

pub(crate) fn convert(
    raw: &RawSessionTickets,
    base_dir: &std::path::Path,
    report: &mut Report<'_>,
) -> SessionTickets {
    let mut s = SessionTickets::default();
    if !raw.key_files.is_empty() && raw.key_directory.is_some() {
        report.error("spec.sessionTickets", "keyFiles or keyDirectory, not both");
    }
    s.key_files = raw.key_files.iter().map(|f| resolve(base_dir, f)).collect();
    s.key_directory = raw.key_directory.as_ref().map(|d| resolve(base_dir, d));
    if let Some(r) = &raw.rotation {
        match report.check("spec.sessionTickets.rotation", duration(r)) {
            Some(d) if d < Duration::from_secs(60) => {
                report.error("spec.sessionTickets.rotation", "at least 60s")
            }
            Some(d) => s.rotation = d,
            None => {}
        }
    }
    s
}
