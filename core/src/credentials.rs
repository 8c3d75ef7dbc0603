//! Credential folders -> validated [`Credential`]s.
//!
//! A credential is what one Kubernetes TLS/generic Secret holds, mounted or
//! copied as a folder `<credentialsDir>/<name>/` (see `files.rs` for the file
//! names honoured), or given as inline file paths. [`load`] reads and checks
//! everything a TLS context needs (chain parses, key matches the leaf, CA
//! bundle and CRL parse) so that a broken file is an error here and never a
//! half-configured listener. Loading is pure: no global state, so a reload
//! builds a whole new set of credentials beside the one serving.
//!
//! The peer side (identity of a verified client certificate, XFCC) is in
//! `identity.rs`.

mod checks;
mod der;
mod error;
mod files;
mod identity;
mod ocsp;
mod path;
mod verified_chains;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::pkey::{PKey, Private};
use openssl::x509::store::X509Store;
use openssl::x509::{X509Crl, X509};

use crate::config::model::CredentialSource;
use crate::revocation::CrlIndex;
pub use der::{version_one_key, SubjectKey};
pub use error::CredentialError;
pub use files::list_named;
pub(crate) use files::{parse_ca as parse_ca_bundle, read as read_file};
pub(crate) use identity::name_to_string as name_string;
pub use identity::{client_identity, client_identity_der, ClientIdentity};
pub(crate) use identity::{common_name, sha256, SubjectAltNames};
use identity::{hex, name_to_string};
pub use ocsp::{check_response as check_ocsp_response, request as ocsp_request, OcspInfo, Staple};
pub use path::verified_path;
pub use verified_chains::{ChainKey, Remembered, VerifiedChains, Window as ChainWindow};

/// Everything a TLS context needs from one credential, checked.
pub struct Credential {
    pub source: CredentialSource,
    /// Leaf first, then whatever intermediates (and root) the file carried.
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
    /// Client-CA bundle (ingress) or upstream CA bundle (egress); may be empty.
    pub ca_certs: Vec<X509>,
    pub crls: Vec<X509Crl>,
    /// `crls`, indexed and their signatures checked (`revocation`).
    pub crl_index: Vec<Arc<CrlIndex>>,
    /// From `ca.crl.url`: where more CRLs are fetched from.
    pub crl_urls: Vec<String>,
    /// Trusting `ca_certs`; `None` without CA. Revocation is not in it.
    pub ca_store: Option<X509Store>,
    /// The leaf's OCSP response to staple (`tls.ocsp`).
    pub ocsp: Option<Arc<Staple>>,
    /// A second certificate with a key of another type (`tls-rsa.crt` or
    /// `tls-ecdsa.crt`); OpenSSL serves whichever the client's signature
    /// algorithms allow. No CA bundle of its own.
    pub alt: Option<Arc<Credential>>,
    pub info: CredentialInfo,
}

/// What `/certs`, `tlsgate check` and logs show about a credential. Never key material.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CredentialInfo {
    pub name: String,
    pub subject: String,
    pub issuer: String,
    /// `DNS:x`, `URI:y`, `IP:z`, `email:w`.
    pub sans: Vec<String>,
    /// Lower-case hex.
    pub serial: String,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    pub ca_subjects: Vec<String>,
    /// Lower-case hex SHA-256 of the leaf's DER.
    pub fingerprint_sha256: String,
    /// The revocation lists of the client CA bundle (`ca.crl`).
    pub crls: Vec<CrlInfo>,
    /// `ca.crl.url`.
    pub crl_urls: Vec<String>,
    /// The OCSP response stapled with the leaf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocsp: Option<OcspInfo>,
    /// The second certificate (`tls-rsa.crt`, `tls-ecdsa.crt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternate: Option<Box<CredentialInfo>>,
    pub files: Vec<PathBuf>,
}

/// One CRL as `/certs` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CrlInfo {
    pub issuer: String,
    /// RFC 3339, UTC.
    pub this_update: String,
    /// After it, the CRL is stale: its issuer's certificates are refused
    /// (or, `failOpen`, accepted with a warning) until a newer one loads.
    pub next_update: Option<String>,
    pub next_update_unix: Option<i64>,
    /// Revoked certificates listed.
    pub entries: usize,
    /// The file or URL it came from.
    pub source: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately not the key.
        f.debug_struct("Credential")
            .field("source", &self.source)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Reads and validates the credential `source` names. `credentials_dir`
/// is only used for [`CredentialSource::Named`].
pub fn load(
    source: &CredentialSource,
    credentials_dir: &Path,
) -> Result<Credential, CredentialError> {
    let paths = files::locate(source, credentials_dir)?;
    let chain = files::parse_certs(&paths.cert, &files::read(&paths.cert)?)?;
    let key = files::parse_key(&paths.key, &files::read(&paths.key)?)?;
    let ca_certs = match &paths.ca {
        Some(p) => files::parse_ca(p, &files::read(p)?)?,
        None => Vec::new(),
    };
    let crls = match &paths.crl {
        Some(p) => files::parse_crls(p, &files::read(p)?)?,
        None => Vec::new(),
    };
    let crl_urls = match &paths.crl_url {
        Some(p) => files::parse_crl_urls(p, &files::read(p)?)?,
        None => Vec::new(),
    };
    let mut c = Credential::assemble(source.clone(), chain, key, ca_certs, crls, &paths)?;
    c.info.crl_urls.clone_from(&crl_urls);
    c.crl_urls = crl_urls;
    if let Some(p) = &paths.ocsp {
        c.set_staple(p)?;
    }
    if let Some(a) = &paths.alt {
        let chain = files::parse_certs(&a.cert, &files::read(&a.cert)?)?;
        let key = files::parse_key(&a.key, &files::read(&a.key)?)?;
        if key.id() == c.key.id() {
            return Err(CredentialError::SameKeyType {
                primary: paths.key.clone(),
                alt: a.key.clone(),
            });
        }
        let alt_paths = files::Paths {
            cert: a.cert.clone(),
            key: a.key.clone(),
            ca: None,
            crl: None,
            crl_url: None,
            ocsp: a.ocsp.clone(),
            alt: None,
        };
        let mut alt = Credential::assemble(
            source.clone(),
            chain,
            key,
            Vec::new(),
            Vec::new(),
            &alt_paths,
        )?;
        if let Some(p) = &a.ocsp {
            alt.set_staple(p)?;
        }
        c.info.alternate = Some(Box::new(alt.info.clone()));
        c.alt = Some(Arc::new(alt));
    }
    Ok(c)
}

/// A file the configuration names outside any credential (a
/// DestinationRule's `caCertificates`, read when a request first needs it):
/// it must at least be there.
pub fn check_file(path: &Path) -> Result<(), CredentialError> {
    if files::probe(path)? {
        Ok(())
    } else {
        Err(CredentialError::MissingFile {
            path: path.to_path_buf(),
        })
    }
}

impl Credential {
    /// A credential from material already in memory (tests, generated
    /// certificates); the same checks as [`load`].
    pub fn from_parts(
        source: CredentialSource,
        chain: Vec<X509>,
        key: PKey<Private>,
        ca_certs: Vec<X509>,
        crls: Vec<X509Crl>,
    ) -> Result<Credential, CredentialError> {
        let mem = PathBuf::from("<memory>");
        let paths = files::Paths {
            cert: mem.clone(),
            key: mem,
            ca: None,
            crl: None,
            crl_url: None,
            ocsp: None,
            alt: None,
        };
        if chain.is_empty() {
            return Err(CredentialError::NoCertificate { path: paths.cert });
        }
        Credential::assemble(source, chain, key, ca_certs, crls, &paths)
    }

    fn assemble(
        source: CredentialSource,
        chain: Vec<X509>,
        key: PKey<Private>,
        ca_certs: Vec<X509>,
        crls: Vec<X509Crl>,
        paths: &files::Paths,
    ) -> Result<Credential, CredentialError> {
        let leaf = &chain[0];
        let matches = leaf
            .public_key()
            .map(|p| p.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            return Err(CredentialError::KeyMismatch {
                key: paths.key.clone(),
                cert: paths.cert.clone(),
            });
        }
        let ca_store = if ca_certs.is_empty() {
            None
        } else {
            Some(files::build_store(&ca_certs)?)
        };
        let crl_path = paths.crl.clone().unwrap_or_else(|| paths.cert.clone());
        let crl_index = crls
            .iter()
            .map(|c| {
                CrlIndex::new(c, &ca_certs)
                    .map(Arc::new)
                    .map_err(|e| CredentialError::Crl {
                        path: crl_path.clone(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let info = info(&source, leaf, &ca_certs, &crls, &crl_path, paths.all())?;
        Ok(Credential {
            source,
            chain,
            key,
            ca_certs,
            crls,
            crl_index,
            crl_urls: Vec::new(),
            ca_store,
            ocsp: None,
            alt: None,
            info,
        })
    }

    fn set_staple(&mut self, path: &Path) -> Result<(), CredentialError> {
        let staple = ocsp::check(path, &files::read(path)?, &self.chain)?;
        self.info.ocsp = Some(staple.info());
        self.ocsp = Some(Arc::new(staple));
        Ok(())
    }

    /// Every certificate served: the leaf's credential, then the second.
    pub fn served(&self) -> impl Iterator<Item = &Credential> {
        std::iter::once(self).chain(self.alt.as_deref())
    }

    pub fn leaf(&self) -> &X509 {
        &self.chain[0]
    }

    /// Does the leaf's SAN list cover `host`? `*.x` covers exactly one more
    /// label (`a.x`, not `x` nor `a.b.x`). As in `X509_check_host`, the CN
    /// is only consulted when the certificate has no DNS SAN at all.
    pub fn covers_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let sans = SubjectAltNames::of(self.leaf());
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return sans.ips.iter().any(|s| s.parse() == Ok(ip));
        }
        let cn;
        let names: &[String] = if sans.dns.is_empty() {
            cn = identity::common_name(self.leaf().subject_name())
                .into_iter()
                .collect::<Vec<_>>();
            &cn
        } else {
            &sans.dns
        };
        names
            .iter()
            .any(|n| crate::names::cert_name_matches(n, &host))
    }

    pub fn expired(&self) -> bool {
        self.info.not_after_unix < now_unix()
    }

    pub fn not_yet_valid(&self) -> bool {
        self.info.not_before_unix > now_unix()
    }

    /// SHA-256 over the leaf, the rest of the chain, the CA bundle and the
    /// CRLs (each length-prefixed and tagged): two credentials with the same
    /// id present and accept exactly the same certificates, so TLS sessions
    /// can be bound to it and resumption never outlives a CA or CRL change.
    /// SHA-256 over what verifies clients: the CA bundle and the CRLs.
    pub fn trust_id(&self) -> [u8; 32] {
        let mut h = openssl::sha::Sha256::new();
        let mut put = |tag: u8, der: &[u8]| {
            h.update(&[tag]);
            h.update(&(der.len() as u64).to_be_bytes());
            h.update(der);
        };
        for c in &self.ca_certs {
            put(b'a', &c.to_der().unwrap_or_default());
        }
        for c in &self.crls {
            put(b'r', &c.to_der().unwrap_or_default());
        }
        for u in &self.crl_urls {
            put(b'u', u.as_bytes());
        }
        h.finish()
    }

    pub fn content_id(&self) -> [u8; 32] {
        let mut h = openssl::sha::Sha256::new();
        let mut put = |tag: u8, der: &[u8]| {
            h.update(&[tag]);
            h.update(&(der.len() as u64).to_be_bytes());
            h.update(der);
        };
        for c in &self.chain {
            put(b'c', &c.to_der().unwrap_or_default());
        }
        for c in &self.ca_certs {
            put(b'a', &c.to_der().unwrap_or_default());
        }
        for c in &self.crls {
            put(b'r', &c.to_der().unwrap_or_default());
        }
        for u in &self.crl_urls {
            put(b'u', u.as_bytes());
        }
        if let Some(o) = &self.ocsp {
            put(b'o', &o.der);
        }
        if let Some(a) = &self.alt {
            put(b'2', &a.content_id());
        }
        h.finish()
    }
}

impl CrlIndex {
    /// What `/certs` shows of it.
    pub fn info(&self, source: &str) -> CrlInfo {
        CrlInfo {
            issuer: self.issuer_str.clone(),
            this_update: rfc3339(self.this_update),
            next_update: self.next_update.map(rfc3339),
            next_update_unix: self.next_update,
            entries: self.entries(),
            source: source.to_string(),
        }
    }
}

fn info(
    source: &CredentialSource,
    leaf: &X509,
    cas: &[X509],
    crls: &[X509Crl],
    crl_path: &Path,
    files: Vec<PathBuf>,
) -> Result<CredentialInfo, CredentialError> {
    let ossl = |what| {
        move |e: openssl::error::ErrorStack| CredentialError::Openssl {
            what,
            reason: ossl_reason(&e),
        }
    };
    let serial = leaf
        .serial_number()
        .to_bn()
        .and_then(|bn| bn.to_hex_str().map(|s| s.to_ascii_lowercase()))
        .map_err(ossl("reading the serial number"))?;
    let der = leaf.to_der().map_err(ossl("encoding the certificate"))?;
    let not_after_unix = unix_time(leaf.not_after()).map_err(ossl("reading notAfter"))?;
    let not_before_unix = unix_time(leaf.not_before()).map_err(ossl("reading notBefore"))?;
    Ok(CredentialInfo {
        name: source.to_string(),
        subject: name_to_string(leaf.subject_name()),
        issuer: name_to_string(leaf.issuer_name()),
        sans: SubjectAltNames::of(leaf).prefixed(),
        serial,
        not_before: rfc3339(not_before_unix),
        not_after: rfc3339(not_after_unix),
        not_before_unix,
        not_after_unix,
        ca_subjects: cas
            .iter()
            .map(|c| name_to_string(c.subject_name()))
            .collect(),
        fingerprint_sha256: hex(&identity::sha256(&der)),
        crls: crls
            .iter()
            .map(|c| crl_info(c, &crl_path.display().to_string()))
            .collect(),
        crl_urls: Vec::new(),
        ocsp: None,
        alternate: None,
        files,
    })
}

/// What `/certs` and the metrics show of one CRL.
fn crl_info(crl: &X509Crl, source: &str) -> CrlInfo {
    let this_update = unix_time(crl.last_update()).unwrap_or(0);
    let next_update = crl.next_update().and_then(|t| unix_time(t).ok());
    CrlInfo {
        issuer: name_to_string(crl.issuer_name()),
        this_update: rfc3339(this_update),
        next_update: next_update.map(rfc3339),
        next_update_unix: next_update,
        entries: crl.get_revoked().map_or(0, |r| r.len()),
        source: source.to_string(),
    }
}

/// An ASN.1 time as seconds since the epoch.
pub fn unix_time(t: &Asn1TimeRef) -> Result<i64, openssl::error::ErrorStack> {
    let d = Asn1Time::from_unix(0)?.diff(t)?;
    Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// Seconds since the epoch, by the system clock.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SSZ` from Unix seconds (days-to-civil, proleptic Gregorian).
pub fn rfc3339(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// OpenSSL's first reason, not its whole stack: the stack repeats the
/// same failure once per decoder it tried, which drowns the log line.
pub(crate) fn ossl_reason(e: &openssl::error::ErrorStack) -> String {
    e.errors()
        .iter()
        .find_map(|x| x.reason().map(str::to_string))
        .unwrap_or_else(|| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreRef;
    use openssl::x509::X509StoreContext;

    use super::*;
    use crate::certgen::{make_ca, make_crl, make_leaf, CaSpec, Issued, LeafSpec, Usage};

    struct Pki {
        server_ca: Issued,
        server: Issued,
        client_ca: Issued,
        client: Issued,
    }

    fn pki() -> Pki {
        let server_ca = make_ca(&CaSpec::new("example Inc.", "example.com")).unwrap();
        let mut s = LeafSpec::new(Usage::Server, "frontend.example.com");
        s.dns = vec!["frontend.example.com".into(), "*.wild.example.com".into()];
        s.ips = vec!["127.0.0.1".parse().unwrap()];
        let server = make_leaf(&s, &server_ca).unwrap();
        let client_ca = make_ca(&CaSpec::new("Acme Inc.", "acme.com")).unwrap();
        let mut c = LeafSpec::new(Usage::Client, "great-partner.apps.acme.com");
        c.dns = vec![c.cn.clone()];
        let client = make_leaf(&c, &client_ca).unwrap();
        Pki {
            server_ca,
            server,
            client_ca,
            client,
        }
    }

    fn chain_pem(p: &Pki) -> Vec<u8> {
        let mut v = p.server.cert_pem().unwrap();
        v.extend(p.server_ca.cert_pem().unwrap());
        v
    }

    /// `dir/name/{files}` with the standard contents for each known file name.
    fn folder(dir: &Path, name: &str, p: &Pki, names: &[&str]) -> PathBuf {
        let f = dir.join(name);
        fs::create_dir_all(&f).unwrap();
        for n in names {
            let data = match *n {
                "tls.crt" | "cert" => chain_pem(p),
                "tls.key" | "key" => p.server.key_pem().unwrap(),
                "ca.crt" | "cacert" => p.client_ca.cert_pem().unwrap(),
                other => panic!("no content for {other}"),
            };
            fs::write(f.join(n), data).unwrap();
        }
        f
    }

    fn named(n: &str) -> CredentialSource {
        CredentialSource::Named(n.into())
    }

    fn verifies(store: &X509StoreRef, cert: &X509) -> bool {
        let mut ctx = X509StoreContext::new().unwrap();
        let chain = Stack::new().unwrap();
        ctx.init(store, cert, &chain, |c| c.verify_cert()).unwrap()
    }

    #[test]
    fn loads_tls_names_without_ca() {
        let (d, p) = (tempfile::tempdir().unwrap(), pki());
        folder(d.path(), "frontend-credential", &p, &["tls.crt", "tls.key"]);
        let c = load(&named("frontend-credential"), d.path()).unwrap();
        assert_eq!(c.chain.len(), 2);
        assert!(c.ca_certs.is_empty() && c.ca_store.is_none());
        let i = &c.info;
        assert_eq!(i.name, "frontend-credential");
        assert_eq!(i.subject, "CN=frontend.example.com");
        assert_eq!(i.issuer, "CN=example.com,O=example Inc.");
        assert_eq!(
            i.sans,
            [
                "DNS:frontend.example.com",
                "DNS:*.wild.example.com",
                "IP:127.0.0.1"
            ]
        );
        let serial = p.server.cert.serial_number().to_bn().unwrap();
        assert_eq!(i.serial, serial.to_hex_str().unwrap().to_ascii_lowercase());
        let der = p.server.cert.to_der().unwrap();
        assert_eq!(i.fingerprint_sha256, hex(&openssl::sha::sha256(&der)));
        assert!(i.not_before < i.not_after && i.not_after.ends_with('Z'));
        assert!(!c.expired());
        let folder = d.path().join("frontend-credential");
        assert_eq!(i.files, [folder.join("tls.crt"), folder.join("tls.key")]);
    }

    #[test]
    fn loads_ca_bundle_and_verifies_clients_with_it() {
        let (d, p) = (tempfile::tempdir().unwrap(), pki());
        folder(
            d.path(),
            "partner-credential",
            &p,
            &["tls.crt", "tls.key", "ca.crt"],
        );
        let c = load(&named("partner-credential"), d.path()).unwrap();
        assert_eq!(c.info.ca_subjects, ["CN=acme.com,O=Acme Inc."]);
        let store = c.ca_store.as_ref().unwrap();
        assert!(verifies(store, &p.client.cert));
        assert!(
            !verifies(store, &p.server.cert),
            "server CA is not a client CA"
        );
    }

    #[test]
    fn loads_istio_names() {
        let (d, p) = (tempfile::tempdir().unwrap(), pki());
        folder(d.path(), "istio", &p, &["cert", "key", "cacert"]);
        let c = load(&named("istio"), d.path()).unwrap();
        assert_eq!(c.ca_certs.len(), 1);
        assert!(c
            .info
            .files
            .iter()
            .all(|f| f.starts_with(d.path().join("istio"))));
    }

    #[test]
    fn loads_separate_cacert_folder() {
        for ca_name in ["ca.crt", "cacert"] {
            let (d, p) = (tempfile::tempdir().unwrap(), pki());
            folder(d.path(), "gw", &p, &["tls.crt", "tls.key"]);
            folder(d.path(), "gw-cacert", &p, &[ca_name]);
            let c = load(&named("gw"), d.path()).unwrap();
            assert_eq!(c.ca_certs.len(), 1, "{ca_name}");
            assert_eq!(c.info.files[2], d.path().join("gw-cacert").join(ca_name));
        }
    }

    #[test]
    fn loads_inline_files() {
        let (d, p) = (tempfile::tempdir().unwrap(), pki());
        let f = folder(d.path(), "x", &p, &["tls.crt", "tls.key", "ca.crt"]);
        let src = CredentialSource::Files {
            cert: f.join("tls.crt"),
            key: f.join("tls.key"),
            ca: Some(f.join("ca.crt")),
        };
        let c = load(&src, Path::new("/nonexistent")).unwrap();
        assert_eq!((c.chain.len(), c.ca_certs.len()), (2, 1));
        assert_eq!(c.info.name, format!("file:{}", f.join("tls.crt").display()));
        let src = CredentialSource::Files {
            cert: f.join("tls.crt"),
            key: f.join("tls.key"),
            ca: Some(f.join("missing.crt")),
        };
        let e = load(&src, d.path()).unwrap_err();
        assert!(matches!(e, CredentialError::MissingFile { .. }), "{e}");
    }

    /// The layout kubelet writes for a Secret volume, and its atomic update.
    #[test]
    fn loads_kubelet_secret_volume_and_follows_the_swap() {
        let (d, p) = (tempfile::tempdir().unwrap(), pki());
        let vol = d.path().join("frontend-credential");
        let ts1 = folder(
            &vol,
            "..2026_11_23_10_00_00.123",
            &p,
            &["tls.crt", "tls.key"],
        );
        symlink(ts1.file_name().unwrap(), vol.join("..data")).unwrap();
        for n in ["tls.crt", "tls.key"] {
            symlink(Path::new("..data").join(n), vol.join(n)).unwrap();
        }
        let c1 = load(&named("frontend-credential"), d.path()).unwrap();
        assert_eq!(c1.leaf().to_der().unwrap(), p.server.cert.to_der().unwrap());

        let q = pki();
        let ts2 = folder(
            &vol,
            "..2026_11_23_11_00_00.456",
            &q,
            &["tls.crt", "tls.key"],
        );
        symlink(ts2.file_name().unwrap(), vol.join("..data_tmp")).unwrap();
        fs::rename(vol.join("..data_tmp"), vol.join("..data")).unwrap();
        let c2 = load(&named("frontend-credential"), d.path()).unwrap();
        assert_eq!(c2.leaf().to_der().unwrap(), q.server.cert.to_der().unwrap());
        assert_ne!(c1.content_id(), c2.content_id());

        assert_eq!(list_named(d.path()).unwrap(), ["frontend-credential"]);
        symlink("frontend-credential", d.path().join("..data")).unwrap();
        fs::create_dir(d.path().join(".tmp-folder")).unwrap();
        assert_eq!(list_named(d.path()).unwrap(), ["frontend-credential"]);
    }

    #[test]
    fn dot_entries_are_never_credentials() {
        let (d, p) = (tempfile::tempdir().unwrap(), pki());
        let vol = d.path().join("only-data");
        folder(&vol, "..data", &p, &["tls.crt", "tls.key"]);
        let e = load(&named("only-data"), d.path()).unwrap_err();
        assert!(e.to_string().contains("tls.crt or cert"), "{e}");
        for bad in ["..data", ".hidden", "../only-data", "a/b", ""] {
            let e = load(&named(bad), d.path()).unwrap_err();
            assert!(
                matches!(e, CredentialError::InvalidName { .. }),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn dangling_symlink_is_an_error_not_an_absence() {
        let (d, p) = (tempfile::tempdir().unwrap(), pki());
        let f = folder(d.path(), "c", &p, &["tls.crt"]);
        symlink("..data/tls.key", f.join("tls.key")).unwrap();
        let e = load(&named("c"), d.path()).unwrap_err();
        assert!(matches!(e, CredentialError::Unreadable { .. }), "{e}");
        assert!(e.to_string().contains("dangling"), "{e}");
    }

    /// A kubelet-style volume whose `..data` is swapped to a folder that
    /// is not there, or whose links loop: an error naming the file.
    #[test]
    fn secret_volume_swapped_to_nothing_or_looping_is_an_error_about_a_file() {
        let volume = |d: &Path| {
            let vol = d.join("c");
            folder(&vol, "..2026_01_01", &pki(), &["tls.crt", "tls.key"]);
            symlink("..2026_01_01", vol.join("..data")).unwrap();
            for n in ["tls.crt", "tls.key"] {
                symlink(Path::new("..data").join(n), vol.join(n)).unwrap();
            }
            assert!(load(&named("c"), d).is_ok());
            vol
        };
        fn swap(vol: &Path, to: &str) {
            symlink(to, vol.join("..data_tmp")).unwrap();
            fs::rename(vol.join("..data_tmp"), vol.join("..data")).unwrap();
        }
        type BreakIt = fn(&Path);
        let cases: [(&str, BreakIt); 3] = [
            ("dangling symlink", |vol| swap(vol, "..2026_02_02")),
            ("symbolic links", |vol| swap(vol, "..data")),
            ("symbolic links", |vol| {
                fs::remove_file(vol.join("tls.crt")).unwrap();
                symlink("tls.crt", vol.join("tls.crt")).unwrap();
            }),
        ];
        for (want, break_it) in cases {
            let d = tempfile::tempdir().unwrap();
            let vol = volume(d.path());
            break_it(&vol);
            let e = load(&named("c"), d.path()).unwrap_err();
            assert!(matches!(e, CredentialError::Unreadable { .. }), "{e}");
            assert_eq!(e.path(), Some(vol.join("tls.crt").as_path()), "{e}");
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    fn load_err(setup: impl FnOnce(&Path, &Pki)) -> String {
        let (d, p) = (tempfile::tempdir().unwrap(), pki());
        folder(d.path(), "c", &p, &["tls.crt", "tls.key"]);
        setup(&d.path().join("c"), &p);
        match load(&named("c"), d.path()) {
            Ok(_) => panic!("loaded a broken credential"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_name_the_file_and_the_reason() {
        let e = load_err(|f, _| fs::remove_file(f.join("tls.key")).unwrap());
        assert!(
            e.starts_with("missing file") && e.ends_with("c/tls.key or key or key.pem"),
            "{e}"
        );

        let e = load_err(|f, p| fs::write(f.join("tls.key"), p.client.key_pem().unwrap()).unwrap());
        let (key, cert) = ("c/tls.key", "c/tls.crt");
        assert!(
            e.starts_with("private key in") && e.contains("does not match certificate in"),
            "{e}"
        );
        assert!(e.find(key) < e.find(cert), "{e}");

        let e = load_err(|f, p| {
            let pem = p.server.cert_pem().unwrap();
            fs::write(f.join("tls.crt"), &pem[..pem.len() / 2]).unwrap()
        });
        assert!(
            e.starts_with("PEM in") && e.contains("c/tls.crt does not parse"),
            "{e}"
        );

        let e = load_err(|f, _| fs::write(f.join("tls.crt"), "").unwrap());
        assert!(e.ends_with("c/tls.crt is empty"), "{e}");

        let e = load_err(|f, _| fs::write(f.join("tls.crt"), "hello\n").unwrap());
        assert!(e.starts_with("no certificate in"), "{e}");

        let e =
            load_err(|f, p| fs::write(f.join("tls.key"), p.server.cert_pem().unwrap()).unwrap());
        assert!(e.starts_with("no private key in"), "{e}");

        let e = load_err(|f, _| fs::write(f.join("ca.crt"), "garbage\n").unwrap());
        assert!(
            e.starts_with("CA bundle") && e.ends_with("holds no certificate"),
            "{e}"
        );

        let e = load_err(|f, _| {
            let bad = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
            fs::write(f.join("ca.crt"), bad).unwrap()
        });
        assert!(
            e.starts_with("CA bundle") && e.contains("does not parse"),
            "{e}"
        );

        let e = load_err(|f, _| fs::write(f.join("ca.crl"), "garbage\n").unwrap());
        assert!(e.contains("has no CA bundle"), "{e}");

        let e = load_err(|f, p| {
            fs::write(f.join("ca.crt"), p.client_ca.cert_pem().unwrap()).unwrap();
            fs::write(f.join("ca.crl"), "-----BEGIN X509 CRL-----\nAAAA\n").unwrap();
        });
        assert!(e.starts_with("CRL") && e.contains("does not parse"), "{e}");

        let e = load_err(|f, p| {
            let pem = p.server.key.private_key_to_pem_pkcs8_passphrase(
                openssl::symm::Cipher::aes_128_cbc(),
                b"secret",
            );
            fs::write(f.join("tls.key"), pem.unwrap()).unwrap()
        });
        assert!(e.contains("is encrypted"), "{e}");

        let d = tempfile::tempdir().unwrap();
        let e = load(&named("nope"), d.path()).unwrap_err().to_string();
        assert_eq!(e, format!("no credential 'nope' in {}", d.path().display()));
    }

    #[test]
    fn a_crl_not_signed_by_its_ca_or_a_bad_url_file_is_refused() {
        let e = load_err(|f, p| {
            fs::write(f.join("ca.crt"), p.client_ca.cert_pem().unwrap()).unwrap();
            // Same issuer name as the bundle's CA, another key.
            let impostor = make_ca(&CaSpec::new("Acme Inc.", "acme.com")).unwrap();
            let crl = make_crl(&impostor, &[], 30).unwrap();
            fs::write(f.join("ca.crl"), crl.to_pem().unwrap()).unwrap();
        });
        assert!(
            e.starts_with("CRL") && e.contains("c/ca.crl") && e.contains("is not signed by"),
            "{e}"
        );
        let e = load_err(|f, p| {
            fs::write(f.join("ca.crt"), p.client_ca.cert_pem().unwrap()).unwrap();
            fs::write(
                f.join("ca.crl.url"),
                "# the CA's\nhttp://127.0.0.1:9/ca.crl\n\nldap://x/cn=ca\n",
            )
            .unwrap();
        });
        assert!(
            e.contains("c/ca.crl.url line 4") && e.contains("http:// or https://"),
            "{e}"
        );
        let e = load_err(|f, _| fs::write(f.join("ca.crl.url"), "http://x/ca.crl\n").unwrap());
        assert!(e.contains("has no CA bundle"), "{e}");
    }

    #[test]
    fn an_ocsp_response_is_checked_at_load() {
        use tlsgate_ossl::{sign_ocsp_response, OcspAnswer};
        let now = now_unix();
        // Garbage, and a response for another certificate, are refused;
        // a good one for this certificate loads and is stapled.
        let e = load_err(|f, p| {
            let mut chain = p.server.cert_pem().unwrap();
            chain.extend(p.server_ca.cert_pem().unwrap());
            fs::write(f.join("tls.crt"), chain).unwrap();
            fs::write(f.join("tls.ocsp"), b"not DER").unwrap();
        });
        assert!(
            e.contains("c/tls.ocsp") && e.contains("does not parse"),
            "{e}"
        );
        let e = load_err(|f, p| {
            let mut chain = p.server.cert_pem().unwrap();
            chain.extend(p.server_ca.cert_pem().unwrap());
            fs::write(f.join("tls.crt"), chain).unwrap();
            let other = sign_ocsp_response(
                &p.client.cert,
                &p.client_ca.cert,
                &p.client_ca.key,
                OcspAnswer::Good,
                now - 60,
                now + 3600,
            )
            .unwrap();
            fs::write(f.join("tls.ocsp"), other).unwrap();
        });
        assert!(
            e.contains("is not signed by") || e.contains("does not answer"),
            "{e}"
        );
        let e = load_err(|f, p| {
            // tls.crt without its issuer: nothing to check a response with.
            fs::write(f.join("tls.crt"), p.server.cert_pem().unwrap()).unwrap();
            let r = sign_ocsp_response(
                &p.server.cert,
                &p.server_ca.cert,
                &p.server_ca.key,
                OcspAnswer::Good,
                now - 60,
                now + 3600,
            )
            .unwrap();
            fs::write(f.join("tls.ocsp"), r).unwrap();
        });
        assert!(e.contains("carries no issuer"), "{e}");

        let (d, p) = (tempfile::tempdir().unwrap(), pki());
        let f = folder(d.path(), "c", &p, &["tls.crt", "tls.key"]);
        let mut chain = p.server.cert_pem().unwrap();
        chain.extend(p.server_ca.cert_pem().unwrap());
        fs::write(f.join("tls.crt"), chain).unwrap();
        let r = sign_ocsp_response(
            &p.server.cert,
            &p.server_ca.cert,
            &p.server_ca.key,
            OcspAnswer::Good,
            now - 60,
            now + 3600,
        )
        .unwrap();
        fs::write(f.join("tls.ocsp"), &r).unwrap();
        let c = load(&named("c"), d.path()).unwrap();
        let staple = c.ocsp.as_ref().unwrap();
        assert_eq!(staple.der, r);
        assert!(staple.fresh(now) && !staple.fresh(now + 7200));
        assert_eq!(c.info.ocsp.as_ref().unwrap().status, "good");
    }

    #[test]
    fn crl_urls_are_read_one_a_line() {
        let (d, p) = (tempfile::tempdir().unwrap(), pki());
        let f = folder(d.path(), "c", &p, &["tls.crt", "tls.key", "ca.crt"]);
        fs::write(
            f.join("ca.crl.url"),
            "  http://127.0.0.1:9/a.crl \n# note\nhttps://pki.example/b.crl\nhttp://127.0.0.1:9/a.crl\n",
        )
        .unwrap();
        let c = load(&named("c"), d.path()).unwrap();
        assert_eq!(
            c.crl_urls,
            ["http://127.0.0.1:9/a.crl", "https://pki.example/b.crl"]
        );
        assert_eq!(c.info.crl_urls, c.crl_urls);
        assert!(c.info.files.iter().any(|f| f.ends_with("ca.crl.url")));
    }

    #[test]
    fn crl_is_indexed_and_revokes_client_certificates() {
        let (d, p) = (tempfile::tempdir().unwrap(), pki());
        let f = folder(d.path(), "c", &p, &["tls.crt", "tls.key", "ca.crt"]);
        let mut spec = LeafSpec::new(Usage::Client, "other.apps.acme.com");
        spec.dns = vec![spec.cn.clone()];
        let other = make_leaf(&spec, &p.client_ca).unwrap();
        let crl = make_crl(&p.client_ca, &[&p.client.cert], 30).unwrap();
        fs::write(f.join("ca.crl"), crl.to_pem().unwrap()).unwrap();
        let c = load(&named("c"), d.path()).unwrap();
        assert_eq!(c.crls.len(), 1);
        assert_eq!(c.crl_index.len(), 1);
        let index = &c.crl_index[0];
        assert!(
            index.verified_with(&p.client_ca.cert.public_key().unwrap()),
            "signature checked at load"
        );
        assert!(index.lists(p.client.cert.serial_number()));
        assert!(!index.lists(other.cert.serial_number()));
        // The store leaves revocation to `revocation`: it verifies both.
        let store = c.ca_store.as_ref().unwrap();
        assert!(verifies(store, &p.client.cert));
        assert!(verifies(store, &other.cert));
        let without = Credential::from_parts(
            c.source.clone(),
            c.chain.clone(),
            c.key.clone(),
            c.ca_certs.clone(),
            Vec::new(),
        )
        .unwrap();
        assert_ne!(
            c.content_id(),
            without.content_id(),
            "CRL is part of the content"
        );
    }

    #[test]
    fn covers_host_with_wildcards_and_ips() {
        let p = pki();
        let c = Credential::from_parts(
            named("x"),
            vec![p.server.cert.clone()],
            p.server.key.clone(),
            vec![],
            vec![],
        )
        .unwrap();
        for host in [
            "frontend.example.com",
            "FRONTEND.example.com.",
            "a.wild.example.com",
            "127.0.0.1",
        ] {
            assert!(c.covers_host(host), "{host}");
        }
        for host in [
            "wild.example.com",
            "a.b.wild.example.com",
            ".wild.example.com",
            "example.com",
            "127.0.0.2",
        ] {
            assert!(!c.covers_host(host), "{host}");
        }
    }

    #[test]
    fn content_id_is_stable_and_expired_follows_not_after() {
        let (d, p) = (tempfile::tempdir().unwrap(), pki());
        folder(d.path(), "c", &p, &["tls.crt", "tls.key", "ca.crt"]);
        let a = load(&named("c"), d.path()).unwrap();
        let mut b = load(&named("c"), d.path()).unwrap();
        assert_eq!(a.content_id(), b.content_id());
        fs::remove_file(d.path().join("c/ca.crt")).unwrap();
        assert_ne!(
            a.content_id(),
            load(&named("c"), d.path()).unwrap().content_id()
        );
        b.info.not_after_unix = now_unix() - 1;
        assert!(b.expired() && !a.expired());
    }

    #[test]
    fn from_parts_checks_the_key() {
        let p = pki();
        let e = Credential::from_parts(
            named("x"),
            vec![p.server.cert.clone()],
            p.client.key.clone(),
            vec![],
            vec![],
        )
        .unwrap_err();
        assert!(matches!(e, CredentialError::KeyMismatch { .. }));
        let e = Credential::from_parts(named("x"), vec![], p.client.key.clone(), vec![], vec![])
            .unwrap_err();
        assert!(matches!(e, CredentialError::NoCertificate { .. }));
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        let t = Asn1Time::from_str("20351123100000Z").unwrap();
        assert_eq!(rfc3339(unix_time(&t).unwrap()), "2035-11-23T10:00:00Z");
    }
}
