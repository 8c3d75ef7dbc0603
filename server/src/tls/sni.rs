//! SNI straight from the ClientHello bytes.
//!
//! The ClientHello callback runs before OpenSSL parses extensions, so
//! `SSL_get_servername` is not set yet; we read the `server_name`
//! extension (RFC 6066 section 3) ourselves.

use openssl::ssl::SslRef;

const TLSEXT_TYPE_SERVER_NAME: u32 = 0;

/// The requested host name, lower case, without a trailing dot; `None` when
/// the client sent no (or an unparseable) host name.
pub fn from_client_hello(ssl: &SslRef) -> Option<String> {
    parse_server_name(tlsgate_ossl::client_hello_ext(
        ssl,
        TLSEXT_TYPE_SERVER_NAME,
    )?)
}

/// Parses the `server_name` extension body: a u16 list length, then entries
/// of (u8 type, u16 length, name); the first `host_name` (type 0) counts.
pub fn parse_server_name(mut b: &[u8]) -> Option<String> {
    let list_len = u16::from_be_bytes([*b.first()?, *b.get(1)?]) as usize;
    b = b.get(2..2 + list_len)?;
    while b.len() >= 3 {
        let kind = b[0];
        let len = u16::from_be_bytes([b[1], b[2]]) as usize;
        let name = b.get(3..3 + len)?;
        if kind == 0 {
            let name = std::str::from_utf8(name).ok()?;
            let name = name.strip_suffix('.').unwrap_or(name);
            if name.is_empty() || !name.bytes().all(|c| c.is_ascii_graphic()) {
                return None;
            }
            return Some(name.to_ascii_lowercase());
        }
        b = &b[3 + len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::parse_server_name;

    fn ext(name: &[u8]) -> Vec<u8> {
        let mut entry = vec![0u8];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name);
        let mut out = (entry.len() as u16).to_be_bytes().to_vec();
        out.extend(entry);
        out
    }

    #[test]
    fn reads_host_name_lower_case_without_trailing_dot() {
        assert_eq!(
            parse_server_name(&ext(b"Frontend.Example.COM.")).as_deref(),
            Some("frontend.example.com")
        );
    }

    #[test]
    fn refuses_truncated_or_odd_input() {
        let mut e = ext(b"a.example.com");
        e.truncate(e.len() - 2);
        assert_eq!(parse_server_name(&e), None);
        assert_eq!(parse_server_name(&[]), None);
        assert_eq!(parse_server_name(&ext(b"bad name")), None);
        assert_eq!(parse_server_name(&ext(b"")), None);
    }
}
