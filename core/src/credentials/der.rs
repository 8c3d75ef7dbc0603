//! Just enough DER to read a client certificate's identity without
//! OpenSSL decoding the whole certificate: OpenSSL 3 decodes the public
//! key through its provider decoders on every `d2i_X509`, which cost 9% of
//! a full rustls handshake that webpki had already parsed and verified.
//!
//! Strict by design, on every field and not only those it reads: anything
//! outside the plain shapes every CA issues, or that OpenSSL's decoder
//! would refuse (a multi-byte tag, an indefinite or non-minimal length, a
//! padded serial, a malformed OID, unique ids out of order, a second SAN
//! extension, a GeneralName other than DNS/URI/IP/email, a time that is
//! not `...Z` to the second, a `Name` OpenSSL does not decode) is `None`,
//! and the caller decodes with OpenSSL as before. So this reader never
//! gives an identity OpenSSL would read differently, or would not read at
//! all; it only skips work where the answer is plain.

/// The fields of a certificate that its identity is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertView<'a> {
    /// The issuer `Name`, tag and length included: decoded by OpenSSL's
    /// name decoder only to refuse what it refuses.
    pub issuer: &'a [u8],
    /// The subject `Name`, tag and length included (for `d2i_X509_NAME`).
    pub subject: &'a [u8],
    /// notBefore, in seconds since the epoch.
    pub not_before: i64,
    /// notAfter, in seconds since the epoch.
    pub not_after: i64,
    /// The `GeneralName`s of the SAN extension, in order.
    pub sans: Vec<GeneralName<'a>>,
}

/// A GeneralName of a kind `SubjectAltNames::of` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GeneralName<'a> {
    Email(&'a [u8]),
    Dns(&'a [u8]),
    Uri(&'a [u8]),
    Ip(&'a [u8]),
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const SET: u8 = 0x31;
const NULL: u8 = 0x05;
const BIT_STRING: u8 = 0x03;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// id-ce-subjectAltName, 2.5.29.17, as its OID's content bytes.
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

/// One TLV at a time over a slice.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8]) -> Reader<'a> {
        Reader { rest }
    }

    fn done(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next TLV: its tag, its content, and the whole of it.
    fn next(&mut self) -> Option<(u8, &'a [u8], &'a [u8])> {
        let all = self.rest;
        let (&tag, after) = all.split_first()?;
        // Tag numbers of 31 and up take more bytes; no certificate field
        // read here has one.
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, mut after) = after.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            // 0x80 is BER's indefinite length; more than four length
            // bytes would be a certificate of gigabytes.
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || after.len() < n {
                return None;
            }
            let (bytes, tail) = after.split_at(n);
            after = tail;
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            // DER's lengths are minimal. OpenSSL refuses some longer forms
            // (`82 81 00` ending a SAN list makes it read no SANs at all),
            // so a reader that took them could read names it does not.
            if bytes[0] == 0 || len < 0x80 {
                return None;
            }
            len
        };
        if after.len() < len {
            return None;
        }
        let header = all.len() - after.len();
        let (whole, rest) = all.split_at(header + len);
        self.rest = rest;
        Some((tag, &whole[header..], whole))
    }

    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, content, _) if t == tag => Some(content),
            _ => None,
        }
    }
}

impl<'a> CertView<'a> {
    /// Reads `der`, a whole certificate; `None` wherever OpenSSL should
    /// read it instead. Every field is checked as far as OpenSSL's decoder
    /// checks it (or further), not only the fields read: a certificate
    /// OpenSSL cannot decode must not get an identity here.
    pub(crate) fn parse(der: &'a [u8]) -> Option<CertView<'a>> {
        let mut outer = Reader::new(der);
        let mut cert = Reader::new(outer.expect(SEQUENCE)?);
        if !outer.done() {
            return None;
        }
        let view = tbs_certificate(cert.expect(SEQUENCE)?)?;
        // A signature with unused bits OpenSSL clears when it decodes, and
        // then hashes its own encoding: not the bytes hashed here.
        if !algorithm_ok(cert.expect(SEQUENCE)?) || !matches!(cert.expect(BIT_STRING)?, [0, _, ..])
        {
            return None;
        }
        cert.done().then_some(view)
    }
}

/// TBSCertificate (RFC 5280 4.1), field by field in order.
fn tbs_certificate(tbs: &[u8]) -> Option<CertView<'_>> {
    let mut tbs = Reader::new(tbs);
    if tbs.peek_tag() == Some(0xa0) {
        // [0] EXPLICIT Version: v1, v2 or v3, as a one-byte INTEGER.
        if !matches!(tbs.next()?.1, [INTEGER, 1, 0..=2]) {
            return None;
        }
    }
    if !integer_ok(tbs.expect(INTEGER)?) || !algorithm_ok(tbs.expect(SEQUENCE)?) {
        return None;
    }
    let (tag, _, issuer) = tbs.next()?;
    if tag != SEQUENCE {
        return None;
    }
    let mut validity = Reader::new(tbs.expect(SEQUENCE)?);
    let not_before = time(validity.next()?)?;
    let not_after = time(validity.next()?)?;
    if !validity.done() {
        return None;
    }
    let (tag, _, subject) = tbs.next()?;
    if tag != SEQUENCE || !public_key_info_ok(tbs.expect(SEQUENCE)?) {
        return None;
    }
    // issuerUniqueID [1], subjectUniqueID [2], extensions [3]: each at
    // most once, in this order.
    let mut last = 0;
    let mut sans = None;
    while !tbs.done() {
        let (tag, content, _) = tbs.next()?;
        let order = match tag {
            0x81 | 0x82 if bit_string_ok(content) => tag & 0x0f,
            0xa3 => {
                sans = extensions(content)?;
                3
            }
            _ => return None,
        };
        if order <= last {
            return None;
        }
        last = order;
    }
    Some(CertView {
        issuer,
        subject,
        not_before,
        not_after,
        sans: sans.unwrap_or_default(),
    })
}

/// `[3] EXPLICIT Extensions`: the SAN extension's names, if there is one.
fn extensions(content: &[u8]) -> Option<Option<Vec<GeneralName<'_>>>> {
    let mut exts = Reader::new(content);
    let mut list = Reader::new(exts.expect(SEQUENCE)?);
    if !exts.done() {
        return None;
    }
    let mut sans = None;
    while !list.done() {
        let mut ext = Reader::new(list.expect(SEQUENCE)?);
        let oid = ext.expect(OID)?;
        if !oid_ok(oid) {
            return None;
        }
        if ext.peek_tag() == Some(BOOLEAN) && ext.expect(BOOLEAN)?.len() != 1 {
            return None;
        }
        let value = ext.expect(OCTET_STRING)?;
        if !ext.done() {
            return None;
        }
        if oid == SAN_OID {
            if sans.is_some() {
                return None;
            }
            sans = Some(general_names(value)?);
        }
    }
    Some(sans)
}

/// A UTCTime or GeneralizedTime, in seconds since the epoch.
fn time((tag, t, _): (u8, &[u8], &[u8])) -> Option<i64> {
    match tag {
        UTC_TIME => utc_time(t),
        GENERALIZED_TIME => generalized_time(t),
        _ => None,
    }
}

/// INTEGER content: not empty, no redundant leading byte (OpenSSL
/// refuses both).
fn integer_ok(c: &[u8]) -> bool {
    match c {
        [] => false,
        [0x00, b, ..] if b & 0x80 == 0 => false,
        [0xff, b, ..] if b & 0x80 != 0 => false,
        _ => true,
    }
}

/// OBJECT IDENTIFIER content as OpenSSL accepts it: not empty, no
/// sub-identifier starting with 0x80, the last one ended.
fn oid_ok(c: &[u8]) -> bool {
    let Some(last) = c.last() else {
        return false;
    };
    last & 0x80 == 0
        && !c
            .iter()
            .enumerate()
            .any(|(i, &b)| b == 0x80 && (i == 0 || c[i - 1] & 0x80 == 0))
}

/// BIT STRING content: the unused-bits count, at most 7, and 0 when
/// there are no bits.
fn bit_string_ok(c: &[u8]) -> bool {
    match c {
        [] => false,
        [unused] => *unused == 0,
        [unused, ..] => *unused <= 7,
    }
}

/// AlgorithmIdentifier content: an OID and parameters that are absent,
/// NULL or an OID (every ECDSA, RSA and EdDSA one); any other
/// parameters (RSA-PSS's) are left to OpenSSL.
fn algorithm_ok(c: &[u8]) -> bool {
    let mut r = Reader::new(c);
    let Some(oid) = r.expect(OID) else {
        return false;
    };
    // A malformed parameter is `None` here too, but leaves it unread, so
    // `r.done()` below refuses it.
    let params_ok = match r.next() {
        None => true,
        Some((NULL, p, _)) => p.is_empty(),
        Some((OID, p, _)) => oid_ok(p),
        Some(_) => false,
    };
    oid_ok(oid) && params_ok && r.done()
}

/// SubjectPublicKeyInfo content.
fn public_key_info_ok(c: &[u8]) -> bool {
    let mut r = Reader::new(c);
    r.expect(SEQUENCE).is_some_and(algorithm_ok)
        && r.expect(BIT_STRING).is_some_and(bit_string_ok)
        && r.done()
}

/// A certificate's subject public key, split as a signature algorithm
/// takes it: the AlgorithmIdentifier's content and the key's bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectKey<'a> {
    pub algorithm: &'a [u8],
    pub key: &'a [u8],
}

/// The public key of `der` if it is an X.509 v1 certificate, one with no
/// version field (or DER's forbidden explicit v1): what `openssl x509
/// -req` of OpenSSL 3.0 and 1.1, and LibreSSL, issue without extensions,
/// and what webpki does not read. `None` for any other version, and for
/// a shape this walk does not follow.
pub fn version_one_key(der: &[u8]) -> Option<SubjectKey<'_>> {
    let mut outer = Reader::new(der);
    let mut cert = Reader::new(outer.expect(SEQUENCE)?);
    let mut tbs = Reader::new(cert.expect(SEQUENCE)?);
    if tbs.peek_tag() == Some(0xa0) && tbs.next()?.1 != [INTEGER, 1, 0] {
        return None;
    }
    tbs.expect(INTEGER)?;
    // signature, issuer, validity, subject
    for _ in 0..4 {
        tbs.expect(SEQUENCE)?;
    }
    let mut spki = Reader::new(tbs.expect(SEQUENCE)?);
    let algorithm = spki.expect(SEQUENCE)?;
    let (&unused, key) = spki.expect(BIT_STRING)?.split_first()?;
    // Bytes after the certificate: OpenSSL's decoder would ignore them,
    // and they would reach backends in `Client-Cert` (webpki refuses them).
    (unused == 0 && spki.done() && outer.done()).then_some(SubjectKey { algorithm, key })
}

/// The attributes OpenSSL prints by a short name that a plain name may
/// hold, by their OIDs' content bytes, with that short name.
const NAMED_ATTRIBUTES: &[(&[u8], &str)] = &[
    (&[0x55, 0x04, 0x03], "CN"),
    (&[0x55, 0x04, 0x04], "SN"),
    (&[0x55, 0x04, 0x05], "serialNumber"),
    (&[0x55, 0x04, 0x06], "C"),
    (&[0x55, 0x04, 0x07], "L"),
    (&[0x55, 0x04, 0x08], "ST"),
    (&[0x55, 0x04, 0x09], "street"),
    (&[0x55, 0x04, 0x0a], "O"),
    (&[0x55, 0x04, 0x0b], "OU"),
    (&[0x55, 0x04, 0x0c], "title"),
    (&[0x55, 0x04, 0x2a], "GN"),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
        "emailAddress",
    ),
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
        "UID",
    ),
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
        "DC",
    ),
];

const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const IA5_STRING: u8 = 0x16;

/// A `Name` (tag and length included) as its attributes, in the order
/// they are encoded, each as OpenSSL's short name and its text: only
/// where the name is plain, one attribute to each RDN, every attribute
/// one of `NAMED_ATTRIBUTES`, every value a non-empty UTF8String,
/// PrintableString or IA5String of visible ASCII and spaces. Decoding a
/// name with OpenSSL costs more than two percent of a full rustls
/// handshake; for a plain name its text is these bytes, whatever the
/// string type, so the reading cannot differ from OpenSSL's. Anything
/// else (a multi-valued RDN, an unnamed OID, a BMPString, a byte above
/// 0x7e) is `None`, and OpenSSL decodes the name.
pub(crate) fn plain_name(der: &[u8]) -> Option<Vec<(&'static str, &str)>> {
    // OpenSSL's `X509_NAME_MAX`: a longer name it refuses to decode.
    if der.len() > 1 << 20 {
        return None;
    }
    let mut outer = Reader::new(der);
    let mut rdns = Reader::new(outer.expect(SEQUENCE)?);
    if !outer.done() {
        return None;
    }
    let mut attributes = Vec::with_capacity(4);
    while !rdns.done() {
        let mut rdn = Reader::new(rdns.expect(SET)?);
        let mut atv = Reader::new(rdn.expect(SEQUENCE)?);
        if !rdn.done() {
            return None;
        }
        let oid = atv.expect(OID)?;
        let (tag, value, _) = atv.next()?;
        if !atv.done() {
            return None;
        }
        let name = NAMED_ATTRIBUTES.iter().find(|(o, _)| *o == oid)?.1;
        let plain = matches!(tag, UTF8_STRING | PRINTABLE_STRING | IA5_STRING)
            && !value.is_empty()
            && value.iter().all(|&b| (0x20..0x7f).contains(&b));
        if !plain {
            return None;
        }
        attributes.push((name, std::str::from_utf8(value).ok()?));
    }
    Some(attributes)
}

/// `GeneralNames ::= SEQUENCE OF GeneralName` (RFC 5280 4.2.1.6).
fn general_names(value: &[u8]) -> Option<Vec<GeneralName<'_>>> {
    let mut outer = Reader::new(value);
    let mut names = Reader::new(outer.expect(SEQUENCE)?);
    if !outer.done() {
        return None;
    }
    let mut out = Vec::new();
    while !names.done() {
        let (tag, content, _) = names.next()?;
        out.push(match tag {
            0x81 => GeneralName::Email(content),
            0x82 => GeneralName::Dns(content),
            0x86 => GeneralName::Uri(content),
            0x87 => GeneralName::Ip(content),
            // otherName, x400Address, directoryName, ediPartyName,
            // registeredID: OpenSSL decodes their insides, and where it
            // cannot, it reads no SANs at all; so it reads these too.
            _ => return None,
        });
    }
    Some(out)
}

/// `YYMMDDHHMMSSZ`; RFC 5280: years 50-99 are 19xx.
fn utc_time(t: &[u8]) -> Option<i64> {
    if t.len() != 13 || t[12] != b'Z' {
        return None;
    }
    let yy = digits(&t[0..2])?;
    let year = if yy >= 50 { 1900 + yy } else { 2000 + yy };
    civil(year, &t[2..12])
}

/// `YYYYMMDDHHMMSSZ`.
fn generalized_time(t: &[u8]) -> Option<i64> {
    if t.len() != 15 || t[14] != b'Z' {
        return None;
    }
    civil(digits(&t[0..4])?, &t[4..14])
}

/// Seconds since the epoch of `year` and `MMDDHHMMSS`.
fn civil(year: i64, rest: &[u8]) -> Option<i64> {
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let minute = digits(&rest[6..8])?;
    let second = digits(&rest[8..10])?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[path = "der_tests.rs"]
pub(crate) mod tests;
