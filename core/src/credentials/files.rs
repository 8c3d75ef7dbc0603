//! Finding a credential's files and parsing their PEM: the one place that
//! knows the credential folder layout (the configuration only names a
//! credential; whether its folder is usable is decided here, per
//! credential, at every runtime build).
//!
//! Only fixed file names are ever opened, so the `..data` / `..2026_…`
//! entries of a Kubernetes Secret volume (and editors' `.swp` or our own
//! `.tmp` files) are never mistaken for credentials; the `tls.crt ->
//! ..data/tls.crt` symlinks are simply followed. A symlink that leads
//! nowhere (a `..data` swapped to a missing folder) or in a loop is an
//! error about that file, never an absence.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use openssl::pkey::{PKey, Private};
use openssl::x509::store::X509Store;
use openssl::x509::{X509Crl, X509};

use super::{ossl_reason, CredentialError};
use crate::config::model::CredentialSource;

// Kubernetes TLS Secrets, Istio's generic Secrets, and the files
// `istio-proxy` writes for its workload identity (`cert-chain.pem`, ...).
const CERT_NAMES: [&str; 3] = ["tls.crt", "cert", "cert-chain.pem"];
const KEY_NAMES: [&str; 3] = ["tls.key", "key", "key.pem"];
const CA_NAMES: [&str; 3] = ["ca.crt", "cacert", "root-cert.pem"];
const CRL_NAME: &str = "ca.crl";
/// URLs to fetch the client CA bundle's CRLs from, one per line.
const CRL_URL_NAME: &str = "ca.crl.url";
/// The server certificate's OCSP response to staple (HAProxy's name).
const OCSP_NAME: &str = "tls.ocsp";
/// A second certificate of another key type, served to clients that
/// cannot use the first (`tls.crt` ECDSA and `tls-rsa.crt`, or the
/// reverse), each with its own OCSP response.
const ALT_NAMES: [[&str; 3]; 2] = [
    ["tls-rsa.crt", "tls-rsa.key", "tls-rsa.ocsp"],
    ["tls-ecdsa.crt", "tls-ecdsa.key", "tls-ecdsa.ocsp"],
];
/// Istio's separate CA Secret: `<name>-cacert/`.
const CA_FOLDER_SUFFIX: &str = "-cacert";

/// The files one credential is made of, all known to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Paths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
    pub crl: Option<PathBuf>,
    pub crl_url: Option<PathBuf>,
    pub ocsp: Option<PathBuf>,
    /// The second certificate: its certificate, key and OCSP files.
    pub alt: Option<AltPaths>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AltPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ocsp: Option<PathBuf>,
}

impl Paths {
    pub(crate) fn all(&self) -> Vec<PathBuf> {
        let mut v = vec![self.cert.clone(), self.key.clone()];
        v.extend(self.ca.iter().cloned());
        v.extend(self.crl.iter().cloned());
        v.extend(self.crl_url.iter().cloned());
        v.extend(self.ocsp.iter().cloned());
        if let Some(a) = &self.alt {
            v.extend([a.cert.clone(), a.key.clone()]);
            v.extend(a.ocsp.iter().cloned());
        }
        v
    }
}

pub(crate) fn locate(source: &CredentialSource, dir: &Path) -> Result<Paths, CredentialError> {
    match source {
        CredentialSource::Files { cert, key, ca } => {
            for p in [Some(cert), Some(key), ca.as_ref()].into_iter().flatten() {
                if !probe(p)? {
                    return Err(CredentialError::MissingFile { path: p.clone() });
                }
            }
            Ok(Paths {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
                crl: None,
                crl_url: None,
                ocsp: None,
                alt: None,
            })
        }
        CredentialSource::Named(name) => locate_named(name, dir),
    }
}

fn locate_named(name: &str, dir: &Path) -> Result<Paths, CredentialError> {
    check_name(name)?;
    let folder = dir.join(name);
    if !probe_dir(&folder)? {
        return Err(CredentialError::MissingFolder {
            name: name.to_string(),
            dir: dir.to_path_buf(),
        });
    }
    let cert = first_existing(&folder, &CERT_NAMES)?;
    let key = first_existing(&folder, &KEY_NAMES)?;
    let ca_folder = dir.join(format!("{name}{CA_FOLDER_SUFFIX}"));
    // The secret's own ca.crt wins over a separate `<name>-cacert` secret, as in Istio.
    let (ca, crl_folder) = match first_existing(&folder, &CA_NAMES) {
        Ok(p) => (Some(p), folder.clone()),
        Err(CredentialError::MissingFile { .. }) if probe_dir(&ca_folder)? => {
            match first_existing(&ca_folder, &CA_NAMES) {
                Ok(p) => (Some(p), ca_folder.clone()),
                Err(CredentialError::MissingFile { .. }) => (None, folder.clone()),
                Err(e) => return Err(e),
            }
        }
        Err(CredentialError::MissingFile { .. }) => (None, folder.clone()),
        Err(e) => return Err(e),
    };
    let beside_ca = |file: &str| {
        [crl_folder.join(file), folder.join(file)]
            .into_iter()
            .map(|p| probe(&p).map(|found| found.then_some(p)))
            .find_map(|r| r.transpose())
            .transpose()
    };
    let crl = beside_ca(CRL_NAME)?;
    let crl_url = beside_ca(CRL_URL_NAME)?;
    if let (Some(crl), None) = (crl.as_ref().or(crl_url.as_ref()), &ca) {
        return Err(CredentialError::CrlWithoutCa { path: crl.clone() });
    }
    let optional = |p: PathBuf| probe(&p).map(|found| found.then_some(p));
    let ocsp = optional(folder.join(OCSP_NAME))?;
    let mut alt = None;
    for [c, k, o] in ALT_NAMES {
        let Some(cert) = optional(folder.join(c))? else {
            continue;
        };
        let key = folder.join(k);
        if !probe(&key)? {
            return Err(CredentialError::MissingFile { path: key });
        }
        if let Some(first) = &alt {
            let first: &AltPaths = first;
            return Err(CredentialError::TwoAlternates {
                first: first.cert.clone(),
                second: cert,
            });
        }
        alt = Some(AltPaths {
            cert,
            key,
            ocsp: optional(folder.join(o))?,
        });
    }
    Ok(Paths {
        cert,
        key,
        ca,
        crl,
        crl_url,
        ocsp,
        alt,
    })
}

/// A name is one plain path component; anything else would let a config
/// reach outside the credentials directory or pick a volume's `..data`.
fn check_name(name: &str) -> Result<(), CredentialError> {
    let reason = if name.is_empty() {
        "is empty"
    } else if name.starts_with('.') {
        "starts with '.'"
    } else if name.contains(['/', '\\', '\0']) {
        "contains a path separator"
    } else {
        return Ok(());
    };
    Err(CredentialError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

fn missing(folder: &Path, names: &[&str]) -> CredentialError {
    CredentialError::MissingFile {
        path: folder.join(names.join(" or ")),
    }
}

/// The first of `names` present in `folder`; none at all is `MissingFile`
/// naming every alternative; an unreadable entry is an error.
fn first_existing(folder: &Path, names: &[&str]) -> Result<PathBuf, CredentialError> {
    for n in names {
        let p = folder.join(n);
        if probe(&p)? {
            return Ok(p);
        }
    }
    Err(missing(folder, names))
}

/// What a credential that needs a CA bundle and has none should have held.
pub(crate) fn no_ca_bundle(source: &CredentialSource, dir: &Path) -> CredentialError {
    match source {
        CredentialSource::Named(name) => CredentialError::NoCaBundle {
            name: name.clone(),
            dir: dir.to_path_buf(),
            expected: format!(
                "{name}/{}, {name}/{} or {name}{CA_FOLDER_SUFFIX}/{}",
                CA_NAMES[0], CA_NAMES[1], CA_NAMES[0]
            ),
        },
        CredentialSource::Files { cert, .. } => CredentialError::NoCaBundle {
            name: source.to_string(),
            dir: cert.parent().unwrap_or(Path::new("/")).to_path_buf(),
            expected: "a caCertificates file".into(),
        },
    }
}

/// Is `path` a regular file (after symlinks)? A dangling or looping symlink
/// is an error, not an absence: it is what a half-finished or broken
/// `..data` swap looks like.
pub(crate) fn probe(path: &Path) -> Result<bool, CredentialError> {
    probe_as(path, fs::Metadata::is_file, "not a regular file")
}

/// [`probe`] for a folder (a credential folder may itself be a symlink).
fn probe_dir(path: &Path) -> Result<bool, CredentialError> {
    probe_as(path, fs::Metadata::is_dir, "not a folder")
}

fn probe_as(
    path: &Path,
    is: fn(&fs::Metadata) -> bool,
    wrong_kind: &'static str,
) -> Result<bool, CredentialError> {
    match fs::metadata(path) {
        Ok(m) if is(&m) => Ok(true),
        Ok(_) => Err(CredentialError::Unreadable {
            path: path.to_path_buf(),
            source: io::Error::other(wrong_kind),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::symlink_metadata(path) {
            Ok(_) => Err(CredentialError::Unreadable {
                path: path.to_path_buf(),
                source: io::Error::other("dangling symlink"),
            }),
            Err(_) => Ok(false),
        },
        Err(e) => Err(CredentialError::Unreadable {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, CredentialError> {
    let data = fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CredentialError::MissingFile {
            path: path.to_path_buf(),
        },
        _ => CredentialError::Unreadable {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(CredentialError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(data)
}

fn is_pem(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Every certificate in a PEM file (or one DER certificate), in file order.
pub(crate) fn parse_certs(path: &Path, data: &[u8]) -> Result<Vec<X509>, CredentialError> {
    let pem_err = |e: openssl::error::ErrorStack| CredentialError::Pem {
        path: path.to_path_buf(),
        reason: ossl_reason(&e),
    };
    let certs = if is_pem(data) {
        X509::stack_from_pem(data).map_err(pem_err)?
    } else {
        X509::from_der(data).map(|c| vec![c]).unwrap_or_default()
    };
    if certs.is_empty() {
        return Err(CredentialError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

pub(crate) fn parse_key(path: &Path, data: &[u8]) -> Result<PKey<Private>, CredentialError> {
    let text = String::from_utf8_lossy(data);
    if text.contains("ENCRYPTED") {
        return Err(CredentialError::KeyEncrypted {
            path: path.to_path_buf(),
        });
    }
    if is_pem(data) && !text.contains("PRIVATE KEY-----") {
        return Err(CredentialError::NoKey {
            path: path.to_path_buf(),
        });
    }
    // The callback answers "no passphrase" so OpenSSL never prompts on a tty.
    let parsed = if is_pem(data) {
        PKey::private_key_from_pem_callback(data, |_buf| Ok(0))
    } else {
        PKey::private_key_from_der(data)
    };
    parsed.map_err(|e| CredentialError::Pem {
        path: path.to_path_buf(),
        reason: ossl_reason(&e),
    })
}

pub(crate) fn parse_ca(path: &Path, data: &[u8]) -> Result<Vec<X509>, CredentialError> {
    parse_certs(path, data).map_err(|e| match e {
        CredentialError::NoCertificate { path } | CredentialError::Empty { path } => {
            CredentialError::CaEmpty { path }
        }
        CredentialError::Pem { path, reason } => CredentialError::CaParse { path, reason },
        other => other,
    })
}

/// Every CRL of a PEM file (several CAs may each publish one), or one DER CRL.
pub(crate) fn parse_crls(path: &Path, data: &[u8]) -> Result<Vec<X509Crl>, CredentialError> {
    const BEGIN: &str = "-----BEGIN X509 CRL-----";
    const END: &str = "-----END X509 CRL-----";
    let crl_err = |reason: String| CredentialError::Crl {
        path: path.to_path_buf(),
        reason,
    };
    if !is_pem(data) {
        return X509Crl::from_der(data)
            .map(|c| vec![c])
            .map_err(|e| crl_err(e.to_string()));
    }
    let text = std::str::from_utf8(data).map_err(|_| crl_err("not UTF-8 PEM".into()))?;
    let mut crls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let end = block
            .find(END)
            .ok_or_else(|| crl_err("truncated PEM block (no END line)".into()))?;
        let pem = &block[..end + END.len()];
        crls.push(X509Crl::from_pem(pem.as_bytes()).map_err(|e| crl_err(e.to_string()))?);
        rest = &block[end + END.len()..];
    }
    if crls.is_empty() {
        return Err(crl_err("contains no X509 CRL block".into()));
    }
    Ok(crls)
}

/// `ca.crl.url`: one URL a line; blank lines and `#` comments skipped.
pub(crate) fn parse_crl_urls(path: &Path, data: &[u8]) -> Result<Vec<String>, CredentialError> {
    let err = |line: usize, reason: String| CredentialError::CrlUrl {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let text = std::str::from_utf8(data).map_err(|_| err(0, "not UTF-8 text".into()))?;
    let mut urls = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        crate::config::revocation::check_crl_url(line).map_err(|e| err(i + 1, e))?;
        if !urls.iter().any(|u| u == line) {
            urls.push(line.to_string());
        }
    }
    if urls.len() > MAX_CRL_URLS {
        return Err(err(0, format!("more than {MAX_CRL_URLS} URLs")));
    }
    Ok(urls)
}

/// More would be a mistake (or a way to make the gateway fetch at will).
const MAX_CRL_URLS: usize = 16;

/// The client-CA trust store. CRLs are not in it: they are checked by
/// `revocation`, once per CRL rather than once per handshake.
pub(crate) fn build_store(cas: &[X509]) -> Result<X509Store, CredentialError> {
    tlsgate_ossl::trust_store(cas).map_err(|e| CredentialError::Openssl {
        what: "building the CA store",
        reason: ossl_reason(&e),
    })
}

/// The credential names present in a credentials directory: its
/// sub-folders, minus dot entries (`..data`, `..2026_…`, editors' files).
pub fn list_named(credentials_dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(credentials_dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}
