//! Why a credential cannot serve: every error names the file it is about
//! when there is one, so that logs, `/certs` and configuration errors can
//! point at it.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("credential name '{name}' {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("no credential '{name}' in {}", dir.display())]
    MissingFolder { name: String, dir: PathBuf },
    #[error("missing file {}", path.display())]
    MissingFile { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is empty", path.display())]
    Empty { path: PathBuf },
    #[error("PEM in {} does not parse: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("no certificate in {}", path.display())]
    NoCertificate { path: PathBuf },
    #[error("no private key in {}", path.display())]
    NoKey { path: PathBuf },
    #[error("private key in {} is encrypted; tlsgate needs an unencrypted key", path.display())]
    KeyEncrypted { path: PathBuf },
    #[error("private key in {} does not match certificate in {}", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("CA bundle {} holds no certificate", path.display())]
    CaEmpty { path: PathBuf },
    #[error("CA bundle {} does not parse: {reason}", path.display())]
    CaParse { path: PathBuf, reason: String },
    #[error("CRL {} does not parse: {reason}", path.display())]
    Crl { path: PathBuf, reason: String },
    #[error("CRL URL file {}{}: {reason}", path.display(), if *line > 0 { format!(" line {line}") } else { String::new() })]
    CrlUrl {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("OCSP response {} {reason}", path.display())]
    Ocsp { path: PathBuf, reason: String },
    #[error(
        "{} and {} are both second certificates: keep one (tls.crt plus one of another key type)",
        first.display(),
        second.display()
    )]
    TwoAlternates { first: PathBuf, second: PathBuf },
    #[error(
        "{} must hold a key of another type than {} (an RSA and an ECDSA certificate)",
        alt.display(),
        primary.display()
    )]
    SameKeyType { primary: PathBuf, alt: PathBuf },
    #[error("CRL {} has no CA bundle (ca.crt or cacert) beside it", path.display())]
    CrlWithoutCa { path: PathBuf },
    #[error("{what}: {reason}")]
    Openssl { what: &'static str, reason: String },
    #[error(
        "certificate expired at {not_after} \
         (set GatewayRuntime spec.reload.allowExpiredCredentials to serve it anyway)"
    )]
    Expired { not_after: String },
    #[error(
        "certificate is not valid before {not_before} \
         (set GatewayRuntime spec.reload.allowExpiredCredentials to serve it anyway)"
    )]
    NotYetValid { not_before: String },
    #[error("certificate chain does not verify up to the CA it carries: {reason}")]
    ChainUnverified { reason: String },
    #[error(
        "certificate {} does not cover host '{host}' (its names: {names}); \
         clients would fail the hostname check", cert.display()
    )]
    HostNotCovered {
        cert: PathBuf,
        host: String,
        names: String,
    },
    #[error("no CA bundle for credential '{name}' in {}: expected {expected}", dir.display())]
    NoCaBundle {
        name: String,
        dir: PathBuf,
        expected: String,
    },
}

impl CredentialError {
    /// The file the error is about, when it is about one (a key that does
    /// not match names the key), so a configuration error can name the
    /// field that gave that file.
    pub fn path(&self) -> Option<&Path> {
        use CredentialError as E;
        match self {
            E::MissingFile { path }
            | E::Unreadable { path, .. }
            | E::Empty { path }
            | E::Pem { path, .. }
            | E::NoCertificate { path }
            | E::NoKey { path }
            | E::KeyEncrypted { path }
            | E::KeyMismatch { key: path, .. }
            | E::CaEmpty { path }
            | E::CaParse { path, .. }
            | E::Crl { path, .. }
            | E::CrlUrl { path, .. }
            | E::Ocsp { path, .. }
            | E::TwoAlternates { second: path, .. }
            | E::SameKeyType { alt: path, .. }
            | E::CrlWithoutCa { path }
            | E::HostNotCovered { cert: path, .. } => Some(path),
            E::InvalidName { .. }
            | E::MissingFolder { .. }
            | E::Openssl { .. }
            | E::Expired { .. }
            | E::NotYetValid { .. }
            | E::ChainUnverified { .. }
            | E::NoCaBundle { .. } => None,
        }
    }
}
