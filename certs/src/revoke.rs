//! `tlsgate certs revoke` and `tlsgate certs crl`: a CA folder keeps the
//! certificates it revoked in `revoked.txt` (one per line: serial in hex,
//! the revocation time in seconds since the epoch, the subject, for a
//! human reading it), and `ca.crl` is signed from that list, so a CRL can
//! be re-signed before its `nextUpdate` without losing an entry.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use openssl::x509::X509;

use super::output::{sh, write_file};
use super::{load_ca, make_crl_window, now_unix, ossl, CertgenError, Revoked};

const LIST: &str = "revoked.txt";
const CRL: &str = "ca.crl";
const NUMBER: &str = "crlnumber";

#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    /// CA folder holding ca.crt and ca.key (and revoked.txt, ca.crl).
    #[arg(long)]
    pub ca: PathBuf,
    /// Certificate files (PEM) this CA issued, to revoke.
    #[arg(required = true)]
    pub certs: Vec<PathBuf>,
    /// The new CRL's validity in days (its nextUpdate): re-sign it with
    /// `tlsgate certs crl` before then, or clients of this CA are refused.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Validity in seconds instead of days: a short-lived CRL (tests of a
    /// gateway's refresh and of its stale-CRL policy).
    #[arg(long, conflicts_with = "days")]
    pub seconds: Option<u32>,
}

#[derive(clap::Args, Debug)]
pub struct CrlArgs {
    /// CA folder holding ca.crt and ca.key (and revoked.txt).
    #[arg(long)]
    pub ca: PathBuf,
    /// Validity in days (nextUpdate).
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Validity in seconds instead of days.
    #[arg(long, conflicts_with = "days")]
    pub seconds: Option<u32>,
}

/// How long a new CRL is valid, as the operator asked.
fn validity(days: u32, seconds: Option<u32>) -> Result<(i64, String), CertgenError> {
    match seconds {
        Some(0) => Err(CertgenError::Invalid("--seconds must be at least 1".into())),
        Some(s) => Ok((i64::from(s), format!("{s} seconds"))),
        None if days == 0 => Err(CertgenError::Invalid("--days must be at least 1".into())),
        None => Ok((i64::from(days) * 86_400, format!("{days} days"))),
    }
}

pub(super) fn revoke(a: &RevokeArgs) -> Result<String, CertgenError> {
    let ca = load_ca(&a.ca)?;
    let ca_key = ca.cert.public_key().map_err(ossl("CA public key"))?;
    let mut list = read_list(&a.ca)?;
    let mut out = String::new();
    for path in &a.certs {
        let pem = std::fs::read(path).map_err(|source| CertgenError::Io {
            path: path.clone(),
            source,
        })?;
        let cert = X509::from_pem(&pem).map_err(ossl("parsing the certificate"))?;
        // Only what this CA signed: a serial of another CA's certificate
        // in this CRL would revoke nothing, and hide the mistake.
        if !cert.verify(&ca_key).unwrap_or(false) {
            return Err(CertgenError::Invalid(format!(
                "{}: not issued by the CA in {}",
                path.display(),
                a.ca.display()
            )));
        }
        let serial = cert
            .serial_number()
            .to_bn()
            .and_then(|b| b.to_hex_str().map(|h| h.to_string()))
            .map_err(ossl("certificate serial"))?;
        // RFC 5280 serials are positive; a negative one (some old CAs
        // wrote them) would not round-trip through revoked.txt.
        if serial.starts_with('-') {
            return Err(CertgenError::Invalid(format!(
                "{}: a negative serial number cannot be listed",
                path.display()
            )));
        }
        let subject = super::cli::oneline(&cert);
        if list.iter().any(|(r, _)| same_serial(&r.serial, &serial)) {
            let _ = writeln!(out, "already revoked: {subject} (serial {serial})");
            continue;
        }
        let _ = writeln!(out, "revoked {subject} (serial {serial})");
        list.push((
            Revoked {
                serial,
                at: now_unix(),
            },
            subject,
        ));
    }
    write_list(&a.ca, &list)?;
    out.push_str(&sign(&a.ca, &list, validity(a.days, a.seconds)?)?);
    Ok(out)
}

pub(super) fn crl(a: &CrlArgs) -> Result<String, CertgenError> {
    let list = read_list(&a.ca)?;
    sign(&a.ca, &list, validity(a.days, a.seconds)?)
}

/// Writes `ca.crl` for `list`; returns what to tell the operator.
fn sign(
    dir: &Path,
    list: &[(Revoked, String)],
    (secs, valid): (i64, String),
) -> Result<String, CertgenError> {
    let ca = load_ca(dir)?;
    let entries: Vec<Revoked> = list.iter().map(|(r, _)| r.clone()).collect();
    // Each CRL's number above the last one's (RFC 5280 5.2.3), whatever
    // the clock did: kept in DIR/crlnumber.
    let number_file = dir.join(NUMBER);
    let last = std::fs::read_to_string(&number_file)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let number = (now_unix().max(1) as u64).max(last + 1);
    let now = now_unix();
    let crl = make_crl_window(&ca, &entries, now - 300, now + secs, number)?;
    write_file(&number_file, format!("{number}\n").as_bytes(), false)?;
    let path = dir.join(CRL);
    write_file(&path, &crl.to_pem().map_err(ossl("CRL PEM"))?, false)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wrote {} ({} revoked, valid for {valid}: re-sign before then with `tlsgate certs crl --ca {}`)",
        sh(&path),
        entries.len(),
        sh(dir)
    );
    let _ = writeln!(
        out,
        "\nNext: put it beside the client CA of each credential that trusts this CA:"
    );
    let _ = writeln!(
        out,
        "  cp {} CREDENTIALS_DIR/NAME-credential/ca.crl",
        sh(&path)
    );
    let _ = writeln!(
        out,
        "  kubectl create secret generic NAME-credential --from-file=tls.crt --from-file=tls.key \
         --from-file=ca.crt --from-file=ca.crl={} --dry-run=client -o yaml | kubectl apply -f -",
        sh(&path)
    );
    Ok(out)
}

fn read_list(dir: &Path) -> Result<Vec<(Revoked, String)>, CertgenError> {
    let path = dir.join(LIST);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(CertgenError::Io { path, source }),
    };
    text.lines()
        .enumerate()
        .map(|(i, l)| (i, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            let mut parts = l.splitn(2, char::is_whitespace);
            let serial = parts.next();
            let mut parts = parts
                .next()
                .unwrap_or("")
                .trim_start()
                .splitn(2, char::is_whitespace);
            let bad = || {
                CertgenError::Invalid(format!(
                    "{} line {}: expected `<serial hex> <unix time> <subject>`",
                    path.display(),
                    i + 1
                ))
            };
            let serial = serial.filter(|s| is_hex(s)).ok_or_else(bad)?;
            let at = parts
                .next()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(bad)?;
            let subject = parts.next().unwrap_or("").trim().to_string();
            Ok((
                Revoked {
                    serial: serial.to_string(),
                    at,
                },
                subject,
            ))
        })
        .collect()
}

fn write_list(dir: &Path, list: &[(Revoked, String)]) -> Result<(), CertgenError> {
    let mut text = String::from("# serial (hex) revoked-at (unix seconds) subject\n");
    for (r, subject) in list {
        let _ = writeln!(text, "{} {} {}", r.serial, r.at, subject.replace('\n', " "));
    }
    write_file(&dir.join(LIST), text.as_bytes(), false)
}

/// Equal as numbers: `00ab` and `AB` are one serial.
fn same_serial(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim_start_matches('0').to_ascii_uppercase();
    norm(a) == norm(b)
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{make_ca, make_leaf, CaSpec, LeafSpec, Usage};

    fn write_ca(dir: &Path, cn: &str) -> crate::Issued {
        let ca = make_ca(&CaSpec::new("Acme", cn)).unwrap();
        write_file(&dir.join("ca.crt"), &ca.cert_pem().unwrap(), false).unwrap();
        write_file(&dir.join("ca.key"), &ca.key_pem().unwrap(), true).unwrap();
        ca
    }

    fn write_client(dir: &Path, ca: &crate::Issued, cn: &str) -> (PathBuf, X509) {
        let leaf = make_leaf(&LeafSpec::new(Usage::Client, cn), ca).unwrap();
        let path = dir.join(format!("{cn}.crt"));
        write_file(&path, &leaf.cert_pem().unwrap(), false).unwrap();
        (path, leaf.cert)
    }

    fn crl_serials(dir: &Path) -> Vec<String> {
        let crl = openssl::x509::X509Crl::from_pem(&std::fs::read(dir.join(CRL)).unwrap()).unwrap();
        crl.get_revoked()
            .map(|s| {
                s.iter()
                    .map(|r| {
                        r.serial_number()
                            .to_bn()
                            .unwrap()
                            .to_hex_str()
                            .unwrap()
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn revoked_certificates_stay_in_every_crl_signed_after() {
        let dir = tempfile::tempdir().unwrap();
        let ca = write_ca(dir.path(), "ca");
        let (a, a_cert) = write_client(dir.path(), &ca, "a");
        let (b, _) = write_client(dir.path(), &ca, "b");
        let out = revoke(&RevokeArgs {
            ca: dir.path().into(),
            certs: vec![a.clone()],
            days: 30,
            seconds: None,
        })
        .unwrap();
        assert!(out.contains("revoked CN=a"), "{out}");
        let serial = a_cert
            .serial_number()
            .to_bn()
            .unwrap()
            .to_hex_str()
            .unwrap()
            .to_string();
        assert_eq!(crl_serials(dir.path()), std::slice::from_ref(&serial));
        // The CRL is the CA's: it verifies with the CA's key.
        let signed =
            openssl::x509::X509Crl::from_pem(&std::fs::read(dir.path().join(CRL)).unwrap())
                .unwrap();
        assert!(signed.verify(&ca.cert.public_key().unwrap()).unwrap());
        // Again, and with another: no duplicate.
        let out = revoke(&RevokeArgs {
            ca: dir.path().into(),
            certs: vec![a, b],
            days: 30,
            seconds: None,
        })
        .unwrap();
        assert!(out.contains("already revoked: CN=a"), "{out}");
        assert_eq!(crl_serials(dir.path()).len(), 2);
        // Re-signed: the same entries, a later CRL.
        crl(&CrlArgs {
            ca: dir.path().into(),
            days: 1,
            seconds: None,
        })
        .unwrap();
        assert_eq!(crl_serials(dir.path()).len(), 2);
        assert!(crl_serials(dir.path()).contains(&serial));
    }

    #[test]
    fn the_list_reads_as_people_edit_it_and_crl_numbers_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let ca = write_ca(dir.path(), "ca");
        std::fs::write(
            dir.path().join(LIST),
            "  # kept by hand\n00ab\t1700000000   CN=old one, O=Acme\n\n",
        )
        .unwrap();
        let list = read_list(dir.path()).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].1, "CN=old one, O=Acme");
        assert!(same_serial(&list[0].0.serial, "AB"));
        let (a, _) = write_client(dir.path(), &ca, "a");
        revoke(&RevokeArgs {
            ca: dir.path().into(),
            certs: vec![a],
            days: 30,
            seconds: None,
        })
        .unwrap();
        let number = || -> u64 {
            std::fs::read_to_string(dir.path().join(NUMBER))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let first = number();
        crl(&CrlArgs {
            ca: dir.path().into(),
            days: 30,
            seconds: None,
        })
        .unwrap();
        assert!(number() > first, "{first} then {}", number());
        assert_eq!(crl_serials(dir.path()).len(), 2);
    }

    #[test]
    fn another_cas_certificate_or_a_broken_list_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = write_ca(dir.path(), "ca");
        let other_dir = tempfile::tempdir().unwrap();
        let other = write_ca(other_dir.path(), "other");
        let (stranger, _) = write_client(other_dir.path(), &other, "stranger");
        let e = revoke(&RevokeArgs {
            ca: dir.path().into(),
            certs: vec![stranger],
            days: 30,
            seconds: None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("not issued by the CA"), "{e}");
        assert!(!dir.path().join(CRL).exists());
        std::fs::write(dir.path().join(LIST), "zz 1 x\n").unwrap();
        let (a, _) = write_client(dir.path(), &ca, "a");
        let e = revoke(&RevokeArgs {
            ca: dir.path().into(),
            certs: vec![a],
            days: 30,
            seconds: None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("revoked.txt line 1"), "{e}");
    }
}
