//! The server name (SNI) and ALPN of a TLS ClientHello, read from the
//! first bytes of a connection without terminating TLS, so that a listener
//! can pass the connection through to a backend chosen by name. The
//! ClientHello may arrive in several records (fragmented, as RFC 8446 5.1
//! allows); records are reassembled up to a bound, and anything malformed
//! is `Invalid` with a reason, never a panic.

use super::Parsed;

/// Most bytes of one ClientHello message accepted (post-quantum key
/// shares and ECH make hellos of a few KiB; 16 KiB is one full record).
pub const MAX_HELLO: usize = 16 * 1024;
/// A TLS record's largest plaintext fragment (RFC 8446 5.1).
const MAX_RECORD: usize = 16 * 1024;

/// What a ClientHello says about where it is going.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// `server_name`'s host name, lower case; `None` when absent.
    pub sni: Option<String>,
    /// `application_layer_protocol_negotiation`, in the client's order.
    pub alpn: Vec<String>,
}

/// Parses the ClientHello at the start of `buf` (TLS records). `Done`'s
/// length runs to the end of the record that completes the hello.
pub fn parse(buf: &[u8]) -> Parsed<ClientHello> {
    let mut message = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = buf.get(at..at + 5) else {
            return Parsed::Incomplete(at + 5 - buf.len());
        };
        if header[0] != 0x16 {
            return Parsed::Invalid(if at == 0 {
                "not_tls"
            } else {
                "interleaved_record"
            });
        }
        if header[1] != 0x03 || header[2] > 0x04 {
            return Parsed::Invalid("bad_record_version");
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_RECORD {
            return Parsed::Invalid("bad_record_length");
        }
        let Some(fragment) = buf.get(at + 5..at + 5 + len) else {
            return Parsed::Incomplete(at + 5 + len - buf.len());
        };
        message.extend_from_slice(fragment);
        at += 5 + len;
        if message[0] != 0x01 {
            return Parsed::Invalid("not_client_hello");
        }
        if message.len() < 4 {
            continue;
        }
        let body_len = (usize::from(message[1]) << 16)
            | (usize::from(message[2]) << 8)
            | usize::from(message[3]);
        if body_len > MAX_HELLO {
            return Parsed::Invalid("hello_too_long");
        }
        if message.len() < 4 + body_len {
            continue;
        }
        if message.len() > 4 + body_len {
            // Another handshake message after the hello in its records.
            return Parsed::Invalid("trailing_handshake_data");
        }
        return match hello(&message[4..]) {
            Ok(h) => Parsed::Done(h, at),
            Err(why) => Parsed::Invalid(why),
        };
    }
}

/// A cursor that fails instead of running past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("truncated_hello");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<usize, &'static str> {
        Ok(usize::from(self.take(1)?[0]))
    }

    fn u16(&mut self) -> Result<usize, &'static str> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    /// A vector with a `width`-byte length prefix.
    fn vec(&mut self, width: usize) -> Result<&'a [u8], &'static str> {
        let n = if width == 1 { self.u8()? } else { self.u16()? };
        self.take(n)
    }
}

fn hello(body: &[u8]) -> Result<ClientHello, &'static str> {
    let mut r = Reader(body);
    let version = r.take(2)?;
    if version[0] != 0x03 || version[1] < 0x01 {
        return Err("old_protocol");
    }
    r.take(32)?; // random
    if r.vec(1)?.len() > 32 {
        return Err("bad_session_id");
    }
    let suites = r.vec(2)?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err("bad_cipher_suites");
    }
    if r.vec(1)?.is_empty() {
        return Err("bad_compression_methods");
    }
    let mut out = ClientHello::default();
    if r.0.is_empty() {
        return Ok(out); // no extensions (TLS 1.2 allows it)
    }
    let mut ext = Reader(r.vec(2)?);
    if !r.0.is_empty() {
        return Err("trailing_hello_data");
    }
    let mut seen = Vec::new();
    while !ext.0.is_empty() {
        let kind = ext.u16()?;
        let data = ext.vec(2)?;
        if seen.contains(&kind) {
            return Err("duplicate_extension");
        }
        seen.push(kind);
        match kind {
            0 => out.sni = Some(server_name(data)?),
            16 => out.alpn = alpn(data)?,
            _ => {}
        }
    }
    Ok(out)
}

/// RFC 6066 3: one `host_name` entry; a name that is not a DNS name (a
/// control byte, an empty label) is refused. One trailing dot is dropped,
/// as the TLS callbacks drop it (`tls/sni.rs`), so that adding a
/// passthrough host to a port refuses no client the handshake took.
fn server_name(data: &[u8]) -> Result<String, &'static str> {
    let mut r = Reader(data);
    let mut list = Reader(r.vec(2)?);
    if !r.0.is_empty() {
        return Err("bad_server_name");
    }
    let mut name = None;
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let value = list.vec(2)?;
        if kind == 0 {
            if name.is_some() {
                return Err("bad_server_name");
            }
            name = Some(value);
        }
    }
    let name = name.ok_or("bad_server_name")?;
    let name = name.strip_suffix(b".").unwrap_or(name);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split(|b| *b == b'.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        });
    if !ok {
        return Err("bad_server_name");
    }
    Ok(String::from_utf8_lossy(name).to_ascii_lowercase())
}

fn alpn(data: &[u8]) -> Result<Vec<String>, &'static str> {
    let mut r = Reader(data);
    let mut list = Reader(r.vec(2)?);
    if !r.0.is_empty() {
        return Err("bad_alpn");
    }
    let mut out = Vec::new();
    while !list.0.is_empty() {
        let p = list.vec(1)?;
        if p.is_empty() {
            return Err("bad_alpn");
        }
        out.push(String::from_utf8_lossy(p).into_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello body with `extensions` (each kind, data).
    fn hello_body(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut b = vec![0x03, 0x03];
        b.extend_from_slice(&[7; 32]);
        b.push(32);
        b.extend_from_slice(&[1; 32]);
        b.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02]);
        b.extend_from_slice(&[1, 0]);
        let mut ext = Vec::new();
        for (kind, data) in extensions {
            ext.extend_from_slice(&kind.to_be_bytes());
            ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
            ext.extend_from_slice(data);
        }
        b.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        b.extend_from_slice(&ext);
        b
    }

    fn sni(name: &[u8]) -> (u16, Vec<u8>) {
        let mut entry = vec![0];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name);
        let mut d = (entry.len() as u16).to_be_bytes().to_vec();
        d.extend_from_slice(&entry);
        (0, d)
    }

    fn alpn_ext(protocols: &[&str]) -> (u16, Vec<u8>) {
        let mut list = Vec::new();
        for p in protocols {
            list.push(p.len() as u8);
            list.extend_from_slice(p.as_bytes());
        }
        let mut d = (list.len() as u16).to_be_bytes().to_vec();
        d.extend_from_slice(&list);
        (16, d)
    }

    /// The handshake message, cut into records of at most `record` bytes.
    fn records(body: &[u8], record: usize) -> Vec<u8> {
        let mut msg = vec![0x01];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(body);
        let mut out = Vec::new();
        for chunk in msg.chunks(record) {
            out.extend_from_slice(&[0x16, 0x03, 0x01]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn sni_and_alpn_whole_or_in_fragments_and_byte_by_byte() {
        let body = hello_body(&[
            (10, vec![0, 2, 0, 29]),
            sni(b"Passthrough.Example.COM"),
            alpn_ext(&["h2", "http/1.1"]),
        ]);
        let want = ClientHello {
            sni: Some("passthrough.example.com".into()),
            alpn: vec!["h2".into(), "http/1.1".into()],
        };
        for record in [16 * 1024, 100, 7, 1] {
            let bytes = records(&body, record);
            assert_eq!(
                parse(&bytes),
                Parsed::Done(want.clone(), bytes.len()),
                "records of {record}"
            );
            for n in 0..bytes.len() {
                assert!(
                    matches!(parse(&bytes[..n]), Parsed::Incomplete(_)),
                    "{record}: {n}"
                );
            }
        }
    }

    #[test]
    fn a_hello_without_sni_or_extensions_has_no_name() {
        let no_sni = records(&hello_body(&[alpn_ext(&["h2"])]), 512);
        assert!(matches!(
            parse(&no_sni),
            Parsed::Done(ClientHello { sni: None, .. }, _)
        ));
        let mut bare = hello_body(&[]);
        bare.truncate(bare.len() - 2);
        assert!(matches!(
            parse(&records(&bare, 512)),
            Parsed::Done(ClientHello { sni: None, .. }, _)
        ));
    }

    #[test]
    fn malformed_hellos_are_refused_with_a_reason() {
        let good = hello_body(&[sni(b"a.example.com")]);
        let case = |bytes: Vec<u8>| match parse(&bytes) {
            Parsed::Invalid(why) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(case(b"GET / HTTP/1.1\r\n".to_vec()), "not_tls");
        let mut v = records(&good, 512);
        v[1] = 0x02;
        assert_eq!(case(v), "bad_record_version");
        let mut v = records(&good, 512);
        v[5] = 0x02;
        assert_eq!(case(v), "not_client_hello");
        assert_eq!(case(vec![0x16, 3, 1, 0, 0]), "bad_record_length");
        assert_eq!(case(vec![0x16, 3, 1, 0x40, 0x01]), "bad_record_length");
        assert_eq!(
            case(vec![0x16, 3, 1, 0, 4, 1, 0x01, 0, 0]),
            "hello_too_long"
        );
        let mut v = records(&good, 20);
        v[25] = 0x17; // second record is application data
        assert_eq!(case(v), "interleaved_record");
        for (name, why) in [
            (&b"a.example.."[..], "bad_server_name"),
            (b".", "bad_server_name"),
            (b"a..b", "bad_server_name"),
            (b"a\nb", "bad_server_name"),
            (b"", "bad_server_name"),
        ] {
            assert_eq!(
                case(records(&hello_body(&[sni(name)]), 512)),
                why,
                "{name:?}"
            );
        }
        let named = parse(&records(&hello_body(&[sni(b"A.Example.com.")]), 512));
        let Parsed::Done(h, _) = named else {
            panic!("{named:?}")
        };
        assert_eq!(
            h.sni.as_deref(),
            Some("a.example.com"),
            "as tls/sni.rs reads it"
        );
        assert_eq!(
            case(records(&hello_body(&[sni(b"a.test"), sni(b"b.test")]), 512)),
            "duplicate_extension"
        );
        let mut short = good.clone();
        short.truncate(40);
        assert_eq!(case(records(&short, 512)), "truncated_hello");
        let mut old = good.clone();
        old[1] = 0x00;
        assert_eq!(case(records(&old, 512)), "old_protocol");
        let mut extra = records(&good, 512);
        let len = extra.len();
        extra[3..5].copy_from_slice(&((len - 5 + 4) as u16).to_be_bytes());
        extra.extend_from_slice(&[0x02, 0, 0, 0]);
        assert_eq!(case(extra), "trailing_handshake_data");
    }

    /// Whatever the bytes, an answer without a panic, and a `Done` length
    /// within the input.
    #[test]
    fn garbage_never_panics() {
        let good = records(&hello_body(&[sni(b"a.example.com"), alpn_ext(&["h2"])]), 64);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bytes = good.clone();
            for k in 0..(seed % 4) {
                let at = ((seed >> (8 * k)) as usize) % bytes.len();
                bytes[at] = (seed >> (3 * k)) as u8;
            }
            bytes.truncate(((seed >> 40) as usize) % (bytes.len() + 1));
            if let Parsed::Done(_, n) = parse(&bytes) {
                assert!(n <= bytes.len());
            }
        }
    }

    /// The bytes OpenSSL itself sends (TLS 1.3 key shares, ALPN, SNI),
    /// read off a socket until the parser is done.
    #[test]
    fn a_real_openssl_client_hello() {
        use std::io::Read;
        use std::os::unix::net::UnixStream;

        let (client, mut server) = UnixStream::pair().unwrap();
        let handshake = std::thread::spawn(move || {
            let mut c =
                openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
            c.set_alpn_protos(b"\x02h2\x08http/1.1").unwrap();
            // Fails once the other end closes: only the hello matters.
            let _ = c.build().connect("Passthrough.Example.com", client);
        });
        let mut buf = Vec::new();
        let mut chunk = [0u8; 512];
        let parsed = loop {
            match parse(&buf) {
                Parsed::Incomplete(_) => {}
                other => break other,
            }
            let n = server.read(&mut chunk).unwrap();
            assert!(n > 0, "the client closed before its hello was whole");
            buf.extend_from_slice(&chunk[..n]);
        };
        drop(server);
        handshake.join().unwrap();
        let Parsed::Done(hello, n) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(hello.sni.as_deref(), Some("passthrough.example.com"));
        assert_eq!(hello.alpn, ["h2", "http/1.1"]);
        assert_eq!(n, buf.len(), "the hello is all the client sent first");
    }
}
