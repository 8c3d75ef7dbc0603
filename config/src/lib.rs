//! Configuration: Istio YAML files -> validated [`Model`].
//!
//! Pipeline ([`load`] / [`load_str`]):
//! 1. collect files (`--config` may name files or directories; a directory
//!    contributes its `*.yaml`/`*.yml` files sorted by name, not recursively)
//!    — `load.rs`;
//! 2. split each file into YAML documents (empty ones skipped), read the
//!    envelope: `apiVersion` (checked per kind), `kind`, `metadata` — `load.rs`;
//! 3. drop duplicate names of one kind, then convert each kind, deserializing
//!    `spec` into the raw serde structs of `raw.rs` (unknown fields refused,
//!    field path kept by `serde_path_to_error`) and checking every value —
//!    `build.rs`, `convert_*.rs`. Order matters for references:
//!    DestinationRules and Gateways first, then the VirtualServices naming
//!    them;
//! 4. checks across documents: one protocol per port, one server per host
//!    on a TLS port, gateway and subset references.
//!
//! Every problem is collected, not just the first; each names its file,
//! document (`Kind/name`, or `document N`) and field path
//! (`spec.servers[1].tls.credentialName`).
//!
//! Credentials are only named here, never looked at: whether a credential
//! folder or file is usable is decided by `credentials.rs` each time the
//! runtime is built, per credential (`runtime/refs.rs` says what each
//! reference asks of it), so that a broken Secret refuses that credential
//! alone on a reload instead of the whole configuration.

#![forbid(unsafe_code)]

pub mod authz;
mod build;
pub mod client_cert;
mod convert_gateway;
mod convert_l4;
mod convert_peer;
mod convert_routes;
mod convert_rules;
mod convert_runtime;
mod convert_services;
mod kinds;
mod limits;
mod listeners;
mod load;
pub mod model;
pub mod names;
mod parse;
mod raw;
pub mod revocation;
pub mod session_tickets;
#[cfg(test)]
mod tests_authz;
#[cfg(test)]
mod tests_istio;
#[cfg(test)]
mod tests_l4;
#[cfg(test)]
mod testutil;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use model::*;

/// Command-line flags that win over the GatewayRuntime document.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--admin`
    pub admin: Option<SocketAddr>,
    /// `--credentials` (relative to the working directory)
    pub credentials_dir: Option<PathBuf>,
    /// `--tls-library`
    pub tls_library: Option<TlsLibrary>,
}

/// A load that went as far as it could: the model of every document that
/// converted, and every error. With errors the model is partial; `tlsgate
/// check` still checks its credentials, so that one run reports them all.
#[derive(Debug)]
pub struct Loaded {
    pub model: Model,
    pub errors: Vec<ConfigError>,
}

/// What a load found besides the model: errors refuse the configuration,
/// warnings only say what is not applied.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
}

impl Findings {
    pub fn push(&mut self, e: ConfigError) {
        self.errors.push(e);
    }

    pub fn warn(&mut self, doc: &DocId, field: impl Into<String>, reason: impl Into<String>) {
        self.note(doc, field.into(), reason.into(), false);
    }

    /// Applied as written, but worth a second look (it weakens something).
    pub fn caution(&mut self, doc: &DocId, field: impl Into<String>, reason: impl Into<String>) {
        self.note(doc, field.into(), reason.into(), true);
    }

    fn note(&mut self, doc: &DocId, field: String, reason: String, applied: bool) {
        self.warnings.push(ConfigWarning {
            file: doc.file.clone(),
            doc: format!("{}/{}", doc.kind, doc.name),
            field,
            reason,
            applied,
        });
    }
}

impl Loaded {
    pub fn into_result(self) -> Result<Model, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(self.model)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// Loads every YAML file named by `paths` (files, or directories of
/// `*.yaml`/`*.yml`) into one validated model.
pub fn load(paths: &[PathBuf], overrides: &Overrides) -> Result<Model, ConfigErrors> {
    load_all(paths, overrides).into_result()
}

/// [`load`], keeping the partial model when there are errors.
pub fn load_all(paths: &[PathBuf], overrides: &Overrides) -> Loaded {
    let mut out = Findings::default();
    let files = load::collect_files(paths, &mut out);
    let mut docs = Vec::new();
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => docs.extend(load::documents(
                file,
                &text,
                &load::folder_of(file),
                &mut out,
            )),
            Err(e) => out.push(load::file_error(file, format!("cannot read: {e}"))),
        }
    }
    build::build(docs, files, overrides, out)
}

/// Loads one YAML text as if it were the file `file_name`, resolving its
/// relative paths against `base_dir` (the embedded default, tests).
pub fn load_str(
    file_name: &Path,
    yaml: &str,
    base_dir: &Path,
    overrides: &Overrides,
) -> Result<Model, ConfigErrors> {
    load_str_all(file_name, yaml, base_dir, overrides).into_result()
}

/// [`load_str`], keeping the partial model when there are errors.
pub fn load_str_all(
    file_name: &Path,
    yaml: &str,
    base_dir: &Path,
    overrides: &Overrides,
) -> Loaded {
    let mut out = Findings::default();
    let docs = load::documents(file_name, yaml, &load::absolute(base_dir), &mut out);
    build::build(docs, vec![file_name.to_path_buf()], overrides, out)
}

/// Does a VirtualService's `gateways` entry (`name` or `namespace/name`)
/// name this Gateway? A Gateway without a namespace matches any namespace:
/// files applied with `kubectl -n` often leave it out.
pub fn gateway_matches(reference: &str, gateway: &Gateway) -> bool {
    gateway_ref_matches(reference, &gateway.id.name, gateway.namespace.as_deref())
}

pub fn gateway_ref_matches(reference: &str, name: &str, namespace: Option<&str>) -> bool {
    match reference.split_once('/') {
        Some((ns, n)) => n == name && namespace.is_none_or(|gw_ns| gw_ns == ns),
        None => reference == name,
    }
}

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

/// Something a document says that tlsgate does not apply, as Istio's own
/// gateway would not either (a sidecar-only field, a Kubernetes kind beside
/// the Istio ones), and why. A load with only warnings succeeds; `tlsgate
/// check --strict` refuses it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigWarning {
    pub file: PathBuf,
    /// `Kind/name`
    pub doc: String,
    pub field: String,
    pub reason: String,
    /// `false`: not applied (`ignored`); `true`: applied, with a caution.
    pub applied: bool,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}: {}: {}",
            self.file.display(),
            self.doc,
            self.field,
            if self.applied { "caution" } else { "ignored" },
            self.reason
        )
    }
}

impl From<ConfigWarning> for ConfigError {
    /// `--strict`: what would be ignored is refused instead.
    fn from(w: ConfigWarning) -> Self {
        ConfigError::Field {
            file: w.file,
            doc: w.doc,
            field: w.field,
            message: format!("ignored by tlsgate (refused by --strict): {}", w.reason),
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

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const RUNTIME: &str = "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {name: rt}\n\
                           spec: {credentialsDir: creds}\n";
    const GATEWAY: &str = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\n\
                           spec:\n  servers:\n  - port: {number: 8443, protocol: HTTPS}\n    hosts: [a.example.com]\n    \
                           tls: {mode: SIMPLE, credentialName: frontend-credential}\n";
    const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\n\
                      spec:\n  hosts: [a.example.com]\n  gateways: [gw]\n  http:\n  - directResponse: {status: 204}\n";

    /// A config folder naming a credentials dir inside it, as `conf/` + `creds/`.
    fn config_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("00-runtime.yaml"), RUNTIME).unwrap();
        fs::write(dir.path().join("10-gateway.yml"), GATEWAY).unwrap();
        fs::write(dir.path().join("20-routes.yaml"), format!("---\n{VS}---\n")).unwrap();
        fs::write(dir.path().join("README.md"), "not config").unwrap();
        dir
    }

    #[test]
    fn directory_with_credentials_dir_relative_to_the_runtime_file() {
        let dir = config_dir();
        let m = load(&[dir.path().to_path_buf()], &Overrides::default()).unwrap();
        let names: Vec<_> = m.sources.iter().map(|s| s.file_name().unwrap()).collect();
        assert_eq!(
            names,
            ["00-runtime.yaml", "10-gateway.yml", "20-routes.yaml"]
        );
        assert_eq!(m.runtime.credentials_dir, dir.path().join("creds"));
        assert_eq!(m.gateways.len(), 1);
        assert_eq!(m.virtual_services[0].http[0].name, "vs.0");
    }

    #[test]
    fn overrides_win_over_the_runtime_document() {
        let dir = config_dir();
        let overrides = Overrides {
            admin: Some("127.0.0.1:9000".parse().unwrap()),
            credentials_dir: Some(PathBuf::from("/elsewhere")),
            tls_library: None,
        };
        let m = load(&[dir.path().to_path_buf()], &overrides).unwrap();
        assert_eq!(m.runtime.admin, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(m.runtime.credentials_dir, Path::new("/elsewhere"));
    }

    /// A configuration with errors still gives the model of what loaded,
    /// so `tlsgate check` can look at those documents' credentials too.
    #[test]
    fn a_load_with_errors_keeps_what_converted() {
        let dir = config_dir();
        fs::write(
            dir.path().join("30-broken.yaml"),
            VS.replace("[gw]", "[missing]")
                .replace("name: vs", "name: vs2"),
        )
        .unwrap();
        let loaded = load_all(&[dir.path().to_path_buf()], &Overrides::default());
        assert_eq!(loaded.errors.len(), 1, "{:?}", loaded.errors);
        assert_eq!(loaded.model.gateways.len(), 1);
        assert!(loaded.into_result().is_err());
    }

    #[test]
    fn every_error_of_every_file_is_reported() {
        let dir = config_dir();
        let p = dir.path();
        fs::write(p.join("30-broken.yaml"), "kind: [\n").unwrap();
        fs::write(
            p.join("40-more.yaml"),
            format!(
                "{}---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: s}}\n---\n{}",
                VS.replace("[gw]", "[missing]"),
                GATEWAY
                    .replace("name: gw", "name: gw2")
                    .replace("number: 8443", "number: 9443, nmae: x"),
            ),
        )
        .unwrap();
        let e = load(
            &[p.to_path_buf(), p.join("nope.yaml")],
            &Overrides::default(),
        )
        .unwrap_err();
        let e: Vec<String> =
            e.0.iter()
                .map(|e| e.to_string().replace(&format!("{}/", p.display()), ""))
                .collect();
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(
            e[0].starts_with("30-broken.yaml: invalid YAML: ") && e[0].contains("line 2 column 1")
        );
        assert!(e[1].starts_with("nope.yaml: cannot read: "));
        assert_eq!(
            e[2],
            "40-more.yaml: VirtualService/vs: metadata.name: duplicate VirtualService 'vs' \
             (first defined in 20-routes.yaml)"
        );
        assert!(e[3].starts_with(
            "40-more.yaml: Gateway/gw2: spec.servers[0].port.nmae: unknown field `nmae`"
        ));
    }

    #[test]
    fn shipped_examples_load() {
        let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
        for entry in fs::read_dir(&conf).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                if let Err(e) = load(std::slice::from_ref(&path), &Overrides::default()) {
                    panic!("{}:\n{e}", path.display());
                }
            }
        }
    }
}
