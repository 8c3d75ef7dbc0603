//! Files -> YAML documents -> [`Document`]s: the envelope (`apiVersion`,
//! `kind`, `metadata`) read and checked, the `spec` left as a YAML value for
//! the per-kind converters.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

use super::kinds::{classify, Kind, Use};
use super::raw::Metadata;
use super::{ConfigError, DocId, Findings};

/// One document whose kind and name are known. Its envelope may still have
/// had errors (already reported): converting it anyway finds the rest, and
/// keeps its name resolvable so references to it are not reported as well.
#[derive(Debug)]
pub(crate) struct Document {
    pub id: DocId,
    pub kind: Kind,
    pub namespace: Option<String>,
    /// `metadata.annotations`.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `Value::Null` when the document has no `spec`.
    pub spec: Value,
    /// Absolute folder that relative paths in this document resolve against.
    pub base_dir: PathBuf,
}

/// The YAML files named by `paths`: files as given, directories' `*.yaml` /
/// `*.yml` sorted by name (not recursive, so a `..data` symlink farm of a
/// mounted Secret is not read twice).
pub(crate) fn collect_files(paths: &[PathBuf], out: &mut Findings) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => {
                out.push(file_error(path, format!("cannot read directory: {e}")));
                continue;
            }
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_yaml(p) && p.is_file())
            .collect();
        if found.is_empty() {
            out.push(file_error(
                path,
                "no *.yaml or *.yml file in this directory",
            ));
        }
        found.sort();
        files.extend(found);
    }
    files
}

fn is_yaml(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    // Editors' and Kubernetes' hidden files are never configuration.
    !name.starts_with('.')
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        )
}

/// The folder of `file`, absolute, for resolving paths written in it.
pub(crate) fn folder_of(file: &Path) -> PathBuf {
    absolute(file.parent().unwrap_or(Path::new("")))
}

/// Absolute without touching the file system (symlinks stay as written, so
/// a later `..data` swap is still followed).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    if path.as_os_str().is_empty() {
        return std::env::current_dir().unwrap_or_default();
    }
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(crate) fn file_error(file: &Path, message: impl Into<String>) -> ConfigError {
    ConfigError::File {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

/// Splits `yaml` into documents and reads each envelope. Empty documents are
/// skipped; a syntax error ends the file (the parser cannot resynchronise).
pub(crate) fn documents(
    file: &Path,
    yaml: &str,
    base_dir: &Path,
    out: &mut Findings,
) -> Vec<Document> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let mut value = match Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                out.push(file_error(file, format!("invalid YAML: {e}")));
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        if let Err(e) = value.apply_merge() {
            out.push(file_error(file, format!("document {}: {e}", i + 1)));
            continue;
        }
        let label = format!("document {}", i + 1);
        // `kubectl get -o yaml` wraps what it prints in a List.
        if value.get("kind").and_then(Value::as_str) == Some("List") {
            if let Some(Value::Sequence(items)) = value.get_mut("items").map(std::mem::take) {
                for (j, item) in items.into_iter().enumerate() {
                    let label = format!("{label} items[{j}]");
                    docs.extend(envelope(file, &label, item, base_dir, out));
                }
                continue;
            }
        }
        docs.extend(envelope(file, &label, value, base_dir, out));
    }
    docs
}

fn envelope(
    file: &Path,
    label: &str,
    value: Value,
    base_dir: &Path,
    out: &mut Findings,
) -> Option<Document> {
    let Value::Mapping(mut map) = value else {
        out.push(unnamed(
            file,
            label,
            ".",
            "expected a mapping with apiVersion, kind, metadata and spec",
        ));
        return None;
    };
    let kind_str = map.get("kind").and_then(Value::as_str).map(str::to_owned);
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);

    let (Some(kind_str), Some(name)) = (kind_str, name) else {
        let (field, msg) = if map.get("kind").and_then(Value::as_str).is_none() {
            ("kind", "missing or not a string")
        } else {
            ("metadata.name", "missing or empty")
        };
        out.push(unnamed(file, label, field, msg));
        return None;
    };
    let id = DocId {
        file: file.to_path_buf(),
        kind: kind_str.clone(),
        name,
    };
    let kind = match classify(map.get("apiVersion").and_then(Value::as_str), &kind_str) {
        Use::Read(kind) => kind,
        Use::Ignored(why) => {
            out.warn(&id, "kind", why);
            return None;
        }
        Use::Refused(why) => {
            out.push(ConfigError::field(&id, "kind", why));
            return None;
        }
    };

    match map.get("apiVersion").and_then(Value::as_str) {
        None => out.push(ConfigError::field(&id, "apiVersion", "missing")),
        Some(v) if kind.api_versions().contains(&v) => {}
        Some(v) => out.push(ConfigError::field(
            &id,
            "apiVersion",
            format!(
                "apiVersion '{v}' is not supported for {kind_str}; use {}",
                kind.api_versions().join(", ")
            ),
        )),
    }
    for key in map.keys() {
        let known = key
            .as_str()
            .is_some_and(|k| matches!(k, "apiVersion" | "kind" | "metadata" | "spec" | "status"));
        if !known {
            let shown = key
                .as_str()
                .map_or_else(|| format!("{key:?}"), str::to_owned);
            out.push(ConfigError::field(&id, shown, "unknown field"));
        }
    }

    let metadata = map.remove("metadata").unwrap_or(Value::Null);
    let metadata: Metadata = match serde_path_to_error::deserialize(metadata) {
        Ok(m) => m,
        Err(e) => {
            out.push(ConfigError::field(
                &id,
                format!("metadata.{}", e.path()),
                e.into_inner().to_string(),
            ));
            Metadata::default()
        }
    };
    Some(Document {
        id,
        kind,
        namespace: metadata.namespace.filter(|n| !n.is_empty()),
        annotations: metadata.annotations,
        spec: map.remove("spec").unwrap_or(Value::Null),
        base_dir: base_dir.to_path_buf(),
    })
}

/// An error in a document whose kind or name could not be read.
fn unnamed(file: &Path, label: &str, field: &str, message: &str) -> ConfigError {
    ConfigError::Field {
        file: file.to_path_buf(),
        doc: label.to_string(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documents, then every error and warning, warnings last.
    fn docs(yaml: &str) -> (Vec<Document>, Vec<String>) {
        let mut out = Findings::default();
        let d = documents(Path::new("f.yaml"), yaml, Path::new("/base"), &mut out);
        let errors = out.errors.iter().map(|e| e.to_string());
        let warnings = out.warnings.iter().map(|w| format!("warning: {w}"));
        (d, errors.chain(warnings).collect())
    }

    #[test]
    fn multi_document_file_skips_empty_documents() {
        let (d, errors) = docs(
            "---\n# only a comment\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\n\
             metadata: {name: a, namespace: istio-system, uid: x, resourceVersion: '1'}\n\
             spec: {}\n---\n---\napiVersion: tlsgate.io/v1\nkind: GatewayRuntime\n\
             metadata: {name: rt}\nstatus: {}\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].kind, Kind::Gateway);
        assert_eq!(d[0].namespace.as_deref(), Some("istio-system"));
        assert_eq!(d[1].id.name, "rt");
        assert!(d[1].spec.is_null());
    }

    #[test]
    fn kubectl_lists_are_expanded() {
        let (d, errors) = docs(
            r"apiVersion: v1
kind: List
metadata: {}
resourceVersion: ''
items:
- apiVersion: networking.istio.io/v1alpha3
  kind: DestinationRule
  metadata: {name: a, creationTimestamp: 2019-01-30T04:46:58Z, generation: 1}
  spec: {host: a}
- kind: DestinationRule
",
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].id.name, "a");
        assert_eq!(
            errors,
            ["f.yaml: document 1 items[1]: metadata.name: missing or empty"]
        );
    }

    #[test]
    fn unreadable_documents_are_numbered() {
        let (d, errors) = docs("kind: Gateway\nmetadata: {}\n---\n- a list\n");
        assert!(d.is_empty());
        assert_eq!(
            errors,
            [
                "f.yaml: document 1: metadata.name: missing or empty",
                "f.yaml: document 2: .: expected a mapping with apiVersion, kind, metadata and spec",
            ]
        );
    }

    #[test]
    fn unknown_kind_and_api_version_are_named() {
        let (d, errors) = docs(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {}\nextra: 1\n",
        );
        assert_eq!(
            d.len(),
            1,
            "a Gateway with a bad apiVersion is still converted"
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with(
            "f.yaml: Gateway/g: apiVersion: apiVersion 'gateway.networking.k8s.io/v1' is not supported"
        ));
        assert_eq!(errors[1], "f.yaml: Gateway/g: extra: unknown field");
        assert_eq!(
            errors[2],
            "warning: f.yaml: Secret/s: kind: ignored: a Secret is not read from configuration \
             files; credentials come from credentialsDir (mount the Secret there)"
        );
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let (_, errors) = docs("apiVersion: v1\nkind: [Gateway\nmetadata: x\n");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("f.yaml: invalid YAML: "),
            "{}",
            errors[0]
        );
        assert!(errors[0].contains("line "), "{}", errors[0]);
        assert!(errors[0].contains("column "), "{}", errors[0]);
    }

    #[test]
    fn directories_are_read_sorted_and_flat() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.yml", "a.yaml", "notes.txt", ".hidden.yaml"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
        let mut out = Findings::default();
        let files = collect_files(&[dir.path().to_path_buf()], &mut out);
        assert!(out.errors.is_empty());
        let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap()).collect();
        assert_eq!(names, ["a.yaml", "b.yml"]);

        let empty = tempfile::tempdir().unwrap();
        collect_files(&[empty.path().to_path_buf()], &mut out);
        assert_eq!(out.errors.len(), 1);
    }
}
