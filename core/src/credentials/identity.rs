//! Peer identity read from a client certificate: what `client.id` logs show,
//! what `subjectAltNames` allow lists match, and Envoy's
//! `x-forwarded-client-cert` element forwarded to backends.
//!
//! The X.509 text helpers (RFC 2253 names, SAN strings, hex) live here too,
//! since `CredentialInfo` must print names exactly as XFCC does.

use std::net::IpAddr;

use openssl::nid::Nid;
use openssl::x509::{X509NameRef, X509Ref};

use crate::config::client_cert::XfccElements;
use crate::tls::PeerCerts;

/// Who the verified peer certificate says the client is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClientIdentity {
    /// RFC 2253 order (last RDN first): `CN=great-partner.apps.acme.com,O=Great Department`.
    pub subject: String,
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    /// Not part of XFCC (Envoy leaves them out) but matched by allow lists.
    pub ips: Vec<String>,
    pub emails: Vec<String>,
    /// The subject's last CN, unescaped: the fallback for [`ClientIdentity::id`].
    pub common_name: Option<String>,
    /// Lower-case hex SHA-256 of the certificate's DER.
    pub hash: String,
}

/// Reads the identity fields of `cert`. Never fails: fields that cannot be
/// decoded are left out rather than refusing an otherwise verified peer.
pub fn client_identity(cert: &X509Ref) -> ClientIdentity {
    let sans = SubjectAltNames::of(cert);
    ClientIdentity {
        subject: name_to_string(cert.subject_name()),
        uris: sans.uris,
        dns: sans.dns,
        ips: sans.ips,
        emails: sans.emails,
        common_name: common_name(cert.subject_name()),
        hash: cert
            .to_der()
            .map(|der| hex(&sha256(&der)))
            .unwrap_or_default(),
    }
}

/// The identity of a certificate given as DER, and when it ends: read
/// from the DER itself where its shape is plain (`der.rs`), else decoded
/// by OpenSSL as [`client_identity`] does. `None` only for DER that
/// OpenSSL cannot decode either.
pub fn client_identity_der(der: &[u8]) -> Option<(ClientIdentity, Option<i64>)> {
    if let Some(read) = identity_of_view(der) {
        return Some(read);
    }
    let cert = openssl::x509::X509::from_der(der).ok()?;
    let ends = super::unix_time(cert.not_after()).ok();
    Some((client_identity(&cert), ends))
}

fn identity_of_view(der: &[u8]) -> Option<(ClientIdentity, Option<i64>)> {
    use super::der::{CertView, GeneralName};
    let view = CertView::parse(der)?;
    // A plain name reads as its bytes; any other goes through OpenSSL's
    // own name decoder, so that it prints exactly as it does from a
    // decoded certificate. The issuer is decoded only to refuse what
    // OpenSSL refuses.
    if super::der::plain_name(view.issuer).is_none() {
        openssl::x509::X509Name::from_der(view.issuer).ok()?;
    }
    let (subject, common_name) = match super::der::plain_name(view.subject) {
        Some(attributes) => plain_name_text(&attributes),
        None => {
            let name = openssl::x509::X509Name::from_der(view.subject).ok()?;
            (name_to_string(&name), common_name(&name))
        }
    };
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
    let mut sans = SubjectAltNames::default();
    for gn in view.sans {
        match gn {
            GeneralName::Dns(b) => sans.dns.extend(text(b)),
            GeneralName::Uri(b) => sans.uris.extend(text(b)),
            GeneralName::Ip(b) => sans.ips.extend(ip_from_bytes(b).map(|ip| ip.to_string())),
            GeneralName::Email(b) => sans.emails.extend(text(b)),
        }
    }
    let identity = ClientIdentity {
        subject,
        uris: sans.uris,
        dns: sans.dns,
        ips: sans.ips,
        emails: sans.emails,
        common_name,
        hash: hex(&sha256(der)),
    };
    Some((identity, Some(view.not_after)))
}

impl ClientIdentity {
    /// One element of Envoy's `x-forwarded-client-cert` with the chosen
    /// elements, in Envoy's order: `By` (the gateway certificate's URI
    /// SANs), `Hash`, `Cert`, `Chain` (the leaf and what the client sent
    /// after it), `Subject`, `URI` (`URI=` when it has none, as Envoy
    /// writes), `DNS`. `Subject`, `Cert` and `Chain` are quoted, with `"`
    /// escaped as Envoy does. Whatever a certificate carries, the value is
    /// one line of visible ASCII: a CA may sign a name holding CR, LF or
    /// `;`, and those must not end the header or forge another field (`%XX`).
    pub fn xfcc(&self, e: XfccElements, by: &[&str], certs: Option<&PeerCerts>) -> String {
        let mut out = String::with_capacity(160);
        let sep = |out: &mut String| {
            if !out.is_empty() {
                out.push(';');
            }
        };
        let sans = |out: &mut String, key: &str, v: &str| {
            if !out.is_empty() {
                out.push(';');
            }
            out.push_str(key);
            for c in v.chars() {
                push_visible(out, c, &[';', ',', '"', '=']);
            }
        };
        for b in by {
            sans(&mut out, "By=", b);
        }
        if e.hash {
            sep(&mut out);
            out.push_str("Hash=");
            out.push_str(&self.hash);
        }
        if let Some(c) = certs {
            let leaf = (e.cert || e.chain).then(|| c.leaf()).flatten();
            if let (true, Some(leaf)) = (e.cert, &leaf) {
                sep(&mut out);
                out.push_str("Cert=\"");
                url_encode_pem(&mut out, leaf);
                out.push('"');
            }
            if let (true, Some(leaf)) = (e.chain, &leaf) {
                sep(&mut out);
                out.push_str("Chain=\"");
                url_encode_pem(&mut out, leaf);
                for x in c.chain() {
                    url_encode_pem(&mut out, x);
                }
                out.push('"');
            }
        }
        if e.subject {
            sep(&mut out);
            out.push_str("Subject=\"");
            for c in self.subject.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    c => push_visible(&mut out, c, &[]),
                }
            }
            out.push('"');
        }
        if e.uri {
            if self.uris.is_empty() {
                sans(&mut out, "URI=", "");
            }
            for v in &self.uris {
                sans(&mut out, "URI=", v);
            }
        }
        if e.dns {
            for v in &self.dns {
                sans(&mut out, "DNS=", v);
            }
        }
        out
    }

    /// The short name used as `client.id`: a SPIFFE-style URI is the most
    /// specific identity a certificate carries, then its DNS name, then CN;
    /// as visible ASCII (it goes into log lines).
    pub fn id(&self) -> String {
        let raw = self
            .uris
            .first()
            .or_else(|| self.dns.first())
            .or(self.common_name.as_ref())
            .map_or("", String::as_str);
        let mut out = String::with_capacity(raw.len());
        for c in raw.chars() {
            push_visible(&mut out, c, &[]);
        }
        out
    }

    /// Istio `subjectAltNames` semantics: the certificate is allowed when any
    /// of its SANs (URI, DNS, IP, email) equals any allowed entry. DNS names
    /// compare case-insensitively, as DNS does.
    pub fn matches_any(&self, allowed: &[String]) -> bool {
        allowed.iter().any(|a| {
            self.uris.iter().any(|u| u == a)
                || self.dns.iter().any(|d| d.eq_ignore_ascii_case(a))
                || self.ips.iter().any(|ip| ip_eq(ip, a))
                || self.emails.iter().any(|e| e == a)
        })
    }
}

fn ip_eq(have: &str, want: &str) -> bool {
    match (have.parse::<IpAddr>(), want.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The subject alternative names of a certificate, by kind, as text.
#[derive(Debug, Default)]
pub(crate) struct SubjectAltNames {
    pub dns: Vec<String>,
    pub uris: Vec<String>,
    pub ips: Vec<String>,
    pub emails: Vec<String>,
}

impl SubjectAltNames {
    pub(crate) fn of(cert: &X509Ref) -> SubjectAltNames {
        let mut out = SubjectAltNames::default();
        for gn in cert.subject_alt_names().iter().flatten() {
            if let Some(d) = gn.dnsname() {
                out.dns.push(d.to_string());
            } else if let Some(u) = gn.uri() {
                out.uris.push(u.to_string());
            } else if let Some(ip) = gn.ipaddress().and_then(ip_from_bytes) {
                out.ips.push(ip.to_string());
            } else if let Some(e) = gn.email() {
                out.emails.push(e.to_string());
            }
        }
        out
    }

    /// `DNS:x`, `URI:y`, `IP:z`, `email:w`, the prefixes `openssl x509 -text` prints.
    pub(crate) fn prefixed(&self) -> Vec<String> {
        let tag =
            |p: &str, v: &Vec<String>| v.iter().map(|s| format!("{p}:{s}")).collect::<Vec<_>>();
        let mut all = tag("DNS", &self.dns);
        all.extend(tag("URI", &self.uris));
        all.extend(tag("IP", &self.ips));
        all.extend(tag("email", &self.emails));
        all
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The certificate as PEM, every byte but RFC 3986's unreserved ones
/// percent-encoded (Envoy's "URL encoded PEM").
fn url_encode_pem(out: &mut String, cert: &X509Ref) {
    let Ok(pem) = cert.to_pem() else { return };
    for b in pem {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// A plain name's text and common name, as `name_to_string` and
/// `common_name` give them for the same name decoded by OpenSSL.
fn plain_name_text(attributes: &[(&str, &str)]) -> (String, Option<String>) {
    let mut text = String::with_capacity(64);
    for (key, value) in attributes.iter().rev() {
        if !text.is_empty() {
            text.push(',');
        }
        text.push_str(key);
        text.push('=');
        text.push_str(&escape_rdn_value(value));
    }
    let cn = attributes
        .iter()
        .rev()
        .find(|(key, _)| *key == "CN")
        .map(|(_, value)| value.to_string());
    (text, cn)
}

/// SHA-256 by OpenSSL's low-level calls: its one-shot `SHA256()` fetches
/// the digest from the provider store on every call (pthread_once, a
/// locked lookup), a third of the time it takes for a certificate.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let mut hasher = openssl::sha::Sha256::new();
    hasher.update(data);
    hasher.finish()
}

/// RFC 2253 rendering, as Envoy's `X509_NAME_print_ex(.., XN_FLAG_RFC2253)`
/// gives for ordinary names: RDNs in reverse order, `,` between them, and
/// `\`-escapes for `, + ; < > \` and edge spaces. `"` is left bare so that
/// XFCC quoting is the only escaping layer around it.
pub(crate) fn name_to_string(name: &X509NameRef) -> String {
    let mut parts: Vec<String> = name
        .entries()
        .map(|e| {
            let nid = e.object().nid();
            let key = match nid.short_name() {
                Ok(s) if nid != Nid::UNDEF => s.to_string(),
                _ => e.object().to_string(),
            };
            let value = e
                .data()
                .to_string()
                .unwrap_or_else(|_| hex(e.data().as_slice()));
            format!("{key}={}", escape_rdn_value(&value))
        })
        .collect();
    parts.reverse();
    parts.join(",")
}

/// `c` as is when it is visible ASCII (or a space) and not in `also`,
/// else as `%XX` for each of its UTF-8 bytes.
fn push_visible(out: &mut String, c: char, also: &[char]) {
    if (c == ' ' || c.is_ascii_graphic()) && c != '%' && !also.contains(&c) {
        out.push(c);
        return;
    }
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        out.push_str(&format!("%{b:02X}"));
    }
}

fn escape_rdn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let edge_space = c == ' ' && (i == 0 || i == last);
        if matches!(c, ',' | '+' | ';' | '<' | '>' | '\\') || edge_space || (i == 0 && c == '#') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The most specific (last) CN of a name, unescaped.
pub(crate) fn common_name(name: &X509NameRef) -> Option<String> {
    name.entries_by_nid(Nid::COMMONNAME)
        .last()
        .and_then(|e| e.data().to_string().ok())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certgen::{make_ca, make_leaf, CaSpec, KeyKind, LeafSpec, Usage};

    fn client(org: &str, cn: &str, dns: &[&str], uris: &[&str]) -> openssl::x509::X509 {
        let ca = make_ca(&CaSpec::new("Acme Inc.", "acme.com")).unwrap();
        let mut spec = LeafSpec::new(Usage::Client, cn);
        spec.org = Some(org.to_string());
        spec.dns = dns.iter().map(|s| s.to_string()).collect();
        spec.uris = uris.iter().map(|s| s.to_string()).collect();
        spec.key = KeyKind::EcP256;
        make_leaf(&spec, &ca).unwrap().cert
    }

    #[test]
    fn xfcc_matches_envoy_format() {
        let cert = client(
            "Great Department",
            "great-partner.apps.acme.com",
            &["great-partner.apps.acme.com"],
            &["spiffe://acme.com/great-partner"],
        );
        let id = client_identity(&cert);
        assert_eq!(
            id.subject,
            "CN=great-partner.apps.acme.com,O=Great Department"
        );
        let hash = hex(&openssl::sha::sha256(&cert.to_der().unwrap()));
        assert_eq!(
            id.xfcc(XfccElements::default(), &[], None),
            format!(
                "Hash={hash};Subject=\"CN=great-partner.apps.acme.com,O=Great Department\";\
                 URI=spiffe://acme.com/great-partner;DNS=great-partner.apps.acme.com"
            )
        );
        assert_eq!(id.id(), "spiffe://acme.com/great-partner");
    }

    #[test]
    fn xfcc_escapes_quotes_and_writes_absent_uri_empty() {
        let cert = client("The \"Best\", Dept", "x", &[], &[]);
        let id = client_identity(&cert);
        assert_eq!(id.subject, "CN=x,O=The \"Best\"\\, Dept");
        let want = format!(
            "Hash={};Subject=\"CN=x,O=The \\\"Best\\\"\\, Dept\";URI=",
            id.hash
        );
        assert_eq!(id.xfcc(XfccElements::default(), &[], None), want);
        assert_eq!(id.id(), "x");
    }

    #[test]
    fn xfcc_elements_are_chosen_and_ordered_as_envoy_writes_them() {
        let ca = make_ca(&CaSpec::new("Acme Inc.", "acme.com")).unwrap();
        let mut spec = LeafSpec::new(Usage::Client, "x");
        spec.dns = vec!["a.example".into()];
        spec.uris = vec!["spiffe://acme.com/x".into()];
        let leaf = make_leaf(&spec, &ca).unwrap().cert;
        let inter = ca.cert.clone();
        let id = client_identity(&leaf);
        let certs = PeerCerts::new(leaf.clone(), vec![inter.clone()]);
        let all = XfccElements {
            hash: true,
            cert: true,
            chain: true,
            subject: true,
            uri: true,
            dns: true,
        };
        let x = id.xfcc(all, &["spiffe://gw/edge"], Some(&certs));
        // The leaf kept as DER and its path found when asked (rustls's
        // connections) write the same.
        let gw = make_leaf(&LeafSpec::new(Usage::Server, "gw"), &ca).unwrap();
        let cred = crate::credentials::Credential::from_parts(
            crate::config::CredentialSource::Named("gw".into()),
            vec![gw.cert],
            gw.key,
            vec![
                make_ca(&CaSpec::new("Other", "other.com")).unwrap().cert,
                inter.clone(),
            ],
            vec![],
        )
        .unwrap();
        let der = leaf.to_der().unwrap();
        let as_der = PeerCerts::from_der_verified(&der, Box::new([]), std::sync::Arc::new(cred));
        assert_eq!(id.xfcc(all, &["spiffe://gw/edge"], Some(&as_der)), x);
        assert_eq!(as_der.leaf_der(), certs.leaf_der());
        assert_eq!(client_identity_der(&der).unwrap().0, id);
        let keys: Vec<&str> = x.split(';').map(|f| f.split('=').next().unwrap()).collect();
        assert_eq!(
            keys,
            ["By", "Hash", "Cert", "Chain", "Subject", "URI", "DNS"]
        );
        let pem = |c: &openssl::x509::X509| String::from_utf8(c.to_pem().unwrap()).unwrap();
        let decode = |v: &str| {
            let mut out = Vec::new();
            let b = v.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        };
        let field = |k: &str| {
            x.split(';')
                .find_map(|f| f.strip_prefix(k))
                .map(|v| v.trim_matches('"').to_string())
                .unwrap()
        };
        assert_eq!(decode(&field("Cert=")), pem(&leaf));
        assert_eq!(decode(&field("Chain=")), pem(&leaf) + &pem(&inter));
        assert!(!field("Cert=").contains(['\n', ';', ',', '"', '=']));
        let only_uri = XfccElements {
            uri: true,
            ..XfccElements::NONE
        };
        assert_eq!(id.xfcc(only_uri, &[], None), "URI=spiffe://acme.com/x");
    }

    #[test]
    fn names_a_ca_signed_cannot_break_the_header() {
        let c = client(
            "O",
            "partner\r\nx-injected: 1",
            &["a.example;DNS=admin"],
            &["spiffe://acme.com/x\r\nHost: evil"],
        );
        let id = client_identity(&c);
        let x = id.xfcc(XfccElements::default(), &[], None);
        assert!(!x.bytes().any(|b| b < 0x20 || b == 0x7f), "{x:?}");
        assert!(x.contains("CN=partner%0D%0Ax-injected: 1"), "{x}");
        assert!(
            x.contains(";URI=spiffe://acme.com/x%0D%0AHost: evil"),
            "{x}"
        );
        assert!(x.ends_with(";DNS=a.example%3BDNS%3Dadmin"), "{x}");
        assert_eq!(id.id(), "spiffe://acme.com/x%0D%0AHost: evil");
    }

    #[test]
    fn id_prefers_uri_then_dns_then_cn() {
        let c = client("O", "cn.example", &["a.example", "b.example"], &[]);
        assert_eq!(client_identity(&c).id(), "a.example");
        let c = client("O", "cn.example", &[], &[]);
        assert_eq!(client_identity(&c).id(), "cn.example");
    }

    #[test]
    fn allow_list_matches_any_san_kind() {
        let c = client("O", "cn", &["Great.Example"], &["spiffe://acme.com/x"]);
        let id = client_identity(&c);
        assert!(id.matches_any(&["great.example".into()]));
        assert!(id.matches_any(&["nope".into(), "spiffe://acme.com/x".into()]));
        assert!(!id.matches_any(&["spiffe://acme.com/y".into()]));
        assert!(!id.matches_any(&["cn".into()]), "CN is not a SAN");
        assert!(!id.matches_any(&[]));
    }

    #[test]
    fn rdn_escaping() {
        assert_eq!(escape_rdn_value(" a,b+c "), "\\ a\\,b\\+c\\ ");
        assert_eq!(escape_rdn_value("#x;<>\\"), "\\#x\\;\\<\\>\\\\");
        assert_eq!(escape_rdn_value(""), "");
    }

    /// Names built by OpenSSL from these attributes; the first ones plain
    /// (every named attribute, every escape a plain value can need), the
    /// rest left to OpenSSL.
    fn names() -> Vec<(bool, openssl::x509::X509Name)> {
        let plain: &[&[(&str, &str)]] = &[
            &[],
            &[("CN", "x")],
            &[
                ("DC", "com"),
                ("DC", "acme"),
                ("C", "DE"),
                ("ST", "Berlin"),
                ("L", "Mitte"),
                ("street", "Unter den Linden 1"),
                ("O", "Acme Inc."),
                ("OU", "Partners"),
                ("title", "Gateway"),
                ("GN", "Great"),
                ("SN", "Partner"),
                ("serialNumber", "0042"),
                ("UID", "gp"),
                ("emailAddress", "gp@acme.com"),
                ("CN", "great-partner.apps.acme.com"),
            ],
            &[
                ("O", " Lead,ing+;<>\\ "),
                ("OU", "#hash \"quoted\" = %41"),
                ("CN", "first"),
                ("CN", "second"),
            ],
        ];
        let other: &[&[(&str, &str)]] = &[
            &[("CN", "Zo\u{eb}")],
            &[("1.2.3.4.5", "unnamed")],
            &[("O", "x"), ("businessCategory", "y")],
        ];
        let build = |entries: &[(&str, &str)]| {
            let mut b = openssl::x509::X509Name::builder().unwrap();
            for (k, v) in entries {
                b.append_entry_by_text(k, v).unwrap();
            }
            b.build()
        };
        plain
            .iter()
            .map(|e| (true, build(e)))
            .chain(other.iter().map(|e| (false, build(e))))
            .collect()
    }

    fn by_openssl(der: &[u8]) -> Option<(String, Option<String>)> {
        let name = openssl::x509::X509Name::from_der(der).ok()?;
        Some((name_to_string(&name), common_name(&name)))
    }

    #[test]
    fn plain_names_read_as_openssl_prints_them() {
        for (plain, name) in names() {
            let der = name.to_der().unwrap();
            let read = super::super::der::plain_name(&der);
            assert_eq!(read.is_some(), plain, "{der:02x?}");
            if let Some(attributes) = read {
                assert_eq!(Some(plain_name_text(&attributes)), by_openssl(&der));
            }
        }
    }

    /// Every byte of every name changed: whatever still reads as plain,
    /// OpenSSL decodes, and prints the same.
    #[test]
    fn changed_names_never_read_differently_from_openssl() {
        let mut read = 0;
        for (_, name) in names() {
            let der = name.to_der().unwrap();
            for i in 0..der.len() {
                for value in [
                    der[i] ^ 0x01,
                    der[i] ^ 0x02,
                    der[i] ^ 0x20,
                    der[i] ^ 0x80,
                    der[i] ^ 0xff,
                    0x00,
                    0x0c,
                    0x13,
                    0x16,
                    0x1e,
                    0x31,
                    0x80,
                    0x81,
                ] {
                    let mut bad = der.clone();
                    bad[i] = value;
                    let Some(attributes) = super::super::der::plain_name(&bad) else {
                        continue;
                    };
                    read += 1;
                    assert_eq!(
                        Some(plain_name_text(&attributes)),
                        by_openssl(&bad),
                        "byte {i} set to {value:#04x} in {der:02x?}"
                    );
                }
                // Cut short at every length.
                if let Some(attributes) = super::super::der::plain_name(&der[..i]) {
                    assert_eq!(Some(plain_name_text(&attributes)), by_openssl(&der[..i]));
                }
            }
        }
        assert!(read > 200, "only {read} changed names read as plain");
    }

    /// OpenSSL refuses a `Name` over 1 MiB (`X509_NAME_MAX`); so must
    /// the plain reader, or an issuer it reads would get an identity.
    #[test]
    fn a_name_over_openssls_limit_is_not_plain() {
        let cn = vec![b'a'; 1 << 20];
        use super::super::der::tests::tlv;
        let atv = [tlv(0x06, &[0x55, 0x04, 0x03]), tlv(0x0c, &cn)].concat();
        let der = tlv(0x30, &tlv(0x31, &tlv(0x30, &atv)));
        assert!(by_openssl(&der).is_none(), "OpenSSL reads it after all");
        assert!(super::super::der::plain_name(&der).is_none());
        // Just under the limit, both read it.
        let small = tlv(
            0x30,
            &tlv(
                0x31,
                &tlv(
                    0x30,
                    &[tlv(0x06, &[0x55, 0x04, 0x03]), tlv(0x0c, b"a")].concat(),
                ),
            ),
        );
        assert!(super::super::der::plain_name(&small).is_some());
    }

    #[test]
    fn sha256_is_the_digest() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let der = client("O", "cn", &[], &[]).to_der().unwrap();
        assert_eq!(sha256(&der), openssl::sha::sha256(&der));
    }
}
