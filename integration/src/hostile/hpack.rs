//! Just enough HPACK (RFC 7541) to attack with: header fields as literals
//! (no Huffman), a field inserted into the dynamic table and referred to
//! again (the HPACK bomb), and the `:status` of a response block.
//!
//! The client announces `SETTINGS_HEADER_TABLE_SIZE = 0` (see `h2.rs`), so
//! the server's blocks refer to the static table only; a status that is
//! not in it comes as a literal, possibly Huffman-coded, and digits are all
//! [`status`] needs to decode.

/// An integer with an `n`-bit prefix; `first` holds the bits above it.
pub fn int(out: &mut Vec<u8>, first: u8, n: u32, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    int(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// A literal field without indexing, new name (`0000 0000`).
pub fn literal(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x00);
    string(out, name.as_bytes());
    string(out, value);
}

/// A literal field with incremental indexing, new name (`0100 0000`): the
/// server's decoder keeps it as dynamic entry 62 (pushing older ones up).
pub fn literal_indexed(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x40);
    string(out, name.as_bytes());
    string(out, value);
}

/// An indexed field (`1xxx xxxx`): static 1..=61, dynamic from 62.
pub fn indexed(out: &mut Vec<u8>, index: usize) {
    int(out, 0x80, 7, index);
}

/// A request block: the four pseudo-headers, then `extra` fields.
pub fn request(method: &str, path: &str, authority: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    literal(&mut b, ":method", method.as_bytes());
    literal(&mut b, ":scheme", b"https");
    literal(&mut b, ":path", path.as_bytes());
    literal(&mut b, ":authority", authority.as_bytes());
    for (n, v) in extra {
        literal(&mut b, n, v.as_bytes());
    }
    b
}

/// Read an integer with an `n`-bit prefix at `b[*i]`.
fn read_int(b: &[u8], i: &mut usize, n: u32) -> Option<usize> {
    let max = (1usize << n) - 1;
    let mut v = usize::from(*b.get(*i)?) & max;
    *i += 1;
    if v < max {
        return Some(v);
    }
    let mut shift = 0;
    loop {
        let byte = *b.get(*i)?;
        *i += 1;
        v += usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// Huffman-decode a string made of digits only: `0`-`2` are the 5-bit
/// codes 0-2, `3`-`9` the 6-bit codes 0x19-0x1f (RFC 7541, Appendix B);
/// the end is padded with ones.
fn huffman_digits(b: &[u8]) -> Option<String> {
    let bits: Vec<u8> = b
        .iter()
        .flat_map(|byte| (0..8).rev().map(move |k| (byte >> k) & 1))
        .collect();
    let mut out = String::new();
    let mut i = 0;
    while i < bits.len() {
        let rest = &bits[i..];
        if rest.len() < 8 && rest.iter().all(|&x| x == 1) {
            break; // padding
        }
        let take = |n: usize| -> Option<u8> {
            (rest.len() >= n).then(|| rest[..n].iter().fold(0u8, |a, &x| (a << 1) | x))
        };
        match take(5)? {
            c @ 0..=2 => {
                out.push(char::from(b'0' + c));
                i += 5;
            }
            _ => match take(6)? {
                c @ 0x19..=0x1f => {
                    out.push(char::from(b'3' + (c - 0x19)));
                    i += 6;
                }
                _ => return None,
            },
        }
    }
    Some(out)
}

/// The `:status` of a response header block, if its first field says it
/// with the static table (8..=14) or as a literal whose name is `:status`.
pub fn status(block: &[u8]) -> Option<u16> {
    const STATIC: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    let mut i = 0;
    loop {
        let first = *block.get(i)?;
        if first & 0xe0 == 0x20 {
            read_int(block, &mut i, 5)?; // dynamic table size update
            continue;
        }
        if first & 0x80 != 0 {
            let idx = read_int(block, &mut i, 7)?;
            return (8..=14).contains(&idx).then(|| STATIC[idx - 8]);
        }
        let prefix = if first & 0x40 != 0 { 6 } else { 4 };
        let name = read_int(block, &mut i, prefix)?;
        if !(8..=14).contains(&name) {
            return None;
        }
        let huffman = *block.get(i)? & 0x80 != 0;
        let len = read_int(block, &mut i, 7)?;
        let raw = block.get(i..i + len)?;
        let text = if huffman {
            huffman_digits(raw)?
        } else {
            String::from_utf8_lossy(raw).into_owned()
        };
        return text.parse().ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_with_prefixes() {
        // RFC 7541 C.1.1-C.1.3.
        let mut b = Vec::new();
        int(&mut b, 0, 5, 10);
        assert_eq!(b, [10]);
        b.clear();
        int(&mut b, 0, 5, 1337);
        assert_eq!(b, [31, 154, 10]);
        let mut i = 0;
        assert_eq!(read_int(&b, &mut i, 5), Some(1337));
        b.clear();
        int(&mut b, 0, 8, 42);
        assert_eq!(b, [42]);
    }

    #[test]
    fn statuses_indexed_literal_and_huffman() {
        assert_eq!(status(&[0x88]), Some(200));
        assert_eq!(status(&[0x20, 0x8d]), Some(404));
        assert_eq!(status(&[0x48, 0x03, b'4', b'0', b'8']), Some(408));
        // RFC 7541 C.6.1: "302" Huffman-coded is 64 02.
        assert_eq!(status(&[0x48, 0x82, 0x64, 0x02]), Some(302));
        // "307" is 64 0e ff in C.6.2.
        assert_eq!(status(&[0x48, 0x83, 0x64, 0x0e, 0xff]), Some(307));
        assert_eq!(status(&[0xbe]), None);
    }
}
