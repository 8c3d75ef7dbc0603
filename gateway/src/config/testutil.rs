//! Helpers for the loader's unit tests: a throwaway credentials dir and
//! one-call loading of a YAML text.

use std::path::Path;

use tempfile::TempDir;

use super::{load_str, Model, Overrides};

/// A credentials dir with `name -> files` folders (file content is
/// irrelevant: the loader only checks existence).
pub(crate) fn creds(folders: &[(&str, &[&str])]) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, files) in folders {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).expect("mkdir");
        for f in *files {
            std::fs::write(folder.join(f), "not a PEM").expect("write");
        }
    }
    dir
}

/// The usual tutorial credentials: a server credential and one with a CA.
pub(crate) fn tutorial_creds() -> TempDir {
    creds(&[
        ("frontend-credential", &["tls.crt", "tls.key"]),
        ("partner-credential", &["tls.crt", "tls.key", "ca.crt"]),
        ("client-credential", &["tls.crt", "tls.key", "ca.crt"]),
        // conf/seed-002-service.yaml (the egress tests generate it).
        ("greeting-credential", &["tls.crt", "tls.key", "ca.crt"]),
        // conf/seed-001, 003, 004 (their runbooks generate them).
        ("httpbin-credential", &["tls.crt", "tls.key", "ca.crt"]),
        ("web-api-credential", &["tls.crt", "tls.key", "ca.crt"]),
        ("istio-ingressgateway-certs", &["tls.crt", "tls.key"]),
        ("router-certs", &["tls.crt", "tls.key"]),
    ])
}

pub(crate) fn load(yaml: &str, creds: &Path) -> Result<Model, Vec<String>> {
    let overrides = Overrides {
        admin: None,
        credentials_dir: Some(creds.to_path_buf()),
    };
    load_str(Path::new("test.yaml"), yaml, Path::new("/conf"), &overrides)
        .map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

/// The errors of a YAML text that must not load.
pub(crate) fn errors(yaml: &str, creds: &Path) -> Vec<String> {
    match load(yaml, creds) {
        Ok(_) => panic!("expected errors, the configuration loaded"),
        Err(e) => e,
    }
}

/// Asserts that exactly one error was reported and returns it.
pub(crate) fn one_error(yaml: &str, creds: &Path) -> String {
    let e = errors(yaml, creds);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.into_iter().next().expect("one")
}

pub(crate) const GATEWAY: &str = "apiVersion: networking.istio.io/v1\nkind: Gateway\n";
pub(crate) const VIRTUAL_SERVICE: &str =
    "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\n";
pub(crate) const DESTINATION_RULE: &str =
    "apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\n";
pub(crate) const SERVICE_ENTRY: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n";
