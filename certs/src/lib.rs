//! Certificates for tlsgate's users and tests: what the seeds' `openssl req`
//! recipes make, minus their pitfalls (no SAN, serial 0, one-year expiry,
//! no EKU), in one command per role.
//!
//! This file is the library (keys, CAs, leaves, CRLs, all in memory);
//! `cli.rs` is the `tlsgate certs` subcommand that writes them in the
//! credentialsDir layout and prints the commands that use them.

#![forbid(unsafe_code)]

mod cli;
mod output;
mod revoke;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{
    X509Crl, X509CrlBuilder, X509Extension, X509Name, X509Ref, X509RevokedBuilder, X509,
};

pub use cli::{run, CaArgs, CertsCommand, ClientArgs, ServerArgs};
pub use revoke::{CrlArgs, RevokeArgs};

/// Clock skew allowance: a certificate made now must already be valid on a
/// peer whose clock is a little behind.
const BACKDATE_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum CertgenError {
    #[error("openssl: {what}: {source}")]
    Openssl {
        what: &'static str,
        source: openssl::error::ErrorStack,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists; pass --force to replace it", path.display())]
    Exists { path: PathBuf },
    #[error("private key {} does not match certificate {}", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn ossl(what: &'static str) -> impl FnOnce(openssl::error::ErrorStack) -> CertgenError {
    move |source| CertgenError::Openssl { what, source }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256: small, fast, accepted by every TLS stack that matters.
    EcP256,
    Rsa(u32),
}

impl KeyKind {
    pub fn from_rsa_bits(bits: Option<u32>) -> KeyKind {
        bits.map_or(KeyKind::EcP256, KeyKind::Rsa)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
}

#[derive(Debug, Clone)]
pub struct CaSpec {
    pub org: Option<String>,
    pub cn: String,
    pub days: u32,
    pub key: KeyKind,
}

impl CaSpec {
    /// `O=<org>, CN=<cn>`, 10 years, P-256.
    pub fn new(org: &str, cn: &str) -> CaSpec {
        CaSpec {
            org: Some(org.to_string()).filter(|o| !o.is_empty()),
            cn: cn.to_string(),
            days: 3650,
            key: KeyKind::EcP256,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub usage: Usage,
    pub cn: String,
    pub org: Option<String>,
    /// SANs are exactly these; callers add the CN when they want it covered.
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub days: u32,
    /// Validity starts this many days from now (0: now, backdated for clock
    /// skew), for a certificate staged ahead of its use; `days` counts from then.
    pub starts_in_days: u32,
    pub key: KeyKind,
    /// CRL distribution points (`http://` URLs where the CA publishes
    /// the CRL that would list this certificate).
    pub crl_urls: Vec<String>,
    /// OCSP responders (authorityInfoAccess).
    pub ocsp_urls: Vec<String>,
    /// Valid this many seconds from now instead of `days` (tests of what
    /// happens when a certificate ends).
    pub seconds: Option<u32>,
}

impl LeafSpec {
    /// No SANs, no O, 825 days (the CA/Browser Forum's old maximum), P-256.
    pub fn new(usage: Usage, cn: &str) -> LeafSpec {
        LeafSpec {
            usage,
            cn: cn.to_string(),
            org: None,
            dns: Vec::new(),
            ips: Vec::new(),
            uris: Vec::new(),
            days: 825,
            starts_in_days: 0,
            key: KeyKind::EcP256,
            crl_urls: Vec::new(),
            ocsp_urls: Vec::new(),
            seconds: None,
        }
    }
}

/// A certificate and its private key.
pub struct Issued {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl Issued {
    pub fn cert_pem(&self) -> Result<Vec<u8>, CertgenError> {
        self.cert.to_pem().map_err(ossl("encoding the certificate"))
    }

    /// PKCS#8 (`BEGIN PRIVATE KEY`), readable by every TLS stack.
    pub fn key_pem(&self) -> Result<Vec<u8>, CertgenError> {
        self.key
            .private_key_to_pem_pkcs8()
            .map_err(ossl("encoding the private key"))
    }
}

pub fn make_key(kind: KeyKind) -> Result<PKey<Private>, CertgenError> {
    match kind {
        KeyKind::EcP256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(ossl("P-256"))?;
            let ec = EcKey::generate(&group).map_err(ossl("generating an EC key"))?;
            PKey::from_ec_key(ec).map_err(ossl("wrapping the EC key"))
        }
        KeyKind::Rsa(bits) => {
            if !(2048..=8192).contains(&bits) {
                return Err(CertgenError::Invalid(format!(
                    "RSA key size {bits} is out of range (2048-8192)"
                )));
            }
            let rsa = Rsa::generate(bits).map_err(ossl("generating an RSA key"))?;
            PKey::from_rsa(rsa).map_err(ossl("wrapping the RSA key"))
        }
    }
}

/// Subject in `openssl req -subj '/O=../CN=..'` order, so it prints as
/// `O=.., CN=..` and, RFC 2253-reversed in XFCC, as `CN=..,O=..`.
fn subject(org: Option<&str>, cn: &str) -> Result<X509Name, CertgenError> {
    let mut b = X509Name::builder().map_err(ossl("subject"))?;
    if let Some(o) = org.filter(|o| !o.is_empty()) {
        b.append_entry_by_nid(Nid::ORGANIZATIONNAME, o)
            .map_err(ossl("subject O"))?;
    }
    b.append_entry_by_nid(Nid::COMMONNAME, cn)
        .map_err(ossl("subject CN (at most 64 characters)"))?;
    Ok(b.build())
}

fn random_serial() -> Result<Asn1Integer, CertgenError> {
    let mut bn = BigNum::new().map_err(ossl("serial"))?;
    bn.rand(128, MsbOption::MAYBE_ZERO, false)
        .map_err(ossl("serial"))?;
    bn.to_asn1_integer().map_err(ossl("serial"))
}

fn validity(days: u32, starts_in_days: u32) -> Result<(Asn1Time, Asn1Time), CertgenError> {
    if days == 0 {
        return Err(CertgenError::Invalid("--days must be at least 1".into()));
    }
    let (from, to) = if starts_in_days == 0 {
        (
            Asn1Time::from_unix(now_unix() - BACKDATE_SECS),
            Asn1Time::days_from_now(days),
        )
    } else {
        let start = now_unix() + i64::from(starts_in_days) * 86_400;
        (
            Asn1Time::from_unix(start),
            Asn1Time::from_unix(start + i64::from(days) * 86_400),
        )
    };
    Ok((
        from.map_err(ossl("notBefore"))?,
        to.map_err(ossl("notAfter"))?,
    ))
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A self-signed CA: basicConstraints CA:TRUE and keyUsage keyCertSign +
/// cRLSign, both critical, as RFC 5280 asks of a trust anchor.
pub fn make_ca(spec: &CaSpec) -> Result<Issued, CertgenError> {
    make_ca_under(spec, None, None)
}

/// An intermediate CA signed by `parent`; valid `seconds` from now
/// (backdated as leaves are) instead of `spec.days` when given: tests of
/// what happens when an intermediate ends before its leaves.
pub fn make_intermediate(
    spec: &CaSpec,
    parent: &Issued,
    seconds: Option<u32>,
) -> Result<Issued, CertgenError> {
    make_ca_under(spec, Some(parent), seconds)
}

fn make_ca_under(
    spec: &CaSpec,
    parent: Option<&Issued>,
    seconds: Option<u32>,
) -> Result<Issued, CertgenError> {
    let key = make_key(spec.key)?;
    let name = subject(spec.org.as_deref(), &spec.cn)?;
    let (from, to) = match seconds {
        Some(secs) => {
            let now = now_unix();
            (
                Asn1Time::from_unix(now - BACKDATE_SECS).map_err(ossl("notBefore"))?,
                Asn1Time::from_unix(now + i64::from(secs)).map_err(ossl("notAfter"))?,
            )
        }
        None => validity(spec.days, 0)?,
    };
    let mut b = X509::builder().map_err(ossl("certificate"))?;
    b.set_version(2).map_err(ossl("version"))?;
    let serial = random_serial()?;
    b.set_serial_number(&serial).map_err(ossl("serial"))?;
    b.set_subject_name(&name).map_err(ossl("subject"))?;
    let issuer = parent.map_or(name.as_ref(), |p| p.cert.subject_name());
    b.set_issuer_name(issuer).map_err(ossl("issuer"))?;
    b.set_pubkey(&key).map_err(ossl("public key"))?;
    b.set_not_before(&from).map_err(ossl("notBefore"))?;
    b.set_not_after(&to).map_err(ossl("notAfter"))?;
    let bc = BasicConstraints::new().critical().ca().build();
    b.append_extension(bc.map_err(ossl("basicConstraints"))?)
        .map_err(ossl("basicConstraints"))?;
    let ku = KeyUsage::new()
        .critical()
        .key_cert_sign()
        .crl_sign()
        .build();
    b.append_extension(ku.map_err(ossl("keyUsage"))?)
        .map_err(ossl("keyUsage"))?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None));
    b.append_extension(ski.map_err(ossl("subjectKeyIdentifier"))?)
        .map_err(ossl("subjectKeyIdentifier"))?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(parent.map(|p| p.cert.as_ref()), None));
    b.append_extension(aki.map_err(ossl("authorityKeyIdentifier"))?)
        .map_err(ossl("authorityKeyIdentifier"))?;
    b.sign(parent.map_or(&key, |p| &p.key), MessageDigest::sha256())
        .map_err(ossl("signing"))?;
    Ok(Issued {
        cert: b.build(),
        key,
    })
}

/// A server or client certificate signed by `ca`.
pub fn make_leaf(spec: &LeafSpec, ca: &Issued) -> Result<Issued, CertgenError> {
    let key = make_key(spec.key)?;
    let (from, to) = match spec.seconds {
        Some(secs) => {
            let now = now_unix();
            (
                Asn1Time::from_unix(now - BACKDATE_SECS).map_err(ossl("notBefore"))?,
                Asn1Time::from_unix(now + i64::from(secs)).map_err(ossl("notAfter"))?,
            )
        }
        None => validity(spec.days, spec.starts_in_days)?,
    };
    let mut b = X509::builder().map_err(ossl("certificate"))?;
    b.set_version(2).map_err(ossl("version"))?;
    let serial = random_serial()?;
    b.set_serial_number(&serial).map_err(ossl("serial"))?;
    let name = subject(spec.org.as_deref(), &spec.cn)?;
    b.set_subject_name(&name).map_err(ossl("subject"))?;
    b.set_issuer_name(ca.cert.subject_name())
        .map_err(ossl("issuer"))?;
    b.set_pubkey(&key).map_err(ossl("public key"))?;
    b.set_not_before(&from).map_err(ossl("notBefore"))?;
    b.set_not_after(&to).map_err(ossl("notAfter"))?;
    let bc = BasicConstraints::new().critical().build();
    b.append_extension(bc.map_err(ossl("basicConstraints"))?)
        .map_err(ossl("basicConstraints"))?;
    let mut ku = KeyUsage::new();
    ku.critical().digital_signature();
    // RSA key exchange (TLS 1.2 `RSA` suites) encrypts to the key.
    if matches!(spec.key, KeyKind::Rsa(_)) {
        ku.key_encipherment();
    }
    b.append_extension(ku.build().map_err(ossl("keyUsage"))?)
        .map_err(ossl("keyUsage"))?;
    let mut eku = ExtendedKeyUsage::new();
    match spec.usage {
        Usage::Server => eku.server_auth(),
        Usage::Client => eku.client_auth(),
    };
    b.append_extension(eku.build().map_err(ossl("extendedKeyUsage"))?)
        .map_err(ossl("extendedKeyUsage"))?;
    if !(spec.dns.is_empty() && spec.ips.is_empty() && spec.uris.is_empty()) {
        let mut san = SubjectAlternativeName::new();
        for d in &spec.dns {
            san.dns(d);
        }
        for ip in &spec.ips {
            san.ip(&ip.to_string());
        }
        for u in &spec.uris {
            san.uri(u);
        }
        let ext = san.build(&b.x509v3_context(Some(&ca.cert), None));
        b.append_extension(ext.map_err(ossl("subjectAltName"))?)
            .map_err(ossl("subjectAltName"))?;
    }
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(&ca.cert), None));
    b.append_extension(ski.map_err(ossl("subjectKeyIdentifier"))?)
        .map_err(ossl("subjectKeyIdentifier"))?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(Some(&ca.cert), None));
    b.append_extension(aki.map_err(ossl("authorityKeyIdentifier"))?)
        .map_err(ossl("authorityKeyIdentifier"))?;
    if !spec.crl_urls.is_empty() {
        b.append_extension(crl_distribution_points(&spec.crl_urls)?)
            .map_err(ossl("cRLDistributionPoints"))?;
    }
    if !spec.ocsp_urls.is_empty() {
        b.append_extension(ocsp_responders(&spec.ocsp_urls)?)
            .map_err(ossl("authorityInfoAccess"))?;
    }
    b.sign(&ca.key, MessageDigest::sha256())
        .map_err(ossl("signing"))?;
    Ok(Issued {
        cert: b.build(),
        key,
    })
}

/// cRLDistributionPoints with one distribution point per URL, each a
/// fullName URI (RFC 5280 4.2.1.13), DER written out by hand: the openssl
/// crate has no builder for it.
fn crl_distribution_points(urls: &[String]) -> Result<X509Extension, CertgenError> {
    let mut points = Vec::new();
    if urls.len() > 8 {
        return Err(CertgenError::Invalid("at most 8 --crl-url".into()));
    }
    for u in urls {
        check_url("--crl-url", u)?;
        // DistributionPoint { distributionPoint [0] { fullName [0] { URI [6] } } }
        let uri = tlv(0x86, u.as_bytes());
        let full_name = tlv(0xa0, &uri);
        let dp_name = tlv(0xa0, &full_name);
        points.extend(tlv(0x30, &dp_name));
    }
    let der = tlv(0x30, &points);
    let oid = Asn1Object::from_str("2.5.29.31").map_err(ossl("cRLDistributionPoints"))?;
    let value = Asn1OctetString::new_from_bytes(&der).map_err(ossl("cRLDistributionPoints"))?;
    X509Extension::new_from_der(&oid, false, &value).map_err(ossl("cRLDistributionPoints"))
}

/// DER tag, length, body.
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        // Callers bound what they encode well below 64 KiB.
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(body);
    out
}

/// A URL a gateway will fetch: http(s), ASCII, at most 2,000 bytes.
fn check_url(flag: &str, u: &str) -> Result<(), CertgenError> {
    let ok = (u.starts_with("http://") || u.starts_with("https://"))
        && u.is_ascii()
        && u.len() <= 2000
        && !u
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control());
    if ok {
        Ok(())
    } else {
        Err(CertgenError::Invalid(format!(
            "{flag} '{u}': expected an http:// or https:// URL"
        )))
    }
}

/// authorityInfoAccess with one OCSP AccessDescription per URL.
fn ocsp_responders(urls: &[String]) -> Result<X509Extension, CertgenError> {
    // id-ad-ocsp, 1.3.6.1.5.5.7.48.1
    const OCSP: [u8; 10] = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    let mut descriptions = Vec::new();
    for u in urls {
        if !u.is_ascii() || u.len() > 2000 {
            return Err(CertgenError::Invalid(format!(
                "--ocsp-url '{u}': not a URL"
            )));
        }
        let mut d = OCSP.to_vec();
        d.extend(tlv(0x86, u.as_bytes()));
        descriptions.extend(tlv(0x30, &d));
    }
    let der = tlv(0x30, &descriptions);
    let oid = Asn1Object::from_str("1.3.6.1.5.5.7.1.1").map_err(ossl("authorityInfoAccess"))?;
    let value = Asn1OctetString::new_from_bytes(&der).map_err(ossl("authorityInfoAccess"))?;
    X509Extension::new_from_der(&oid, false, &value).map_err(ossl("authorityInfoAccess"))
}

/// A CRL from `ca` revoking `revoked`, valid for `days`.
pub fn make_crl(ca: &Issued, revoked: &[&X509Ref], days: u32) -> Result<X509Crl, CertgenError> {
    let now = now_unix();
    let entries: Vec<Revoked> = revoked
        .iter()
        .map(|c| {
            let serial = c.serial_number().to_bn().map_err(ossl("CRL entry"))?;
            Ok(Revoked {
                serial: serial.to_hex_str().map_err(ossl("CRL entry"))?.to_string(),
                at: now,
            })
        })
        .collect::<Result<_, CertgenError>>()?;
    make_crl_of(ca, &entries, days)
}

/// One revoked certificate: its serial (hex) and when it was revoked
/// (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub serial: String,
    pub at: i64,
}

/// A CRL signed by `ca` listing `entries`, valid for `days` from now.
pub fn make_crl_of(ca: &Issued, entries: &[Revoked], days: u32) -> Result<X509Crl, CertgenError> {
    make_crl_numbered(ca, entries, days, now_unix().max(1) as u64)
}

/// [`make_crl_of`] with its CRL number.
pub fn make_crl_numbered(
    ca: &Issued,
    entries: &[Revoked],
    days: u32,
    number: u64,
) -> Result<X509Crl, CertgenError> {
    if days == 0 {
        return Err(CertgenError::Invalid("--days must be at least 1".into()));
    }
    let now = now_unix();
    make_crl_window(
        ca,
        entries,
        now - BACKDATE_SECS,
        now + i64::from(days) * 86_400,
        number,
    )
}

/// A CRL with explicit thisUpdate and nextUpdate (Unix seconds): one
/// already stale, or due within seconds, for tests of freshness.
pub fn make_crl_window(
    ca: &Issued,
    entries: &[Revoked],
    this_update: i64,
    next_update: i64,
    number: u64,
) -> Result<X509Crl, CertgenError> {
    let from = Asn1Time::from_unix(this_update).map_err(ossl("CRL lastUpdate"))?;
    let to = Asn1Time::from_unix(next_update).map_err(ossl("CRL nextUpdate"))?;
    let mut b = X509CrlBuilder::new().map_err(ossl("CRL"))?;
    b.set_issuer_name(ca.cert.subject_name())
        .map_err(ossl("CRL issuer"))?;
    b.set_last_update(&from).map_err(ossl("CRL lastUpdate"))?;
    b.set_next_update(&to).map_err(ossl("CRL nextUpdate"))?;
    // RFC 5280 §5.2: the AKI names the signing key; the CRL number orders
    // successive CRLs (seconds since the epoch are monotonic enough here).
    let ctx_holder = X509::builder().map_err(ossl("CRL"))?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&ctx_holder.x509v3_context(Some(&ca.cert), None))
        .map_err(ossl("CRL authorityKeyIdentifier"))?;
    b.append_extension(aki)
        .map_err(ossl("CRL authorityKeyIdentifier"))?;
    let der = der_integer(number);
    let oid = Asn1Object::from_str("2.5.29.20").map_err(ossl("CRL number"))?;
    let value = Asn1OctetString::new_from_bytes(&der).map_err(ossl("CRL number"))?;
    let ext = X509Extension::new_from_der(&oid, false, &value).map_err(ossl("CRL number"))?;
    b.append_extension(ext).map_err(ossl("CRL number"))?;
    for e in entries {
        let mut r = X509RevokedBuilder::new().map_err(ossl("CRL entry"))?;
        let serial = BigNum::from_hex_str(&e.serial)
            .and_then(|b| b.to_asn1_integer())
            .map_err(ossl("CRL entry serial"))?;
        r.set_serial_number(&serial).map_err(ossl("CRL entry"))?;
        let at = Asn1Time::from_unix(e.at).map_err(ossl("CRL entry date"))?;
        r.set_revocation_date(&at).map_err(ossl("CRL entry"))?;
        b.add_revoked(r.build()).map_err(ossl("CRL entry"))?;
    }
    b.sign(&ca.key, MessageDigest::sha256())
        .map_err(ossl("signing the CRL"))?;
    b.build().map_err(ossl("CRL"))
}

/// Minimal DER INTEGER (OpenSSL rejects padded ones).
fn der_integer(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let mut body: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if body.first().is_none_or(|b| b & 0x80 != 0) {
        body.insert(0, 0);
    }
    let mut der = vec![0x02, body.len() as u8];
    der.extend(body);
    der
}

/// Reads `dir/ca.crt` and `dir/ca.key` (as written by `tlsgate certs ca`,
/// or the seeds' `openssl req -x509` pair renamed).
pub fn load_ca(dir: &Path) -> Result<Issued, CertgenError> {
    let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| CertgenError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert = X509::from_pem(&read(&crt)?).map_err(ossl("parsing ca.crt"))?;
    let pkey = PKey::private_key_from_pem_callback(&read(&key)?, |_| Ok(0))
        .map_err(ossl("parsing ca.key (it must not be encrypted)"))?;
    let matches = cert
        .public_key()
        .map(|p| p.public_eq(&pkey))
        .unwrap_or(false);
    if !matches {
        return Err(CertgenError::KeyMismatch { key, cert: crt });
    }
    Ok(Issued { cert, key: pkey })
}

/// A certificate's DNS names, then IP addresses, then URIs, as text (what
/// `tlsgate certs` prints of what it made).
pub fn san_list(cert: &X509Ref) -> Vec<String> {
    let (mut dns, mut ips, mut uris) = (Vec::new(), Vec::new(), Vec::new());
    for n in cert.subject_alt_names().iter().flatten() {
        if let Some(d) = n.dnsname() {
            dns.push(d.to_string());
        } else if let Some(u) = n.uri() {
            uris.push(u.to_string());
        } else if let Some(b) = n.ipaddress() {
            let ip = match b.len() {
                4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
                16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
                _ => None,
            };
            ips.extend(ip.map(|i| i.to_string()));
        }
    }
    dns.into_iter().chain(ips).chain(uris).collect()
}

#[cfg(test)]
mod tests {
    use openssl::pkey::Id;
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::X509StoreContext;

    use super::*;

    fn verify(ca: &X509, leaf: &X509) -> bool {
        let mut b = X509StoreBuilder::new().unwrap();
        b.add_cert(ca.clone()).unwrap();
        let store = b.build();
        let mut ctx = X509StoreContext::new().unwrap();
        ctx.init(&store, leaf, &Stack::new().unwrap(), |c| c.verify_cert())
            .unwrap()
    }

    fn text(c: &X509) -> String {
        String::from_utf8(c.to_text().unwrap()).unwrap()
    }

    #[test]
    fn ca_verifies_its_leaves_and_no_one_elses() {
        let ca = make_ca(&CaSpec::new("Acme Inc.", "acme.com")).unwrap();
        let other = make_ca(&CaSpec::new("Pirate Inc.", "pirate.com")).unwrap();
        let mut spec = LeafSpec::new(Usage::Server, "frontend.example.com");
        spec.dns = vec!["frontend.example.com".into()];
        let leaf = make_leaf(&spec, &ca).unwrap();
        assert!(verify(&ca.cert, &leaf.cert));
        assert!(!verify(&other.cert, &leaf.cert));
        assert!(verify(&ca.cert, &ca.cert), "a CA is self-signed");

        let t = text(&ca.cert);
        assert!(t.contains("Subject: O=Acme Inc., CN=acme.com"), "{t}");
        assert!(
            t.contains("X509v3 Basic Constraints: critical\n                CA:TRUE"),
            "{t}"
        );
        assert!(t.contains("Certificate Sign, CRL Sign"), "{t}");
        assert!(t.contains("Subject Key Identifier") && t.contains("Authority Key Identifier"));
        assert!(t.contains("ecdsa-with-SHA256"), "{t}");
        assert_eq!(ca.key.id(), Id::EC);
        let pem = String::from_utf8(ca.key_pem().unwrap()).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    }

    #[test]
    fn leaf_extensions_and_sans() {
        let ca = make_ca(&CaSpec::new("Acme Inc.", "acme.com")).unwrap();
        let mut spec = LeafSpec::new(Usage::Client, "great-partner.apps.acme.com");
        spec.org = Some("Great Department".into());
        spec.dns = vec![spec.cn.clone()];
        spec.ips = vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        spec.uris = vec!["spiffe://acme.com/great-partner".into()];
        let leaf = make_leaf(&spec, &ca).unwrap();
        let t = text(&leaf.cert);
        assert!(
            t.contains("Subject: O=Great Department, CN=great-partner.apps.acme.com"),
            "{t}"
        );
        assert!(t.contains("Issuer: O=Acme Inc., CN=acme.com"), "{t}");
        assert!(t.contains("TLS Web Client Authentication"), "{t}");
        assert!(
            t.contains("CA:FALSE") && t.contains("Digital Signature"),
            "{t}"
        );
        assert!(!t.contains("Key Encipherment"), "{t}");
        assert_eq!(
            san_list(&leaf.cert),
            [
                "great-partner.apps.acme.com",
                "10.0.0.1",
                "::1",
                "spiffe://acme.com/great-partner"
            ]
        );
        let a = make_leaf(&spec, &ca).unwrap();
        assert_ne!(
            a.cert.serial_number().to_bn().unwrap(),
            leaf.cert.serial_number().to_bn().unwrap()
        );
        assert!(a.cert.serial_number().to_bn().unwrap().num_bits() <= 128);
    }

    #[test]
    fn rsa_keys_on_request() {
        let mut ca_spec = CaSpec::new("Acme Inc.", "acme.com");
        ca_spec.key = KeyKind::Rsa(2048);
        let ca = make_ca(&ca_spec).unwrap();
        assert_eq!((ca.key.id(), ca.key.bits()), (Id::RSA, 2048));
        let mut spec = LeafSpec::new(Usage::Server, "a.example");
        spec.key = KeyKind::Rsa(2048);
        let leaf = make_leaf(&spec, &ca).unwrap();
        assert_eq!(leaf.key.id(), Id::RSA);
        let t = text(&leaf.cert);
        assert!(t.contains("Digital Signature, Key Encipherment"), "{t}");
        assert!(t.contains("TLS Web Server Authentication"), "{t}");
        assert!(t.contains("sha256WithRSAEncryption"), "{t}");
        assert!(verify(&ca.cert, &leaf.cert));
        assert!(make_key(KeyKind::Rsa(512)).is_err());
    }

    #[test]
    fn crl_distribution_points_are_readable() {
        let ca = make_ca(&CaSpec::new("", "x")).unwrap();
        let mut spec = LeafSpec::new(Usage::Client, "c");
        let long = format!("http://127.0.0.1:8080/{}", "a".repeat(300));
        spec.crl_urls = vec!["http://127.0.0.1:8080/ca.crl".into(), long.clone()];
        let leaf = make_leaf(&spec, &ca).unwrap();
        let points = leaf.cert.crl_distribution_points().unwrap();
        let uris: Vec<String> = points
            .iter()
            .flat_map(|p| {
                p.distpoint()
                    .and_then(|d| d.fullname())
                    .into_iter()
                    .flat_map(|names| names.iter().filter_map(|n| n.uri().map(str::to_string)))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(uris, ["http://127.0.0.1:8080/ca.crl".to_string(), long]);
        spec.ocsp_urls = vec!["http://127.0.0.1:8081/ocsp".into()];
        let leaf = make_leaf(&spec, &ca).unwrap();
        let responders: Vec<String> = leaf
            .cert
            .ocsp_responders()
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(responders, ["http://127.0.0.1:8081/ocsp"]);
    }

    #[test]
    fn validity_in_days() {
        let mut spec = CaSpec::new("", "x");
        spec.days = 7300;
        let ca = make_ca(&spec).unwrap();
        let d = ca.cert.not_before().diff(ca.cert.not_after()).unwrap();
        assert_eq!(d.days, 7300);
        assert!(String::from_utf8(ca.cert.to_text().unwrap())
            .unwrap()
            .contains("Subject: CN=x"));
        spec.days = 0;
        assert!(make_ca(&spec).is_err());

        let mut leaf = LeafSpec::new(Usage::Server, "later.example");
        (leaf.days, leaf.starts_in_days) = (30, 2);
        let later = make_leaf(&leaf, &ca).unwrap();
        let now = Asn1Time::days_from_now(0).unwrap();
        let d = now.diff(later.cert.not_before()).unwrap();
        assert!(d.days == 2 || (d.days == 1 && d.secs > 86_000), "{d:?}");
        let d = later
            .cert
            .not_before()
            .diff(later.cert.not_after())
            .unwrap();
        assert_eq!((d.days, d.secs), (30, 0));
    }

    #[test]
    fn crls_round_trip() {
        let ca = make_ca(&CaSpec::new("Acme Inc.", "acme.com")).unwrap();
        let leaf = make_leaf(&LeafSpec::new(Usage::Client, "c"), &ca).unwrap();
        let crl = make_crl(&ca, &[&leaf.cert], 30).unwrap();
        let back = X509Crl::from_pem(&crl.to_pem().unwrap()).unwrap();
        assert_eq!(back.get_revoked().map(|r| r.len()), Some(1));
        assert!(make_crl(&ca, &[], 30).is_ok(), "an empty CRL is valid");
        assert_eq!(der_integer(1), [2, 1, 1]);
        assert_eq!(der_integer(0x80), [2, 2, 0, 0x80]);
    }

    #[test]
    fn load_ca_checks_the_pair() {
        let d = tempfile::tempdir().unwrap();
        let a = make_ca(&CaSpec::new("A", "a")).unwrap();
        let b = make_ca(&CaSpec::new("B", "b")).unwrap();
        std::fs::write(d.path().join("ca.crt"), a.cert_pem().unwrap()).unwrap();
        std::fs::write(d.path().join("ca.key"), a.key_pem().unwrap()).unwrap();
        assert!(load_ca(d.path()).is_ok());
        std::fs::write(d.path().join("ca.key"), b.key_pem().unwrap()).unwrap();
        let e = load_ca(d.path()).err().unwrap().to_string();
        assert!(e.contains("does not match"), "{e}");
        let e = load_ca(&d.path().join("none")).err().unwrap().to_string();
        assert!(e.contains("ca.crt"), "{e}");
    }

    #[test]
    fn an_intermediate_chains_to_its_parent_and_ends_when_told() {
        use openssl::stack::Stack;
        use openssl::x509::store::X509StoreBuilder;
        use openssl::x509::X509StoreContext;
        let root = make_ca(&CaSpec::new("P", "Partners Root")).unwrap();
        let mid =
            make_intermediate(&CaSpec::new("P", "Partners Issuing"), &root, Some(60)).unwrap();
        let leaf = make_leaf(&LeafSpec::new(Usage::Client, "c.partners.example"), &mid).unwrap();
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(root.cert.clone()).unwrap();
        let store = store.build();
        let mut chain = Stack::new().unwrap();
        chain.push(mid.cert.clone()).unwrap();
        let mut ctx = X509StoreContext::new().unwrap();
        let ok = ctx
            .init(&store, &leaf.cert, &chain, |c| c.verify_cert())
            .unwrap();
        assert!(ok, "{}", ctx.error());
        let now = Asn1Time::from_unix(now_unix()).unwrap();
        let ends = now.diff(mid.cert.not_after()).unwrap();
        let ends = i64::from(ends.days) * 86_400 + i64::from(ends.secs);
        assert!((55..=65).contains(&ends), "ends in {ends}s");
        assert_eq!(
            mid.cert
                .issuer_name()
                .entries()
                .last()
                .unwrap()
                .data()
                .as_slice(),
            b"Partners Root"
        );
    }
}
