//! Paths into `certs-example/` and copies of its credentials folder.

use std::path::{Path, PathBuf};

use crate::workspace_root;

/// `<workspace>/certs-example`.
pub fn certs_example() -> PathBuf {
    workspace_root().join("certs-example")
}

/// `certs-example/credentials` (the seed's credentialsDir).
pub fn credentials_dir() -> PathBuf {
    certs_example().join("credentials")
}

/// `certs-example/ca/<name>/ca.crt` (`example`, `acme`, `pirate`).
pub fn ca_cert(name: &str) -> PathBuf {
    certs_example().join("ca").join(name).join("ca.crt")
}

/// `certs-example/ca/<name>/ca.key`.
pub fn ca_key(name: &str) -> PathBuf {
    certs_example().join("ca").join(name).join("ca.key")
}

/// A client certificate and key: `certs-example/clients/<name>/{tls.crt,tls.key}`
/// (`great-partner` is Acme's, `bad-partner` is Pirate's).
pub fn client_cert(name: &str) -> (PathBuf, PathBuf) {
    let d = certs_example().join("clients").join(name);
    (d.join("tls.crt"), d.join("tls.key"))
}

/// One credential folder of `certs-example/credentials/`.
pub fn credential(name: &str) -> PathBuf {
    credentials_dir().join(name)
}

/// Copy every credential folder of `certs-example/credentials` into `dest`
/// (created if needed), so a test can add or change credentials.
pub fn copy_credentials(dest: &Path) -> std::io::Result<()> {
    copy_dir(&credentials_dir(), dest)
}

fn copy_dir(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let to = dest.join(entry.file_name());
        let ty = entry.file_type()?;
        if ty.is_dir() {
            copy_dir(&entry.path(), &to)?;
        } else {
            // Follows symlinks: the copy holds the files' contents.
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

/// Panic with a clear message when `certs-example/` is not there yet.
pub fn require_certs_example() {
    let needed = [
        ca_cert("example"),
        ca_cert("acme"),
        ca_cert("pirate"),
        credential("frontend-credential").join("tls.crt"),
        credential("frontend-credential").join("tls.key"),
        credential("partner-credential").join("tls.crt"),
        credential("partner-credential").join("tls.key"),
        credential("partner-credential").join("ca.crt"),
        client_cert("great-partner").0,
        client_cert("great-partner").1,
        client_cert("bad-partner").0,
        client_cert("bad-partner").1,
    ];
    let missing: Vec<String> = needed
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "certs-example is incomplete; missing: {}",
        missing.join(", ")
    );
}

/// The SHA-256 of a PEM certificate's DER, lower-case hex (Envoy's XFCC `Hash`).
pub fn cert_sha256_hex(pem: &Path) -> String {
    let out = crate::cmd::openssl(&[
        "x509",
        "-in",
        &pem.to_string_lossy(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    assert!(out.success(), "openssl x509 -fingerprint: {out}");
    let fp = out
        .stdout
        .trim()
        .rsplit('=')
        .next()
        .unwrap_or_default()
        .replace(':', "")
        .to_ascii_lowercase();
    assert_eq!(fp.len(), 64, "unexpected fingerprint output: {out}");
    fp
}

/// `openssl x509 -noout -subject -serial` of a PEM certificate.
pub fn cert_subject_and_serial(pem: &Path) -> (String, String) {
    let out = crate::cmd::openssl(&[
        "x509",
        "-in",
        &pem.to_string_lossy(),
        "-noout",
        "-subject",
        "-serial",
    ]);
    assert!(out.success(), "openssl x509 -subject -serial: {out}");
    let mut subject = String::new();
    let mut serial = String::new();
    for l in out.stdout.lines() {
        if let Some(s) = l.strip_prefix("subject=") {
            subject = s.trim().to_string();
        } else if let Some(s) = l.strip_prefix("serial=") {
            serial = s.trim().to_string();
        }
    }
    (subject, serial)
}

/// `tlsgate certs ca`: a new CA (`ca.crt`, `ca.key`) in `dir`.
pub fn tlsgate_certs_ca(dir: &Path, cn: &str) -> crate::cmd::CmdOutput {
    let dir = dir.to_string_lossy();
    crate::cmd::run_tlsgate(
        &["certs", "ca", "--out", &dir, "--cn", cn],
        std::time::Duration::from_secs(30),
    )
}

/// `tlsgate certs server`: `tls.crt` + `tls.key` for `hosts` in `out`,
/// signed by the CA in `ca_dir`.
pub fn tlsgate_certs_server(
    ca_dir: &Path,
    out: &Path,
    cn: &str,
    hosts: &[&str],
) -> crate::cmd::CmdOutput {
    let ca = ca_dir.to_string_lossy();
    let out = out.to_string_lossy();
    let mut args: Vec<&str> = vec!["certs", "server", "--ca", &ca, "--out", &out, "--cn", cn];
    for h in hosts {
        args.push("--san");
        args.push(h);
    }
    crate::cmd::run_tlsgate(&args, std::time::Duration::from_secs(30))
}

/// `tlsgate certs client`: `tls.crt` + `tls.key` with `sans` (DNS names or
/// `spiffe://` URIs) in `out`, signed by the CA in `ca_dir`.
pub fn tlsgate_certs_client(
    ca_dir: &Path,
    out: &Path,
    cn: &str,
    sans: &[&str],
) -> crate::cmd::CmdOutput {
    let ca = ca_dir.to_string_lossy();
    let out = out.to_string_lossy();
    let mut args: Vec<&str> = vec!["certs", "client", "--ca", &ca, "--out", &out, "--cn", cn];
    for h in sans {
        args.push("--san");
        args.push(h);
    }
    crate::cmd::run_tlsgate(&args, std::time::Duration::from_secs(30))
}

/// A copy of the example Acme CA (which the seed's partner host trusts) in
/// `work/acme-ca`, to issue more clients from with `tlsgate certs client`.
pub fn acme_ca_copy(work: &Path) -> PathBuf {
    let ca = work.join("acme-ca");
    std::fs::create_dir_all(&ca).expect("create the CA folder");
    std::fs::copy(ca_cert("acme"), ca.join("ca.crt")).expect("copy ca.crt");
    std::fs::copy(ca_key("acme"), ca.join("ca.key")).expect("copy ca.key");
    ca
}

/// An Acme client `name` in `work/<name>` (`tls.crt`, `tls.key`) that ends
/// `seconds` from now: tests of what happens when a certificate ends.
pub fn short_lived_acme_client(work: &Path, name: &str, seconds: u32) -> PathBuf {
    let ca = acme_ca_copy(work);
    let out = work.join(name);
    let run = crate::cmd::run_tlsgate(
        &[
            "certs",
            "client",
            "--ca",
            &ca.to_string_lossy(),
            "--name",
            name,
            "--out",
            &out.to_string_lossy(),
            "--seconds",
            &seconds.to_string(),
        ],
        std::time::Duration::from_secs(30),
    );
    assert!(run.success(), "{run}");
    out
}
