//! A real ClientHello: an OpenSSL client handshake run against a stream that
//! records what is written and has nothing to read, so it stops right after
//! its first flight. The bytes can then be sent whole, cut at any byte, or
//! a byte at a time, to a real server.

use std::io::{self, Read, Write};

use openssl::ssl::HandshakeError;

use super::tls::{connector, TlsOpts};

/// Collects writes; every read would block.
#[derive(Debug, Default)]
struct Recorder {
    written: Vec<u8>,
}

impl Read for Recorder {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The TLS records of one ClientHello.
#[derive(Debug, Clone)]
pub struct ClientHello {
    pub bytes: Vec<u8>,
}

impl ClientHello {
    /// The ClientHello an OpenSSL client sends for `sni` with `opts`.
    pub fn capture(sni: &str, opts: &TlsOpts<'_>) -> ClientHello {
        let c = connector(opts).expect("TLS connector");
        let bytes = match c.connect(sni, Recorder::default()) {
            Err(HandshakeError::WouldBlock(mid)) => mid.get_ref().written.clone(),
            Err(e) => panic!("capturing a ClientHello for {sni}: {e}"),
            Ok(_) => panic!("a handshake finished against a stream with nothing to read"),
        };
        let hello = ClientHello { bytes };
        hello.check();
        hello
    }

    /// A ClientHello for `sni` offering `h2` and `http/1.1`, as browsers do.
    pub fn for_host(sni: &str) -> ClientHello {
        ClientHello::capture(
            sni,
            &TlsOpts {
                alpn: &["h2", "http/1.1"],
                ..TlsOpts::default()
            },
        )
    }

    /// Its first `n` bytes (all of them if `n` is larger).
    pub fn truncated(&self, n: usize) -> &[u8] {
        &self.bytes[..n.min(self.bytes.len())]
    }

    /// The first half: a record header that promises more than comes.
    pub fn half(&self) -> &[u8] {
        self.truncated(self.bytes.len() / 2)
    }

    /// A handshake record (22) of TLS 1.x holding a ClientHello (1).
    fn check(&self) {
        let b = &self.bytes;
        assert!(
            b.len() > 9 && b[0] == 22 && b[1] == 3 && b[5] == 1,
            "not a ClientHello record: {:02x?}",
            &b[..b.len().min(16)]
        );
        let record_len = usize::from(u16::from_be_bytes([b[3], b[4]]));
        assert!(record_len + 5 <= b.len(), "record longer than captured");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_a_client_hello_naming_the_host() {
        let h = ClientHello::for_host("frontend.example.com");
        let needle = b"frontend.example.com";
        assert!(h.bytes.windows(needle.len()).any(|w| w == needle));
        assert!(h.bytes.windows(2).any(|w| w == b"h2"));
        assert_eq!(h.half().len(), h.bytes.len() / 2);
        assert_eq!(h.truncated(usize::MAX).len(), h.bytes.len());
    }
}
