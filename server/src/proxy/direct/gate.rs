//! The gate every HTTP/1.1 request head passes, whichever engine serves it
//! afterwards (`--no-direct` included): bytes are checked as they arrive,
//! so a head that can never be valid is refused at its first bad byte,
//! not after a timeout, and a head's size, line count and memory are
//! bounded before any parser sees it.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::metrics::metrics;

/// Why a request was refused before routing, and with which status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// The `reason` label of `tlsgate_http_refused_total`.
    pub reason: &'static str,
}

impl Refusal {
    pub const HEAD_TOO_LARGE: Refusal = Refusal::new(431, "head_too_large");
    pub const TOO_MANY_HEADERS: Refusal = Refusal::new(431, "too_many_headers");
    pub const MALFORMED: Refusal = Refusal::new(400, "malformed");
    pub const BARE_CR: Refusal = Refusal::new(400, "bare_cr");
    pub const NUL_BYTE: Refusal = Refusal::new(400, "nul_byte");
    pub const DUPLICATE_CONTENT_LENGTH: Refusal = Refusal::new(400, "duplicate_content_length");
    pub const CONTENT_LENGTH_WITH_TRANSFER_ENCODING: Refusal =
        Refusal::new(400, "content_length_with_transfer_encoding");
    pub const BAD_TRANSFER_ENCODING: Refusal = Refusal::new(400, "bad_transfer_encoding");
    pub const DUPLICATE_HOST: Refusal = Refusal::new(400, "duplicate_host");
    pub const HEAD_MEMORY: Refusal = Refusal::new(503, "head_memory");

    const fn new(status: u16, reason: &'static str) -> Refusal {
        Refusal { status, reason }
    }
}

/// Where the scan of a head in progress stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// The head ends after this many bytes.
    Complete(usize),
    /// Nothing wrong so far; more bytes are needed.
    More,
    Refused(Refusal),
}

/// An incremental scan of one head: each byte is looked at once, however
/// the head is split across reads (a head trickled a byte at a time costs
/// linear work).
#[derive(Debug, Default)]
pub struct HeadScan {
    /// Bytes scanned so far.
    pos: usize,
    /// Where the current line starts.
    line_start: usize,
    /// Lines ended so far, leading empty lines excluded.
    lines: usize,
}

impl HeadScan {
    /// Scans what `buf` holds beyond what was scanned before. A head may
    /// carry at most `max_headers` header lines.
    pub fn feed(&mut self, buf: &[u8], max_headers: usize) -> Scan {
        while self.pos < buf.len() {
            let i = self.pos;
            match buf[i] {
                0 => return Scan::Refused(Refusal::NUL_BYTE),
                b'\r' => match buf.get(i + 1) {
                    // Decided by the next byte, on a later read.
                    None => return Scan::More,
                    Some(b'\n') => {}
                    Some(_) => return Scan::Refused(Refusal::BARE_CR),
                },
                b'\n' => {
                    let mut line = &buf[self.line_start..i];
                    if let Some(l) = line.strip_suffix(b"\r") {
                        line = l;
                    }
                    self.line_start = i + 1;
                    if line.is_empty() {
                        // RFC 9112 2.2: empty lines before the request
                        // line are ignored; after it, the head ends.
                        if self.lines > 0 {
                            self.pos = i + 1;
                            return Scan::Complete(i + 1);
                        }
                    } else {
                        self.lines += 1;
                        if self.lines > max_headers + 1 {
                            return Scan::Refused(Refusal::TOO_MANY_HEADERS);
                        }
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Scan::More
    }
}

static HELD: AtomicUsize = AtomicUsize::new(0);

/// The memory one connection's unfinished head holds, counted against
/// `limits.requestHeadMemory` for all connections together: many slow
/// heads at once cannot add up to more than that.
#[derive(Debug, Default)]
pub struct HeadMemory {
    held: usize,
}

impl HeadMemory {
    /// Accounts `bytes` for this connection; `false` (nothing changed)
    /// when that would take all heads together over `limit`.
    pub fn hold(&mut self, bytes: usize, limit: usize) -> bool {
        if bytes <= self.held {
            self.release(self.held - bytes);
            return true;
        }
        let more = bytes - self.held;
        let before = HELD.fetch_add(more, Ordering::AcqRel);
        if before + more > limit {
            HELD.fetch_sub(more, Ordering::AcqRel);
            return false;
        }
        self.held = bytes;
        metrics().request_head_bytes.add(more as i64);
        true
    }

    fn release(&mut self, n: usize) {
        if n > 0 {
            self.held -= n;
            HELD.fetch_sub(n, Ordering::AcqRel);
            metrics().request_head_bytes.sub(n as i64);
        }
    }
}

impl Drop for HeadMemory {
    fn drop(&mut self) {
        self.release(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_whole(raw: &[u8], max: usize) -> Scan {
        HeadScan::default().feed(raw, max)
    }

    #[test]
    fn heads_end_at_the_first_empty_line() {
        let cases: &[(&[u8], Scan)] = &[
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest", Scan::Complete(27)),
            (b"GET / HTTP/1.1\nHost: x\n\nrest", Scan::Complete(24)),
            (b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", Scan::Complete(29)),
            (b"GET / HTTP/1.1\r\nHost: x\r\n", Scan::More),
            (b"GET / HTTP/1.1\r\nHost: x\r", Scan::More),
            (b"", Scan::More),
            (
                b"GET / HTTP/1.1\rHost: x\r\r",
                Scan::Refused(Refusal::BARE_CR),
            ),
            (b"GET /a\0b HTTP/1.1\r\n", Scan::Refused(Refusal::NUL_BYTE)),
            (
                b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n",
                Scan::Refused(Refusal::TOO_MANY_HEADERS),
            ),
            (
                b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n",
                Scan::Complete(30),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(
                scan_whole(raw, 2),
                *want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn any_split_gives_the_same_verdict() {
        for raw in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\rHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: \0\r\n\r\n",
        ] {
            let whole = scan_whole(raw, 10);
            for cut in 0..raw.len() {
                let mut s = HeadScan::default();
                let first = s.feed(&raw[..cut], 10);
                let v = if first == Scan::More {
                    s.feed(raw, 10)
                } else {
                    first
                };
                assert_eq!(v, whole, "cut at {cut}");
            }
        }
    }

    #[test]
    fn head_memory_is_bounded_in_total() {
        let limit = HELD.load(Ordering::Relaxed) + 10_000;
        let mut a = HeadMemory::default();
        let mut b = HeadMemory::default();
        assert!(a.hold(6_000, limit));
        assert!(!b.hold(6_000, limit), "over the total");
        assert!(a.hold(1_000, limit), "shrinking always works");
        assert!(b.hold(6_000, limit));
        drop(a);
        drop(b);
        let mut c = HeadMemory::default();
        assert!(c.hold(9_000, limit), "released on drop");
    }
}
