//! `tlsgate certs ca|server|client` (and `revoke|crl`, `revoke.rs`): files in the credentialsDir layout, and
//! the `curl` / `kubectl` lines that use them printed on stdout.
//!
//! Flags follow the seeds' vocabulary (`--org`, `--cn`, hosts) plus the
//! shorter forms the acceptance tests use (`--out` for a server's folder,
//! `--san` for any SAN); both spellings stay supported.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use super::output::{file_name, read_ca_bundle, refuse_overwrite, sh, write_file};
use super::{
    load_ca, make_ca, make_intermediate, make_leaf, CaSpec, CertgenError, Issued, KeyKind,
    LeafSpec, Usage,
};

#[derive(clap::Subcommand, Debug)]
pub enum CertsCommand {
    /// A self-signed CA: DIR/ca.crt and DIR/ca.key.
    Ca(CaArgs),
    /// A server credential folder: tls.crt (leaf + CA), tls.key, optional ca.crt.
    Server(ServerArgs),
    /// A client certificate: DIR/tls.crt and DIR/tls.key.
    Client(ClientArgs),
    /// Revoke certificates this CA issued: adds them to DIR/revoked.txt
    /// and signs a new DIR/ca.crl.
    Revoke(super::RevokeArgs),
    /// Sign DIR/ca.crl again from DIR/revoked.txt (before its nextUpdate).
    Crl(super::CrlArgs),
    /// Sign an OCSP response for a certificate this CA issued (the CA as
    /// its own responder), to staple: written beside it (tls.crt ->
    /// tls.ocsp, tls-rsa.crt -> tls-rsa.ocsp).
    Ocsp(OcspArgs),
    /// A session ticket key (80 random bytes, nginx's and Envoy's format)
    /// for `GatewayRuntime` `sessionTickets`: the same file in every
    /// replica lets each resume the others' sessions.
    TicketKey(TicketKeyArgs),
}

#[derive(clap::Args, Debug)]
pub struct TicketKeyArgs {
    /// The key file to write (mode 0600).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing key.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct OcspArgs {
    /// CA folder holding ca.crt and ca.key.
    #[arg(long)]
    pub ca: PathBuf,
    /// The certificate (PEM, leaf first), e.g. CREDENTIAL/tls.crt.
    #[arg(long)]
    pub cert: PathBuf,
    /// Where to write the DER response (default: beside --cert, .ocsp).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Validity in days (nextUpdate).
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Validity in seconds instead of days.
    #[arg(long, conflicts_with = "days")]
    pub seconds: Option<u32>,
    /// Answer "revoked" instead of "good" (to test that it is never stapled).
    #[arg(long)]
    pub revoked: bool,
}

#[derive(clap::Args, Debug)]
pub struct CaArgs {
    /// Short name (the CN when --cn is absent).
    #[arg(long)]
    pub name: Option<String>,
    /// Organization (O=).
    #[arg(long)]
    pub org: Option<String>,
    /// Subject CN (default: --name).
    #[arg(long)]
    pub cn: Option<String>,
    /// Folder for ca.crt and ca.key.
    #[arg(long)]
    pub out: PathBuf,
    /// Validity in days.
    #[arg(long, default_value_t = 3650)]
    pub days: u32,
    /// RSA key of this size instead of ECDSA P-256.
    #[arg(long, value_parser = rsa_bits)]
    pub rsa: Option<u32>,
    /// Replace an existing key.
    #[arg(long)]
    pub force: bool,
    /// An intermediate CA, signed by the CA in this folder (clients then
    /// send their certificate followed by this one's ca.crt).
    #[arg(long = "ca")]
    pub parent: Option<PathBuf>,
    /// With --ca: validity in seconds instead of days (tests of an
    /// intermediate that ends before its leaves).
    #[arg(long, requires = "parent")]
    pub seconds: Option<u32>,
}

#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// CA folder holding ca.crt and ca.key.
    #[arg(long)]
    pub ca: PathBuf,
    /// Host name, IP or `spiffe://` identity the certificate is for (repeatable).
    #[arg(long = "host", visible_alias = "san")]
    pub hosts: Vec<String>,
    /// Subject CN (default: the first host).
    #[arg(long)]
    pub cn: Option<String>,
    /// Credential (folder) name, with --credentials-dir.
    #[arg(long, requires = "credentials_dir")]
    pub credential: Option<String>,
    /// The credentialsDir the credential folder goes in.
    #[arg(long, requires = "credential")]
    pub credentials_dir: Option<PathBuf>,
    /// The credential folder itself, instead of --credentials-dir/--credential.
    #[arg(long, conflicts_with_all = ["credential", "credentials_dir"])]
    pub out: Option<PathBuf>,
    /// CA folder whose ca.crt becomes the credential's client-CA bundle (MUTUAL).
    #[arg(long)]
    pub client_ca: Option<PathBuf>,
    /// Organization (O=).
    #[arg(long)]
    pub org: Option<String>,
    /// Validity in days.
    #[arg(long, default_value_t = 825)]
    pub days: u32,
    /// Validity starts this many days from now: a certificate staged ahead
    /// of a rotation (tlsgate refuses to serve it before then).
    #[arg(long, default_value_t = 0)]
    pub starts_in_days: u32,
    /// RSA key of this size instead of ECDSA P-256.
    #[arg(long, value_parser = rsa_bits)]
    pub rsa: Option<u32>,
    /// Where the CA's OCSP responder answers for this certificate
    /// (authorityInfoAccess; repeatable).
    #[arg(long)]
    pub ocsp_url: Vec<String>,
    /// Write the credential's second certificate, of the other key type
    /// (tls-rsa.crt/tls-rsa.key with --rsa, else tls-ecdsa.*), beside its
    /// tls.crt: served to clients that cannot use the first.
    #[arg(long)]
    pub alternate: bool,
    /// Replace an existing key.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// CA folder holding ca.crt and ca.key.
    #[arg(long)]
    pub ca: PathBuf,
    /// Short name (the CN when --cn is absent).
    #[arg(long)]
    pub name: Option<String>,
    /// Subject CN (default: --name); also a DNS SAN when it is a host name.
    #[arg(long)]
    pub cn: Option<String>,
    /// Extra DNS SAN (repeatable); the CN is one already when it is a host name.
    #[arg(long)]
    pub dns: Vec<String>,
    /// SPIFFE ID as a URI SAN, e.g. spiffe://acme.com/great-partner.
    #[arg(long)]
    pub spiffe: Vec<String>,
    /// Any SAN: `scheme://...` is a URI, an address an IP, anything else DNS.
    #[arg(long)]
    pub san: Vec<String>,
    /// Organization (O=).
    #[arg(long)]
    pub org: Option<String>,
    /// Folder for tls.crt and tls.key.
    #[arg(long)]
    pub out: PathBuf,
    /// Where the CA publishes its CRL (repeatable): a CRL distribution
    /// point in the certificate, which a gateway with
    /// `revocation.distributionPoints` fetches.
    #[arg(long)]
    pub crl_url: Vec<String>,
    /// Validity in days.
    #[arg(long, default_value_t = 825)]
    pub days: u32,
    /// Validity in seconds instead of days (tests of an expiring client).
    #[arg(long, conflicts_with = "days")]
    pub seconds: Option<u32>,
    /// RSA key of this size instead of ECDSA P-256.
    #[arg(long, value_parser = rsa_bits)]
    pub rsa: Option<u32>,
    /// Replace an existing key.
    #[arg(long)]
    pub force: bool,
}

fn rsa_bits(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|b| [2048, 3072, 4096].contains(b))
        .ok_or_else(|| "RSA key size must be 2048, 3072 or 4096".into())
}

/// Runs one `tlsgate certs` command and prints what it wrote and how to use it.
pub fn run(cmd: &CertsCommand) -> Result<(), CertgenError> {
    print!("{}", execute(cmd)?);
    Ok(())
}

/// [`run`] without printing: the report it would print.
pub fn execute(cmd: &CertsCommand) -> Result<String, CertgenError> {
    match cmd {
        CertsCommand::Ca(a) => ca(a),
        CertsCommand::Server(a) => server(a),
        CertsCommand::Client(a) => client(a),
        CertsCommand::Revoke(a) => super::revoke::revoke(a),
        CertsCommand::Crl(a) => super::revoke::crl(a),
        CertsCommand::Ocsp(a) => ocsp(a),
        CertsCommand::TicketKey(a) => ticket_key(a),
    }
}

fn ticket_key(a: &TicketKeyArgs) -> Result<String, CertgenError> {
    refuse_overwrite(&a.out, a.force)?;
    let mut key = [0u8; 80];
    openssl::rand::rand_bytes(&mut key).map_err(super::ossl("random bytes"))?;
    write_file(&a.out, &key, true)?;
    let name: String = key[..16].iter().map(|b| format!("{b:02x}")).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wrote {} (ticket key {name}; keep it private)",
        sh(&a.out)
    );
    let _ = writeln!(
        out,
        "\nList it first in sessionTickets.keyFiles (it encrypts), keep the previous key after it \
         (it still decrypts) until its tickets expire."
    );
    Ok(out)
}

fn ocsp(a: &OcspArgs) -> Result<String, CertgenError> {
    let ca = load_ca(&a.ca)?;
    let pem = std::fs::read(&a.cert).map_err(|source| CertgenError::Io {
        path: a.cert.clone(),
        source,
    })?;
    let cert =
        openssl::x509::X509::from_pem(&pem).map_err(super::ossl("parsing the certificate"))?;
    let ca_key = ca.cert.public_key().map_err(super::ossl("CA public key"))?;
    if !cert.verify(&ca_key).unwrap_or(false) {
        return Err(CertgenError::Invalid(format!(
            "{}: not issued by the CA in {}",
            a.cert.display(),
            a.ca.display()
        )));
    }
    let secs = match a.seconds {
        Some(0) => return Err(CertgenError::Invalid("--seconds must be at least 1".into())),
        Some(s) => i64::from(s),
        None if a.days == 0 => {
            return Err(CertgenError::Invalid("--days must be at least 1".into()))
        }
        None => i64::from(a.days) * 86_400,
    };
    let now = super::now_unix();
    let answer = if a.revoked {
        tlsgate_ossl::OcspAnswer::Revoked(now - 60)
    } else {
        tlsgate_ossl::OcspAnswer::Good
    };
    let der =
        tlsgate_ossl::sign_ocsp_response(&cert, &ca.cert, &ca.key, answer, now - 60, now + secs)
            .map_err(super::ossl("signing the OCSP response"))?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.cert.with_extension("ocsp"));
    write_file(&out, &der, false)?;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "wrote {} ({} for {}, valid {}s: sign it again before then)",
        sh(&out),
        if a.revoked { "revoked" } else { "good" },
        oneline(&cert),
        secs
    );
    Ok(text)
}

fn ca(a: &CaArgs) -> Result<String, CertgenError> {
    let cn =
        a.cn.clone()
            .or_else(|| a.name.clone())
            .ok_or_else(|| CertgenError::Invalid("certs ca needs --name or --cn".into()))?;
    let (crt, key) = (a.out.join("ca.crt"), a.out.join("ca.key"));
    refuse_overwrite(&key, a.force)?;
    let spec = CaSpec {
        org: a.org.clone(),
        cn,
        days: a.days,
        key: KeyKind::from_rsa_bits(a.rsa),
    };
    let issued = match &a.parent {
        Some(parent) => {
            if a.seconds == Some(0) {
                return Err(CertgenError::Invalid("--seconds must be at least 1".into()));
            }
            make_intermediate(&spec, &load_ca(parent)?, a.seconds)?
        }
        None => make_ca(&spec)?,
    };
    write_file(&key, &issued.key_pem()?, true)?;
    write_file(&crt, &issued.cert_pem()?, false)?;
    let dir = sh(&a.out);
    let mut out = String::new();
    let _ = writeln!(out, "wrote {} ({})", sh(&crt), describe(&issued));
    let _ = writeln!(out, "wrote {} (keep it private)", sh(&key));
    let _ = writeln!(out, "\nNext:");
    let _ = writeln!(
        out,
        "  tlsgate certs server --ca {dir} --host HOST --credential NAME-credential --credentials-dir CREDENTIALS_DIR"
    );
    let _ = writeln!(
        out,
        "  tlsgate certs client --ca {dir} --name CLIENT --out clients/CLIENT"
    );
    Ok(out)
}

fn server(a: &ServerArgs) -> Result<String, CertgenError> {
    let mut hosts = a.hosts.clone();
    if hosts.is_empty() {
        hosts.extend(a.cn.clone());
    }
    let first = hosts
        .first()
        .cloned()
        .ok_or_else(|| CertgenError::Invalid("certs server needs at least one --host".into()))?;
    let (folder, name) = match (&a.out, &a.credentials_dir, &a.credential) {
        (Some(out), _, _) => (out.clone(), file_name(out)),
        (None, Some(dir), Some(cred)) => {
            check_credential_name(cred)?;
            (dir.join(cred), cred.clone())
        }
        _ => {
            return Err(CertgenError::Invalid(
                "certs server needs --credential and --credentials-dir (or --out)".into(),
            ))
        }
    };
    let stem = match (a.alternate, a.rsa.is_some()) {
        (false, _) => "tls",
        (true, true) => "tls-rsa",
        (true, false) => "tls-ecdsa",
    };
    let (crt, key, bundle) = (
        folder.join(format!("{stem}.crt")),
        folder.join(format!("{stem}.key")),
        folder.join("ca.crt"),
    );
    refuse_overwrite(&key, a.force)?;
    let client_ca = a
        .client_ca
        .as_ref()
        .map(|d| read_ca_bundle(d))
        .transpose()?;
    let ca = load_ca(&a.ca)?;
    let mut spec = LeafSpec::new(Usage::Server, a.cn.as_deref().unwrap_or(&first));
    spec.org = a.org.clone();
    for h in &hosts {
        if h.contains("://") {
            // A workload identity (`spiffe://...`), as a mesh's certificates carry.
            push_unique(&mut spec.uris, h.clone());
            continue;
        }
        match h.parse::<IpAddr>() {
            Ok(ip) => push_unique(&mut spec.ips, ip),
            Err(_) => push_unique(&mut spec.dns, dns_name(h)?),
        }
    }
    spec.days = a.days;
    spec.starts_in_days = a.starts_in_days;
    spec.ocsp_urls.clone_from(&a.ocsp_url);
    spec.key = KeyKind::from_rsa_bits(a.rsa);
    let leaf = make_leaf(&spec, &ca)?;
    // Leaf then CA, as the seeds' secrets hold them and as servers send them.
    let mut chain = leaf.cert_pem()?;
    chain.extend(ca.cert_pem()?);
    write_file(&key, &leaf.key_pem()?, true)?;
    write_file(&crt, &chain, false)?;
    if let Some((_, pem)) = &client_ca {
        write_file(&bundle, pem, false)?;
    }

    let mut out = String::new();
    let _ = writeln!(out, "wrote {} ({})", sh(&crt), describe(&leaf));
    let _ = writeln!(out, "wrote {} (keep it private)", sh(&key));
    if let Some((src, _)) = &client_ca {
        let _ = writeln!(
            out,
            "wrote {} (copy of {}: clients must present a certificate it signed)",
            sh(&bundle),
            sh(src)
        );
    }
    let client = if client_ca.is_some() {
        " --cert CLIENT/tls.crt --key CLIENT/tls.key"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "\nTry it (tlsgate serving this credential on port 8443):"
    );
    let _ = writeln!(
        out,
        "  curl --cacert {}{client} {}",
        sh(&a.ca.join("ca.crt")),
        curl_target(&first)
    );
    let _ = writeln!(out, "\nIn Kubernetes:");
    let _ = write!(
        out,
        "  kubectl create secret generic {name} --from-file=tls.crt={} --from-file=tls.key={}",
        sh(&crt),
        sh(&key)
    );
    if client_ca.is_some() {
        let _ = write!(out, " --from-file=ca.crt={}", sh(&bundle));
    }
    out.push('\n');
    Ok(out)
}

fn client(a: &ClientArgs) -> Result<String, CertgenError> {
    let cn =
        a.cn.clone()
            .or_else(|| a.name.clone())
            .ok_or_else(|| CertgenError::Invalid("certs client needs --name or --cn".into()))?;
    let (crt, key) = (a.out.join("tls.crt"), a.out.join("tls.key"));
    refuse_overwrite(&key, a.force)?;
    let ca = load_ca(&a.ca)?;
    let mut spec = LeafSpec::new(Usage::Client, &cn);
    spec.org = a.org.clone();
    if looks_like_host(&cn) {
        spec.dns.push(cn.to_ascii_lowercase());
    }
    for d in &a.dns {
        push_unique(&mut spec.dns, dns_name(d)?);
    }
    for s in &a.spiffe {
        if !s.starts_with("spiffe://") {
            return Err(CertgenError::Invalid(format!(
                "--spiffe {s}: must start with spiffe://"
            )));
        }
        push_unique(&mut spec.uris, s.clone());
    }
    for s in &a.san {
        if s.contains("://") {
            push_unique(&mut spec.uris, s.clone());
        } else if let Ok(ip) = s.parse::<IpAddr>() {
            push_unique(&mut spec.ips, ip);
        } else {
            push_unique(&mut spec.dns, dns_name(s)?);
        }
    }
    spec.days = a.days;
    spec.key = KeyKind::from_rsa_bits(a.rsa);
    spec.crl_urls.clone_from(&a.crl_url);
    spec.seconds = a.seconds;
    let leaf = make_leaf(&spec, &ca)?;
    write_file(&key, &leaf.key_pem()?, true)?;
    write_file(&crt, &leaf.cert_pem()?, false)?;

    let mut out = String::new();
    let _ = writeln!(out, "wrote {} ({})", sh(&crt), describe(&leaf));
    let _ = writeln!(out, "wrote {} (keep it private)", sh(&key));
    let _ = writeln!(
        out,
        "\nUse it against a MUTUAL server whose ca.crt holds {}:",
        sh(&a.ca.join("ca.crt"))
    );
    let _ = writeln!(
        out,
        "  curl --cacert SERVER_CA/ca.crt --cert {} --key {} {}",
        sh(&crt),
        sh(&key),
        curl_target("HOST")
    );
    Ok(out)
}

fn describe(c: &Issued) -> String {
    let sans = crate::san_list(&c.cert);
    let sans: Vec<&str> = sans.iter().map(String::as_str).collect();
    let sans = if sans.is_empty() {
        String::new()
    } else {
        format!("; SAN {}", sans.join(", "))
    };
    let now = openssl::asn1::Asn1Time::days_from_now(0);
    let starts = match now {
        Ok(now) if c.cert.not_before() > now => format!("; valid from {}", c.cert.not_before()),
        _ => String::new(),
    };
    format!(
        "{}{sans}{starts}; expires {}",
        oneline(&c.cert),
        c.cert.not_after()
    )
}

/// The subject as `openssl x509 -subject` and curl print it: `O=.., CN=..`.
pub(super) fn oneline(cert: &openssl::x509::X509Ref) -> String {
    let parts: Vec<String> = cert
        .subject_name()
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            format!("{key}={}", e.data().to_string().unwrap_or_default())
        })
        .collect();
    parts.join(", ")
}

/// `--resolve` points the name at the local gateway without touching DNS; a
/// wildcard host is tried through one concrete name under it.
fn curl_target(host: &str) -> String {
    let host = match host.strip_prefix("*.") {
        Some(rest) => format!("www.{rest}"),
        None => host.to_string(),
    };
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("https://[{ip}]:8443/"),
        Ok(IpAddr::V4(ip)) => format!("https://{ip}:8443/"),
        Err(_) => format!("--resolve {host}:8443:127.0.0.1 https://{host}:8443/"),
    }
}

fn looks_like_host(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*'))
}

/// A DNS SAN as TLS clients will match it: lower case, LDH labels, an
/// optional leading `*.`. Anything else would be a certificate no client accepts.
fn dns_name(s: &str) -> Result<String, CertgenError> {
    let name = s.trim_end_matches('.').to_ascii_lowercase();
    let labels = name.strip_prefix("*.").unwrap_or(&name);
    let ok = !labels.is_empty()
        && labels.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !ok {
        return Err(CertgenError::Invalid(format!(
            "{s:?} is not a DNS name or an IP address"
        )));
    }
    Ok(name)
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn check_credential_name(name: &str) -> Result<(), CertgenError> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(CertgenError::Invalid(format!(
            "--credential {name:?}: must be a plain folder name"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use clap::Parser;
    use openssl::x509::X509;

    use super::*;
    use tlsgate_core::config::model::CredentialSource;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        certs: CertsCommand,
    }

    fn exec(args: &[&str]) -> Result<String, CertgenError> {
        let cli = Cli::try_parse_from(std::iter::once("certs").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        execute(&cli.certs)
    }

    fn p(path: &Path) -> &str {
        path.to_str().unwrap()
    }

    #[test]
    fn seed_layout_end_to_end() {
        let d = tempfile::tempdir().unwrap();
        let (example, acme, creds) = (
            d.path().join("ca/example"),
            d.path().join("ca/acme"),
            d.path().join("creds"),
        );
        let out = exec(&[
            "ca",
            "--name",
            "example",
            "--org",
            "example Inc.",
            "--cn",
            "example.com",
            "--out",
            p(&example),
        ])
        .unwrap();
        assert!(
            out.contains("ca.crt (O=example Inc., CN=example.com; expires "),
            "{out}"
        );
        exec(&[
            "ca",
            "--name",
            "acme.com",
            "--org",
            "Acme Inc.",
            "--out",
            p(&acme),
            "--rsa",
            "2048",
        ])
        .unwrap();
        let mode = std::fs::metadata(acme.join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let acme_ca = load_ca(&acme).unwrap();
        assert!(String::from_utf8(acme_ca.cert.to_text().unwrap())
            .unwrap()
            .contains("Subject: O=Acme Inc., CN=acme.com"));

        let out = exec(&[
            "server",
            "--ca",
            p(&example),
            "--host",
            "partner.example.com",
            "--host",
            "127.0.0.1",
            "--credential",
            "partner-credential",
            "--credentials-dir",
            p(&creds),
            "--client-ca",
            p(&acme),
        ])
        .unwrap();
        let folder = creds.join("partner-credential");
        assert!(out.contains(&format!(
            "curl --cacert {} --cert CLIENT/tls.crt --key CLIENT/tls.key --resolve partner.example.com:8443:127.0.0.1 https://partner.example.com:8443/",
            example.join("ca.crt").display()
        )), "{out}");
        assert!(out.contains(&format!(
            "kubectl create secret generic partner-credential --from-file=tls.crt={0}/tls.crt --from-file=tls.key={0}/tls.key --from-file=ca.crt={0}/ca.crt",
            folder.display()
        )), "{out}");
        let c = tlsgate_core::credentials::load(
            &CredentialSource::Named("partner-credential".into()),
            &creds,
        )
        .unwrap();
        assert_eq!(c.chain.len(), 2);
        assert_eq!(c.info.subject, "CN=partner.example.com");
        assert_eq!(c.info.sans, ["DNS:partner.example.com", "IP:127.0.0.1"]);
        assert_eq!(c.info.ca_subjects, ["CN=acme.com,O=Acme Inc."]);

        let client = d.path().join("clients/great-partner");
        let out = exec(&[
            "client",
            "--ca",
            p(&acme),
            "--name",
            "great-partner",
            "--cn",
            "great-partner.apps.acme.com",
            "--org",
            "Great Department",
            "--spiffe",
            "spiffe://acme.com/great-partner",
            "--out",
            p(&client),
        ])
        .unwrap();
        assert!(
            out.contains(&format!(
                "--cert {0}/tls.crt --key {0}/tls.key",
                client.display()
            )),
            "{out}"
        );
        let cert = X509::from_pem(&std::fs::read(client.join("tls.crt")).unwrap()).unwrap();
        let id = tlsgate_core::credentials::client_identity(&cert);
        assert_eq!(
            id.subject,
            "CN=great-partner.apps.acme.com,O=Great Department"
        );
        assert_eq!(id.dns, ["great-partner.apps.acme.com"]);
        assert_eq!(id.uris, ["spiffe://acme.com/great-partner"]);
        let store = c.ca_store.as_ref().unwrap();
        let mut ctx = openssl::x509::X509StoreContext::new().unwrap();
        let chain = openssl::stack::Stack::new().unwrap();
        assert!(ctx.init(store, &cert, &chain, |x| x.verify_cert()).unwrap());
    }

    #[test]
    fn refuses_to_overwrite_a_key_without_force() {
        let d = tempfile::tempdir().unwrap();
        let ca = d.path().join("ca");
        exec(&["ca", "--name", "a", "--out", p(&ca)]).unwrap();
        let before = std::fs::read(ca.join("ca.crt")).unwrap();
        let e = exec(&["ca", "--name", "a", "--out", p(&ca)]).unwrap_err();
        assert!(matches!(e, CertgenError::Exists { .. }), "{e}");
        assert_eq!(
            std::fs::read(ca.join("ca.crt")).unwrap(),
            before,
            "nothing written"
        );
        exec(&["ca", "--name", "a", "--out", p(&ca), "--force"]).unwrap();
        assert_ne!(std::fs::read(ca.join("ca.crt")).unwrap(), before);
        let leftovers: Vec<_> = std::fs::read_dir(&ca)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    }

    /// The spelling the acceptance tests use: `--out` folders and `--san`.
    #[test]
    fn short_forms() {
        let d = tempfile::tempdir().unwrap();
        let ca = d.path().join("ca");
        exec(&["ca", "--out", p(&ca), "--cn", "Test Root CA"]).unwrap();
        let server = d.path().join("creds/svc-credential");
        let out = exec(&[
            "server",
            "--ca",
            p(&ca),
            "--out",
            p(&server),
            "--cn",
            "svc.test",
            "--san",
            "svc.test",
            "--san",
            "*.svc.test",
        ])
        .unwrap();
        assert!(
            out.contains("kubectl create secret generic svc-credential "),
            "{out}"
        );
        let client = d.path().join("client");
        exec(&[
            "client",
            "--ca",
            p(&ca),
            "--out",
            p(&client),
            "--cn",
            "client.test",
            "--san",
            "spiffe://test/c",
            "--san",
            "10.1.2.3",
        ])
        .unwrap();
        let cert = X509::from_pem(&std::fs::read(client.join("tls.crt")).unwrap()).unwrap();
        let id = tlsgate_core::credentials::client_identity(&cert);
        assert_eq!(
            (id.dns.as_slice(), id.uris.as_slice(), id.ips.as_slice()),
            (
                &["client.test".to_string()][..],
                &["spiffe://test/c".to_string()][..],
                &["10.1.2.3".to_string()][..]
            )
        );
        let c = tlsgate_core::credentials::load(
            &CredentialSource::Named("svc-credential".into()),
            &d.path().join("creds"),
        )
        .unwrap();
        assert!(c.covers_host("x.svc.test") && c.covers_host("svc.test"));

        let later = d.path().join("later");
        let out = exec(&[
            "server",
            "--ca",
            p(&ca),
            "--out",
            p(&later),
            "--san",
            "svc.test",
            "--starts-in-days",
            "3",
        ])
        .unwrap();
        assert!(out.contains("; valid from "), "{out}");
        let cert = X509::from_pem(&std::fs::read(later.join("tls.crt")).unwrap()).unwrap();
        let in_two_days = openssl::asn1::Asn1Time::days_from_now(2).unwrap();
        assert!(cert.not_before() > in_two_days);
    }

    #[test]
    fn bad_input_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        assert!(Cli::try_parse_from(["certs", "ca", "--out", "x", "--rsa", "1024"]).is_err());
        assert!(exec(&["ca", "--out", p(d.path())]).is_err(), "needs a name");
        let e = exec(&[
            "server",
            "--ca",
            p(d.path()),
            "--host",
            "a",
            "--out",
            p(&d.path().join("s")),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("ca.crt"), "{e}");
        let ca = d.path().join("ca");
        exec(&["ca", "--name", "a", "--out", p(&ca)]).unwrap();
        let e = exec(&["server", "--ca", p(&ca), "--out", p(&d.path().join("s"))]).unwrap_err();
        assert!(e.to_string().contains("--host"), "{e}");
        let e = exec(&[
            "server",
            "--ca",
            p(&ca),
            "--host",
            "a b",
            "--out",
            p(&d.path().join("s")),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("not a DNS name"), "{e}");
        let e = exec(&[
            "server",
            "--ca",
            p(&ca),
            "--host",
            "a",
            "--credential",
            "../x",
            "--credentials-dir",
            "c",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("plain folder name"), "{e}");
        let e = exec(&[
            "client",
            "--ca",
            p(&ca),
            "--name",
            "c",
            "--spiffe",
            "http://x",
            "--out",
            p(&d.path().join("c")),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("spiffe://"), "{e}");
    }

    #[test]
    fn printed_words_paste_into_a_shell() {
        assert_eq!(
            sh(Path::new("certs-example/ca/acme")),
            "certs-example/ca/acme"
        );
        assert_eq!(sh(Path::new("/tmp/my dir/it's")), r"'/tmp/my dir/it'\''s'");
        assert_eq!(
            curl_target("*.example.com"),
            "--resolve www.example.com:8443:127.0.0.1 https://www.example.com:8443/"
        );
        assert_eq!(curl_target("::1"), "https://[::1]:8443/");
    }
}
