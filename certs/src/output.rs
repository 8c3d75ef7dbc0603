//! Writing what `tlsgate certs` made: never half a file, keys owner-only,
//! and paths printed so they paste into a shell.

use std::path::{Path, PathBuf};

use super::CertgenError;

pub(super) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "CREDENTIAL".into())
}

pub(super) fn read_ca_bundle(dir: &Path) -> Result<(PathBuf, Vec<u8>), CertgenError> {
    let path = dir.join("ca.crt");
    let pem = std::fs::read(&path).map_err(|source| CertgenError::Io {
        path: path.clone(),
        source,
    })?;
    match openssl::x509::X509::stack_from_pem(&pem) {
        Ok(certs) if !certs.is_empty() => Ok((path, pem)),
        _ => Err(CertgenError::Invalid(format!(
            "{}: no PEM certificate to use as client CA",
            path.display()
        ))),
    }
}

pub(super) fn refuse_overwrite(key: &Path, force: bool) -> Result<(), CertgenError> {
    if !force && std::fs::symlink_metadata(key).is_ok() {
        return Err(CertgenError::Exists {
            path: key.to_path_buf(),
        });
    }
    Ok(())
}

/// Write beside then rename, so a watching gateway never reads half a file;
/// the temporary name starts with `.` so it is never taken for a credential.
pub(super) fn write_file(path: &Path, data: &[u8], secret: bool) -> Result<(), CertgenError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| CertgenError::Io { path: p, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(".{}.{}.tmp", file_name(path), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(io(&tmp))?;
    let written = f.write_all(data).and_then(|_| f.sync_all());
    drop(f);
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    Ok(())
}

/// A path as a shell word: printed lines must paste as-is.
pub(super) fn sh(p: &Path) -> String {
    let s = p.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=@,+%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
