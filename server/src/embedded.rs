//! The embedded default configuration: `conf/default.yaml` and the
//! certs-example credentials it names, compiled in so that `tlsgate run`
//! works from any directory with nothing else on disk.

use std::io;
use std::path::{Path, PathBuf};

pub const DEFAULT_YAML: &str = include_str!("../../conf/default.yaml");
/// Shown in error messages as the embedded file's name.
pub const DEFAULT_NAME: &str = "<embedded>/conf/default.yaml";

const FILES: &[(&str, &str)] = &[
    (
        "frontend-credential/tls.crt",
        include_str!("../../certs-example/credentials/frontend-credential/tls.crt"),
    ),
    (
        "frontend-credential/tls.key",
        include_str!("../../certs-example/credentials/frontend-credential/tls.key"),
    ),
    (
        "partner-credential/tls.crt",
        include_str!("../../certs-example/credentials/partner-credential/tls.crt"),
    ),
    (
        "partner-credential/tls.key",
        include_str!("../../certs-example/credentials/partner-credential/tls.key"),
    ),
    (
        "partner-credential/ca.crt",
        include_str!("../../certs-example/credentials/partner-credential/ca.crt"),
    ),
];

/// Writes the embedded credentials under `dir` (credentialsDir layout) and
/// returns that credentials directory. Keys are written owner-only.
pub fn write_credentials(dir: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let creds = dir.join("credentials");
    for (rel, content) in FILES {
        let path = creds.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        io::Write::write_all(&mut f, content.as_bytes())?;
    }
    Ok(creds)
}
