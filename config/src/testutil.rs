//! Helpers for the loader's unit tests: one-call loading of a YAML text.
//! The loader never looks at credentials, so none are needed here.

use std::path::Path;

use super::{load_str, Model, Overrides};

pub(crate) fn load(yaml: &str) -> Result<Model, Vec<String>> {
    load_str(
        Path::new("test.yaml"),
        yaml,
        Path::new("/conf"),
        &Overrides::default(),
    )
    .map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

/// The errors of a YAML text that must not load.
pub(crate) fn errors(yaml: &str) -> Vec<String> {
    match load(yaml) {
        Ok(_) => panic!("expected errors, the configuration loaded"),
        Err(e) => e,
    }
}

/// Asserts that exactly one error was reported and returns it.
pub(crate) fn one_error(yaml: &str) -> String {
    let e = errors(yaml);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.into_iter().next().expect("one")
}

pub(crate) const GATEWAY: &str = "apiVersion: networking.istio.io/v1\nkind: Gateway\n";
pub(crate) const VIRTUAL_SERVICE: &str =
    "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\n";
pub(crate) const DESTINATION_RULE: &str =
    "apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\n";
pub(crate) const SERVICE_ENTRY: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n";

/// The errors and the warnings of a YAML text, each as displayed, without
/// the `test.yaml: ` prefix.
pub(crate) fn findings(yaml: &str) -> (Vec<String>, Vec<String>) {
    let loaded = super::load_str_all(
        Path::new("test.yaml"),
        yaml,
        Path::new("/conf"),
        &Overrides::default(),
    );
    let strip = |s: String| {
        s.strip_prefix("test.yaml: ")
            .map(str::to_owned)
            .unwrap_or(s)
    };
    (
        loaded.errors.iter().map(|e| strip(e.to_string())).collect(),
        loaded
            .model
            .warnings
            .iter()
            .map(|w| strip(w.to_string()))
            .collect(),
    )
}
