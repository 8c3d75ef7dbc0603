//! The outer headers of TLS 1.2 records a client sends after the
//! handshake, read as they pass (never changed): a handshake record there
//! is a renegotiation request. rustls refuses those itself (with a
//! `no_renegotiation` warning), without telling us; this is how the
//! refusal gets counted, as OpenSSL's info callback counts it.

const HEADER: usize = 5;
const CONTENT_HANDSHAKE: u8 = 22;
/// The largest record a TLS 1.2 peer may send (ciphertext, RFC 5246 6.2.3).
const MAX_RECORD: usize = (1 << 14) + 2048;

#[derive(Debug, Default)]
pub struct RecordScan {
    header: [u8; HEADER],
    have: usize,
    /// Body bytes of the current record still to pass.
    body_left: usize,
    /// Handshake records seen and not yet taken.
    handshakes: u32,
    /// A header that cannot be TLS 1.2: we lost the record boundaries
    /// (the scan started inside a record), so it stops.
    lost: bool,
}

impl RecordScan {
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.lost {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (HEADER - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < HEADER {
                return;
            }
            self.have = 0;
            let [kind, major, minor, hi, lo] = self.header;
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            if !(20..=23).contains(&kind) || major != 3 || minor != 3 || len > MAX_RECORD {
                self.lost = true;
                return;
            }
            if kind == CONTENT_HANDSHAKE {
                self.handshakes += 1;
            }
            self.body_left = len;
        }
    }

    /// Handshake records seen since the last call.
    pub fn take_handshakes(&mut self) -> u32 {
        std::mem::take(&mut self.handshakes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, len: usize) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&(len as u16).to_be_bytes());
        r.resize(HEADER + len, 0x16);
        r
    }

    #[test]
    fn handshake_records_counted_across_any_split() {
        let mut stream = record(23, 300);
        stream.extend(record(22, 40));
        stream.extend(record(21, 26));
        stream.extend(record(23, MAX_RECORD));
        stream.extend(record(22, 0));
        for chunk in [1, 2, 3, 5, 7, 64, 1000, stream.len()] {
            let mut s = RecordScan::default();
            for piece in stream.chunks(chunk) {
                s.feed(piece);
            }
            assert_eq!(s.take_handshakes(), 2, "chunks of {chunk}");
            assert_eq!(s.take_handshakes(), 0);
            assert!(!s.lost);
        }
    }

    #[test]
    fn lost_boundaries_stop_the_scan() {
        for bad in [
            vec![0x47, 0x45, 0x54, 0x20, 0x2f], // "GET /"
            vec![22, 3, 1, 0, 4],               // TLS 1.0 header
            vec![22, 3, 3, 0xff, 0xff],         // longer than any record
        ] {
            let mut s = RecordScan::default();
            s.feed(&bad);
            s.feed(&record(22, 4));
            assert!(s.lost);
            assert_eq!(s.take_handshakes(), 0, "{bad:?}");
        }
    }
}
