//! Existence checks for the credential files a configuration names, so that
//! `tlsgate check` catches a missing Secret. Reading and parsing the PEM
//! files is `credentials.rs`'s job, at runtime build and on every reload.

use std::path::Path;

/// Certificate/key file pairs, Kubernetes' names first, then Istio's.
const CERT_KEY: &[(&str, &str)] = &[("tls.crt", "tls.key"), ("cert", "key")];
const CA_FILES: &[&str] = &["ca.crt", "cacert"];

/// A `credentialName`: its folder must hold a certificate and key (when
/// `cert_key`) and a CA bundle (when `ca`).
pub(crate) fn named(dir: &Path, name: &str, cert_key: bool, ca: bool) -> Result<(), String> {
    // A name is one folder: never let it climb out of the credentials dir.
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(format!(
            "invalid credential name '{name}': expected a folder name"
        ));
    }
    if cert_key {
        cert_and_key(dir, name)?;
    }
    if ca {
        ca_bundle(dir, name)?;
    }
    Ok(())
}

/// `<dir>/<name>/` must hold a certificate and a key.
fn cert_and_key(dir: &Path, name: &str) -> Result<(), String> {
    let folder = dir.join(name);
    if !folder.is_dir() {
        return Err(format!("no credential '{name}' in {}", dir.display()));
    }
    if CERT_KEY
        .iter()
        .any(|(c, k)| folder.join(c).is_file() && folder.join(k).is_file())
    {
        Ok(())
    } else {
        Err(format!(
            "credential '{name}' in {} has no tls.crt + tls.key (or cert + key)",
            dir.display()
        ))
    }
}

/// A CA bundle for `name`: in its own folder, or in `<name>-cacert/` (Istio's
/// separate-Secret layout).
fn ca_bundle(dir: &Path, name: &str) -> Result<(), String> {
    let cacert = format!("{name}-cacert");
    let found = [name, cacert.as_str()]
        .iter()
        .any(|folder| CA_FILES.iter().any(|f| dir.join(folder).join(f).is_file()));
    if found {
        Ok(())
    } else {
        Err(format!(
            "no CA bundle for credential '{name}' in {}: expected {name}/ca.crt, {name}/cacert \
             or {name}-cacert/ca.crt",
            dir.display()
        ))
    }
}

/// An inline certificate, key or CA file path.
pub(crate) fn file(path: &Path) -> Result<(), String> {
    if path.is_file() {
        Ok(())
    } else {
        Err(format!("no such file: {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let touch = |p: &str| {
            let p = d.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        };
        touch("k8s/tls.crt");
        touch("k8s/tls.key");
        touch("k8s/ca.crt");
        touch("istio/cert");
        touch("istio/key");
        touch("istio-cacert/cacert");
        touch("half/tls.crt");

        assert!(cert_and_key(d, "k8s").is_ok());
        assert!(cert_and_key(d, "istio").is_ok());
        assert!(ca_bundle(d, "k8s").is_ok());
        assert!(ca_bundle(d, "istio").is_ok());
        assert!(ca_bundle(d, "half").is_err());
        assert!(cert_and_key(d, "half")
            .unwrap_err()
            .contains("no tls.crt + tls.key"));
        assert_eq!(
            named(d, "x", true, true).unwrap_err(),
            format!("no credential 'x' in {}", d.display())
        );
        assert!(named(d, "../k8s", true, false).is_err());
        assert!(named(d, "istio", false, true).is_ok());
    }
}
